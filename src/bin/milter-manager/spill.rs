//! Temporary files for message bodies that outgrow memory. They live in a private
//! directory (mode 0700, random name) the manager makes at start inside
//! `manager.temporary_directory`, and have no name there either (`O_TMPFILE`) or a random
//! one unlinked at once: a local user can neither predict nor take a file's name ahead of
//! the manager, so no message escapes the children by a spill that fails on purpose.

use std::collections::hash_map::RandomState;
use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use milter_manager::engine::{SpillFactory, SpillFile};

/// How many random names are tried before a spill gives up (each one taken means a
/// collision of 64 random bits, or someone guessing inside a directory only we can read).
const NAME_TRIES: u32 = 16;

/// The private directory made for each configured temporary directory, or why none could
/// be: made by the first process before it forks, so every worker shares it.
static PRIVATE_DIRECTORIES: Mutex<Vec<(PathBuf, Result<PathBuf, String>)>> = Mutex::new(Vec::new());

/// `manager.temporary_directory`, else `$TMPDIR`, else `/tmp`.
fn configured_directory(configured: Option<&Path>) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Makes the private directory for `configured` unless there is one already (a reload that
/// keeps the same setting); a failure is logged here and makes every spill fail with it.
/// Returns the directory, for the caller to give to the serving user.
pub(crate) fn prepare(configured: Option<&Path>) -> Option<PathBuf> {
    let parent = configured_directory(configured);
    let mut directories = PRIVATE_DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, made)) = directories.iter().find(|(p, _)| *p == parent) {
        return made.as_ref().ok().cloned();
    }
    let made = make_private_directory(&parent).map_err(|e| {
        format!(
            "cannot make a private directory for large message bodies in {}: {e}",
            parent.display()
        )
    });
    if let Err(why) = &made {
        log::warn!(
            "{why}; messages larger than manager.max_body_memory will get manager.fallback_status"
        );
    }
    let path = made.as_ref().ok().cloned();
    directories.push((parent, made));
    path
}

