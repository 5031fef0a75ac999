//! The event-loop runtime of milter-manager's processes.
//!
//! This crate knows nothing about milters. It owns sockets and timers and moves bytes and
//! events between mio and a sans-IO [`Session`]: every accepted connection gets a fresh
//! session from a [`SessionFactory`]; the session may ask for outbound connections (to child
//! milters), for bytes to be sent and for a wake-up at a deadline.
//!
//! # What a session can rely on
//!
//! - After every `handle_*` call (and right after `new_session`) the runtime drains
//!   `poll_action()` until `None`, then re-reads `poll_timeout()`, then checks `is_finished()`.
//!   A session is never re-entered: an outcome of an action (a connect that fails at once, a
//!   write that fails) is delivered after the drain, followed by another drain.
//! - Per connection, events arrive in order: `handle_connected` first (outbound), then
//!   `handle_read`s in stream order, then at most one `handle_closed`, which comes after
//!   every byte read before it. After `handle_closed` the key is free for a new `Connect`.
//! - Bytes sent before an outbound connect completes are queued and go out first once it
//!   does. Each `Send` costs at most one `write` at once; the rest is written on writability.
//! - `Close` and a finished session hand the connection to the runtime: queued bytes are
//!   flushed (for at most 5 s), then it is closed; no further event is delivered for it and
//!   its key may be reused at once. `Send` or `Close` on a key the runtime does not know
//!   (never connected, closed by the session, or reported closed) is ignored.
//! - A `Connect` on [`ConnKey::PEER`] or on a key still open fails with `AlreadyExists`.
//!   A connect that would block (a full listen backlog) is retried for up to a second.
//! - A peer's EOF closes the connection at once (no half-close): anything still queued for
//!   it is dropped, and `handle_closed(conn, None)` is delivered.
//! - Before each read of a connection the runtime asks `wants_read`; while it says no, the
//!   bytes stay in the socket (TCP slows the peer down). It asks again after each of the
//!   session's events, and reads on, to EOF if it came meanwhile, once it says yes.
//! - When the bytes queued on a connection changed, `handle_queued` tells how many there
//!   are: right after a `Send` leaves some unwritten (or queues them before a connect
//!   completes), and after each later write, down to 0. A `Send` written whole at once
//!   changes nothing and is not reported. The call after a `Send` comes before the next
//!   `poll_action` (the only call inside the drain: it tells a number, and the session
//!   may give more to send at that poll); after a later write, a drain follows.
//! - `handle_timeout` fires once per deadline: returning the same deadline again after it
//!   fired does not re-arm it.
//! - `session_finished` is called as soon as `is_finished()` is true; flushing the session's
//!   last bytes goes on without it. Sessions dropped at the shutdown deadline are not
//!   passed to `session_finished`.

mod accept;
mod admission;
mod conn;
mod conn_io;
mod drive;
mod event_loop;
mod kept;
mod listener;
mod output;
mod session_slot;
mod stop;
mod stream;
mod timers;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use admission::Admission;
pub use listener::is_out_of_descriptors;

/// A listening socket created (and set up) by the supervisor before any fork. Every worker
/// process shares the same listener; the loop sets it non-blocking itself.
#[derive(Debug)]
pub enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Where an outbound connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The remote side of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    /// A unix-socket peer; the path is almost always absent (unnamed client socket).
    Unix(Option<PathBuf>),
}

/// Names one connection inside a session. [`ConnKey::PEER`] is the accepted connection; the
/// session names the outbound connections it asks for with keys of its own choosing (not 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey(pub u32);

impl ConnKey {
    pub const PEER: Self = Self(0);
}

/// What a session asks the runtime to do.
#[derive(Debug)]
pub enum Action {
    /// Queue bytes on a connection. The runtime writes each `Send` with one `write` call
    /// when the socket allows it (the session batches packets into one `Send`).
    Send { conn: ConnKey, bytes: Vec<u8> },
    /// Open an outbound connection. The result arrives as [`Session::handle_connected`].
    /// With a `write_timeout`, the connection is closed with a `TimedOut` error (reported
    /// by [`Session::handle_closed`]) when queued bytes make no progress for that long: a
    /// peer that stopped reading cannot hold the session's bytes forever. With `reuse`, a
    /// connection kept to the same endpoint under that key ([`Action::Keep`]) is taken
    /// instead when there is one, and the session hears [`Session::handle_reused`] instead
    /// of `handle_connected`; only a connection asked for with `reuse` may be kept.
    Connect {
        conn: ConnKey,
        endpoint: Endpoint,
        write_timeout: Option<Duration>,
        reuse: Option<Vec<u8>>,
    },
    /// Hand the connection over for a later session's [`Action::Connect`] to the same
    /// endpoint with the same `key`, with `memo` for that session (what it needs to know of the connection). Like
    /// `Close` for this session: its queued bytes are still written, and nothing more of it
    /// is heard. The runtime closes it instead when `max_per_key` connections are kept under
    /// `key` or [`WorkerConfig::max_kept_connections`] in all, and closes a kept one when the
    /// peer sends anything or closes it, after `idle_timeout`, and when the worker stops.
    Keep { conn: ConnKey, key: Vec<u8>, memo: Vec<u8>, idle_timeout: Duration, max_per_key: usize },
    /// Close a connection once the bytes already queued on it are written.
    Close { conn: ConnKey },
    /// Acknowledge at once what arrived on a TCP connection (TCP_QUICKACK, Linux; nothing
    /// elsewhere or on unix sockets). For a peer that owes more of an answer: if it sends
    /// with Nagle on, its next small write waits for this ACK, which would otherwise be
    /// delayed by up to 40 ms. Asked only then, because each early ACK is one more packet:
    /// after a complete answer the ACK rides on the next request instead.
    Acknowledge { conn: ConnKey },
}

