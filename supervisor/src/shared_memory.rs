//! Zeroed atomics in memory mapped before a fork, shared by every process forked after it:
//! what the session board and the status counters are made of.

use std::io;
use std::ptr::NonNull;

/// The atomics a mapping may hold: all-zero bytes are a valid value of each.
pub(crate) trait ZeroedAtomic {}
impl ZeroedAtomic for std::sync::atomic::AtomicU32 {}
impl ZeroedAtomic for std::sync::atomic::AtomicU64 {}

/// `len` atomics of type `T` in an anonymous shared mapping, all 0 at first.
#[derive(Debug)]
pub(crate) struct SharedArray<T: ZeroedAtomic> {
    start: NonNull<T>,
    len: usize,
}

impl<T: ZeroedAtomic> SharedArray<T> {
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1);
        // SAFETY: an anonymous shared mapping of fresh zeroed memory; no file, no alias.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * std::mem::size_of::<T>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = NonNull::new(address.cast::<T>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { start, len })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the mapping holds `len` zero-initialised `T`s (a valid value, see
        // `ZeroedAtomic`; mmap aligns to a page) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl<T: ZeroedAtomic> Drop for SharedArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len * std::mem::size_of::<T>()) };
    }
}
