//! Kept connections: outbound connections a session gave back for reuse
//! ([`crate::Action::Keep`]) instead of closing them, handed to a later session that asks for
//! one under the same key ([`crate::Action::Connect`] with `reuse`).
//!
//! While kept, a connection belongs to the loop. It stays registered for reading: the peer
//! has nothing to say to a kept connection, so any byte, EOF or error means it is no longer
//! fit for reuse and it is closed. It is also closed after its idle timeout, when the worker
//! stops, and when the process runs out of file descriptors. How many are kept is bounded per
//! key (by the session) and per process ([`crate::WorkerConfig::max_kept_connections`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::conn::{Connection, Owner};
use crate::event_loop::EventLoop;
use crate::session_slot::Deferred;
use crate::timers::TimerKind;
use crate::{ConnKey, Endpoint, SessionFactory};

/// What [`crate::Action::Keep`] asks, besides the connection.
pub(crate) struct KeepRequest {
    pub(crate) pool_key: Vec<u8>,
    pub(crate) memo: Vec<u8>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_per_key: usize,
}

/// One kept connection (when it is closed unless taken is in its owner,
/// `Owner::Kept`).
struct Kept {
    conn_index: usize,
    serial: u64,
    /// What the session left with it, given to the session that takes it.
    memo: Vec<u8>,
}

/// The kept connections of one process, by where they go and then by key, the most
/// recently kept last.
#[derive(Default)]
pub(crate) struct KeptPool {
    by_place: HashMap<Endpoint, HashMap<Vec<u8>, Vec<Kept>>>,
    total: usize,
    pub(crate) max_total: usize,
}

impl KeptPool {
    pub(crate) fn new(max_total: usize) -> Self {
        Self { max_total, ..Self::default() }
    }

    fn has_room(&self, endpoint: &Endpoint, key: &[u8], max_per_key: usize) -> bool {
        let kept = self.by_place.get(endpoint).and_then(|keys| keys.get(key)).map_or(0, Vec::len);
        self.total < self.max_total && kept < max_per_key
    }

    fn insert(&mut self, endpoint: Endpoint, key: Vec<u8>, kept: Kept) {
        self.by_place.entry(endpoint).or_default().entry(key).or_default().push(kept);
        self.total += 1;
    }

    /// The most recently kept connection to `endpoint` under `key`: the one least likely
    /// to have been closed by the peer's own idle timeout, while older ones age out.
    fn take(&mut self, endpoint: &Endpoint, key: &[u8]) -> Option<Kept> {
        let keys = self.by_place.get_mut(endpoint)?;
        let list = keys.get_mut(key)?;
        let kept = list.pop()?;
        if list.is_empty() {
            keys.remove(key);
            if keys.is_empty() {
                self.by_place.remove(endpoint);
            }
        }
        self.total -= 1;
        Some(kept)
    }

    /// Forgets the connection in slot `conn_index` (it is being closed).
    fn remove(&mut self, conn_index: usize, serial: u64) {
        for keys in self.by_place.values_mut() {
            for list in keys.values_mut() {
                if let Some(at) =
                    list.iter().position(|k| k.conn_index == conn_index && k.serial == serial)
                {
                    list.remove(at);
                    self.total -= 1;
                }
            }
            keys.retain(|_, list| !list.is_empty());
        }
        self.by_place.retain(|_, keys| !keys.is_empty());
    }

    fn all(&self) -> Vec<usize> {
        self.by_place.values().flat_map(HashMap::values).flatten().map(|k| k.conn_index).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.total
    }
}

impl<F: SessionFactory> EventLoop<F> {
    /// [`crate::Action::Keep`]: the connection leaves its session for the pool, or is closed
    /// like [`crate::Action::Close`] when the pool is full, the worker is stopping, or the
    /// connection is not open or was not asked for with `reuse`.
    pub(crate) fn keep(&mut self, index: usize, key: ConnKey, request: KeepRequest, now: Instant) {
        let KeepRequest { pool_key, memo, idle_timeout, max_per_key } = request;
        let Some(conn_index) = self.sessions.get(index).and_then(|slot| slot.conn_index(key))
        else {
            return;
        };
        let conn = self.conns.get(conn_index).filter(|conn| conn.is_open());
        let endpoint = conn.and_then(|conn| conn.endpoint.clone());
        let idle_until = now.checked_add(idle_timeout);
        let keepable = !self.stop.requested
            && endpoint.as_ref().is_some_and(|to| self.kept.has_room(to, &pool_key, max_per_key));
        let (Some(endpoint), Some(idle_until), true) = (endpoint, idle_until, keepable) else {
            log::debug!("not keeping connection {key:?}: closing it");
            return self.close_on_request(index, key, now);
        };
        if let Some(slot) = self.sessions.get_mut(index) {
            slot.forget_conn(key);
        }
        let Some(conn) = self.conns.get_mut(conn_index) else {
            return;
        };
        conn.owner = Owner::Kept { until: idle_until };
        conn.reading_paused = false;
        let serial = conn.serial;
        self.kept.insert(endpoint, pool_key, Kept { conn_index, serial, memo });
        log::debug!("kept connection {key:?} for reuse; {} kept", self.kept.len());
        self.timers.schedule(idle_until, TimerKind::KeptIdle { index: conn_index, serial });
    }

