//! The one place that calls fork(2). The child of a multi-threaded process may only call
//! async-signal-safe functions, so this crate starts no threads and checks, in debug builds,
//! that nobody else did either.

use std::io;

use nix::unistd::{self, ForkResult};

/// Forks the process. The child may run arbitrary Rust code because the caller is
/// single-threaded (checked in debug builds on Linux).
pub(crate) fn fork() -> io::Result<ForkResult> {
    debug_assert_single_threaded();
    // Buffered output would otherwise be written twice, once by each process.
    flush_std_streams();
    // SAFETY: the process has exactly one thread (this crate starts none, and debug builds
    // assert it above), so the child inherits no lock held by another thread and may allocate,
    // log and run arbitrary code.
    unsafe { unistd::fork() }.map_err(io::Error::from)
}

fn flush_std_streams() {
    use std::io::Write;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
}

/// Panics (in debug builds) when the process has more than one thread.
pub(crate) fn debug_assert_single_threaded() {
    #[cfg(all(debug_assertions, target_os = "linux"))]
    if let Some(threads) = thread_count() {
        assert_eq!(
            threads, 1,
            "fork with {threads} threads: the child could deadlock; start threads only after forking"
        );
    }
}

#[cfg(all(debug_assertions, target_os = "linux"))]
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
}
