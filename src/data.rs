//! Text-classification datasets: built-in tasks (mr, imdb, bbc, tweets), user CSV/TSV/JSONL, seeded stratified splits.

use crate::assets::Cache;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::fs;
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

/// A task with its fixed train/dev split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub label_names: Vec<String>,
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
}

/// Tasks pets knows by name; their data comes from the asset cache.
pub const BUILTIN_TASKS: &[&str] = &["mr", "imdb", "bbc", "tweets"];

/// Where a task's examples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskSource {
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
            None => Err(DataError::UnknownTask {
                name: arg.to_string(),
                known: BUILTIN_TASKS.join(", "),
            }),
        }
    }
}

/// How the dev split is carved out of a task's examples.
///
/// The split rule, identical for every task:
/// 1. Group the examples by label, keeping file order, and visit the classes in label order.
/// 2. One `StdRng::seed_from_u64(seed)` (rand 0.9) shuffles each class in turn. The first
///    `k = round(n_class * dev_fraction)` examples of a class go to dev, the rest to train; the
///    rounding is half to even (as Python's `round`), and for a class of at least two examples
///    `k` is kept within `1..=n_class - 1` when `dev_fraction > 0`.
/// 3. The same generator then shuffles the train split, then the dev split.
///
/// With the defaults (`dev_fraction` 0.1, seed 0), `mr` (4,265 + 4,265 sentences) gives
/// 7,678 train / 852 dev sentences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    pub dev_fraction: f64,
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            dev_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Splits `examples` into (train, dev) by the rule documented on [`SplitOptions`].
pub fn stratified_split(
    examples: Vec<Example>,
    options: &SplitOptions,
) -> Result<(Vec<Example>, Vec<Example>), DataError> {
    let f = options.dev_fraction;
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::BadSplit {
            reason: format!("dev_fraction must be in [0, 1), got {f}"),
        });
    }
    let mut classes: BTreeMap<u32, Vec<Example>> = BTreeMap::new();
    for ex in examples {
        classes.entry(ex.label).or_default().push(ex);
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (mut train, mut dev) = (Vec::new(), Vec::new());
    for (_, mut class) in classes {
        class.shuffle(&mut rng);
        let n = class.len();
        let mut k = (n as f64 * f).round_ties_even() as usize;
        if f > 0.0 && n >= 2 {
            k = k.clamp(1, n - 1);
        }
        let rest = class.split_off(k);
        dev.extend(class);
        train.extend(rest);
    }
    train.shuffle(&mut rng);
    dev.shuffle(&mut rng);
    Ok((train, dev))
}

/// Loads a task and splits it by [`SplitOptions`].
pub fn load_task(
    source: &TaskSource,
    cache: &Cache,
    options: &SplitOptions,
) -> crate::Result<Dataset> {
    let (name, label_names, examples) = match source {
        TaskSource::Builtin(name) => load_builtin(name, cache)?,
        TaskSource::File {
            path,
            text_column,
            label_column,
        } => {
            let rows = read_labelled_file(path, text_column, Some(label_column))?;
            let (names, examples) = index_labels(path, rows)?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (
                stem.unwrap_or_else(|| path.display().to_string()),
                names,
                examples,
            )
        }
    };
    let (train, dev) = stratified_split(examples, options)?;
    Ok(Dataset {
        name,
        label_names,
        train,
        dev,
    })
}

type Loaded = (String, Vec<String>, Vec<Example>);

