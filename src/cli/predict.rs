//! `pets predict`: texts from `--text`, `--input` or stdin, classified with an exported folder;
//! the predictions, or the accuracy, on stdout.

use super::run_args::device;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pets::assets::Cache;
use pets::export::load_adapter;
use pets::predict::{evaluate, predict as classify, read_inputs, render, render_accuracy};
use pets::predict::{Input, OutputFormat};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// How the predictions are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    #[default]
    Table,
    Tsv,
    Jsonl,
}

/// `pets predict`: texts from --text, --input or stdin (one per line).
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Folder written by `pets export`.
    #[arg(long)]
    pub adapter: PathBuf,
    /// A text to classify (repeatable).
    #[arg(long)]
    pub text: Vec<String>,
    /// A CSV, TSV or JSON-lines file; labels are optional unless --evaluate.
    #[arg(long, conflicts_with = "text")]
    pub input: Option<PathBuf>,
    #[arg(long, default_value = "text")]
    pub text_column: String,
    #[arg(long, default_value = "label")]
    pub label_column: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// Print the accuracy on the input's labels instead of the predictions.
    #[arg(long)]
    pub evaluate: bool,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `pets predict`: reads the texts, classifies them, prints the result on stdout.
pub fn predict(cache: &Cache, args: &PredictArgs) -> Result<()> {
    let device = device(&args.device)?;
    let (inputs, origin) = texts(args)?;
    if inputs.is_empty() {
        bail!("no texts to classify (use --text, --input or stdin)");
    }
    let adapter = load_adapter(&args.adapter, cache, &device)?;
    let format = match args.format {
        FormatArg::Table => OutputFormat::Table,
        FormatArg::Tsv => OutputFormat::Tsv,
        FormatArg::Jsonl => OutputFormat::Jsonl,
    };
    let text = if args.evaluate {
        if inputs.iter().any(|i| i.gold.is_none()) {
            bail!(
                "--evaluate needs labels: --input a file with a '{}' column",
                args.label_column
            );
        }
        let acc = evaluate(&adapter, &inputs, &origin, args.batch_size)?;
        render_accuracy(format, &acc, &origin)
    } else {
        let texts: Vec<&str> = inputs.iter().map(|i| i.text.as_str()).collect();
        let predictions = classify(&adapter, &texts, args.batch_size)?;
        render(format, adapter.label_names(), &inputs, &predictions)
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing predictions")
}

/// The inputs and a name for them in errors.
fn texts(args: &PredictArgs) -> Result<(Vec<Input>, String)> {
    if let Some(path) = &args.input {
        let inputs = read_inputs(path, &args.text_column, &args.label_column, args.evaluate)?;
        return Ok((inputs, path.display().to_string()));
    }
    if !args.text.is_empty() {
        let inputs = args.text.iter().map(|t| Input {
            line: None,
            text: t.clone(),
            gold: None,
        });
        return Ok((inputs.collect(), "--text".into()));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading texts from stdin, one per line (end with Ctrl-D)");
    }
    let mut inputs = Vec::new();
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading texts from stdin")?;
        // Blank lines (a trailing newline) are not texts; line numbers still count them.
        if !line.trim().is_empty() {
            inputs.push(Input {
                line: Some(i as u64 + 1),
                text: line,
                gold: None,
            });
        }
    }
    Ok((inputs, "stdin".into()))
}
