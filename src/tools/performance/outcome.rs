//! What one session came to: a final status at some stage, or an error.

use std::time::Duration;

use crate::tools::Ending;

/// A final status and the stage that decided it (`envelope-recipient`, `end-of-message`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// As the MTA (milter mode) or the SMTP client (SMTP mode) saw it.
    pub status: Ending,
    pub stage: &'static str,
    /// The server's refusal as one line (`550 5.1.1 no such user`), for
    /// `--report-failure-responses`; `None` when it passed or in milter mode.
    pub response: Option<String>,
}

impl Outcome {
    /// An outcome without a server response to show.
    pub fn new(status: Ending, stage: &'static str) -> Self {
        Self { status, stage, response: None }
    }
}

/// Why a session did not complete. Ordered as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// The peer did not answer in time.
    Timeout,
    /// The peer closed the connection while an answer was due.
    Closed,
    /// The peer answered something the protocol does not allow.
    Protocol,
    /// Reading or writing failed otherwise (connection reset...).
    Io,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::Io => "io",
        }
    }
}

/// An error with its one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// One session: its number (0-based, in the order sessions were started), how long it
/// took from connecting to its end (the QUIT sent, or its answer over SMTP), and how it
/// ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub index: usize,
    pub latency: Duration,
    pub result: Result<Outcome, Failure>,
}
