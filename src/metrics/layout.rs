//! Where each count lives in the counters the workers share (memory mapped before the
//! fork, so a worker that is killed or replaced leaves its counts behind, and only a new
//! supervisor starts from 0). A milter's rows are found by its counter slot
//! (`control_protocol::CounterSlots`: one per name, kept across reloads).
//!
//! Regions, in order: sessions done; per slot its final statuses; the sessions by the stage
//! they ended at and their final status; reloads and launcher starts; per slot its connect
//! failures, timeouts and fallbacks; per slot and stage a histogram of its answer times.

use std::time::Duration;

use crate::engine::{ChildTally, Stage};

/// A final status as the statistics log lines name it: a session's, or a child milter's.
pub const FINAL_STATUSES: [&str; 6] =
    ["pass", "accept", "skip", "temporary-failure", "reject", "discard"];

/// A child milter's events counted besides its final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEvent {
    ConnectFailure,
    Timeout,
    Fallback,
    /// A kept connection served a session.
    ReusedConnection,
    /// A kept connection was dead on first use and a new one took over.
    Reconnection,
}

impl ChildEvent {
    pub const ALL: [Self; 5] = [
        Self::ConnectFailure,
        Self::Timeout,
        Self::Fallback,
        Self::ReusedConnection,
        Self::Reconnection,
    ];
}

/// Upper bounds of the answer-time histogram's buckets, in microseconds (the last bucket,
/// `+Inf`, has none).
pub const ANSWER_BUCKETS_MICROS: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Per histogram: the buckets (each counted on its own, not cumulative), `+Inf`, the sum
/// in microseconds and the count.
const HISTOGRAM_LEN: usize = ANSWER_BUCKETS_MICROS.len() + 3;
const STAGES: usize = Stage::ALL.len();

/// The layout of the shared counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters;

impl Counters {
    /// Child milters counted; later ones are not (a configuration with more is unusual).
    pub const MAX_CHILDREN: usize = 256;
    pub const SESSIONS_DONE: usize = 0;
    const CHILD_STATUSES: usize = 1;
    const SESSION_ENDS: usize = Self::CHILD_STATUSES + Self::MAX_CHILDREN * FINAL_STATUSES.len();
    pub const RELOADS_OK: usize = Self::SESSION_ENDS + STAGES * FINAL_STATUSES.len();
    pub const RELOADS_FAILED: usize = Self::RELOADS_OK + 1;
    pub const LAUNCHER_STARTS: usize = Self::RELOADS_FAILED + 1;
    const CHILD_EVENTS: usize = Self::LAUNCHER_STARTS + 1;
    const ANSWER_TIMES: usize = Self::CHILD_EVENTS + Self::MAX_CHILDREN * ChildEvent::ALL.len();
    /// How many counters the layout needs.
    pub const LEN: usize = Self::ANSWER_TIMES + Self::MAX_CHILDREN * STAGES * HISTOGRAM_LEN;

    /// The counter of the milter in counter slot `slot` ending with `status` (a name of
    /// [`FINAL_STATUSES`]).
    pub fn child_status(slot: usize, status: &str) -> Option<usize> {
        if slot >= Self::MAX_CHILDREN {
            return None;
        }
        let column = FINAL_STATUSES.iter().position(|s| *s == status)?;
        Some(Self::CHILD_STATUSES + slot * FINAL_STATUSES.len() + column)
    }

    /// The counter of the sessions that ended at `stage` with `status`.
    pub fn session_end(stage: Stage, status: &str) -> Option<usize> {
        let column = FINAL_STATUSES.iter().position(|s| *s == status)?;
        Some(Self::SESSION_ENDS + stage.index() * FINAL_STATUSES.len() + column)
    }

    /// The counter of `event` of the milter in counter slot `slot`.
    pub fn child_event(slot: usize, event: ChildEvent) -> Option<usize> {
        (slot < Self::MAX_CHILDREN)
            .then(|| Self::CHILD_EVENTS + slot * ChildEvent::ALL.len() + event as usize)
    }

    /// The first counter of the answer-time histogram of slot `slot` at `stage`.
    fn answer_times(slot: usize, stage: Stage) -> Option<usize> {
        (slot < Self::MAX_CHILDREN)
            .then(|| Self::ANSWER_TIMES + (slot * STAGES + stage.index()) * HISTOGRAM_LEN)
    }
}

/// What one child milter did in a session that ended.
#[derive(Debug, Clone, Copy)]
pub struct ChildOutcome<'a> {
    /// Its counter slot (`None`: not counted).
    pub slot: Option<usize>,
    /// Its final status, if the session used it.
    pub status: Option<&'static str>,
    pub tally: &'a ChildTally,
}

/// Counts a session that ended at `stage` with `status` and what its children did;
/// `add(index, amount)` adds to a shared counter. A few additions per child: cheap
/// enough for every session's end.
pub fn record_session<'a>(
    add: &mut dyn FnMut(usize, u64),
    (stage, status): (Stage, &str),
    children: impl IntoIterator<Item = ChildOutcome<'a>>,
) {
    add(Counters::SESSIONS_DONE, 1);
    if let Some(index) = Counters::session_end(stage, status) {
        add(index, 1);
    }
    for child in children {
        let Some(slot) = child.slot else { continue };
        if let Some(index) = child.status.and_then(|status| Counters::child_status(slot, status)) {
            add(index, 1);
        }
        let tally = child.tally;
        let events = [
            tally.connect_failures,
            tally.timeouts,
            tally.fallbacks,
            tally.reused_connections,
            tally.reconnections,
        ];
        for (event, count) in ChildEvent::ALL.into_iter().zip(events) {
            if let (Some(index), true) = (Counters::child_event(slot, event), count > 0) {
                add(index, u64::from(count));
            }
        }
        for (stage, took) in tally.answer_times() {
            if let Some(first) = Counters::answer_times(slot, stage) {
                observe(add, first, took);
            }
        }
    }
}