fn load_builtin(name: &str, cache: &Cache) -> crate::Result<Loaded> {
    let path = match name {
        "mr" | "imdb" | "bbc" | "tweets" => cache.dataset_file(name)?,
        _ => {
            return Err(DataError::UnknownTask {
                name: name.into(),
                known: BUILTIN_TASKS.join(", "),
            }
            .into())
        }
    };
    let (label_names, examples) = match name {
        "mr" | "imdb" => {
            let source = if name == "mr" {
                "rotten_tomatoes"
            } else {
                "imdb"
            };
            let rows = read_table(&path, b',', &["text", "label", "source"], false)?;
            let mut examples = Vec::new();
            for (line, mut fields) in rows.into_iter().filter(|(_, f)| f[2] == source) {
                let label = match fields[1].trim() {
                    "0" => 0,
                    "1" => 1,
                    other => {
                        return Err(bad_row(
                            &path,
                            line,
                            format!("label '{other}' is neither 0 nor 1"),
                        )
                        .into())
                    }
                };
                // IMDB reviews carry HTML line breaks; as text they would only waste tokens.
                let text = std::mem::take(&mut fields[0]).replace("<br />", " ");
                examples.push(Example { text, label });
            }
            (
                vec!["negative".to_string(), "positive".to_string()],
                examples,
            )
        }
        // Some tweets hold bytes that are not UTF-8 (mangled emoji); they become U+FFFD, which
        // the BERT normaliser drops.
        "tweets" => index_labels(
            &path,
            rows_of(read_table(&path, b',', &["text", "sentiment"], true)?),
        )?,
        _ => index_labels(&path, read_topic_folders(&path)?)?,
    };
    if examples.is_empty() {
        return Err(DataError::Empty { path }.into());
    }
    Ok((name.to_string(), label_names, examples))
}

fn rows_of(table: Vec<(u64, Vec<String>)>) -> Vec<Row> {
    let row = |(line, mut f): (u64, Vec<String>)| Row {
        line,
        label: f.pop(),
        text: f.pop().unwrap_or_default(),
    };
    table.into_iter().map(row).collect()
}

/// bbc: one example per `<topic>/*.txt` file, labelled by its folder, read in sorted path order.
fn read_topic_folders(dir: &Path) -> Result<Vec<Row>, DataError> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            paths.push(entry.map_err(io_at(dir))?.path());
        }
        paths.sort();
        Ok(paths)
    };
    let mut rows = Vec::new();
    for topic in list(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = topic.file_name().map(|n| n.to_string_lossy().into_owned());
        for file in list(&topic)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        {
            let bytes = fs::read(&file).map_err(io_at(&file))?;
            // One bbc article has a stray non-UTF-8 byte; replace it rather than lose the article.
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            rows.push(Row {
                line: 1,
                text,
                label: label.clone(),
            });
        }
    }
    Ok(rows)
}

/// One row of a user file: its line number (1-based, where the record starts), text and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub text: String,
    /// `None` when no label column was asked for (prediction input).
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Tsv,
    JsonLines,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "jsonl" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// Reads the text column (and the label column, if named) of a CSV, TSV or JSON-lines file.
/// Errors name the file, the line and the column. Labels are trimmed and must not be empty.
pub fn read_labelled_file(
    path: &Path,
    text_column: &str,
    label_column: Option<&str>,
) -> Result<Vec<Row>, DataError> {
    let format = Format::of(path).ok_or_else(|| DataError::UnknownTask {
        name: path.display().to_string(),
        known: BUILTIN_TASKS.join(", "),
    })?;
    let mut columns = vec![text_column];
    columns.extend(label_column);
    let table = match format {
        Format::Csv => read_table(path, b',', &columns, false)?,
        Format::Tsv => read_table(path, b'\t', &columns, false)?,
        Format::JsonLines => read_json_lines(path, &columns)?,
    };
    let mut rows = Vec::with_capacity(table.len());
    for (line, mut fields) in table {
        let label = if label_column.is_some() {
            fields.pop().map(|l| l.trim().to_string())
        } else {
            None
        };
        if let (Some(column), Some("")) = (label_column, label.as_deref()) {
            return Err(bad_row(
                path,
                line,
                format!("empty label in column '{column}'"),
            ));
        }
        rows.push(Row {
            line,
            text: fields.pop().unwrap_or_default(),
            label,
        });
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

/// Maps string labels to indices in sorted order (numerically when every label is a number),
/// and checks there are at least two classes.
pub fn index_labels(path: &Path, rows: Vec<Row>) -> Result<(Vec<String>, Vec<Example>), DataError> {
    let mut names: Vec<String> = rows.iter().filter_map(|r| r.label.clone()).collect();
    let numeric: Option<Vec<f64>> = names
        .iter()
        .map(|l| l.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    if numeric.is_some() {
        names.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse().unwrap_or(0.0))
                .then(a.cmp(b))
        });
    } else {
        names.sort();
    }
    names.dedup();
    match names.as_slice() {
        [] => {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            })
        }
        [only] => {
            return Err(DataError::SingleClass {
                path: path.to_path_buf(),
                label: only.clone(),
            })
        }
        _ => {}
    }
    let index: BTreeMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let mut examples = Vec::with_capacity(rows.len());
    for row in &rows {
        let label = row.label.as_deref().and_then(|l| index.get(l).copied());
        let label = label.ok_or_else(|| bad_row(path, row.line, "no label".into()))?;
        examples.push(Example {
            text: row.text.clone(),
            label,
        });
    }
    Ok((names, examples))
}

