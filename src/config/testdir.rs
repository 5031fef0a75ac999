//! Temporary directories for the tests, removed when dropped.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(super) struct TestDir(tempfile::TempDir);

impl TestDir {
    /// A new empty directory with a unique name.
    pub(super) fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("milter-manager-config-{label}-"))
            // Readable like any directory (tempfile's default is 0700).
            .permissions(fs::Permissions::from_mode(0o755))
            .tempdir()
            .expect("create a test directory");
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        self.0.path()
    }

    /// An empty machine to load over (its `/`), so that no test reads this host's files.
    pub(super) fn machine(&self) -> PathBuf {
        let root = self.path().join("machine");
        fs::create_dir_all(root.join("etc")).expect("create a test machine");
        root
    }

    /// The owner of this directory (and of the files the test writes): the serving user
    /// of the configurations loaded from it.
    pub(super) fn owner(&self) -> u32 {
        fs::metadata(self.path()).expect("a test directory").uid()
    }

    /// Loads `milter-manager.toml` of this directory over [`TestDir::machine`].
    pub(super) fn load(&self) -> Result<super::Config, super::ConfigError> {
        super::Config::load_under(self.path(), &self.machine(), self.owner())
    }

    /// Writes `text` to `relative` (creating directories) and returns the file's path.
    pub(super) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create a test subdirectory");
        }
        fs::write(&path, text).expect("write a test file");
        path
    }
}
