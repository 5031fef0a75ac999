//! Configuration errors: one line naming the file, the line and the key, so that an admin
//! can go straight to what needs fixing.

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::MAX_SOCKET_MODE;
use super::origin::Origin;
use crate::conditions::EntryError;
use crate::logging::UnknownLevel;
use crate::spec::SpecError;
use crate::status::UnknownStatus;

/// How to write a file mode, for the messages about one.
const MODE_HOW: &str = "write the mode in octal, as 0o660 or \"0660\"";

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
    pub(super) fn file(path: &Path, message: impl fmt::Display) -> Self {
        Self { path: Some(path.to_path_buf()), line: None, key: None, message: message.to_string() }
    }

    /// An error at a line of a file.
    pub(super) fn at(
        path: &Path,
        line: usize,
        key: Option<String>,
        message: impl fmt::Display,
    ) -> Self {
        Self { path: Some(path.to_path_buf()), line: Some(line), key, message: message.to_string() }
    }

    /// An error about a value that came from `origin`.
    pub(super) fn from_origin(origin: &Origin, key: String, message: impl fmt::Display) -> Self {
        let (path, line) = match origin {
            Origin::File { path, line } | Origin::Converted { path, line, .. } => {
                (Some(path.clone()), Some(*line))
            }
            Origin::Detected { source } => (Some(source.into()), None),
            Origin::Default | Origin::CommandLine => (None, None),
        };
        Self { path, line, key: Some(key), message: message.to_string() }
    }

    /// An error about a command-line option.
    pub(super) fn command_line(key: &str, message: impl fmt::Display) -> Self {
        let message = message.to_string();
        Self { path: None, line: None, key: Some(key.to_string()), message }
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

/// What is wrong with one value; [`ConfigError`] adds where it was written. The messages
/// say what to write instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// A value of the wrong TOML type; `found` is e.g. `found a string`.
    #[error("expected {expected}, {found}")]
    WrongType { expected: &'static str, found: String },
    #[error("expected an array of strings, {found} in it")]
    WrongItemType { found: String },
    #[error("a path cannot contain a NUL character")]
    NulInPath,
    #[error("{spec} is not an inet: address: HTTP is served over TCP (inet:PORT@[ADDRESS])")]
    NotInet { spec: String },
    #[error("unknown value {text:?} (use one of {})", quoted_list(choices))]
    UnknownChoice { text: String, choices: &'static [&'static str] },
    #[error("must be a whole number of at least {min}")]
    TooSmall { min: u64 },
    #[error("must be a whole number from {min} to {max}")]
    OutOfRange { min: u64, max: u64 },
    /// A TOML integer that is not written in octal (`660` would be mode 0o1224).
    #[error("{0} is not an octal number; {MODE_HOW}")]
    ModeNotOctal(String),
    #[error("{0}; {MODE_HOW}")]
    ModeText(ModeError),
    #[error("expected a file mode, {found}; {MODE_HOW}")]
    ModeWrongType { found: String },
    #[error("a file mode is at most 0o{MAX_SOCKET_MODE:o}")]
    ModeTooLarge,
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Status(#[from] UnknownStatus),
    #[error("must be a number of seconds above 0 and at most {max}")]
    Seconds { max: f64 },
    #[error(
        "must be a number of seconds above 0 and at most {max} (the MTA waits for the answer \
         to CONNECT meanwhile)"
    )]
    DnsblTimeout { max: f64 },
    #[error("a name in the list is empty")]
    EmptyName,
    #[error("{part:?} is not name=value (write \"name=value,name=value\")")]
    PackageOption { part: String },
    #[error("an empty entry")]
    EmptyEntry,
    #[error("{text:?} is not a valid regular expression: {error}")]
    Pattern { text: String, error: regex::Error },
    #[error(
        "{0:?} is neither an IP address nor a network (write 192.0.2.1, 192.0.2.0/24, \
         2001:db8::1 or 2001:db8::/32)"
    )]
    NotANetwork(String),
    #[error("a file name in the list is empty or contains a NUL character")]
    BadFileName,
    /// An optional number that is neither a number nor `""`.
    #[error("{0}, or \"\" for the automatic value")]
    NotAutomatic(Box<Self>),
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error(transparent)]
    LogLevel(#[from] UnknownLevel),
    /// A script value of a type no item takes (a function, a map, a handle).
    #[error("expected a string, a number, true or false, or an array, found {0}")]
    ScriptType(String),
    /// One of the above, as text: a value's `Deserialize` hands its error to serde as
    /// text, and serde hands back only that.
    #[error("{0}")]
    Decoded(String),
}

/// A file mode written as text that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("{0:?} is not an octal number")]
    NotOctal(String),
    #[error("a file mode is at most 0o{MAX_SOCKET_MODE:o}")]
    TooLarge,
}

/// Why a child milter cannot be defined or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MilterNameError {
    #[error("a milter needs a name")]
    Empty,
    #[error("a milter name cannot contain control characters")]
    ControlCharacters,
    /// `defined`: the milters defined at this point, for the message.
    #[error("no milter named {name:?} to remove ({})", defined_so_far(defined))]
    NotDefined { name: String, defined: Vec<String> },
}

/// Why an `include` pattern names no files.
#[derive(Debug, thiserror::Error)]
pub enum IncludeError {
    #[error("{0:?}: '*', '?' and '[' are allowed in the file name only, not in directories")]
    PatternInDirectory(String),
    #[error("{0:?} has a '[' without ']'")]
    UnclosedBracket(String),
    /// A file named without pattern characters that is not there.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("cannot list {}: {error}", directory.display())]
    List { directory: PathBuf, error: std::io::Error },
    /// Whether the file exists cannot be told (a directory above it cannot be searched).
    #[error("cannot tell whether {} exists: {error}", path.display())]
    Unknown { path: PathBuf, error: std::io::Error },
}

fn quoted_list(choices: &[&str]) -> String {
    let names: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
    names.join(", ")
}

fn defined_so_far(defined: &[String]) -> String {
    if defined.is_empty() {
        "no milter is defined at this point".to_string()
    } else {
        format!("defined so far: {}", defined.join(", "))
    }
}

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

    #[test]
    fn value_errors_say_what_to_write() {
        let choice =
            ValueError::UnknownChoice { text: "bsd".into(), choices: &["debian", "redhat"] };
        assert_eq!(choice.to_string(), "unknown value \"bsd\" (use one of \"debian\", \"redhat\")");
        let mode = ValueError::ModeText(ModeError::NotOctal("rw".into()));
        assert_eq!(
            mode.to_string(),
            "\"rw\" is not an octal number; write the mode in octal, as 0o660 or \"0660\""
        );
        let automatic = ValueError::NotAutomatic(Box::new(ValueError::TooSmall { min: 0 }));
        assert_eq!(
            automatic.to_string(),
            "must be a whole number of at least 0, or \"\" for the automatic value"
        );
        let removal = MilterNameError::NotDefined { name: "x".into(), defined: vec![] };
        assert_eq!(
            removal.to_string(),
            "no milter named \"x\" to remove (no milter is defined at this point)"
        );
        // Where the value was written comes first, the problem after it.
        let at = ConfigError::at(
            Path::new("/a.toml"),
            3,
            Some("log.level".into()),
            ValueError::EmptyEntry,
        );
        assert_eq!(at.to_string(), "/a.toml:3: log.level: an empty entry");
    }
}
