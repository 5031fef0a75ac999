//! The output directory: the store and the state (each replaced whole by write-then-rename,
//! so a crash leaves the old file or the new one), a lock against two runs at once, and
//! the site.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use milter_manager::tools::log_analyzer::charts::{self, Chart};
use milter_manager::tools::log_analyzer::site::{self, Range};
use milter_manager::tools::log_analyzer::state::State;
use milter_manager::tools::log_analyzer::store::Store;
use nix::fcntl::{Flock, FlockArg};

const STORE: &str = "milter-manager-log-analyzer.store";
const STATE: &str = "milter-manager-log-analyzer.state";
const LOCK: &str = ".milter-manager-log-analyzer.lock";

/// Why the run stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputError {
    #[error("cannot use output directory {}: {error}", path.display())]
    Directory { path: PathBuf, error: io::Error },
    #[error("another milter-manager-log-analyzer is running on {}; try again later", path.display())]
    Busy { path: PathBuf },
    #[error("cannot read {}: {error}; nothing was changed", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
    #[error("{0}")]
    Chart(String),
}

/// Holds the directory's lock while alive.
pub(crate) fn lock(directory: &Path) -> Result<Flock<File>, OutputError> {
    let failed = |error| OutputError::Directory { path: directory.to_path_buf(), error };
    fs::create_dir_all(directory).map_err(failed)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(directory.join(LOCK))
        .map_err(failed)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| OutputError::Busy { path: directory.to_path_buf() })
}

/// The store, and a line to tell when it could not be decoded (it is then kept aside as
/// `.bad` and counting starts anew).
pub(crate) fn load_store(directory: &Path) -> Result<(Store, Option<String>), OutputError> {
    let path = directory.join(STORE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok((Store::default(), None))
        }
        Err(error) => return Err(OutputError::Read { path, error }),
    };
    match Store::decode(&bytes) {
        Ok(store) => Ok((store, None)),
        Err(problem) => {
            let aside = directory.join(format!("{STORE}.bad"));
            fs::rename(&path, &aside)
                .map_err(|error| OutputError::Write { path: aside.clone(), error })?;
            let line = format!(
                "store {}: {problem}; kept as {} and counting starts anew from the logs given",
                path.display(),
                aside.display()
            );
            Ok((Store::default(), Some(line)))
        }
    }
}

/// The state, and a line to tell when it could not be read (it is then rebuilt).
pub(crate) fn load_state(directory: &Path) -> (State, Option<String>) {
    let path = directory.join(STATE);
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return (State::default(), None),
        Err(error) => {
            return (
                State::default(),
                Some(format!("cannot read state {}: {error}; rebuilding it", path.display())),
            )
        }
    };
    match State::decode(&text) {
        Ok(state) => (state, None),
        Err(problem) => (
            State::default(),
            Some(format!(
                "state {}: {problem}; rebuilding it (lines the store has counted are skipped)",
                path.display()
            )),
        ),
    }
}

pub(crate) fn save_store(directory: &Path, store: &Store) -> Result<(), OutputError> {
    write_atomically(&directory.join(STORE), &store.encode())
}

pub(crate) fn save_state(directory: &Path, state: &State) -> Result<(), OutputError> {
    write_atomically(&directory.join(STATE), state.encode().as_bytes())
}

/// The SVG of every chart, then `index.html`.
pub(crate) fn write_site(
    directory: &Path,
    ranges: &[(Range, Vec<Chart>)],
    now: i64,
    store: &Store,
) -> Result<(), OutputError> {
    for (_, charts) in ranges {
        for chart in charts {
            let svg = charts::svg(chart).map_err(OutputError::Chart)?;
            write_atomically(&directory.join(format!("{}.svg", chart.id)), svg.as_bytes())?;
        }
    }
    let html = site::index_html(ranges, now, store);
    write_atomically(&directory.join("index.html"), html.as_bytes())
}

/// Writes a temporary file beside `path`, flushes it to disk, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let failed = |error| OutputError::Write { path: path.to_path_buf(), error };
    let mut file = File::create(&temporary).map_err(failed)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(failed)?;
    fs::rename(&temporary, path).map_err(failed)
}
