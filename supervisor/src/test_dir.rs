//! A scratch directory for unit tests, removed on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub(crate) struct TestDir(tempfile::TempDir);

impl TestDir {
    pub(crate) fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("supervisor-test-{label}-"))
            // Open to the users the privilege tests switch to (tempfile's default is 0700).
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .expect("create test directory");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}
