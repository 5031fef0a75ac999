//! A count of sessions shared by every worker: one slot per worker in memory mapped before
//! the fork, so any worker can read the total without asking the others. A worker zeroes
//! its slot when it starts, so the sessions of a killed predecessor do not linger.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Shared session counters, one per worker slot.
#[derive(Debug)]
pub struct SessionBoard {
    slots: NonNull<AtomicU32>,
    len: usize,
}

impl SessionBoard {
    /// A board for `workers` slots (at least one, for a manager serving alone).
    pub fn new(workers: usize) -> io::Result<SessionBoard> {
        let len = workers.max(1);
        let bytes = len * std::mem::size_of::<AtomicU32>();
        // SAFETY: an anonymous shared mapping of fresh zeroed memory; no file, no alias.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let slots =
            NonNull::new(address.cast::<AtomicU32>()).ok_or_else(io::Error::last_os_error)?;
        Ok(SessionBoard { slots, len })
    }

    fn slots(&self) -> &[AtomicU32] {
        // SAFETY: the mapping holds `len` zero-initialised `AtomicU32`s (all-zero bytes are
        // a valid value) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), self.len) }
    }

    /// The sessions of every worker.
    pub fn total(&self) -> usize {
        self.slots().iter().map(|slot| slot.load(Ordering::Relaxed) as usize).sum()
    }

    /// Starts worker `index`'s slot afresh (its predecessor may have died with sessions).
    pub fn reset(&self, index: usize) {
        if let Some(slot) = self.slots().get(index) {
            slot.store(0, Ordering::Relaxed);
        }
    }

    /// A session of worker `index` began.
    pub fn begin(&self, index: usize) {
        if let Some(slot) = self.slots().get(index) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A session of worker `index` ended.
    pub fn end(&self, index: usize) {
        if let Some(slot) = self.slots().get(index) {
            let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

impl Drop for SessionBoard {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe {
            libc::munmap(self.slots.as_ptr().cast(), self.len * std::mem::size_of::<AtomicU32>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_shared_with_a_forked_child() {
        let board = SessionBoard::new(3).unwrap();
        board.begin(0);
        board.begin(0);
        // SAFETY: the test process forks without threads of its own holding locks it needs;
        // the child only touches the mapping and exits.
        match unsafe { libc::fork() } {
            0 => {
                board.reset(1);
                board.begin(1);
                board.begin(2);
                board.begin(2);
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
        board.begin(99);
        assert_eq!(board.total(), 2, "an empty slot stays at 0; unknown slots are ignored");
    }
}
