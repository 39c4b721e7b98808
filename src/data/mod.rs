//! Text-classification datasets: built-in tasks (mr, imdb, bbc, tweets), user CSV/TSV/JSONL, seeded stratified splits.
//!
//! This module owns the dataset types, task names and [`load_task`]; `split` carves the dev
//! split, `files` reads user data files, `builtin` reads the cached built-in tasks.

mod builtin;
mod files;
mod split;

pub use files::{index_labels, read_labelled_file, Row};
pub use split::{stratified_split, SplitOptions, Splits};

use crate::assets::Cache;
use builtin::load_builtin;
use files::{load_file, Format};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{}: no column '{column}' (columns: {})", path.display(), available.join(", "))]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
    },
    #[error("{} line {line}: {reason}", path.display())]
    BadRow {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{}: no examples", path.display())]
    Empty { path: PathBuf },
    #[error("{}: every example has label '{label}'; a classifier needs at least two classes", path.display())]
    SingleClass { path: PathBuf, label: String },
    #[error("{} line {line}: not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: u64 },
    #[error("unknown task '{name}': built-in tasks are {known}; a file must end in .csv, .tsv, .jsonl or .json")]
    UnknownTask { name: String, known: String },
    #[error("{}: expected labels {expected}, found {found}", path.display())]
    UnexpectedLabels {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("bad split options: {reason}")]
    BadSplit { reason: String },
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub label: u32,
}

/// A task with its fixed train/dev/test split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub label_names: Vec<String>,
    /// How each class is labelled in the task's own source, in head order: mr and imdb number
    /// theirs `0`, `1`; elsewhere the same as `label_names`.
    pub source_labels: Vec<String>,
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    /// Never seen by training or the search; empty when the test fraction is 0.
    pub test: Vec<Example>,
}

/// Tasks pets knows by name; their data comes from the asset cache.
pub const BUILTIN_TASKS: &[&str] = &["mr", "imdb", "bbc", "tweets"];

/// Where a task's examples come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskSource {
    /// One of [`BUILTIN_TASKS`]; any other name ending in a data-file extension is read as a
    /// file with columns `text` and `label`.
    Builtin(String),
    /// A CSV (`.csv`), TSV (`.tsv`) or JSON-lines (`.jsonl`, `.json`) file with named columns.
    File {
        path: PathBuf,
        text_column: String,
        label_column: String,
    },
}

impl TaskSource {
    /// A built-in task name, else a path to a data file with a supported extension.
    pub fn from_arg(arg: &str, text_column: &str, label_column: &str) -> Result<Self, DataError> {
        if BUILTIN_TASKS.contains(&arg) {
            return Ok(TaskSource::Builtin(arg.to_string()));
        }
        let path = PathBuf::from(arg);
        match Format::of(&path) {
            Some(_) => Ok(TaskSource::File {
                path,
                text_column: text_column.to_string(),
                label_column: label_column.to_string(),
            }),
            None => Err(unknown_task(arg)),
        }
    }
}

/// Where a task's test split comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TestSplit {
    /// Carved from the task's file by the rule on [`SplitOptions`] (`--test-fraction`; 0: none).
    Fraction(f64),
    /// A separate file with the task's columns (`--test FILE`); nothing is carved from the task.
    File(TaskSource),
}

impl TestSplit {
    /// No test split (what pets did before test splits).
    pub fn none() -> Self {
        TestSplit::Fraction(0.0)
    }
}

impl Default for TestSplit {
    fn default() -> Self {
        TestSplit::Fraction(SplitOptions::default().test_fraction)
    }
}

/// Loads a task and splits it by [`SplitOptions`].
pub fn load_task(
    source: &TaskSource,
    cache: &Cache,
    options: &SplitOptions,
) -> crate::Result<Dataset> {
    load_task_with_test(
        source,
        &TestSplit::Fraction(options.test_fraction),
        cache,
        options,
    )
}