    /// A connection kept to `endpoint` under `pool_key`, attached to session `index` as
    /// `key`; the session hears of it with `handle_reused`. False when none is kept.
    pub(crate) fn reuse(
        &mut self,
        index: usize,
        key: ConnKey,
        endpoint: &Endpoint,
        pool_key: &[u8],
        write_timeout: Option<Duration>,
    ) -> bool {
        while let Some(kept) = self.kept.take(endpoint, pool_key) {
            let Some(conn) =
                self.conns.get_mut(kept.conn_index).filter(|conn| conn.serial == kept.serial)
            else {
                continue;
            };
            conn.owner = Owner::Session { index, key };
            conn.write_timeout = write_timeout;
            // The session learns of the queue from its next change on.
            conn.reported_queue = conn.output.pending_len();
            if let Some(slot) = self.sessions.get_mut(index) {
                slot.conns.push((key, kept.conn_index));
            }
            self.defer(index, Deferred::Reused { conn: key, memo: kept.memo });
            return true;
        }
        false
    }

    /// Bytes or EOF on a kept connection: the peer is done with it (a milter restarted,
    /// or one that does not keep connections). It is closed, and the pool forgets it.
    pub(crate) fn kept_spoke(&mut self, conn_index: usize, what: &str) {
        log::debug!("a kept connection {what}; closing it");
        self.close_conn(conn_index);
    }

    pub(crate) fn kept_idle_check(&mut self, conn_index: usize, serial: u64, now: Instant) {
        // Taken (and maybe kept again) since: a later timer covers it.
        let conn = self.conns.get(conn_index).filter(|conn| conn.serial == serial);
        if conn.and_then(Connection::kept_until).is_some_and(|until| until <= now) {
            log::debug!("closing a kept connection idle for its whole timeout");
            self.close_conn(conn_index);
        }
    }

    /// Closes every kept connection: the worker stops, or needs their file descriptors.
    pub(crate) fn close_kept(&mut self, why: &str) {
        let all = self.kept.all();
        if !all.is_empty() {
            log::info!("closing {} kept child connections: {why}", all.len());
        }
        for conn_index in all {
            self.close_conn(conn_index);
        }
    }

    /// Called by `close_conn` for a connection that was kept.
    pub(crate) fn forget_kept(&mut self, conn_index: usize, serial: u64) {
        self.kept.remove(conn_index, serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(conn_index: usize) -> Kept {
        Kept { conn_index, serial: conn_index as u64, memo: conn_index.to_be_bytes().to_vec() }
    }

    fn place(port: u16) -> Endpoint {
        Endpoint::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn takes_the_newest_of_a_place_and_key_and_counts_every_one() {
        let mut pool = KeptPool::new(4);
        pool.insert(place(1), b"a".to_vec(), kept(1));
        pool.insert(place(1), b"a".to_vec(), kept(2));
        pool.insert(place(1), b"b".to_vec(), kept(3));
        pool.insert(place(2), b"a".to_vec(), kept(4));
        assert!(!pool.has_room(&place(3), b"c", 10), "four in all is the process's bound");
        assert_eq!(pool.take(&place(1), b"a").map(|k| k.conn_index), Some(2));
        assert!(pool.has_room(&place(3), b"c", 10));
        assert!(!pool.has_room(&place(1), b"a", 1), "one left there under a, its bound");
        assert!(pool.has_room(&place(2), b"b", 1), "another key");
        pool.remove(3, 3);
        assert_eq!(pool.take(&place(1), b"b").map(|k| k.conn_index), None);
        assert_eq!(pool.take(&place(3), b"a").map(|k| k.conn_index), None, "another place");
        assert_eq!(pool.len(), 2);
        let mut all = pool.all();
        all.sort_unstable();
        assert_eq!(all, vec![1, 4]);
    }

    #[test]
    fn a_pool_without_room_keeps_nothing() {
        assert!(!KeptPool::new(0).has_room(&place(1), b"a", 8));
    }
}
