//! Counters shared by every process forked after they are made: memory mapped before the
//! fork, so the workers add to them and the supervisor reads them without any message. What
//! each counter means is the caller's business.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::shared_memory::SharedArray;

/// A fixed array of shared 64-bit counters, all 0 at first.
#[derive(Debug)]
pub struct SharedCounters {
    counters: SharedArray<AtomicU64>,
}

impl SharedCounters {
    pub fn new(len: usize) -> io::Result<Self> {
        Ok(Self { counters: SharedArray::new(len)? })
    }

    fn counters(&self) -> &[AtomicU64] {
        self.counters.as_slice()
    }

    /// Adds 1 to counter `index`; an index out of range is ignored.
    pub fn increment(&self, index: usize) {
        if let Some(counter) = self.counters().get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `amount` to counter `index`; an index out of range is ignored.
    pub fn add(&self, index: usize, amount: u64) {
        if let Some(counter) = self.counters().get(index) {
            counter.fetch_add(amount, Ordering::Relaxed);
        }
    }

    /// Counter `index` (0 out of range).
    pub fn get(&self, index: usize) -> u64 {
        self.counters().get(index).map_or(0, |counter| counter.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_made_in_a_forked_child_are_seen_by_the_parent() {
        let counters = SharedCounters::new(4).unwrap();
        counters.increment(1);
        // SAFETY: the child only touches the mapping and exits without unwinding.
        match unsafe { libc::fork() } {
            0 => {
                counters.increment(1);
                counters.increment(3);
                counters.increment(99);
                counters.add(2, 5);
                unsafe { libc::_exit(0) };
            }
            pid => {
                assert!(pid > 0);
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
        }
        assert_eq!([0, 1, 2, 3].map(|i| counters.get(i)), [0, 2, 5, 1]);
        assert_eq!(counters.get(99), 0, "out of range reads 0");
    }
}
