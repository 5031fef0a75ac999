//! The metrics page over HTTP (`GET /metrics`), served by the supervisor's own poll loop
//! like the control socket (with `n_workers == 0`, by the control process): no thread,
//! nothing blocks. Bounded on every side: one request per connection, a request head of
//! at most [`http::MAX_REQUEST`] bytes, [`MAX_CLIENTS`] clients at once, and time limits
//! to send the request ([`READ_DEADLINE`]) and to take the answer ([`WRITE_DEADLINE`]).
//! What the page says is the caller's handler's job.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use crate::bind::BoundSocket;
use crate::{ControlContext, Listener, ReloadOutcome};

mod http;

/// How long a client may take to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long what a client still sends after its answer is read and dropped, so that
/// closing with unread bytes does not reset the connection before it has read the answer.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

/// The caller's side of the metrics page.
pub trait MetricsHandler {
    /// The page: its content type and its text.
    fn metrics(&mut self, context: &ControlContext) -> (String, String);
    /// Told every reload's outcome (e.g. the milters the new configuration has).
    fn reloaded(&mut self, outcome: &ReloadOutcome);
}

enum State {
    Reading(Vec<u8>),
    Writing {
        answer: Vec<u8>,
        written: usize,
    },
    /// Answered; what the client still sends is read and dropped until it closes.
    Draining,
}

struct Client {
    stream: TcpStream,
    state: State,
    deadline: Instant,
}

/// A bound metrics socket and its handler.
pub struct MetricsSocket {
    listener: TcpListener,
    clients: Vec<Client>,
    handler: Box<dyn MetricsHandler>,
}

impl std::fmt::Debug for MetricsSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSocket").field("clients", &self.clients.len()).finish()
    }
}

impl MetricsSocket {
    /// Serves `bound`, a TCP socket (HTTP over a unix socket is refused).
    pub fn new(bound: BoundSocket, handler: Box<dyn MetricsHandler>) -> io::Result<Self> {
        let Listener::Tcp(listener) = bound.listener else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the metrics page is served over TCP only",
            ));
        };
        listener.set_nonblocking(true)?;
        Ok(Self { listener, clients: Vec::new(), handler })
    }

    /// The descriptors to poll: the listener (while there is room) and each client.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if self.clients.len() < MAX_CLIENTS {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        }
        for client in &self.clients {
            let flags = match client.state {
                State::Writing { .. } => PollFlags::POLLOUT,
                State::Reading(_) | State::Draining => PollFlags::POLLIN,
            };
            fds.push(PollFd::new(client.stream.as_fd(), flags));
        }
        fds
    }

    /// When the oldest client must be dropped.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|client| client.deadline).min()
    }

    /// A reload finished: the handler hears of it.
    pub(crate) fn reloaded(&mut self, outcome: &ReloadOutcome) {
        self.handler.reloaded(outcome);
    }

    /// Accepts, reads, answers and writes whatever can be done without blocking.
    pub(crate) fn service(&mut self, context: &ControlContext) {
        self.accept_clients();
        let now = Instant::now();
        let handler = &mut self.handler;
        self.clients.retain_mut(|client| {
            let keep = match client.advance(handler.as_mut(), context) {
                Ok(keep) => keep,
                Err(error) => {
                    log::debug!("metrics client dropped: {error}");
                    false
                }
            };
            if keep && now >= client.deadline {
                if !matches!(client.state, State::Draining) {
                    log::info!("metrics client dropped: it did not finish in time");
                }
                return false;
            }
            keep
        });
    }

    fn accept_clients(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!("metrics client dropped: {e}");
                        continue;
                    }
                    let deadline = Instant::now() + READ_DEADLINE;
                    self.clients.push(Client {
                        stream,
                        state: State::Reading(Vec::new()),
                        deadline,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("cannot accept a metrics client: {e}");
                    return;
                }
            }
        }
    }
}

impl Client {
    /// Moves as far as it can without blocking; false: done with it.
    fn advance(
        &mut self,
        handler: &mut dyn MetricsHandler,
        context: &ControlContext,
    ) -> io::Result<bool> {
        if let State::Reading(request) = &mut self.state {
            let mut buffer = [0u8; 1024];
            let route = loop {
                match self.stream.read(&mut buffer) {
                    // Closed before a whole request: nothing to answer.
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        request.extend_from_slice(&buffer[..n]);
                        if let Some(route) = http::route(&http::parse(request)) {
                            break route;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            let answer = match route {
                http::Route::Metrics { with_body } => {
                    let (content_type, text) = handler.metrics(context);
                    http::response("200 OK", &content_type, &text, with_body)
                }
                refused => {
                    log::info!("metrics client refused: {refused:?}");
                    http::refusal(refused)
                }
            };
            self.state = State::Writing { answer, written: 0 };
            self.deadline = Instant::now() + WRITE_DEADLINE;
        }
        if let State::Writing { answer, written } = &mut self.state {
            while *written < answer.len() {
                match self.stream.write(&answer[*written..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            self.stream.shutdown(Shutdown::Write)?;
            self.state = State::Draining;
            self.deadline = Instant::now() + DRAIN_DEADLINE;
        }
        let mut buffer = [0u8; 4096];
        // A client that keeps sending gets its turn back after a while, and the deadline.
        for _ in 0..16 {
            match self.stream.read(&mut buffer) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
