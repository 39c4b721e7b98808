//! `pets graph` and `pets train`: one design on the backbone, drawn or trained.

use super::run_args::RunArgs;
use anyhow::Result;
use pets::assets::Cache;
use pets::backbone::config::BertConfig;
use pets::graph::DesignGraph;
use pets::run::{train_design, PreparedTask};
use pets::spec::Design;
use std::path::{Path, PathBuf};

/// `pets graph`: a one-line summary of the design's graph, or the graph in Graphviz's format.
pub fn graph(cache: &Cache, design: &Path, model: &str, dot: bool) -> Result<()> {
    let design = Design::from_file(design)?;
    let shape = model_config(cache, model)?.shape();
    let graph = DesignGraph::build(&design, &shape)?;
    if dot {
        print!("{}", graph.to_dot(&design));
    } else {
        println!(
            "design {}: {} nodes, {} edges, {} module instances over {} layers",
            design.name,
            graph.graph.node_count(),
            graph.graph.edge_count(),
            graph.module_instances(),
            shape.layers
        );
    }
    Ok(())
}

/// `pets train`: trains the design, says its accuracies on stderr and prints its metrics as JSON.
pub fn train(cache: &Cache, design: &Path, run: &RunArgs, out: Option<PathBuf>) -> Result<()> {
    let design = Design::from_file(design)?;
    let settings = run.settings(3)?;
    let task = PreparedTask::prepare(&settings, cache)?;
    let (metrics, _) = train_design(&design, &task, &settings, out.as_deref())?;
    match metrics.test_accuracy {
        Some(test) => eprintln!(
            "dev accuracy {:.4}, test accuracy {test:.4} ({} test examples)",
            metrics.accuracy, metrics.test_examples
        ),
        None => eprintln!("dev accuracy {:.4} (no test split)", metrics.accuracy),
    }
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    Ok(())
}

/// The configuration of a model in the cache (fetched first if needed).
pub fn model_config(cache: &Cache, model: &str) -> Result<BertConfig> {
    let dir = cache.model_dir(model)?;
    Ok(BertConfig::from_file(&dir.join("config.json"))?)
}
