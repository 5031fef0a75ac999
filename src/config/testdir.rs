//! Temporary directories for the tests, removed when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) struct TestDir(PathBuf);

impl TestDir {
    /// A new empty directory, unique per process and call.
    pub fn new(label: &str) -> TestDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join(format!("milter-manager-config-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a test directory");
        TestDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// An empty machine to load over (its `/`), so that no test reads this host's files.
    pub fn machine(&self) -> PathBuf {
        let root = self.0.join("machine");
        fs::create_dir_all(root.join("etc")).expect("create a test machine");
        root
    }

    /// Loads `milter-manager.toml` of this directory over [`TestDir::machine`].
    pub fn load(&self) -> Result<super::Config, super::ConfigError> {
        super::Config::load_under(&self.0, &self.machine())
    }

    /// Writes `text` to `relative` (creating directories) and returns the file's path.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create a test subdirectory");
        }
        fs::write(&path, text).expect("write a test file");
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
