//! The files the built-in conditions read: `/etc/resolv.conf` (DNSBL name servers),
//! Postfix's `master.cf` and `main.cf` (the stress threshold) and trust lists. This layer
//! does no I/O itself: whoever builds the conditions hands over a [`FileReader`] (the
//! configuration reads the disk; tests read from memory).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Reads a whole text file.
pub trait FileReader {
    /// The text of the file at `path`, or why it cannot be read.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
}

/// Files held in memory, by path; any other path is not found.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the file at `path`.
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }
}

impl FileReader for MemoryFiles {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}
