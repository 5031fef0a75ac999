//! A count of sessions shared by every worker: one slot per worker in memory mapped before
//! the fork, so any worker can read the total without asking the others, plus the total
//! itself, so that a limit can be checked and a session counted in one atomic step (two
//! workers accepting at once cannot both take the last place). A worker's slot is zeroed
//! when it starts and when it has exited, so the sessions of a killed worker do not linger.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::shared_memory::SharedArray;

/// Shared session counters, one per worker slot, and their sum.
#[derive(Debug)]
pub struct SessionBoard {
    /// `len` worker slots, then the total.
    counters: SharedArray<AtomicU32>,
    len: usize,
}

impl SessionBoard {
    /// A board for `workers` slots (at least one, for a manager serving alone).
    pub fn new(workers: usize) -> io::Result<Self> {
        let len = workers.max(1);
        Ok(Self { counters: SharedArray::new(len + 1)?, len })
    }

    fn counters(&self) -> &[AtomicU32] {
        self.counters.as_slice()
    }

    fn slot(&self, index: usize) -> Option<&AtomicU32> {
        self.counters()[..self.len].get(index)
    }

    fn sum(&self) -> &AtomicU32 {
        &self.counters()[self.len]
    }

    /// The sessions of every worker.
    pub fn total(&self) -> usize {
        self.sum().load(Ordering::SeqCst) as usize
    }

    /// Clears worker `index`'s slot (at a worker's start, and once it has exited: it may
    /// have died with sessions counted).
    pub fn reset(&self, index: usize) {
        if let Some(slot) = self.slot(index) {
            let left = slot.swap(0, Ordering::SeqCst);
            let _ = self
                .sum()
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(left)));
        }
    }

    /// Counts a session of worker `index` unless `max` sessions (all workers together) are
    /// running already; false: not counted, at the limit. An index beyond the board is not
    /// counted and never refused.
    pub fn try_begin(&self, index: usize, max: Option<usize>) -> bool {
        let Some(slot) = self.slot(index) else {
            return true;
        };
        let below_max = |n: u32| max.is_none_or(|max| (n as usize) < max);
        let taken = self.sum().fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            below_max(n).then_some(n.saturating_add(1))
        });
        if taken.is_err() {
            return false;
        }
        slot.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A session of worker `index` ended (ignored if the slot was reset meanwhile).
    pub fn end(&self, index: usize) {
        let Some(slot) = self.slot(index) else {
            return;
        };
        if slot.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let _ =
                self.sum().fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_shared_with_a_forked_child() {
        let board = SessionBoard::new(3).unwrap();
        assert!(board.try_begin(0, None));
        assert!(board.try_begin(0, None));
        // SAFETY: the test process forks without threads of its own holding locks it needs;
        // the child only touches the mapping and exits.
        match unsafe { libc::fork() } {
            0 => {
                board.reset(1);
                assert!(board.try_begin(1, None));
                assert!(board.try_begin(2, None));
                assert!(board.try_begin(2, None));
                board.end(2);
                unsafe { libc::_exit(0) };
            }
            pid => {
                assert!(pid > 0);
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
        }
        assert_eq!(board.total(), 4);
        board.reset(0);
        assert_eq!(board.total(), 2);
        board.end(0);
        assert!(board.try_begin(99, None));
        assert_eq!(board.total(), 2, "an empty slot stays at 0; unknown slots are ignored");
    }

    #[test]
    fn the_limit_counts_every_worker() {
        let board = SessionBoard::new(2).unwrap();
        assert!(board.try_begin(0, Some(3)));
        assert!(board.try_begin(1, Some(3)));
        assert!(board.try_begin(1, Some(3)));
        assert!(!board.try_begin(0, Some(3)), "3 sessions on two workers: the limit");
        assert_eq!(board.total(), 3);
        board.end(1);
        assert!(board.try_begin(0, Some(3)), "a place came free");
        board.reset(0);
        assert_eq!(board.total(), 1, "a reset slot no longer counts");
        board.end(0);
        assert_eq!(board.total(), 1, "ending a session of a reset slot changes nothing");
    }
}