/// [`load_task`] with the test split from `test` (its fraction replaces `options.test_fraction`).
/// A test file's labels must be among the task's classes.
pub fn load_task_with_test(
    source: &TaskSource,
    test: &TestSplit,
    cache: &Cache,
    options: &SplitOptions,
) -> crate::Result<Dataset> {
    let mut options = *options;
    options.test_fraction = match test {
        TestSplit::Fraction(f) => *f,
        TestSplit::File(_) => 0.0,
    };
    let mut dataset = load_split(source, cache, &options)?;
    if let TestSplit::File(file) = test {
        let (_, names, examples) = load_examples(file, cache)?;
        let mut test = Vec::with_capacity(examples.len());
        for e in examples {
            let name = &names[e.label as usize];
            let Some(label) = dataset.label_names.iter().position(|n| n == name) else {
                return Err(DataError::UnexpectedLabels {
                    path: source_path(file),
                    expected: dataset.label_names.join(", "),
                    found: name.clone(),
                }
                .into());
            };
            test.push(Example {
                text: e.text,
                label: label as u32,
            });
        }
        dataset.test = test;
    }
    Ok(dataset)
}

fn source_path(source: &TaskSource) -> PathBuf {
    match source {
        TaskSource::Builtin(name) => PathBuf::from(name),
        TaskSource::File { path, .. } => path.clone(),
    }
}

fn load_examples(source: &TaskSource, cache: &Cache) -> crate::Result<Loaded> {
    Ok(match source {
        TaskSource::Builtin(name) if BUILTIN_TASKS.contains(&name.as_str()) => {
            load_builtin(name, cache)?
        }
        // `--task reviews.csv` without column names: the usual `text` and `label` columns.
        TaskSource::Builtin(name) if Format::of(Path::new(name)).is_some() => {
            load_file(Path::new(name), "text", "label")?
        }
        TaskSource::Builtin(name) => return Err(unknown_task(name).into()),
        TaskSource::File {
            path,
            text_column,
            label_column,
        } => load_file(path, text_column, label_column)?,
    })
}

fn load_split(
    source: &TaskSource,
    cache: &Cache,
    options: &SplitOptions,
) -> crate::Result<Dataset> {
    let (name, label_names, examples) = load_examples(source, cache)?;
    let Splits { train, dev, test } = stratified_split(examples, options)?;
    let source_labels = match name.as_str() {
        "mr" | "imdb" if matches!(source, TaskSource::Builtin(_)) => vec!["0".into(), "1".into()],
        _ => label_names.clone(),
    };
    Ok(Dataset {
        name,
        source_labels,
        label_names,
        train,
        dev,
        test,
    })
}

pub(crate) type Loaded = (String, Vec<String>, Vec<Example>);

