//! The pid file: a held `flock` is the "already running" test (as Postfix's master does), the
//! content is only for people and scripts. The lock lives as long as the file descriptor, so
//! the supervisor keeps it open until it exits.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// A locked pid file. Removing it is explicit ([`PidFile::remove`]) or happens on drop; the
/// forked workers never drop theirs (they leave with `exit`) and close the descriptor
/// right after fork, so a worker that outlives the supervisor does not keep the lock.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: Option<Flock<File>>,
}

impl PidFile {
    /// Opens (creating it with mode 0644) and locks the pid file, without writing anything yet.
    pub fn acquire(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path)
            .map_err(|source| Error::PidFileOpen { path: path.to_path_buf(), source })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|source| Error::PidFileOpen { path: path.clone(), source })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => Ok(Self { path, file: Some(locked) }),
            Err((mut file, nix::Error::EWOULDBLOCK)) => {
                let pid = read_pid(&mut file);
                Err(Error::PidFileLocked { path, pid })
            }
            Err((_, errno)) => Err(Error::PidFileOpen { path, source: io::Error::from(errno) }),
        }
    }

    /// Replaces the content with `pid` and a newline.
    pub fn write_pid(&mut self, pid: u32) -> Result<()> {
        let path = &self.path;
        let file: &mut File = self.file.as_mut().expect("pid file is open");
        let write = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(format!("{pid}\n").as_bytes())?;
            file.sync_data()
        };
        write(file).map_err(|source| Error::PidFileWrite { path: path.clone(), source })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor that holds the lock, to be closed in forked children.
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.file.as_ref().map(|file| file.as_raw_fd())
    }

    /// Removes the file, then releases the lock (in that order, so that no other process can
    /// lock the file and then see it vanish).
    pub fn remove(mut self) {
        self.remove_now();
    }

    fn remove_now(&mut self) {
        let Some(file) = self.file.take() else { return };
        match fs::remove_file(&self.path) {
            Ok(()) => log::debug!("removed pid file {}", self.path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                "cannot remove pid file {}: {}",
                self.path.display(),
                crate::error::os_words(&e)
            ),
        }
        drop(file);
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        self.remove_now();
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn a_second_lock_is_refused_with_the_pid_inside() {
        let dir = TestDir::new("pidfile-lock");
        let path = dir.path().join("x.pid");
        let mut first = PidFile::acquire(&path).unwrap();
        first.write_pid(1234).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "1234\n");

        let error = PidFile::acquire(&path).unwrap_err();
        assert!(matches!(error, Error::PidFileLocked { pid: Some(1234), .. }));
        assert_eq!(
            error.to_string(),
            format!("pid file {} is locked by a running process (pid 1234)", path.display())
        );
    }

    #[test]
    fn a_stale_unlocked_file_is_taken_over_and_removed_on_close() {
        let dir = TestDir::new("pidfile-stale");
        let path = dir.path().join("x.pid");
        fs::write(&path, "99999999\nleft over\n").unwrap();
        let mut pid_file = PidFile::acquire(&path).unwrap();
        pid_file.write_pid(42).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "42\n");
        pid_file.remove();
        assert!(!path.exists());
        // Free again.
        PidFile::acquire(&path).unwrap();
    }

    #[test]
    fn an_unwritable_place_is_named() {
        let error = PidFile::acquire(Path::new("/nonexistent-dir/x.pid")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot open pid file /nonexistent-dir/x.pid: No such file or directory"
        );
    }
}
