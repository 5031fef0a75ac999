//! Socket work on connections: completing connects, reading, writing, and closing.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::Interest;

use crate::conn::{ConnState, Connection, Owner};
use crate::drive::{CONNECT_RETRY_MAX_DELAY, CONNECT_RETRY_WINDOW};
use crate::event_loop::{conn_token, EventLoop};
use crate::listener::is_out_of_descriptors;
use crate::output::WriteOutcome;
use crate::session_slot::Deferred;
use crate::stream::Stream;
use crate::timers::TimerKind;
use crate::{Session, SessionFactory};

/// How long a connection closed with output still queued may take to flush it.
pub(crate) const LINGER: Duration = Duration::from_secs(5);
/// How much is salvaged from a connection whose write failed before it is reported closed.
const SALVAGE_LIMIT: usize = 1024 * 1024;

impl<F: SessionFactory> EventLoop<F> {
    pub(crate) fn conn_ready(&mut self, conn_index: usize, event: &Event, now: Instant) {
        let Some(conn) = self.conns.get(conn_index) else {
            return; // closed earlier in this batch of events
        };
        let serial = conn.serial;
        if matches!(conn.state, ConnState::Connecting)
            && !self.finish_connect(conn_index, event, now)
        {
            return;
        }
        // Reading first means a peer that answered and hung up is reported as a clean EOF
        // after its answer, rather than as a failed write of what we still had queued.
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let until_would_block = event.is_read_closed() || event.is_error();
            self.read_ready(conn_index, serial, until_would_block, now);
        }
        let still_here = self.conns.get(conn_index).filter(|conn| conn.serial == serial);
        if still_here.is_some_and(|conn| conn.is_open() && !conn.output.is_empty()) {
            self.flush(conn_index, now);
        }
    }

    /// Checks whether a connect in flight has ended. Returns true once the connection is
    /// open (queued output was written and the session told), false while in progress or
    /// after a failure (the connection is gone and the session told).
    ///
    /// Writability without an error or hang-up is how a connect succeeds (epoll and kqueue
    /// alike), so then the socket is not asked; a failed connect raises an error, and the
    /// socket tells which.
    fn finish_connect(&mut self, conn_index: usize, event: &Event, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return false;
        };
        let Some(stream) = conn.stream.as_ref() else {
            return false;
        };
        let connected = event.is_writable() && !event.is_error() && !event.is_write_closed();
        let status = if connected { Ok(true) } else { stream.connect_status() };
        match status {
            Ok(false) => false,
            Ok(true) => {
                conn.state = ConnState::Open;
                let owner = conn.owner;
                if let Owner::Session { index, key } = owner {
                    self.defer(index, Deferred::Connected { conn: key, result: Ok(()) });
                }
                // Bytes the session queued before the connect completed go out first.
                self.flush(conn_index, now);
                if let Owner::Session { index, .. } = owner {
                    self.drive(index, now);
                }
                true
            }
            Err(e) => {
                self.fail_connect(conn_index, e, now);
                false
            }
        }
    }

    /// Drops a connection whose connect failed and tells its session (if it still cares).
    fn fail_connect(&mut self, conn_index: usize, error: io::Error, now: Instant) {
        let Some(conn) = self.close_conn(conn_index) else {
            return;
        };
        match conn.owner {
            Owner::Session { index, key } => {
                log::debug!("connecting connection {key:?} failed: {error}");
                self.deliver(index, Deferred::Connected { conn: key, result: Err(error) }, now);
            }
            Owner::Closing | Owner::Kept { .. } => {
                log::debug!("a connect abandoned by its session failed: {error}")
            }
        }
    }

    /// One write for a `Send` (called inside the session's action drain, so a failure is
    /// only queued for the session).
    pub(crate) fn write_once(&mut self, conn_index: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let before = conn.output.pending_len();
        let outcome = conn.output.write_once(stream);
        if conn.output.pending_len() < before {
            conn.write_progress = now;
        }
        match outcome {
            Ok(WriteOutcome::Drained) => self.set_writable_interest(conn_index, false),
            Ok(WriteOutcome::Pending) => {
                self.set_writable_interest(conn_index, true);
                self.watch_write_stall(conn_index);
            }
            Err(e) => self.write_failed(conn_index, e),
        }
    }

    /// Arms the stall timer of a connection with a write timeout and output waiting.
    pub(crate) fn watch_write_stall(&mut self, conn_index: usize) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        let Some(timeout) = conn.write_timeout else {
            return;
        };
        if conn.stall_timer_armed || conn.output.is_empty() || conn.is_closing() {
            return;
        }
        conn.stall_timer_armed = true;
        let deadline = conn.write_progress + timeout;
        let kind = TimerKind::WriteStall { index: conn_index, serial: conn.serial };
        self.timers.schedule(deadline, kind);
    }

    /// The stall timer came due: fail the connection if its output made no progress for the
    /// whole timeout, otherwise look again later.
    pub(crate) fn write_stall_check(&mut self, conn_index: usize, serial: u64, now: Instant) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        if conn.serial != serial {
            return;
        }
        conn.stall_timer_armed = false;
        let Some(timeout) = conn.write_timeout else {
            return;
        };
        if conn.output.is_empty() || conn.is_closing() {
            return;
        }
        if now < conn.write_progress + timeout {
            return self.watch_write_stall(conn_index);
        }
        let owner = conn.owner;
        let error = io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no byte of {} queued could be written for {timeout:?}",
                conn.output.pending_len()
            ),
        );
        self.write_failed(conn_index, error);
        if let Owner::Session { index, .. } = owner {
            self.drive(index, now);
        }
    }

    /// Writes queued output until done or the socket would block. A connection being closed
    /// is dropped once its output is out; a failure is queued for the session, which the
    /// caller drives.
    fn flush(&mut self, conn_index: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let before = conn.output.pending_len();
        let outcome = conn.output.write_all_available(stream);
        if conn.output.pending_len() < before {
            conn.write_progress = now;
        }
        match outcome {
            Ok(WriteOutcome::Drained) if conn.is_closing() => {
                self.close_conn(conn_index);
            }
            Ok(outcome) => {
                self.set_writable_interest(conn_index, outcome == WriteOutcome::Pending);
                if let Some(index) = self.tell_queued(conn_index, now) {
                    self.drive(index, now);
                }
            }
            Err(e) => {
                let owner = conn.owner;
                self.write_failed(conn_index, e);
                if let Owner::Session { index, .. } = owner {
                    self.drive(index, now);
                }
            }
        }
    }

    /// Tells the session how many bytes are queued on a connection of its, if that
    /// changed since it was last told; returns the session told.
    pub(crate) fn tell_queued(&mut self, conn_index: usize, now: Instant) -> Option<usize> {
        let conn = self.conns.get_mut(conn_index)?;
        let Owner::Session { index, key } = conn.owner else {
            return None;
        };
        let queued = conn.output.pending_len();
        if queued == conn.reported_queue {
            return None;
        }
        conn.reported_queue = queued;
        self.sessions.get_mut(index)?.session.handle_queued(key, queued, now);
        Some(index)
    }

    /// A write failed, so the connection is dead. What the peer sent before is still in the
    /// socket; it is salvaged and queued ahead of the close, so the session sees the peer's
    /// last words before `handle_closed`.
    fn write_failed(&mut self, conn_index: usize, error: io::Error) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        let Owner::Session { index, key } = conn.owner else {
            log::debug!("flushing a closing connection failed: {error}; dropping it");
            self.close_conn(conn_index);
            return;
        };
        log::debug!("writing to connection {key:?} failed: {error}");
        if let Some(stream) = conn.stream.as_mut() {
            let mut salvaged = 0;
            while salvaged < SALVAGE_LIMIT {
                match stream.read(&mut self.read_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        salvaged += n;
                        let bytes = self.read_buf[..n].to_vec();
                        if let Some(slot) = self.sessions.get_mut(index) {
                            slot.deferred.push_back(Deferred::Read { conn: key, bytes });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        self.close_conn(conn_index);
        self.defer(index, Deferred::Closed { conn: key, error: Some(error) });
    }

    /// Reads until the socket is drained, handing each chunk to the session before reading
    /// the next. EOF or an error closes the connection after every earlier byte was
    /// delivered.
    ///
    /// Edge-triggered readiness asks for reading until `WouldBlock`, but a read that fills
    /// less than the buffer already shows the socket empty: bytes arriving later raise a new
    /// edge (epoll and kqueue both do), so the extra read, which would only say
    /// `WouldBlock`, is skipped. Half the read calls of a milter session are saved this way.
    /// A peer's EOF or an error is different: it raised the current event, so with
    /// `until_would_block` the loop reads on until it sees the EOF itself.
    pub(crate) fn read_ready(
        &mut self,
        conn_index: usize,
        serial: u64,
        until_would_block: bool,
        now: Instant,
    ) {
        loop {
            // The session may have closed, replaced or abandoned the connection meanwhile.
            let Some(conn) = self
                .conns
                .get_mut(conn_index)
                .filter(|conn| conn.serial == serial && conn.is_open())
            else {
                return;
            };
            let owner = conn.owner;
            if let Owner::Session { index, key } = owner {
                if let Some(slot) = self.sessions.get_mut(index) {
                    if !slot.session.wants_read(key) {
                        // Back-pressure: the bytes wait in the socket.
                        slot.reads_paused = true;
                        conn.reading_paused = true;
                        return;
                    }
                }
            }
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            match stream.read(&mut self.read_buf) {
                Ok(0) => return self.peer_closed(conn_index, None, now),
                Ok(n) => {
                    match owner {
                        Owner::Session { index, key } => {
                            if let Some(slot) = self.sessions.get_mut(index) {
                                slot.session.handle_read(key, &self.read_buf[..n], now);
                                self.drive(index, now);
                            }
                        }
                        // Nobody listens any more; keep draining so EOF is noticed.
                        Owner::Closing => {}
                        Owner::Kept { .. } => return self.kept_spoke(conn_index, "received bytes"),
                    }
                    if n < self.read_buf.len() && !until_would_block {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.peer_closed(conn_index, Some(e), now),
            }
        }
    }

    fn peer_closed(&mut self, conn_index: usize, error: Option<io::Error>, now: Instant) {
        let closing_with_output = self
            .conns
            .get(conn_index)
            .is_some_and(|conn| conn.is_closing() && !conn.output.is_empty());
        if closing_with_output && error.is_none() {
            // A peer that only shut down its sending side may still take our last bytes;
            // flushing goes on until it fails or the linger runs out.
            return;
        }
        let Some(conn) = self.close_conn(conn_index) else {
            return;
        };
        match conn.owner {
            Owner::Session { index, key } => {
                self.deliver(index, Deferred::Closed { conn: key, error }, now)
            }
            Owner::Closing if closing_with_output => log::debug!(
                "a closing connection failed with {} bytes unsent",
                conn.output.pending_len()
            ),
            Owner::Closing => {}
            Owner::Kept { .. } => log::debug!("the peer closed a kept connection"),
        }
    }

    /// Takes a connection away from its session: it is dropped at once if nothing is
    /// queued, otherwise after its output is flushed or the linger runs out.
    pub(crate) fn start_closing(&mut self, conn_index: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        conn.owner = Owner::Closing;
        if conn.output.is_empty() {
            self.close_conn(conn_index);
        } else {
            let kind = TimerKind::Linger { index: conn_index, serial: conn.serial };
            self.timers.schedule(now + LINGER, kind);
        }
    }

    pub(crate) fn linger_expired(&mut self, conn_index: usize, serial: u64) {
        let Some(conn) = self.conns.get(conn_index) else {
            return;
        };
        if conn.serial != serial || !conn.is_closing() {
            return;
        }
        log::debug!(
            "dropping a closing connection with {} bytes unsent: the peer did not take them within {LINGER:?}",
            conn.output.pending_len()
        );
        self.close_conn(conn_index);
    }

    /// Another attempt at a connect that would have blocked (a full listen backlog, no
    /// free ephemeral port); gives up after [`CONNECT_RETRY_WINDOW`].
    pub(crate) fn retry_connect(&mut self, conn_index: usize, serial: u64, now: Instant) {
        let Some(conn) = self.conns.get_mut(conn_index).filter(|c| c.serial == serial) else {
            return;
        };
        let ConnState::RetryingConnect { endpoint, first_attempt, delay } = &mut conn.state else {
            return;
        };
        match Stream::connect(endpoint) {
            Ok(stream) => {
                conn.stream = Some(stream);
                conn.state = ConnState::Connecting;
                let registered = match conn.stream.as_mut() {
                    Some(stream) => self.poll.registry().register(
                        stream,
                        conn_token(conn_index),
                        Interest::READABLE | Interest::WRITABLE,
                    ),
                    None => Ok(()),
                };
                if let Err(e) = registered {
                    self.fail_connect(conn_index, e, now);
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && now.duration_since(*first_attempt) < CONNECT_RETRY_WINDOW =>
            {
                *delay = (*delay * 2).min(CONNECT_RETRY_MAX_DELAY);
                let kind = TimerKind::ConnectRetry { index: conn_index, serial };
                self.timers.schedule(now + *delay, kind);
            }
            Err(e) if is_out_of_descriptors(&e) => {
                let what = format!("connecting to {endpoint:?}");
                self.pause_for_descriptors(&what, &e, now);
                // As it is: the session tells the manager's failure by the errno.
                self.fail_connect(conn_index, e, now);
            }
            Err(e) => {
                let error =
                    io::Error::new(e.kind(), format!("connecting to {endpoint:?} failed: {e}"));
                self.fail_connect(conn_index, error, now);
            }
        }
    }

    fn set_writable_interest(&mut self, conn_index: usize, writable: bool) {
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        if conn.wants_writable == writable {
            return;
        }
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        if stream.keeps_writable_interest() {
            return;
        }
        let interest =
            if writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        match self.poll.registry().reregister(stream, conn_token(conn_index), interest) {
            Ok(()) => conn.wants_writable = writable,
            Err(e) => log::warn!("changing the events watched on a connection failed: {e}"),
        }
    }

    /// Removes a connection and unlinks it from its session; its socket closes when the
    /// caller drops the result. Closing the socket is what takes it out of the poll set: no
    /// other process holds it (sockets are opened or accepted after any fork, close-on-exec),
    /// so an explicit deregistration would only cost a syscall. Events for it already in the
    /// current batch find its slot empty, or a newer connection whose handlers tolerate a
    /// spurious wakeup.
    pub(crate) fn close_conn(&mut self, conn_index: usize) -> Option<Connection> {
        let conn = self.conns.try_remove(conn_index)?;
        match conn.owner {
            Owner::Session { index, key } => {
                if let Some(slot) = self.sessions.get_mut(index) {
                    slot.forget_conn(key);
                }
            }
            Owner::Kept { .. } => self.forget_kept(conn_index, conn.serial),
            Owner::Closing => {}
        }
        Some(conn)
    }
}
