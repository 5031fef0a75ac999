//! Why an original configuration could not be read: one line each, naming FILE:LINE.

use std::fmt;
use std::rc::Rc;

/// Where a node of the original's configuration was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Rc<str>,
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A file the converter cannot read as the original's configuration. The conversion stops:
/// nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: cannot read the file: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{at}: not Ruby the converter reads: {what}")]
    NotRuby { at: Location, what: String },
    #[error("{at}: unterminated {what}")]
    Unterminated { at: Location, what: &'static str },
    #[error("{at}: unknown item {item}; see the original's manual for the items it has")]
    UnknownItem { at: Location, item: String },
    #[error("{at}: {item}: {problem}")]
    BadValue { at: Location, item: String, problem: String },
    #[error("{at}: {file} loads itself again (a cycle)")]
    Cycle { at: Location, file: String },
    #[error("{at}: cannot load {file}: no such file")]
    Missing { at: Location, file: String },
}
