//! Socket errors as the report's error kinds.

use std::io;

use milter_manager::tools::performance::{ErrorKind, Failure};

/// The kind of a socket error: timeouts and closed connections are told apart from the
/// rest so the report can count them separately.
pub(crate) fn kind_of(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
        _ => ErrorKind::Io,
    }
}

/// `error`, met while doing `what`, as a failure.
pub(crate) fn io_failure(error: &io::Error, what: &str) -> Failure {
    Failure::new(kind_of(error), format!("{what}: {error}"))
}