pub(crate) fn unknown_task(name: &str) -> DataError {
    DataError::UnknownTask {
        name: name.to_string(),
        known: BUILTIN_TASKS.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::split::tests::per_class;
    use super::*;
    use crate::assets::TestDir;

    #[test]
    fn bad_files_name_file_line_and_column() {
        let dir = TestDir::new("bad-files");
        let cache = Cache::at(dir.0.join("cache"));
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty.csv", b"", "empty.csv: no examples"),
            ("header.csv", b"text,label\n", "header.csv: no examples"),
            ("blank.jsonl", b"\n\n", "blank.jsonl: no examples"),
            (
                "col.csv",
                b"text,lab\nhi,1\n",
                "col.csv: no column 'label' (columns: text, lab)",
            ),
            (
                "col.jsonl",
                b"{\"text\": \"a\"}\n",
                "col.jsonl: no column 'label' (columns: text)",
            ),
            (
                "one.csv",
                b"text,label\na,x\nb,x\n",
                "one.csv: every example has label 'x'",
            ),
            (
                "utf.csv",
                b"text,label\nok,1\nbad \xFF,0\n",
                "utf.csv line 3: not valid UTF-8",
            ),
            (
                "utf.jsonl",
                b"{\"text\": \"\xFF\"}\n",
                "utf.jsonl line 1: not valid UTF-8",
            ),
            (
                "short.csv",
                b"text,label\n\"a\nb\",1\nc\n",
                "short.csv line 4: missing field 'label' (the row has 1 of the header's 2 fields)",
            ),
            (
                "short.tsv",
                b"text\tlabel\na\t1\nb\n",
                "short.tsv line 3: missing field 'label'",
            ),
            (
                "nolabel.csv",
                b"text,label\nok,1\nhmm, \n",
                "nolabel.csv line 3: empty label in column 'label'",
            ),
            (
                "json.jsonl",
                b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \n",
                "json.jsonl line 2: invalid JSON: EOF while parsing",
            ),
            (
                "key.jsonl",
                b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n",
                "key.jsonl line 2: missing field 'label'",
            ),
            (
                "obj.jsonl",
                b"[1, 2]\n",
                "obj.jsonl line 1: expected a JSON object",
            ),
            (
                "null.jsonl",
                b"{\"text\": null, \"label\": 1}\n",
                "null.jsonl line 1: field 'text' must be a string, number or boolean, not null",
            ),
            ("data.txt", b"text,label\n", "unknown task '"),
        ];
        for &(name, bytes, want) in cases {
            let path = dir.write(name, bytes);
            let source = TaskSource::File {
                path: path.clone(),
                text_column: "text".into(),
                label_column: "label".into(),
            };
            let msg = load_task(&source, &cache, &SplitOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let msg = msg.replace(&format!("{}/", dir.0.display()), "");
            assert!(msg.starts_with(want), "{name}: {msg}");
        }
    }

    #[test]
    fn user_file_becomes_a_split_task() -> crate::Result<()> {
        let dir = TestDir::new("user-task");
        let mut text = String::from("label\ttext\n");
        (0..40).for_each(|i| {
            text.push_str(&format!(
                "{}\tsentence {i}\n",
                ["neutral", "good", "bad"][i % 3]
            ))
        });
        let path = dir.write("reviews.tsv", text.as_bytes());
        let arg = path.to_string_lossy();
        let source = TaskSource::from_arg(&arg, "text", "label")?;
        let ds = load_task(
            &source,
            &Cache::at(dir.0.join("cache")),
            &SplitOptions::default(),
        )?;
        assert_eq!(
            (ds.name.as_str(), ds.label_names.clone()),
            (
                "reviews",
                vec!["bad".into(), "good".into(), "neutral".into()]
            )
        );
        // 14 neutral, 13 good, 13 bad: one of each goes to dev, one of each to test.
        assert_eq!(
            (
                per_class(&ds.train, 3),
                per_class(&ds.dev, 3),
                per_class(&ds.test, 3)
            ),
            (vec![11, 11, 12], vec![1, 1, 1], vec![1, 1, 1])
        );
        assert_eq!(
            TaskSource::from_arg("mr", "text", "label")?,
            TaskSource::Builtin("mr".into())
        );
        let msg = TaskSource::from_arg("sst2", "t", "l")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.starts_with("unknown task 'sst2': built-in tasks are mr, imdb, bbc, tweets"),
            "{msg}"
        );
        // A plain file name as a task: columns `text` and `label`.
        let csv = dir.write("plain.csv", b"text,label\na,1\nb,0\nc,1\nd,0\n");
        let plain = TaskSource::Builtin(csv.to_string_lossy().into_owned());
        let ds = load_task(
            &plain,
            &Cache::at(dir.0.join("cache")),
            &SplitOptions::default(),
        )?;
        // Two per class: one to dev; the last one left stays in train, so no test.
        assert_eq!(
            (
                ds.train.len(),
                ds.dev.len(),
                ds.test.len(),
                ds.name.as_str()
            ),
            (2, 2, 0, "plain")
        );
        Ok(())
    }
}
