//! Runs the sessions in plain threads with blocking sockets, which is all a load
//! generator needs. Each session's record goes to a sink as soon as it ends, so that
//! periodic reports and the statistics data file see it at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use milter_manager::tools::performance::{Failure, Outcome, Pace, SessionRecord};

/// What to run.
pub(crate) struct Plan {
    pub(crate) pace: Pace,
    /// Sessions per worker (not used by a flood, which runs until its time is up).
    pub(crate) n_sessions: usize,
    /// Connections at a time per worker (parallel and flood).
    pub(crate) concurrency: usize,
    /// Each worker runs the whole plan on its own (`--n-workers`), as the original's
    /// worker processes do; threads suffice here.
    pub(crate) n_workers: usize,
}

impl Plan {
    /// How many connections may be open at once, for the report.
    pub(crate) fn connections(&self) -> usize {
        match self.pace {
            Pace::Parallel => self.concurrency.min(self.n_sessions) * self.n_workers,
            Pace::Interval(_) => self.n_sessions * self.n_workers,
            Pace::Flood(_) => self.concurrency * self.n_workers,
        }
    }
}

/// Runs `session` as `plan` says until done or `stop` is set (no new session starts
/// then; those running finish). Session numbers are unique and start at 0. Gives the
/// time the whole run took.
pub(crate) fn run_sessions(
    plan: &Plan,
    stop: &AtomicBool,
    session: impl Fn(usize) -> Result<Outcome, Failure> + Sync,
    sink: impl Fn(SessionRecord) + Sync,
) -> Duration {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let one = |index: usize| {
        let started = Instant::now();
        let result = session(index);
        sink(SessionRecord { index, latency: started.elapsed(), result });
    };
    std::thread::scope(|scope| match plan.pace {
        Pace::Parallel => {
            let total = plan.n_sessions * plan.n_workers;
            let (next, one) = (&next, &one);
            for _ in 0..plan.connections().max(1) {
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    one(index);
                });
            }
        }
        Pace::Interval(interval) => {
            for worker in 0..plan.n_workers {
                let one = &one;
                scope.spawn(move || {
                    std::thread::scope(|timeline| {
                        for i in 0..plan.n_sessions {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            timeline.spawn(move || one(worker * plan.n_sessions + i));
                            if i + 1 < plan.n_sessions {
                                pause(interval, stop);
                            }
                        }
                    });
                });
            }
        }
        Pace::Flood(period) => {
            let deadline = period.map(|period| started + period);
            let (next, one) = (&next, &one);
            for _ in 0..plan.connections().max(1) {
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed)
                        && deadline.is_none_or(|deadline| Instant::now() < deadline)
                    {
                        one(next.fetch_add(1, Ordering::Relaxed));
                    }
                });
            }
        }
    });
    started.elapsed()
}

/// Sleeps `duration`, or less when `stop` gets set meanwhile.
pub(crate) fn pause(duration: Duration, stop: &AtomicBool) {
    const SLICE: Duration = Duration::from_millis(50);
    let end = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(SLICE));
    }
}
