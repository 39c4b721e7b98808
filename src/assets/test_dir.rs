//! A throw-away folder for unit tests (no tempfile crate).

use std::fs;
use std::path::PathBuf;

/// A fresh folder under the system temp dir, removed on drop (tests only; no tempfile crate).
pub(crate) struct TestDir(pub PathBuf);

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

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
