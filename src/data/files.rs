//! User data files (CSV, TSV, JSON lines): [`Row`]s read by column name, labels indexed into examples.

use super::{unknown_task, DataError, Example, Loaded};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

pub(crate) fn load_file(
    path: &Path,
    text_column: &str,
    label_column: &str,
) -> Result<Loaded, DataError> {
    let rows = read_labelled_file(path, text_column, Some(label_column))?;
    let (label_names, examples) = index_labels(path, rows)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = stem.unwrap_or_else(|| path.display().to_string());
    Ok((name, label_names, examples))
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
pub(crate) enum Format {
    Csv,
    Tsv,
    JsonLines,
}

impl Format {
    pub(crate) fn of(path: &Path) -> Option<Format> {
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

pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
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
pub(crate) fn read_table(
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
}