/// A sans-IO session: one accepted connection plus the outbound connections it opened.
pub trait Session {
    /// Bytes arrived on `conn`.
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], now: Instant);
    /// An outbound connection asked for with [`Action::Connect`] is established or failed.
    fn handle_connected(&mut self, conn: ConnKey, result: io::Result<()>, now: Instant);
    /// A [`Action::Connect`] with `reuse` got a kept connection: `memo` is what the session
    /// that kept it left with it. The default takes it as a new connection.
    fn handle_reused(&mut self, conn: ConnKey, memo: Vec<u8>, now: Instant) {
        let _ = memo;
        self.handle_connected(conn, Ok(()), now);
    }
    /// The remote side of `conn` closed it (`error` is `None` on a clean EOF) or a write
    /// failed. The connection is gone; all bytes read before were delivered first.
    fn handle_closed(&mut self, conn: ConnKey, error: Option<io::Error>, now: Instant);
    /// The deadline last returned by [`Session::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// `queued` bytes sent on `conn` are not yet written (the peer reads slowly, or not):
    /// reported when that number changed, down to 0 (see the crate's documentation for
    /// when). The default ignores it.
    fn handle_queued(&mut self, _conn: ConnKey, _queued: usize, _now: Instant) {}
    /// Whether the runtime may read `conn` now (back-pressure). Default: always.
    fn wants_read(&self, _conn: ConnKey) -> bool {
        true
    }
    /// The next thing to do, until `None`. Called after every `handle_*`.
    fn poll_action(&mut self) -> Option<Action>;
    /// The buffer of an [`Action::Send`] whose bytes were copied into the connection's own,
    /// given back empty with its capacity: encoding the next packets into it allocates
    /// nothing. Dropping it is fine too (the default); a session wrapping another passes
    /// it on.
    fn reclaim(&mut self, _spent: Vec<u8>) {}
    /// The next time the session wants [`Session::handle_timeout`], if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Once true, the runtime flushes what is queued, closes every connection of the
    /// session and drops it.
    fn is_finished(&self) -> bool;
    /// Whether the session is between conversations, owing nothing (a milter whose MTA
    /// kept the connection for its next session). Once a stop was requested, an idle
    /// session is ended like a finished one instead of being waited for: a peer keeping
    /// connections for later would otherwise hold the drain until its own idle timeout.
    /// Default: never.
    fn is_idle(&self) -> bool {
        false
    }
}

/// Makes a session for each accepted connection.
pub trait SessionFactory {
    type Session: Session;
    fn new_session(&mut self, peer: &PeerAddr, now: Instant) -> Self::Session;
    /// Called when a session has been dropped; lets the factory keep counts.
    fn session_finished(&mut self, _session: Self::Session, _now: Instant) {}
}

/// How one worker loop runs.
pub struct WorkerConfig {
    /// Stop accepting while this many sessions of this process are in flight (None: no cap).
    pub max_sessions: Option<usize>,
    /// Asked for a place before each accept (e.g. a limit over every worker); a session
    /// holds its place until it finishes. None: no such limit.
    pub admission: Option<Box<dyn Admission>>,
    /// How long accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM, or after the admission
    /// refused, before trying again. (At the `max_sessions` cap, accepting resumes as soon as
    /// a session finishes; after a refused admission, too, if one of this process's does.)
    pub accept_pause: Duration,
    /// After a stop request, how long in-flight sessions may still run.
    pub shutdown_deadline: Duration,
    /// Install SIGTERM/SIGINT handlers: the first one stops accepting and drains.
    pub handle_signals: bool,
    /// A pipe read end held for the parent: EOF on it means "stop accepting and drain".
    pub parent_watch: Option<OwnedFd>,
    /// With `handle_signals`: called in the loop on SIGHUP (e.g. a process serving alone
    /// reloads its configuration for the sessions that start afterwards).
    pub on_hangup: Option<Box<dyn FnMut()>>,
    /// With `handle_signals`: called in the loop on SIGUSR1 (reopen log files, so that
    /// rotated logs are let go).
    pub on_reopen_logs: Option<Box<dyn FnMut()>>,
    /// At most this many connections kept for reuse ([`Action::Keep`]) in this process;
    /// 0 keeps none.
    pub max_kept_connections: usize,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("max_sessions", &self.max_sessions)
            .field("admission", &self.admission.is_some())
            .field("accept_pause", &self.accept_pause)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("handle_signals", &self.handle_signals)
            .field("parent_watch", &self.parent_watch)
            .field("on_hangup", &self.on_hangup.is_some())
            .field("on_reopen_logs", &self.on_reopen_logs.is_some())
            .field("max_kept_connections", &self.max_kept_connections)
            .finish()
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_sessions: None,
            admission: None,
            accept_pause: Duration::from_millis(100),
            shutdown_deadline: Duration::from_secs(60),
            handle_signals: true,
            parent_watch: None,
            on_hangup: None,
            on_reopen_logs: None,
            max_kept_connections: 0,
        }
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request and every session finished.
    Drained,
    /// Stopped on request; sessions still running at the deadline were dropped.
    DeadlineExpired { dropped: usize },
}

/// Runs the loop on `listener` until a stop request (signal or parent EOF) and drain.
///
/// Never spawns threads and never exits the process. Errors are returned only for set-up
/// (creating the poll, registering the listener, the signal handlers or the parent pipe) or
/// if waiting for events itself fails; everything that goes wrong with one connection is
/// handled inside and reported to its session.
pub fn run<F: SessionFactory>(
    listener: Listener,
    factory: F,
    config: WorkerConfig,
) -> io::Result<Exit> {
    event_loop::EventLoop::new(listener, factory, config)?.run()
}
