//! `pets export`: a run folder, or a study trial's, turned into a deployable folder.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use pets::assets::Cache;
use pets::export::{
    trial_run_folder, AdapterSource, ExportFormat, ExportOptions, Layout, StudyTrial,
};
use std::path::PathBuf;

/// The folder layout `pets export` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// pets' own folder: any design.
    #[default]
    Pets,
    /// Hugging Face PEFT files: LoRA-only or IA³-only designs.
    Peft,
    /// AdapterHub `adapters` files: bottleneck and LoRA designs and their unions.
    Adapters,
}

/// `pets export`: turns a run folder into a deployable folder.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Run folder written by `pets train --out` (design.ron, metrics.json, adapter.safetensors).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Study to export a trial from (with --trial); its run folder was kept by `pets search`.
    #[arg(long, requires = "trial", conflicts_with = "run")]
    pub study: Option<String>,
    /// Trial number in the study (see reports/<study>/trials.csv).
    #[arg(long, requires = "study")]
    pub trial: Option<usize>,
    /// The study store: a SQLite file, or a PostgreSQL URL as given to `pets search --storage`.
    #[arg(long, default_value = "studies/pets.sqlite")]
    pub storage: String,
    /// Where the study's trial run folders are (`pets search --trials-dir`); default: beside a
    /// SQLite file, `studies/` for a database.
    #[arg(long, requires = "study")]
    pub trials_dir: Option<PathBuf>,
    /// Retrain the trial's design at the study's full fidelity first (search trials may be
    /// low-fidelity); the retrained run folder is kept beside the trial's.
    #[arg(long, requires = "study")]
    pub retrain: bool,
    /// Folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// LoRA-only designs: merge the updates into the weights and write a full model folder.
    #[arg(long)]
    pub merge: bool,
    /// pets (any design), peft (LoRA-only or IA³-only designs, for Python's peft) or adapters
    /// (bottleneck and LoRA designs, for Python's AdapterHub `adapters`).
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `pets export`: finds the run folder, writes the export and says what it wrote.
pub fn export(cache: &Cache, args: &ExportArgs) -> Result<()> {
    let run = match (&args.run, &args.study, args.trial) {
        (Some(run), _, _) => run.clone(),
        (None, Some(study), Some(trial)) => {
            let trial = StudyTrial {
                storage: args.storage.clone(),
                study: study.clone(),
                trial,
                trials_dir: args.trials_dir.clone(),
            };
            trial_run_folder(&trial, args.retrain, cache)?
        }
        _ => bail!(
            "pets export needs --run DIR (a folder from `pets train --out`) or --study NAME --trial N"
        ),
    };
    let options = ExportOptions {
        format: match args.format {
            FormatArg::Pets => ExportFormat::Pets,
            FormatArg::Peft => ExportFormat::Peft,
            FormatArg::Adapters => ExportFormat::Adapters,
        },
        merge: args.merge,
        force: args.force,
    };
    let source = AdapterSource::from_run(&run)?;
    let manifest = pets::export::export(&source, &args.out, &options, cache)?;
    let what = match manifest.layout {
        Layout::Adapter => "an adapter folder",
        Layout::Merged => "a merged model folder",
        Layout::Peft => "PEFT files",
        Layout::Adapters => "AdapterHub files",
    };
    eprintln!(
        "exported {} as {what} to {}",
        manifest.design,
        args.out.display()
    );
    eprintln!(
        "exported {} ({} trainable parameters)",
        manifest.design, manifest.params.design
    );
    Ok(())
}
