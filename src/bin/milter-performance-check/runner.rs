//! Runs the sessions: one thread per concurrent connection, each taking the next session
//! number off a shared counter until all are taken. Blocking sockets in plain threads are
//! all a load generator needs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use milter_manager::tools::performance::{Failure, Outcome, SessionRecord};

/// Runs `session` for the numbers `0..n_sessions`, `concurrency` at a time; gives every
/// session's record (in no particular order) and the time the whole run took.
pub(crate) fn run_sessions(
    n_sessions: usize,
    concurrency: usize,
    session: impl Fn(usize) -> Result<Outcome, Failure> + Sync,
) -> (Vec<SessionRecord>, Duration) {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let records = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..concurrency.clamp(1, n_sessions.max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut records = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= n_sessions {
                            return records;
                        }
                        let started = Instant::now();
                        let result = session(index);
                        records.push(SessionRecord { index, latency: started.elapsed(), result });
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a session thread panicked"))
            .collect()
    });
    (records, started.elapsed())
}
