//! The PyTorch reference as a child process: one JSON request per line on its stdin, one JSON
//! answer per line on its stdout (its stderr goes to ours), so it stays loaded between rounds.
//!
//! Requests: `{"cmd": "check", "steps": n}` → `{"logits": [...], "losses": [...]}` (logits of
//! batch 0 before any step, then the loss of each of `n` optimizer steps over the batches in
//! order); `{"cmd": "time", "train": bool}` → `{"ms": [...]}` (one time per batch). Any failure
//! is `{"error": "..."}`. Closing stdin ends the process.

use super::BenchError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The reference's first line, once it has built its model.
#[derive(Debug, Deserialize)]
pub(super) struct Ready {
    pub torch: String,
    pub python: String,
    /// What it runs on, in words (the GPU's name on CUDA).
    pub device: String,
    /// Elements of its trainable tensors (must equal pets' count, head included).
    pub trainable: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct Check {
    pub logits: Vec<f64>,
    pub losses: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct Times {
    ms: Vec<f64>,
}

pub(super) struct Reference {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Reference {
    /// Starts `python script --plan plan` with `threads` threads and waits until it is ready.
    pub(super) fn spawn(
        python: &Path,
        script: &Path,
        plan: &Path,
        threads: usize,
    ) -> Result<(Reference, Ready), BenchError> {
        let spawn_err = |source| BenchError::Spawn {
            python: python.display().to_string(),
            script: script.display().to_string(),
            source,
        };
        if !script.is_file() {
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such script");
            return Err(spawn_err(missing));
        }
        // torch reads these before `set_num_threads` runs; the script sets that too.
        let threads = threads.to_string();
        let mut child = Command::new(python)
            .arg(script)
            .arg("--plan")
            .arg(plan)
            .env("OMP_NUM_THREADS", &threads)
            .env("MKL_NUM_THREADS", &threads)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(spawn_err)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Protocol("no pipes to the child process".into()));
        };
        let mut reference = Reference {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        let ready = parse(reference.read()?)?;
        Ok((reference, ready))
    }

    pub(super) fn check(&mut self, steps: usize) -> Result<Check, BenchError> {
        parse(self.call(&json!({"cmd": "check", "steps": steps}))?)
    }

    /// Mean milliseconds per step over every batch once (as pets' side measures it).
    pub(super) fn time(&mut self, train: bool, batches: usize) -> Result<f64, BenchError> {
        let times: Times = parse(self.call(&json!({"cmd": "time", "train": train}))?)?;
        if times.ms.len() != batches {
            return Err(BenchError::Protocol(format!(
                "{} times for {batches} batches",
                times.ms.len()
            )));
        }
        Ok(times.ms.iter().sum::<f64>() / batches as f64)
    }

    fn call(&mut self, request: &Value) -> Result<Value, BenchError> {
        let io = |e: std::io::Error| BenchError::Reference(format!("writing to it: {e}"));
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BenchError::Protocol("stdin already closed".into()))?;
        writeln!(stdin, "{request}").map_err(io)?;
        stdin.flush().map_err(io)?;
        self.read()
    }

    fn read(&mut self) -> Result<Value, BenchError> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| BenchError::Reference(format!("reading its answer: {e}")))?;
        if n == 0 {
            let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(BenchError::Reference(format!(
                "it exited ({status}) without answering; its messages are above"
            )));
        }
        let value: Value = serde_json::from_str(line.trim())
            .map_err(|e| BenchError::Protocol(format!("{e} in {:?}", line.trim())))?;
        match value.get("error").and_then(Value::as_str) {
            Some(message) => Err(BenchError::Reference(message.to_string())),
            None => Ok(value),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, BenchError> {
    serde_json::from_value(value).map_err(|e| BenchError::Protocol(e.to_string()))
}

impl Drop for Reference {
    fn drop(&mut self) {
        // End of input is the reference's signal to exit; waiting reaps it.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
