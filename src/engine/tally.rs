//! What one child milter went through in a session, for the metrics: kept in the session's
//! own memory as it happens (a few additions), read once when the session ends.

use std::time::Duration;

use super::stage::Stage;

/// One child's events in one session (its `K` restarts included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildTally {
    /// Its connection could not be opened.
    pub connect_failures: u32,
    /// It did not answer (or connect) in time.
    pub timeouts: u32,
    /// It failed, so its fallback status stood in for its answers.
    pub fallbacks: u32,
    /// A kept connection was used instead of a new one.
    pub reused_connections: u32,
    /// A kept connection was dead on first use and a new one took over.
    pub reconnections: u32,
    /// Per stage ([`Stage::index`]): the time its answers to that stage's commands took,
    /// added up, and whether it answered any.
    answer_time: [Duration; Stage::ALL.len()],
    answered: u16,
}

impl ChildTally {
    /// It answered a command of `stage` after `took`.
    pub fn record_answer(&mut self, stage: Stage, took: Duration) {
        self.answer_time[stage.index()] += took;
        self.answered |= 1 << stage.index();
    }

    /// The stages it answered and how long its answers to each took altogether.
    pub fn answer_times(&self) -> impl Iterator<Item = (Stage, Duration)> + '_ {
        Stage::ALL
            .into_iter()
            .filter(|stage| self.answered & (1 << stage.index()) != 0)
            .map(|stage| (stage, self.answer_time[stage.index()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_times_add_up_per_stage() {
        let mut tally = ChildTally::default();
        tally.record_answer(Stage::Header, Duration::from_millis(2));
        tally.record_answer(Stage::Helo, Duration::ZERO);
        tally.record_answer(Stage::Header, Duration::from_millis(3));
        let times: Vec<_> = tally.answer_times().collect();
        assert_eq!(
            times,
            [(Stage::Helo, Duration::ZERO), (Stage::Header, Duration::from_millis(5))],
            "a zero time still counts as an answer"
        );
    }
}
