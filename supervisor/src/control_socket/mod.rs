//! The control socket, served by the supervisor's own poll loop next to its signal pipe:
//! every connection sends one request line and gets one answer, then is closed. Nothing
//! blocks: accepting, reading and writing are non-blocking, and a client that takes longer
//! than [`CLIENT_DEADLINE`] is dropped. What a request means is the caller's handler's job.
//!
//! A reload request is answered with the reload's outcome: the client waits (up to
//! [`RELOAD_DEADLINE`]) until the supervisor has reloaded, or with `n_workers == 0` until
//! the serving process reports its reload back over a datagram socket.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use crate::bind::{BoundSocket, SocketFileGuard};
use crate::Listener;
use client::{Client, Progress, Stream};
pub(crate) use control_process::fork_server;
pub use control_process::ReloadReporter;
pub use reload_outcome::ReloadOutcome;

mod client;
mod control_process;
mod reload_outcome;
#[cfg(test)]
mod tests;

/// How long one client may take for its request and for reading the answer.
pub(crate) const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client waits for the outcome of the reload it asked for.
pub(crate) const RELOAD_DEADLINE: Duration = Duration::from_secs(60);
/// The longest request line read; a longer one is answered by the handler as it is cut.
const MAX_REQUEST: usize = 4096;
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

/// What the handler is told besides the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlContext {
    /// The supervisor's pid (the serving process's with `n_workers == 0`).
    pub supervisor_pid: u32,
    /// The generation serving new sessions: 1 at start, +1 per successful reload.
    pub generation: u64,
    /// The running workers, older generations' draining ones included.
    pub workers: Vec<RunningWorker>,
}

/// One live worker process as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningWorker {
    pub index: u32,
    pub pid: u32,
    pub generation: u64,
}

/// What the handler makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAnswer {
    /// The answer, sent at once.
    Now(String),
    /// Reload; the answer is [`ControlHandler::reloaded`]'s for the outcome.
    AfterReload,
}

/// The caller's side of the control socket.
pub trait ControlHandler {
    /// Answers one request line (without its line break).
    fn answer(&mut self, line: &str, context: &ControlContext) -> ControlAnswer;
    /// Told every reload's outcome, asked for or not; returns the answer for the clients
    /// that asked for it.
    fn reloaded(&mut self, outcome: &ReloadOutcome) -> String;
}

/// A bound control socket and its handler.
pub struct ControlSocket {
    listener: Listener,
    /// Removes the socket file: always if the start fails before serving, when the
    /// supervisor ends only if asked to ([`ControlSocket::start_serving`]).
    file: Option<SocketFileGuard>,
    remove_on_close: bool,
    /// The unix socket's path and whether `unix_socket_group` was applied, to give it to the
    /// user the supervisor switches to, as the MTA's socket is.
    unix_path: Option<(std::path::PathBuf, bool)>,
    clients: Vec<Client>,
    handler: Box<dyn ControlHandler>,
    /// A client asked for a reload that has not been started yet.
    reload_asked: bool,
}

impl std::fmt::Debug for ControlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSocket").field("clients", &self.clients.len()).finish()
    }
}

impl ControlSocket {
    pub fn new(mut bound: BoundSocket, handler: Box<dyn ControlHandler>) -> io::Result<Self> {
        let file = Some(std::mem::replace(&mut bound.unserved, SocketFileGuard::none()));
        let remove_on_close = bound.remove_on_close;
        let unix_path = bound.unix_path.clone().map(|path| (path, bound.group_applied));
        let listener = bound.listener;
        match &listener {
            Listener::Unix(listener) => listener.set_nonblocking(true)?,
            Listener::Tcp(listener) => listener.set_nonblocking(true)?,
        }
        Ok(Self {
            listener,
            file,
            remove_on_close,
            unix_path,
            clients: Vec::new(),
            handler,
            reload_asked: false,
        })
    }

    /// The unix socket's path and whether its group was set by `unix_socket_group`.
    pub(crate) fn unix_path(&self) -> Option<(&std::path::Path, bool)> {
        self.unix_path.as_ref().map(|(path, group_applied)| (path.as_path(), *group_applied))
    }

