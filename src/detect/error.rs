//! Why a milter that detection came across is not defined. Each one ends up in a note
//! (`--check-config`, the log) after the milter's name and the file it was found in.

use crate::spec::SpecProblem;

/// Why a found milter's facts or socket cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DetectError {
    /// `label` says where the text is, e.g. `SOCKET in /etc/default/opendkim`.
    #[error("{label} is {value:?}, which is not a connection spec: {why}")]
    NotASpec { label: String, value: String, why: SpecTextError },
    /// The milter's own configuration cannot tell the socket (its reason).
    #[error("{0}")]
    Config(String),
    /// A value the shell reader could not work out (its reason follows the label).
    #[error("{label} {why}")]
    UnknownValue { label: String, why: String },
    #[error("no way to tell its socket")]
    NoWay,
    #[error("no socket found (looked at {})", .0.join(", "))]
    NotFound(Vec<String>),
    #[error("{path}: its name {why}")]
    UnknownName { path: String, why: String },
    #[error("{path} sets no name=")]
    NoName { path: String },
}

/// A socket text as a milter's configuration writes it that is not a connection spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpecTextError {
    #[error("it is empty")]
    Empty,
    #[error("it is neither an absolute path nor TYPE:ADDRESS")]
    NoType,
    #[error(transparent)]
    Spec(#[from] SpecProblem),
}
