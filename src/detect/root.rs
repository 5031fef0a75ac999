//! Reading the machine's files under a root directory.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The directory standing for `/`. Paths handed around are the machine's own ("/etc/x"),
/// since they are shown to the user and used as commands; only reading goes through here.
pub(crate) struct Root<'a> {
    dir: &'a Path,
    /// Files that exist but cannot be read.
    notes: RefCell<Vec<String>>,
}

impl<'a> Root<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Root { dir, notes: RefCell::new(Vec::new()) }
    }

    /// The notes about unreadable files, once each.
    pub(crate) fn take_notes(&self) -> Vec<String> {
        self.notes.take()
    }
}

impl Root<'_> {
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    /// A file's text; `None` when it is absent or not a regular file, or unreadable (which
    /// is noted).
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        let real = self.path(path);
        if !real.is_file() {
            return None;
        }
        match std::fs::read(&real) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(err) => {
                let note = format!("cannot read {path}: {err}");
                let mut notes = self.notes.borrow_mut();
                if !notes.contains(&note) {
                    notes.push(note);
                }
                None
            }
        }
    }

    /// Whether something (a dangling symbolic link too) is there.
    pub(crate) fn exists(&self, path: &str) -> bool {
        self.path(path).symlink_metadata().is_ok()
    }

    pub(crate) fn is_file(&self, path: &str) -> bool {
        self.path(path).is_file()
    }

    pub(crate) fn read_link(&self, path: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(path)).ok()
    }

    /// The names in a directory, sorted; none when it is absent.
    pub(crate) fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(dir))
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}