fn bad_row(path: &Path, line: u64, reason: String) -> DataError {
    DataError::BadRow {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut bytes = fs::read(path).map_err(io_at(path))?;
    // Spreadsheet exports often start with a byte-order mark, which would glue onto the first header.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    Ok(bytes)
}

fn decode(path: &Path, line: u64, bytes: &[u8], lossy: bool) -> Result<String, DataError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) if lossy => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Err(_) => Err(DataError::NotUtf8 {
            path: path.to_path_buf(),
            line,
        }),
    }
}

/// Reads a delimited file with a header row; returns (line, the named columns in order) per row.
/// `lossy` replaces bytes that are not UTF-8 instead of failing.
fn read_table(
    path: &Path,
    delimiter: u8,
    columns: &[&str],
    lossy: bool,
) -> Result<Vec<(u64, Vec<String>)>, DataError> {
    let bytes = read_bytes(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        // TSV files rarely quote fields but often hold bare quote characters in the text.
        .quoting(delimiter != b'\t')
        .flexible(true)
        .from_reader(bytes.as_slice());
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        bad_row(path, line, e.to_string())
    };
    let header = reader.byte_headers().map_err(csv_err)?.clone();
    if header.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let header: Vec<String> = header
        .iter()
        .map(|h| decode(path, 1, h, lossy).map(|h| h.trim().to_string()))
        .collect::<Result<_, _>>()?;
    let mut index = Vec::with_capacity(columns.len());
    for column in columns {
        match header.iter().position(|h| h == column) {
            Some(i) => index.push(i),
            None => {
                let (column, available) = (column.to_string(), header.clone());
                return Err(DataError::MissingColumn {
                    path: path.to_path_buf(),
                    column,
                    available,
                });
            }
        }
    }
    let mut rows = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let mut fields = Vec::with_capacity(index.len());
        for (&i, column) in index.iter().zip(columns) {
            let Some(field) = record.get(i) else {
                let reason = format!(
                    "missing field '{column}' (the row has {} fields, the header {})",
                    record.len(),
                    header.len()
                );
                return Err(bad_row(path, line, reason));
            };
            fields.push(decode(path, line, field, lossy)?);
        }
        rows.push((line, fields));
    }
    Ok(rows)
}

/// Reads a JSON-lines file (one object per non-blank line); numbers and booleans become strings.
fn read_json_lines(path: &Path, columns: &[&str]) -> Result<Vec<(u64, Vec<String>)>, DataError> {
    let bytes = read_bytes(path)?;
    let mut rows = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let text = decode(path, line, raw, false)?;
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad_row(path, line, format!("invalid JSON: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(bad_row(path, line, "expected a JSON object".into()));
        };
        let mut fields = Vec::with_capacity(columns.len());
        for column in columns {
            let field = match object.get(*column) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    v.to_string()
                }
                Some(other) => {
                    let reason = format!(
                        "field '{column}' must be a string, number or boolean, not {other}"
                    );
                    return Err(bad_row(path, line, reason));
                }
                // A key absent from the first object is a missing column, later it is a bad row.
                None if rows.is_empty() => {
                    let available = object.keys().cloned().collect();
                    let column = column.to_string();
                    return Err(DataError::MissingColumn {
                        path: path.to_path_buf(),
                        column,
                        available,
                    });
                }
                None => return Err(bad_row(path, line, format!("missing field '{column}'"))),
            };
            fields.push(field);
        }
        rows.push((line, fields));
    }
    Ok(rows)
}
