//! Temporary files for message bodies that outgrow memory: created in the configured
//! directory and unlinked at once, so nothing is left behind even after a crash.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use milter_manager::engine::{SpillFactory, SpillFile};

pub(crate) struct TempFiles {
    directory: PathBuf,
}

impl TempFiles {
    pub(crate) fn new(directory: Option<PathBuf>) -> Self {
        let directory = directory
            .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        Self { directory }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl SpillFactory for TempFiles {
    fn create(&self) -> io::Result<Box<dyn SpillFile>> {
        let name = format!(
            "milter-manager-body-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.directory.join(name);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        std::fs::remove_file(&path)?;
        Ok(Box::new(TempFile(file)))
    }
}

struct TempFile(File);

impl SpillFile for TempFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
}
