//! pets: declarative, searchable parameter-efficient fine-tuning on frozen BERT-family encoders.
//!
//! Data flow: RON design ([`spec`]) → validated graph ([`graph`]) → modules compiled onto the
//! frozen encoder ([`compile`], [`backbone`], [`adapters`]) → training ([`train`]) → metrics.

pub mod adapters;
pub mod analyse;
pub mod assets;
pub mod backbone;
pub mod batch;
pub mod bench;
pub mod compile;
pub mod data;
pub mod device;
pub mod error;
pub mod export;
pub mod fuzz;
pub mod graph;
pub mod model;
pub mod params;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run;
pub mod science;
pub mod search;
pub mod spec;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
