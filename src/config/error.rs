//! Configuration errors: one line naming the file, the line and the key, so that an admin
//! can go straight to what needs fixing.

use std::fmt;
use std::path::{Path, PathBuf};

use super::origin::Origin;

/// What is wrong with the configuration, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file; `None` for a command-line option.
    pub path: Option<PathBuf>,
    /// The line in `path`, when known.
    pub line: Option<usize>,
    /// The item, e.g. `manager.n_workers` or `milter.opendkim.connection_spec`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (it cannot be read, for example).
    pub(super) fn file(path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: Some(path.to_path_buf()),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error at a line of a file.
    pub(super) fn at(
        path: &Path,
        line: usize,
        key: Option<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: Some(path.to_path_buf()),
            line: Some(line),
            key,
            message: message.into(),
        }
    }

    /// An error about a value that came from `origin`.
    pub(super) fn from_origin(origin: &Origin, key: String, message: impl Into<String>) -> Self {
        let (path, line) = match origin {
            Origin::File { path, line } => (Some(path.clone()), Some(*line)),
            Origin::Detected { source } => (Some(source.into()), None),
            Origin::Default | Origin::CommandLine => (None, None),
        };
        ConfigError { path, line, key: Some(key), message: message.into() }
    }

    /// An error about a command-line option.
    pub(super) fn command_line(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { path: None, line: None, key: Some(key.to_string()), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display())?,
            (Some(path), None) => write!(f, "{}: ", path.display())?,
            (None, _) => f.write_str("command line: ")?,
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        // One line, whatever a lower layer put in the message: logs and terminals read
        // configuration errors line by line.
        let mut parts = self.message.lines().map(str::trim).filter(|part| !part.is_empty());
        if let Some(first) = parts.next() {
            f.write_str(first)?;
        }
        for part in parts {
            write!(f, " {part}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_the_location_first() {
        let error = ConfigError::at(
            Path::new("/etc/milter-manager/a.toml"),
            12,
            Some("manager.n_workers".into()),
            "too many\nworkers",
        );
        assert_eq!(
            error.to_string(),
            "/etc/milter-manager/a.toml:12: manager.n_workers: too many workers"
        );
        let error = ConfigError::file(Path::new("/x.toml"), "cannot read");
        assert_eq!(error.to_string(), "/x.toml: cannot read");
        let error = ConfigError::command_line("manager.n_workers", "must be at most 1000");
        assert_eq!(error.to_string(), "command line: manager.n_workers: must be at most 1000");
    }
}
