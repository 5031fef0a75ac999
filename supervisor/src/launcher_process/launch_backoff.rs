//! When the launcher may start a milter again: not twice within [`MIN_START_INTERVAL`],
//! and after a pause that grows each time it ends soon after its start.

use std::time::{Duration, Instant};

use crate::throttle::RespawnThrottle;

/// The least time between two starts of one milter: a flood of requests runs its command
/// (as root, perhaps) once, not once per request.
pub const MIN_START_INTERVAL: Duration = Duration::from_secs(3);

/// When a program may be started again: [`MIN_START_INTERVAL`] after its last start, and
/// after the pause of one that ends on its own. Pure: time is passed in.
#[derive(Debug, Clone, Default)]
pub struct LaunchBackoff {
    throttle: RespawnThrottle,
    not_before: Option<Instant>,
    last_start: Option<Instant>,
}

impl LaunchBackoff {
    /// The program was started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The program ended at `now` after `lifetime`; returns the pause before its next start
    /// (zero after a healthy life).
    pub fn ended(&mut self, lifetime: Duration, now: Instant) -> Duration {
        let delay = self.throttle.delay_after(lifetime);
        self.not_before = Some(now + delay);
        delay
    }

    /// How long a start asked for at `now` must still wait; `None`: start it.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let rate_limit = self.last_start.map(|at| at + MIN_START_INTERVAL);
        let at = self.not_before.into_iter().chain(rate_limit).max()?;
        (at > now).then(|| at - now)
    }

    /// Whether the pause after an early end (not only the rate limit) holds a start at `now`.
    pub(super) fn pausing(&self, now: Instant) -> bool {
        self.not_before.is_some_and(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_keeps_ending_waits_longer_each_time() {
        let mut backoff = LaunchBackoff::default();
        let start = Instant::now();
        assert_eq!(backoff.wait(start), None, "never ended: start it");
        let quick = Duration::from_millis(50);
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let delay = backoff.ended(quick, now);
            assert_eq!(backoff.wait(now), Some(delay), "not before the pause");
            assert_eq!(backoff.wait(now + delay / 2), Some(delay / 2));
            assert_eq!(backoff.wait(now + delay), None, "at most once per pause");
            delays.push(delay.as_secs());
            now += delay;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        // A long life starts it again at once and resets the pauses.
        assert_eq!(backoff.ended(Duration::from_secs(3600), now), Duration::ZERO);
        assert_eq!(backoff.wait(now), None);
        assert_eq!(backoff.ended(quick, now), Duration::from_secs(1));
    }

    #[test]
    fn a_milter_is_started_at_most_once_per_interval() {
        let mut backoff = LaunchBackoff::default();
        let start = Instant::now();
        backoff.started(start);
        assert_eq!(backoff.wait(start), Some(MIN_START_INTERVAL), "asked again at once");
        let second = Duration::from_secs(1);
        assert_eq!(backoff.wait(start + second), Some(MIN_START_INTERVAL - second));
        assert_eq!(backoff.wait(start + MIN_START_INTERVAL), None);
        assert!(!backoff.pausing(start), "the rate limit is no back-off");
        // Ended at once: the longer of the two waits holds.
        let early = Duration::from_millis(10);
        assert_eq!(backoff.ended(early, start + early), Duration::from_secs(1));
        assert_eq!(backoff.wait(start + early), Some(MIN_START_INTERVAL - early));
        assert!(backoff.pausing(start + early));
        let later = start + MIN_START_INTERVAL;
        backoff.started(later);
        assert_eq!(backoff.ended(early, later + early), Duration::from_secs(2));
        assert_eq!(backoff.wait(later + early), Some(MIN_START_INTERVAL - early));
        assert_eq!(backoff.ended(early, later + early), Duration::from_secs(4));
        assert_eq!(backoff.wait(later + early), Some(Duration::from_secs(4)), "over the limit");
    }
}
