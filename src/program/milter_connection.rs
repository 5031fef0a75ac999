//! The MTA side of a milter connection: a blocking socket of either kind, and the loop
//! that drives a [`TestServerSession`] over it (one write per batch of packets, reads
//! bounded by the session's deadline). Shared by milter-test-server and
//! milter-performance-check.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::spec::Spec;
use crate::tools::test_server::TestServerSession;

/// A connected milter socket of either kind.
pub enum Connection {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Connection {
    /// Connects to `spec`, resolving its host first.
    pub fn open(spec: &Spec, timeout: Duration) -> Result<Self, ConnectError> {
        let endpoints = super::endpoints(spec)
            .map_err(|error| ConnectError::Resolve { spec: spec.clone(), error })?;
        Self::open_endpoints(spec, &endpoints, timeout)
    }

    /// Connects to the first of `endpoints` (the addresses of `spec`) that answers.
    /// TCP connections get TCP_NODELAY: every batch is one write, so Nagle would only
    /// hold back the next batch until the milter's delayed ACK.
    pub fn open_endpoints(
        spec: &Spec,
        endpoints: &[workers::Endpoint],
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let mut last_error = None;
        for endpoint in endpoints {
            let attempt = match endpoint {
                workers::Endpoint::Unix(path) => UnixStream::connect(path).map(Connection::Unix),
                workers::Endpoint::Tcp(address) => TcpStream::connect_timeout(address, timeout)
                    .and_then(|stream| {
                        stream.set_nodelay(true)?;
                        Ok(Self::Tcp(stream))
                    }),
            };
            match attempt {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(ConnectError::Connect { spec: spec.clone(), error: last_error })
    }

    /// Bounds the next reads (a zero timeout would mean "none", so it is at least 1 ms).
    fn set_read_timeout_io(&self, timeout: Duration) -> std::io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        match self {
            Self::Unix(s) => s.set_read_timeout(timeout),
            Self::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    pub fn set_write_timeout(&self, timeout: Duration) -> Result<(), ConnectError> {
        match self {
            Self::Unix(s) => s.set_write_timeout(Some(timeout)),
            Self::Tcp(s) => s.set_write_timeout(Some(timeout)),
        }
        .map_err(ConnectError::WriteTimeout)
    }
}

/// Why there is no usable connection to a milter.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {spec}: {error}")]
    Resolve { spec: Spec, error: super::ResolveError },
    /// `error`: the last address's error; `None` when the spec had no address.
    #[error(
        "cannot connect to the milter at {spec}: {}",
        error.as_ref().map_or("no address".to_string(), ToString::to_string)
    )]
    Connect { spec: Spec, error: Option<std::io::Error> },
    #[error("cannot set the writing timeout: {0}")]
    WriteTimeout(std::io::Error),
}

impl Read for Connection {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buffer),
            Self::Tcp(s) => s.read(buffer),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(bytes),
            Self::Tcp(s) => s.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The socket failed under a session (the session's own errors, such as a timeout or a
/// protocol violation, stay in [`TestServerSession::error`]).
#[derive(Debug)]
pub enum DriveError {
    Write(std::io::Error),
    Read(std::io::Error),
    /// The session waits for a reply but has no deadline: a bug of the session.
    NoDeadline,
}

impl DriveError {
    /// The error as one line naming the milter.
    pub fn message_at(&self, spec: &Spec) -> String {
        match self {
            Self::Write(error) => format!("cannot write to the milter at {spec}: {error}"),
            Self::Read(error) => format!("cannot read from the milter at {spec}: {error}"),
            Self::NoDeadline => "internal error: the session waits without a deadline".to_string(),
        }
    }
}

/// Runs `session` over `connection` until it is done (or failed). `after_each_batch` sees
/// the session after every write, e.g. to print or drop its log.
pub fn drive(
    session: &mut TestServerSession,
    connection: &mut Connection,
    mut after_each_batch: impl FnMut(&mut TestServerSession),
) -> Result<(), DriveError> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let output = session.take_output();
        if !output.is_empty() {
            if let Err(error) = connection.write_all(&output) {
                // A milter may close right after its final verdict; that is not an error.
                if !session.is_done() {
                    return Err(DriveError::Write(error));
                }
            }
        }
        after_each_batch(session);
        if session.is_done() {
            return Ok(());
        }
        let deadline = session.deadline().ok_or(DriveError::NoDeadline)?;
        let now = Instant::now();
        if now >= deadline {
            session.handle_timeout(now);
            continue;
        }
        let read = connection
            .set_read_timeout_io(deadline - now)
            .and_then(|()| connection.read(&mut buffer));
        match read {
            Ok(0) => session.handle_closed(),
            Ok(n) => session.handle_bytes(&buffer[..n], Instant::now()),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                session.handle_timeout(Instant::now())
            }
            Err(e) => return Err(DriveError::Read(e)),
        }
    }
}