fn observe(add: &mut dyn FnMut(usize, u64), first: usize, took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let bucket = ANSWER_BUCKETS_MICROS
        .iter()
        .position(|bound| micros <= *bound)
        .unwrap_or(ANSWER_BUCKETS_MICROS.len());
    add(first + bucket, 1);
    add(first + HISTOGRAM_LEN - 2, micros);
    add(first + HISTOGRAM_LEN - 1, 1);
}

/// An answer-time histogram as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTimes {
    /// Cumulative counts per bucket of [`ANSWER_BUCKETS_MICROS`] (`le` each bound).
    pub cumulative: [u64; ANSWER_BUCKETS_MICROS.len()],
    pub sum_micros: u64,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
}

/// The answer-time histogram of slot `slot` at `stage`; `get` reads a counter.
pub fn answer_times(get: &dyn Fn(usize) -> u64, slot: usize, stage: Stage) -> Option<AnswerTimes> {
    let first = Counters::answer_times(slot, stage)?;
    let mut cumulative = [0; ANSWER_BUCKETS_MICROS.len()];
    let mut running = 0;
    for (bucket, total) in cumulative.iter_mut().enumerate() {
        running += get(first + bucket);
        *total = running;
    }
    Some(AnswerTimes {
        cumulative,
        sum_micros: get(first + HISTOGRAM_LEN - 2),
        count: get(first + HISTOGRAM_LEN - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_counter_has_its_own_index() {
        let mut seen = std::collections::HashSet::new();
        let mut take = |index: Option<usize>| {
            let index = index.unwrap();
            assert!(index < Counters::LEN);
            assert!(seen.insert(index), "{index} used twice");
        };
        take(Some(Counters::SESSIONS_DONE));
        for slot in 0..Counters::MAX_CHILDREN {
            for status in FINAL_STATUSES {
                take(Counters::child_status(slot, status));
            }
            for event in ChildEvent::ALL {
                take(Counters::child_event(slot, event));
            }
            for stage in Stage::ALL {
                let first = Counters::answer_times(slot, stage).unwrap();
                for i in 0..HISTOGRAM_LEN {
                    take(Some(first + i));
                }
            }
        }
        for stage in Stage::ALL {
            for status in FINAL_STATUSES {
                take(Counters::session_end(stage, status));
            }
        }
        for index in [Counters::RELOADS_OK, Counters::RELOADS_FAILED, Counters::LAUNCHER_STARTS] {
            take(Some(index));
        }
        assert_eq!(seen.len(), Counters::LEN, "no index left unused");
        assert_eq!(Counters::child_status(Counters::MAX_CHILDREN, "pass"), None);
        assert_eq!(Counters::child_status(0, "continue"), None);
        assert_eq!(Counters::child_event(Counters::MAX_CHILDREN, ChildEvent::Timeout), None);
    }

    #[test]
    fn a_session_is_counted_with_its_children_and_read_back() {
        let mut counters: HashMap<usize, u64> = HashMap::new();
        let mut add = |index, amount| *counters.entry(index).or_default() += amount;
        let mut failed = ChildTally::default();
        failed.connect_failures = 1;
        failed.fallbacks = 1;
        let mut quick = ChildTally::default();
        quick.record_answer(Stage::Connect, Duration::from_micros(1_000));
        quick.record_answer(Stage::Helo, Duration::from_millis(3));
        quick.record_answer(Stage::EndOfMessage, Duration::from_secs(61));
        let children = [
            ChildOutcome { slot: Some(0), status: Some("accept"), tally: &quick },
            ChildOutcome { slot: Some(2), status: Some("temporary-failure"), tally: &failed },
            ChildOutcome { slot: None, status: Some("reject"), tally: &failed },
        ];
        record_session(&mut add, (Stage::EndOfMessage, "accept"), children);
        record_session(&mut add, (Stage::EndOfMessage, "accept"), []);
        let get = |index| counters.get(&index).copied().unwrap_or(0);
        assert_eq!(get(Counters::SESSIONS_DONE), 2);
        assert_eq!(get(Counters::session_end(Stage::EndOfMessage, "accept").unwrap()), 2);
        assert_eq!(get(Counters::child_status(0, "accept").unwrap()), 1);
        assert_eq!(get(Counters::child_status(2, "temporary-failure").unwrap()), 1);
        let event = |slot, event| get(Counters::child_event(slot, event).unwrap());
        assert_eq!(event(2, ChildEvent::ConnectFailure), 1);
        assert_eq!(event(2, ChildEvent::Fallback), 1);
        assert_eq!(event(2, ChildEvent::Timeout), 0);
        assert_eq!(event(0, ChildEvent::Fallback), 0);

        let connect = answer_times(&get, 0, Stage::Connect).unwrap();
        assert_eq!(connect.cumulative[0], 1, "1 ms is in the 1 ms bucket (le)");
        assert_eq!((connect.count, connect.sum_micros), (1, 1_000));
        let helo = answer_times(&get, 0, Stage::Helo).unwrap();
        assert_eq!(helo.cumulative[..3], [0, 0, 1]);
        assert_eq!(*helo.cumulative.last().unwrap(), 1);
        let end = answer_times(&get, 0, Stage::EndOfMessage).unwrap();
        assert_eq!((*end.cumulative.last().unwrap(), end.count), (0, 1), "only in +Inf");
        assert_eq!(answer_times(&get, 1, Stage::Connect).unwrap().count, 0);
    }
}
