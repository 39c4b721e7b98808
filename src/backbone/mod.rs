//! The frozen BERT-family encoder: config, weights, fused ops, insertion points for adapters.

pub mod attention;
pub mod bmm;
pub mod config;
pub mod encoder;
pub mod family;
pub mod llama;
pub mod ops;
pub mod tiny;
pub mod trace;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackboneError {
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
}
