//! Driving sessions: carrying out the actions a session asks for, delivering the events it
//! has coming, keeping its deadline on the timer heap and retiring it once it is finished.

use std::io;
use std::time::{Duration, Instant};

use mio::Interest;

use crate::conn::{ConnState, Connection, Owner};
use crate::event_loop::{conn_token, EventLoop};
use crate::kept::KeepRequest;
use crate::listener::is_out_of_descriptors;
use crate::session_slot::Deferred;
use crate::stream::Stream;
use crate::timers::TimerKind;
use crate::{Action, ConnKey, Endpoint, Session, SessionFactory};

/// The first wait before retrying a connect that would have blocked; it doubles up to
/// [`CONNECT_RETRY_MAX_DELAY`] and the attempts stop after [`CONNECT_RETRY_WINDOW`].
pub(crate) const CONNECT_RETRY_FIRST_DELAY: Duration = Duration::from_millis(5);
pub(crate) const CONNECT_RETRY_MAX_DELAY: Duration = Duration::from_millis(100);
pub(crate) const CONNECT_RETRY_WINDOW: Duration = Duration::from_secs(1);

impl<F: SessionFactory> EventLoop<F> {
    /// Runs after every `handle_*` call: drains the session's actions, delivers what they
    /// gave rise to (each followed by another drain), re-arms the deadline and retires the
    /// session once it says it is finished.
    pub(crate) fn drive(&mut self, index: usize, now: Instant) {
        loop {
            while let Some(action) =
                self.sessions.get_mut(index).and_then(|slot| slot.session.poll_action())
            {
                self.apply_action(index, action, now);
            }
            let Some(slot) = self.sessions.get_mut(index) else {
                return;
            };
            if slot.session.is_finished() {
                break;
            }
            match slot.deferred.pop_front() {
                Some(event) => slot.deliver(event, now),
                None => break,
            }
        }
        self.rearm_session_deadline(index);
        let stopping = self.stop.requested;
        let done = |slot: &crate::session_slot::SessionSlot<F::Session>| {
            slot.session.is_finished() || (stopping && slot.session.is_idle())
        };
        if self.sessions.get(index).is_some_and(done) {
            self.finish_session(index, now);
        } else {
            self.note_wanted_reads(index);
        }
    }

    /// Connections of the session left unread that it wants read again go on the list the
    /// loop reads next (not read here: this may run inside another connection's read).
    fn note_wanted_reads(&mut self, index: usize) {
        let Some(slot) = self.sessions.get_mut(index).filter(|slot| slot.reads_paused) else {
            return;
        };
        let mut still_paused = false;
        for &(key, conn_index) in &slot.conns {
            let Some(conn) = self.conns.get_mut(conn_index).filter(|c| c.reading_paused) else {
                continue;
            };
            if slot.session.wants_read(key) {
                conn.reading_paused = false;
                self.reads_to_resume.push((conn_index, conn.serial));
            } else {
                still_paused = true;
            }
        }
        slot.reads_paused = still_paused;
    }

    /// Queues an event for the session and drives it.
    pub(crate) fn deliver(&mut self, index: usize, event: Deferred, now: Instant) {
        if let Some(slot) = self.sessions.get_mut(index) {
            slot.deferred.push_back(event);
            self.drive(index, now);
        }
    }

    pub(crate) fn defer(&mut self, index: usize, event: Deferred) {
        if let Some(slot) = self.sessions.get_mut(index) {
            slot.deferred.push_back(event);
        }
    }

    pub(crate) fn session_deadline_passed(
        &mut self,
        index: usize,
        serial: u64,
        deadline: Instant,
        now: Instant,
    ) {
        let Some(slot) = self.sessions.get_mut(index) else {
            return;
        };
        // Lazy invalidation: only the deadline the session currently wants counts.
        if slot.serial != serial || slot.armed_timeout != Some(deadline) {
            return;
        }
        slot.armed_timeout = None;
        slot.fired_timeout = Some(deadline);
        slot.session.handle_timeout(now);
        self.drive(index, now);
    }

    fn rearm_session_deadline(&mut self, index: usize) {
        let Some(slot) = self.sessions.get_mut(index) else {
            return;
        };
        // A deadline that already fired is not fired again, or a session that keeps
        // returning it would spin the loop.
        let wanted =
            slot.session.poll_timeout().filter(|deadline| Some(*deadline) != slot.fired_timeout);
        if wanted == slot.armed_timeout {
            return;
        }
        slot.armed_timeout = wanted;
        if let Some(deadline) = wanted {
            let serial = slot.serial;
            self.timers.schedule(deadline, TimerKind::Session { index, serial });
        }
    }

    fn apply_action(&mut self, index: usize, action: Action, now: Instant) {
        match action {
            Action::Send { conn, bytes } => self.send(index, conn, bytes, now),
            Action::Connect { conn, endpoint, write_timeout, reuse } => {
                let keepable = reuse.is_some();
                let reused = reuse.is_some_and(|pool_key| {
                    self.conn_of(index, conn).is_none()
                        && conn != ConnKey::PEER
                        && self.reuse(index, conn, &endpoint, &pool_key, write_timeout)
                });
                if !reused {
                    self.connect(index, conn, endpoint, write_timeout, keepable, now)
                }
            }
            Action::Keep { conn, key, memo, idle_timeout, max_per_key } => {
                let request = KeepRequest { pool_key: key, memo, idle_timeout, max_per_key };
                self.keep(index, conn, request, now)
            }
            Action::Close { conn } => self.close_on_request(index, conn, now),
            Action::Acknowledge { conn } => self.acknowledge(index, conn),
        }
    }