/// Removes the private directories this process made (they hold no names: every file in
/// them was unnamed or unlinked at once). For the manager's own exit.
pub(crate) fn remove_private_directories() {
    let directories = PRIVATE_DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
    for (_, made) in directories.iter() {
        if let Ok(path) = made {
            if let Err(e) = std::fs::remove_dir(path) {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// `mkdtemp`: a new directory with a random name and mode 0700, never one that existed.
fn make_private_directory(parent: &Path) -> io::Result<PathBuf> {
    // Absolute: the daemon changes to "/" after this.
    let template = std::path::absolute(parent)?.join("milter-manager-XXXXXX");
    let mut bytes = CString::new(template.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?
        .into_bytes_with_nul();
    // SAFETY: `bytes` is a writable NUL-terminated template that mkdtemp fills in place.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// Bytes the spill files of this process hold now, against `manager.max_spill_size`:
/// one process's files together, whatever configuration generation made them.
static SPILLED: AtomicU64 = AtomicU64::new(0);

pub(crate) struct TempFiles {
    parent: PathBuf,
    /// `manager.max_spill_size`; 0: no limit.
    max_spill_size: u64,
}

impl TempFiles {
    pub(crate) fn new(configured: Option<&Path>, max_spill_size: u64) -> Self {
        Self { parent: configured_directory(configured), max_spill_size }
    }

    /// The private directory [`prepare`] made for this configuration, or why there is none.
    fn directory(&self) -> io::Result<PathBuf> {
        let directories = PRIVATE_DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
        match directories.iter().find(|(p, _)| *p == self.parent) {
            Some((_, Ok(path))) => Ok(path.clone()),
            Some((_, Err(why))) => Err(io::Error::other(why.clone())),
            None => Err(io::Error::other(format!(
                "no private directory was made for large message bodies in {}",
                self.parent.display()
            ))),
        }
    }
}

impl SpillFactory for TempFiles {
    fn create(&self) -> io::Result<Box<dyn SpillFile>> {
        let directory = self.directory()?;
        let file = match unnamed_file(&directory) {
            Some(file) => file,
            None => randomly_named_file(&directory),
        }
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", directory.display())))?;
        Ok(Box::new(TempFile { file, len: 0, max_spill_size: self.max_spill_size }))
    }
}

/// A file without a name (`O_TMPFILE`), or `None` where the system or the file system has
/// none of those.
#[cfg(target_os = "linux")]
fn unnamed_file(directory: &Path) -> Option<io::Result<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(directory);
    match opened {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)
            ) =>
        {
            None
        }
        other => Some(other),
    }
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_directory: &Path) -> Option<io::Result<File>> {
    None
}

/// A new file with a random name, unlinked at once.
fn randomly_named_file(directory: &Path) -> io::Result<File> {
    let mut last = io::Error::other("no name was tried");
    for _ in 0..NAME_TRIES {
        let path = directory.join(format!("body-{:016x}", random_u64()));
        match OpenOptions::new().read(true).append(true).create_new(true).mode(0o600).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(last.kind(), format!("no free file name in {NAME_TRIES} tries: {last}")))
}

/// 64 unpredictable bits: std's hash keys come from the system's random source, and the
/// counter keeps two calls apart even with the same keys.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

struct TempFile {
    file: File,
    /// Bytes written, counted in [`SPILLED`] until the file is dropped.
    len: u64,
    max_spill_size: u64,
}

impl SpillFile for TempFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let more = bytes.len() as u64;
        let within = |held: u64| {
            let after = held.saturating_add(more);
            (self.max_spill_size == 0 || after <= self.max_spill_size).then_some(after)
        };
        if SPILLED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, within).is_err() {
            // The same words each time: the failure is logged once per cause.
            return Err(io::Error::other(format!(
                "the temporary files of large bodies in this process would pass \
                 manager.max_spill_size ({} bytes)",
                self.max_spill_size
            )));
        }
        self.len += more;
        self.file.write_all(bytes)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let len = self.len;
        let _ = SPILLED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
            Some(held.saturating_sub(len))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_randomly_named_file_is_unlinked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = randomly_named_file(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(file);
    }

    #[test]
    fn a_spilled_body_reads_back_and_leaves_no_name() {
        let dir = tempfile::tempdir().unwrap();
        let private = prepare(Some(dir.path())).unwrap();
        let mut file = TempFiles::new(Some(dir.path()), 0).create().unwrap();
        file.append(b"hello ").unwrap();
        file.append(b"world").unwrap();
        let mut back = [0; 5];
        assert_eq!(file.read_at(6, &mut back).unwrap(), 5);
        assert_eq!(&back, b"world");
        assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);
    }

    #[test]
    fn without_a_private_directory_a_spill_fails_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(prepare(Some(&missing)), None);
        let Err(error) = TempFiles::new(Some(&missing), 0).create() else { panic!("it spilled") };
        assert!(error.to_string().contains(&*missing.to_string_lossy()), "{error}");
    }

    #[test]
    fn the_files_of_a_process_share_max_spill_size_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        prepare(Some(dir.path())).unwrap();
        // Other tests' files count too, but hold far less than the margins here.
        let files = TempFiles::new(Some(dir.path()), 10_000);
        let mut first = files.create().unwrap();
        first.append(&[b'a'; 6000]).unwrap();
        let mut second = files.create().unwrap();
        let error = second.append(&[b'b'; 6000]).unwrap_err();
        assert!(error.to_string().contains("manager.max_spill_size (10000 bytes)"), "{error}");
        drop(first);
        second.append(&[b'b'; 6000]).unwrap();
        // 0: no limit.
        let mut unlimited = TempFiles::new(Some(dir.path()), 0).create().unwrap();
        unlimited.append(&[b'c'; 20_000]).unwrap();
    }

    #[test]
    fn the_private_directory_is_mode_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = make_private_directory(dir.path()).unwrap();
        assert!(made.starts_with(dir.path()));
        let mode = std::fs::metadata(&made).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
