//! Crash throttling for respawned workers (Postfix master's rule): a worker that dies soon
//! after it started points at a structural problem (bad build, bad config, missing
//! resource), so its replacement waits, longer each time, instead of fork-bombing the host.

use std::time::Duration;

/// A worker that lived at least this long is considered healthy.
pub(crate) const HEALTHY_LIFETIME: Duration = Duration::from_secs(5);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The respawn delay of one worker slot. Pure: time is passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RespawnThrottle {
    next_delay: Duration,
}

impl Default for RespawnThrottle {
    fn default() -> Self {
        Self { next_delay: FIRST_DELAY }
    }
}

impl RespawnThrottle {
    /// How long to wait before replacing a worker that lived `lifetime`. A healthy lifetime
    /// resets the back-off; a short one returns the current delay and doubles the next (1 s,
    /// 2 s, 4 s … capped at 60 s).
    pub(crate) fn delay_after(&mut self, lifetime: Duration) -> Duration {
        if lifetime >= HEALTHY_LIFETIME {
            *self = Self::default();
            return Duration::ZERO;
        }
        let delay = self.next_delay;
        self.next_delay = (delay * 2).min(MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(200);

    #[test]
    fn a_healthy_worker_is_replaced_at_once() {
        let mut throttle = RespawnThrottle::default();
        assert_eq!(throttle.delay_after(Duration::from_secs(3600)), Duration::ZERO);
    }

    #[test]
    fn crashing_workers_back_off_doubling_up_to_a_minute() {
        let mut throttle = RespawnThrottle::default();
        let delays: Vec<u64> = (0..9).map(|_| throttle.delay_after(SHORT).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_healthy_life_resets_the_back_off() {
        let mut throttle = RespawnThrottle::default();
        throttle.delay_after(SHORT);
        throttle.delay_after(SHORT);
        assert_eq!(throttle.delay_after(HEALTHY_LIFETIME), Duration::ZERO);
        assert_eq!(throttle.delay_after(SHORT), Duration::from_secs(1));
    }
}