    /// The start went through: from now on the socket file is removed at the end only when
    /// `remove_unix_socket_on_close` asked for it.
    pub(crate) fn start_serving(&mut self) {
        self.file = self.file.take().map(|file| file.served(self.remove_on_close));
    }

    /// The descriptors to poll: the listener (while there is room) and each client.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if self.clients.len() < MAX_CLIENTS {
            let fd = match &self.listener {
                Listener::Unix(listener) => listener.as_fd(),
                Listener::Tcp(listener) => listener.as_fd(),
            };
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        for client in self.clients.iter().filter(|client| !client.awaits_reload) {
            let flags =
                if client.answer.is_some() { PollFlags::POLLOUT } else { PollFlags::POLLIN };
            fds.push(PollFd::new(client.stream.as_fd(), flags));
        }
        fds
    }

    /// When the oldest client must be dropped.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|client| client.deadline).min()
    }

    /// Accepts, reads, answers and writes whatever can be done without blocking.
    pub(crate) fn service(&mut self, context: &ControlContext) {
        self.accept_clients();
        let now = Instant::now();
        let handler = &mut self.handler;
        let reload_asked = &mut self.reload_asked;
        self.clients.retain_mut(|client| {
            if client.answer.is_none() && !client.awaits_reload {
                match client.read_request() {
                    Progress::Pending => {}
                    // Connected and closed without a byte: another instance checking
                    // whether the socket is live, not a request.
                    Progress::Done if client.request.is_empty() => {
                        log::debug!("control client closed without a request");
                        return false;
                    }
                    Progress::Done => {
                        let line = client.request_line();
                        match handler.answer(&line, context) {
                            ControlAnswer::Now(answer) => {
                                client.answer = Some((answer.into_bytes(), 0))
                            }
                            ControlAnswer::AfterReload => {
                                client.awaits_reload = true;
                                client.deadline = Instant::now() + RELOAD_DEADLINE;
                                *reload_asked = true;
                            }
                        }
                    }
                    Progress::Failed(error) => {
                        log::debug!("control client dropped: {error}");
                        return false;
                    }
                }
            }
            if client.answer.is_some() {
                match client.write_answer() {
                    Progress::Pending => {}
                    Progress::Done => return false,
                    Progress::Failed(error) => {
                        log::debug!("control client dropped while answering: {error}");
                        return false;
                    }
                }
            }
            if now >= client.deadline {
                log::warn!("control client dropped: it did not finish in time");
                return false;
            }
            true
        });
    }

    /// Whether a client asked for a reload since the last call (the caller reloads, then
    /// calls [`ControlSocket::reloaded`]).
    pub(crate) fn take_reload_request(&mut self) -> bool {
        std::mem::take(&mut self.reload_asked)
    }

    /// A reload finished: the handler hears of it and the clients waiting for it get its
    /// answer (written by the next [`ControlSocket::service`]).
    pub(crate) fn reloaded(&mut self, outcome: &ReloadOutcome) {
        let answer = self.handler.reloaded(outcome);
        for client in self.clients.iter_mut().filter(|client| client.awaits_reload) {
            client.awaits_reload = false;
            client.answer = Some((answer.clone().into_bytes(), 0));
        }
    }

    fn accept_clients(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            let accepted = match &self.listener {
                Listener::Unix(listener) => listener.accept().map(|(s, _)| Stream::Unix(s)),
                Listener::Tcp(listener) => listener.accept().map(|(s, _)| Stream::Tcp(s)),
            };
            match accepted {
                Ok(stream) => {
                    if let Err(e) = stream.set_nonblocking() {
                        log::warn!("control client dropped: {e}");
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        request: Vec::new(),
                        answer: None,
                        awaits_reload: false,
                        deadline: Instant::now() + CLIENT_DEADLINE,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("cannot accept a control client: {e}");
                    return;
                }
            }
        }
    }

    /// In a forked worker: close the descriptors but leave the socket file alone.
    pub(crate) fn forget_in_child(mut self) {
        if let Some(file) = self.file.take() {
            file.disarm();
        }
    }
}
