//! A scratch directory for unit tests, removed on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub(crate) struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("supervisor-test-{label}-"))
            // Open to the users the privilege tests switch to (tempfile's default is 0700).
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .expect("create test directory");
        TestDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}
