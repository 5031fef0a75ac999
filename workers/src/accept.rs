//! Accepting connections and starting sessions, and keeping the listener registered only
//! while this process should accept (not paused after resource errors, not at the cap).

use std::io;
use std::time::Instant;

use mio::Interest;

use crate::conn::{Connection, Owner};
use crate::event_loop::{conn_token, EventLoop, LISTENER_TOKEN};
use crate::listener::{classify_accept_error, AcceptFailure};
use crate::session_slot::SessionSlot;
use crate::stream::Stream;
use crate::{ConnKey, PeerAddr, SessionFactory};

impl<F: SessionFactory> EventLoop<F> {
    /// Accepts until the listener would block. The listener is shared with other workers,
    /// so losing the race (WouldBlock right away) is normal.
    pub(crate) fn accept_ready(&mut self, now: Instant) {
        loop {
            if self.at_session_cap() {
                self.sync_listener(now);
                return;
            }
            if self.listener.is_none() || !self.reserve_place(now) {
                return;
            }
            let Some(listener) = &self.listener else {
                return;
            };
            let accepted = listener.accept();
            if accepted.is_err() {
                self.release_place();
            }
            match accepted {
                Ok((stream, peer)) => self.start_session(stream, peer, now),
                Err(e) => match classify_accept_error(&e) {
                    AcceptFailure::Drained => return,
                    AcceptFailure::Retry => continue,
                    AcceptFailure::Skip => {
                        log::info!("accept on the listener failed: {e}; skipping that connection");
                    }
                    AcceptFailure::Pause => {
                        log::warn!(
                            "accept on the listener failed: {e}; pausing accepts for {:?}",
                            self.limits.accept_pause
                        );
                        self.pause_accepting(now);
                        return;
                    }
                },
            }
        }
    }

    fn start_session(&mut self, stream: Stream, peer: PeerAddr, now: Instant) {
        let serial = self.next_serial();
        let conn_index = self.conns.insert(Connection::accepted(serial, Owner::Closing, stream));
        if let Some(stream) = self.conns.get_mut(conn_index).and_then(|conn| conn.stream.as_mut()) {
            let interest = stream.accepted_interest();
            if let Err(e) = self.poll.registry().register(stream, conn_token(conn_index), interest)
            {
                log::warn!("registering the connection from {peer:?} failed: {e}; dropping it");
                self.conns.try_remove(conn_index);
                self.release_place();
                return;
            }
        }
        let session = self.factory.new_session(&peer, now);
        let session_serial = self.next_serial();
        let mut slot = SessionSlot::new(session, session_serial);
        slot.conns.push((ConnKey::PEER, conn_index));
        let index = self.sessions.insert(slot);
        if let Some(conn) = self.conns.get_mut(conn_index) {
            conn.owner = Owner::Session { index, key: ConnKey::PEER };
        }
        log::debug!(
            "accepted a connection from {peer:?}; {} sessions in flight",
            self.sessions.len()
        );
        self.drive(index, now);
    }

    pub(crate) fn at_session_cap(&self) -> bool {
        self.limits.max_sessions.is_some_and(|max| self.sessions.len() >= max)
    }

    /// A socket for a session could not be had for want of a file descriptor: a new
    /// session would fare no better, so accepting pauses, as after such an accept error.
    pub(crate) fn pause_for_descriptors(&mut self, what: &str, error: &io::Error, now: Instant) {
        log::warn!("{what} failed: {error}; pausing accepts for {:?}", self.limits.accept_pause);
        self.close_kept("out of file descriptors");
        self.pause_accepting(now);
    }

    pub(crate) fn pause_accepting(&mut self, now: Instant) {
        self.accept_paused_until = now.checked_add(self.limits.accept_pause);
        if self.accept_paused_until.is_none() {
            log::warn!(
                "the accept pause {:?} is too long to schedule; not pausing",
                self.limits.accept_pause
            );
        }
        self.sync_listener(now);
    }

    /// Registers or deregisters the listener to match whether this process should accept.
    /// While deregistered, new clients wait in the kernel backlog (or go to other workers);
    /// re-registering reports a non-empty backlog as readiness again.
    pub(crate) fn sync_listener(&mut self, now: Instant) {
        let want = self.accept_paused_until.is_none() && !self.at_session_cap();
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        if want == self.listener_registered {
            return;
        }
        let registry = self.poll.registry();
        let result = if want {
            registry.register(listener, LISTENER_TOKEN, Interest::READABLE)
        } else {
            registry.deregister(listener)
        };
        match result {
            Ok(()) => {
                self.listener_registered = want;
                if self.at_session_cap() {
                    log::debug!(
                        "{} sessions in flight, the configured maximum; not accepting until one finishes",
                        self.sessions.len()
                    );
                }
            }
            Err(e) if want => {
                log::warn!(
                    "re-registering the listener failed: {e}; trying again in {:?}",
                    self.limits.accept_pause
                );
                self.accept_paused_until = now.checked_add(self.limits.accept_pause);
            }
            Err(e) => log::warn!("deregistering the listener failed: {e}"),
        }
    }
}
