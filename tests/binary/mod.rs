//! Helpers for the tests that run the `pets` binary: a scratch folder, a call with its own asset
//! cache, and the call's output as one text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder for one test (removed first if an earlier run left it).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Runs `pets args…` with `PETS_CACHE=cache`.
pub fn pets(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pets"))
        .args(args)
        .env("PETS_CACHE", cache)
        .output()
        .expect("run pets")
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
