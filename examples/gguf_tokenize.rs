//! pets' token ids for a task's texts, from the tokenizer in a GGUF checkpoint's metadata, one
//! JSON line per text: `{"text": "...", "ids": [...]}`. `scripts/llama_tokenizer_check.py`
//! compares them with transformers' ids from the same file.
//!
//! `cargo run --release --example gguf_tokenize -- MODEL.gguf [TASK] [MAX_LEN] > ids.jsonl`
//! (TASK: a built-in task such as `mr`, the default, or a data file with `text` and `label`
//! columns; every example of it, train, dev and test, in that order; MAX_LEN default 512).

use pets::assets::Cache;
use pets::data::{load_task, SplitOptions, TaskSource};
use pets::tokenize::TextEncoder;
use std::error::Error;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gguf_tokenize MODEL.gguf [TASK] [MAX_LEN]";
    let model = PathBuf::from(args.next().ok_or(usage)?);
    let task = args.next().unwrap_or_else(|| "mr".to_string());
    let max_len: usize = args.next().map_or(Ok(512), |s| s.parse())?;

    let encoder = TextEncoder::from_gguf(&model, max_len)?;
    let source = TaskSource::from_arg(&task, "text", "label")?;
    let data = load_task(&source, &Cache::from_env(), &SplitOptions::default())?;
    let examples: Vec<_> = [data.train, data.dev, data.test].concat();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let ids = encoder.encode(&texts)?;

    let mut out = BufWriter::new(std::io::stdout().lock());
    for (text, ids) in texts.iter().zip(ids) {
        let line = serde_json::json!({ "text": text, "ids": ids });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    eprintln!(
        "{} texts of {task} tokenised with {}",
        texts.len(),
        model.display()
    );
    Ok(())
}
