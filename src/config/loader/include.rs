//! The files an `include` or `include_optional` pattern names.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::super::error::IncludeError;
use super::super::glob;

/// Whether a file named by an include must exist.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Need {
    Required,
    Optional,
}

/// A file an include pattern names.
pub(super) struct Found {
    pub path: PathBuf,
    /// Matched by a glob rather than named.
    pub by_glob: bool,
}

/// The directory a pattern lists, when its file name is a glob.
pub(super) fn listed_directory(base: &Path, pattern: &str) -> Option<PathBuf> {
    let (directory, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let directory = if directory.is_empty() && pattern.starts_with('/') { "/" } else { directory };
    glob::is_pattern(name).then(|| base.join(directory))
}

/// The files a pattern names, relative to `base` unless absolute. Pattern characters are
/// allowed in the file name only; matches come sorted by name. A plain name is returned
/// whether or not it exists, for the caller to decide.
pub(super) fn resolve(base: &Path, pattern: &str) -> Result<Vec<Found>, IncludeError> {
    let (directory, name) = match pattern.rsplit_once('/') {
        Some((directory, name)) => (if directory.is_empty() { "/" } else { directory }, name),
        None => ("", pattern),
    };
    if glob::is_pattern(directory) {
        return Err(IncludeError::PatternInDirectory(pattern.to_string()));
    }
    let directory = base.join(directory);
    if !glob::is_pattern(name) {
        return Ok(vec![Found { path: directory.join(name), by_glob: false }]);
    }
    glob::check(name)?;
    let entries = match fs::read_dir(&directory) {
        Ok(entries) => entries,
        // A glob in a directory that does not exist matches nothing, like an empty one.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(IncludeError::List { directory, error }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|error| IncludeError::List { directory: directory.clone(), error })?;
        // A name that is not UTF-8 cannot match a UTF-8 pattern.
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Follows symbolic links, so linked files count and directories do not.
        if glob::matches(name, &file_name) && entry.path().is_file() {
            names.push(file_name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| Found { path: directory.join(n), by_glob: true }).collect())
}
