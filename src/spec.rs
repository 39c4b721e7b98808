//! RON types for one design: modules of the unified space and where they attach.
use thiserror::Error;
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{0}")]
    Message(String),
}
