//! Deadlines of sessions and connections in one min-heap with lazy invalidation: an entry is
//! never removed when its owner changes its mind; the owner's current state is the truth and
//! stale entries are skipped when they come due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for. Indices are slab indices; serials tell a reused slot apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// The session's `poll_timeout()`.
    Session { index: usize, serial: u64 },
    /// A connection being flushed before close gives up.
    Linger { index: usize, serial: u64 },
    /// Another attempt at a connect that would have blocked.
    ConnectRetry { index: usize, serial: u64 },
    /// A connection with a write timeout has had output waiting since its last progress.
    WriteStall { index: usize, serial: u64 },
    /// A kept connection's idle timeout.
    KeptIdle { index: usize, serial: u64 },
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKind)>>,
}

impl Timers {
    pub(crate) fn schedule(&mut self, deadline: Instant, kind: TimerKind) {
        self.heap.push(Reverse((deadline, kind)));
    }

    /// The earliest deadline, possibly a stale one (then the loop wakes once for nothing).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((deadline, _))) if *deadline <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Sessions that move their deadline on every message leave stale entries behind until
    /// those come due; once they outnumber the live timers, drop them in one pass.
    pub(crate) fn compact_if_bloated(
        &mut self,
        live_estimate: usize,
        mut is_live: impl FnMut(Instant, TimerKind) -> bool,
    ) {
        if self.heap.len() > 64 + 2 * live_estimate {
            self.heap.retain(|Reverse((deadline, kind))| is_live(*deadline, *kind));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_due_entries_in_deadline_order() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let later = TimerKind::Session { index: 1, serial: 1 };
        let sooner = TimerKind::Linger { index: 2, serial: 2 };
        timers.schedule(now + Duration::from_millis(20), later);
        timers.schedule(now + Duration::from_millis(10), sooner);
        assert_eq!(timers.next_deadline(), Some(now + Duration::from_millis(10)));
        assert_eq!(timers.pop_due(now), None);
        let at = now + Duration::from_millis(30);
        assert_eq!(timers.pop_due(at).map(|e| e.1), Some(sooner));
        assert_eq!(timers.pop_due(at).map(|e| e.1), Some(later));
        assert_eq!(timers.pop_due(at), None);
    }

    #[test]
    fn compaction_keeps_only_live_entries() {
        let now = Instant::now();
        let mut timers = Timers::default();
        for serial in 0..200 {
            timers.schedule(now, TimerKind::Session { index: 0, serial });
        }
        timers.compact_if_bloated(1, |_, kind| kind == TimerKind::Session { index: 0, serial: 7 });
        assert_eq!(timers.len(), 1);
    }
}
