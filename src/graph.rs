//! petgraph IR of a design on a backbone, and its validation.
use thiserror::Error;
#[derive(Debug, Error)]
pub enum GraphError {
    #[error("{0}")]
    Message(String),
}
