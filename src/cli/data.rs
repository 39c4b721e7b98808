//! `pets fetch` and `pets split`: the cache's models and data sets, and a task's fixed split
//! written out for inspection.

use anyhow::{Context, Result};
use pets::assets::Cache;
use pets::data::TaskSource;
use std::path::Path;

/// `pets fetch`: downloads a model and a data set into the cache, printing where they are.
pub fn fetch(cache: &Cache, model: &str, data: &str) -> Result<()> {
    let dir = cache.model_dir(model)?;
    eprintln!("model {model}: {}", dir.display());
    let file = cache.dataset_file(data)?;
    eprintln!("data {data}: {}", file.display());
    Ok(())
}

/// `pets split`: the task's train, dev and test splits as `text\tlabel` TSV files.
pub fn split(cache: &Cache, task: &str, out_dir: &Path) -> Result<()> {
    let source = TaskSource::Builtin(task.to_string());
    let dataset = pets::data::load_task(&source, cache, &Default::default())?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let splits = [
        ("train", &dataset.train),
        ("dev", &dataset.dev),
        ("test", &dataset.test),
    ];
    for (name, examples) in splits {
        let path = out_dir.join(format!("{name}.tsv"));
        let mut text = String::from("text\tlabel\n");
        for e in examples.iter() {
            // TSV has no quoting: tabs and line breaks inside a text become spaces.
            let clean = e.text.replace(['\t', '\n', '\r'], " ");
            text.push_str(&format!(
                "{clean}\t{}\n",
                dataset.label_names[e.label as usize]
            ));
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{}: {} examples", path.display(), examples.len());
    }
    Ok(())
}