    fn acknowledge(&mut self, index: usize, key: ConnKey) {
        let Some(conn) = self.conn_of(index, key).and_then(|conn_index| self.conns.get(conn_index))
        else {
            return;
        };
        if let (true, Some(stream)) = (conn.is_open(), conn.stream.as_ref()) {
            stream.acknowledge_now();
        }
    }

    fn conn_of(&self, index: usize, key: ConnKey) -> Option<usize> {
        self.sessions.get(index)?.conn_index(key)
    }

    fn send(&mut self, index: usize, key: ConnKey, bytes: Vec<u8>, now: Instant) {
        let Some(conn_index) = self.conn_of(index, key) else {
            log::debug!(
                "dropping {} bytes sent to connection {key:?}: it is closed or was never opened",
                bytes.len()
            );
            return;
        };
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        if conn.output.is_empty() {
            // The stall clock starts when output starts waiting, not at the last write.
            conn.write_progress = now;
        }
        let spent = conn.output.push(bytes);
        if let (Some(spent), Some(slot)) = (spent, self.sessions.get_mut(index)) {
            slot.session.reclaim(spent);
        }
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        // Until the connect completes the bytes only queue up.
        if conn.is_open() {
            self.write_once(conn_index, now);
        } else {
            self.watch_write_stall(conn_index);
        }
        // Told at once, before the next poll: the session then knows what is queued.
        self.tell_queued(conn_index, now);
    }

    fn connect(
        &mut self,
        index: usize,
        key: ConnKey,
        endpoint: Endpoint,
        write_timeout: Option<Duration>,
        keepable: bool,
        now: Instant,
    ) {
        if key == ConnKey::PEER || self.conn_of(index, key).is_some() {
            let error = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("connection key {key:?} is already in use in this session"),
            );
            self.defer(index, Deferred::Connected { conn: key, result: Err(error) });
            return;
        }
        let serial = self.next_serial();
        let owner = Owner::Session { index, key };
        let mut connected_now = false;
        let result = match Stream::connect(&endpoint).and_then(|stream| {
            // A connect known to have completed (unix sockets) is reported now, so the
            // session's first bytes go out in this turn of the loop; a TCP one is reported
            // by its writability event.
            connected_now = stream.connect_status_at_once()?;
            Ok(stream)
        }) {
            Ok(stream) => {
                let state = if connected_now { ConnState::Open } else { ConnState::Connecting };
                self.add_outbound(Connection::outbound(serial, owner, Some(stream), state))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let state = ConnState::RetryingConnect {
                    endpoint: endpoint.clone(),
                    first_attempt: now,
                    delay: CONNECT_RETRY_FIRST_DELAY,
                };
                self.add_outbound(Connection::outbound(serial, owner, None, state)).inspect(
                    |conn_index| {
                        let kind = TimerKind::ConnectRetry { index: *conn_index, serial };
                        self.timers.schedule(now + CONNECT_RETRY_FIRST_DELAY, kind);
                    },
                )
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(conn_index) => {
                if let Some(conn) = self.conns.get_mut(conn_index) {
                    conn.write_timeout = write_timeout;
                    conn.endpoint = keepable.then(|| endpoint.clone());
                }
                if let Some(slot) = self.sessions.get_mut(index) {
                    slot.conns.push((key, conn_index));
                }
                if connected_now {
                    self.defer(index, Deferred::Connected { conn: key, result: Ok(()) });
                }
            }
            Err(e) => {
                if is_out_of_descriptors(&e) {
                    self.pause_for_descriptors(&format!("connecting to {endpoint:?}"), &e, now);
                } else {
                    log::debug!("connecting to {endpoint:?} failed: {e}");
                }
                self.defer(index, Deferred::Connected { conn: key, result: Err(e) });
            }
        }
    }

    /// Puts an outbound connection in the slab and registers its socket (if it has one yet)
    /// for readability and for writability, which signals the end of the connect.
    pub(crate) fn add_outbound(&mut self, conn: Connection) -> io::Result<usize> {
        let conn_index = self.conns.insert(conn);
        let registered = match self.conns.get_mut(conn_index) {
            Some(Connection { stream: Some(stream), wants_writable, .. }) => {
                let interest = if *wants_writable {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                self.poll.registry().register(stream, conn_token(conn_index), interest)
            }
            _ => Ok(()),
        };
        match registered {
            Ok(()) => Ok(conn_index),
            Err(e) => {
                self.conns.try_remove(conn_index);
                Err(e)
            }
        }
    }

    pub(crate) fn close_on_request(&mut self, index: usize, key: ConnKey, now: Instant) {
        let Some(conn_index) = self.conn_of(index, key) else {
            log::debug!("ignoring a close of connection {key:?}: it is already closed");
            return;
        };
        if let Some(slot) = self.sessions.get_mut(index) {
            slot.forget_conn(key);
        }
        self.start_closing(conn_index, now);
    }

    /// Retires a finished session: its connections are flushed and closed without it, and
    /// the factory gets it back.
    pub(crate) fn finish_session(&mut self, index: usize, now: Instant) {
        let Some(slot) = self.sessions.try_remove(index) else {
            return;
        };
        for (_, conn_index) in &slot.conns {
            self.start_closing(*conn_index, now);
        }
        log::debug!("a session finished; {} sessions in flight", self.sessions.len());
        self.factory.session_finished(slot.session, now);
        self.place_freed(now);
        self.sync_listener(now);
    }
}
