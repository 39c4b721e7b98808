//! pets: declarative, searchable parameter-efficient fine-tuning on frozen BERT-family encoders.
//!
//! A design ([`spec::Design`], written in RON) says which small modules (adapters, LoRA, prefix
//! tuning, IA³) sit where on a frozen encoder; pets validates it against the backbone ([`graph`]),
//! counts its trainable parameters exactly ([`params`]), compiles it onto the encoder
//! ([`compile`], [`backbone`], [`methods`]) and trains only those parameters ([`train`]). A
//! search space ([`search::SearchSpace`]) describes many designs; a study searches it for the
//! designs that trade accuracy against trainable parameters best under a budget ([`search`]).
//!
//! The `pets` binary is a thin command line over this library. What a Rust program calls:
//!
//! | step | call |
//! |---|---|
//! | load a backbone | [`assets::Cache::model_dir`] (a known name, fetched once, or a folder), [`backbone::encoder::Encoder::from_folder`]; [`backbone::tiny`] writes a tiny random one |
//! | build a design | [`spec::Design::from_ron`] or the [`spec`] types in code; [`params::design_cost`] counts it, [`model::AdaptedModel::build`] puts it on an encoder |
//! | train | [`run::PreparedTask::prepare`] (task, split, tokenizer) then [`run::train_design`] ([`run::RunSettings`], [`train::TrainConfig`]) |
//! | evaluate | the returned [`run::RunMetrics`] (dev and test accuracy), [`train::evaluate`] on any split, [`predict::predict`] on texts |
//! | deploy | [`export::export`], then [`export::load_adapter`] and [`predict`] |
//! | search | [`search::worker::run_worker`] runs a whole study (store, fidelities, confirmation, reports); for an objective of your own, draw designs with a [`search::SamplerKind`]'s sampler and feed back [`search::Evaluated`] scores (`examples/library.rs`) |
//!
//! Settings are typed: [`search::Budget`] (`0.5%`, `120k`), [`search::SamplerKind`] (`nsga2`,
//! `random`) and [`device::DeviceKind`] (`cpu`, `cuda`) parse from the strings a user types.
//! Errors are [`Error`], one variant per module. The library prints nothing: long calls report
//! progress through the [`progress`] observer, if the program installs one.
//!
//! ```
//! use pets::backbone::tiny::tiny_config;
//! use pets::params::design_cost;
//! use pets::spec::Design;
//!
//! let design = Design::from_ron(
//!     "Design(name: \"lora\", modules: [Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query))])",
//!     "an example",
//! )?;
//! let cost = design_cost(&design, &tiny_config().shape(), 2)?;
//! // Rank 4 on a 48-wide query projection in 2 layers: A (4×48) and B (48×4) per layer.
//! assert_eq!(cost.trainable, 2 * (4 * 48 + 48 * 4));
//! # Ok::<(), pets::Error>(())
//! ```

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
pub mod methods;
pub mod model;
pub mod pack;
pub mod params;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run;
pub mod science;
pub mod search;
pub mod sites;
pub mod spec;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
