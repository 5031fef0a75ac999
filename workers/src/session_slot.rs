//! The loop's record of one session: the session itself, its connections by key, the events
//! waiting to be delivered to it and the deadline the timer heap holds for it.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use crate::{ConnKey, Session};

/// An event that arose while the session was busy (inside its action drain) and is delivered
/// from the loop right after, so a session is never re-entered.
pub(crate) enum Deferred {
    /// Bytes salvaged from a connection whose write failed, delivered before its close.
    Read {
        conn: ConnKey,
        bytes: Vec<u8>,
    },
    Connected {
        conn: ConnKey,
        result: io::Result<()>,
    },
    Closed {
        conn: ConnKey,
        error: Option<io::Error>,
    },
    /// A kept connection was taken for the session's `Connect`.
    Reused {
        conn: ConnKey,
        memo: Vec<u8>,
    },
}

pub(crate) struct SessionSlot<S> {
    pub(crate) session: S,
    pub(crate) serial: u64,
    /// The session's live connections and their slab indices; a handful at most, so a
    /// linear scan beats a map.
    pub(crate) conns: Vec<(ConnKey, usize)>,
    pub(crate) deferred: VecDeque<Deferred>,
    /// The deadline last pushed onto the timer heap for this session.
    pub(crate) armed_timeout: Option<Instant>,
    /// The deadline last fired, so a session that keeps returning it does not spin.
    pub(crate) fired_timeout: Option<Instant>,
    /// Some of its connections may be left unread because it did not want them read; a
    /// check after its next events finds out which may be read again.
    pub(crate) reads_paused: bool,
}

impl<S: Session> SessionSlot<S> {
    pub(crate) fn new(session: S, serial: u64) -> Self {
        Self {
            session,
            serial,
            conns: Vec::new(),
            deferred: VecDeque::new(),
            armed_timeout: None,
            fired_timeout: None,
            reads_paused: false,
        }
    }

    pub(crate) fn conn_index(&self, key: ConnKey) -> Option<usize> {
        self.conns.iter().find(|(k, _)| *k == key).map(|(_, index)| *index)
    }

    pub(crate) fn forget_conn(&mut self, key: ConnKey) {
        self.conns.retain(|(k, _)| *k != key);
    }

    pub(crate) fn deliver(&mut self, event: Deferred, now: Instant) {
        match event {
            Deferred::Read { conn, bytes } => self.session.handle_read(conn, &bytes, now),
            Deferred::Connected { conn, result } => {
                self.session.handle_connected(conn, result, now)
            }
            Deferred::Closed { conn, error } => self.session.handle_closed(conn, error, now),
            Deferred::Reused { conn, memo } => self.session.handle_reused(conn, memo, now),
        }
    }
}
