//! Counting and timing many sessions: how many ended with which status (and at which
//! stage), which errors happened, and latency percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use super::outcome::{ErrorKind, SessionRecord};
use crate::tools::Ending;

/// The latencies of the completed sessions, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    pub fn new(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self { sorted: latencies }
    }

    /// The nearest-rank percentile: the smallest latency that at least `percent` % of
    /// the sessions did not exceed. `None` without sessions.
    pub fn percentile(&self, percent: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // A float in 0..=n (percent is 0..=100), rounded up: it fits, and clamp keeps it in range.
        let rank = ((percent / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }

    pub fn min(&self) -> Option<Duration> {
        self.sorted.first().copied()
    }

    /// The arithmetic mean; `None` without sessions.
    pub fn mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.sorted.len()).ok().filter(|&n| n > 0)?;
        Some(self.sorted.iter().sum::<Duration>() / n)
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// How many sessions ended with one status, and at which stages (in the order first
/// seen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCount {
    pub count: usize,
    pub stages: Vec<(&'static str, usize)>,
}

/// How many sessions failed with one kind of error, and the first one's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    pub count: usize,
    pub first: String,
}

/// One distinct failure response: what the server answered (or the error's message)
/// and how many sessions got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureResponse {
    /// The final status (`reject`, `temporary-failure`...) or the error kind (`timeout`...).
    pub outcome: &'static str,
    /// The stage, empty for an error.
    pub stage: &'static str,
    pub response: String,
    pub count: usize,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub sessions: usize,
    pub elapsed: Duration,
    pub statuses: BTreeMap<Ending, StatusCount>,
    pub errors: BTreeMap<ErrorKind, ErrorCount>,
    /// Of the sessions that completed (whatever their status), not of the failed ones.
    pub latencies: Latencies,
    /// Refusals with the server's response and errors' messages, each distinct one once,
    /// in the order first met by session number (`--report-failure-responses`).
    pub failure_responses: Vec<FailureResponse>,
}

impl Summary {
    /// Sums up `records` (in any order: "first" means the lowest session number).
    pub fn new(mut records: Vec<SessionRecord>, elapsed: Duration) -> Self {
        records.sort_by_key(|r| r.index);
        let mut statuses: BTreeMap<Ending, StatusCount> = BTreeMap::new();
        let mut errors: BTreeMap<ErrorKind, ErrorCount> = BTreeMap::new();
        let mut latencies = Vec::with_capacity(records.len());
        let mut failure_responses: Vec<FailureResponse> = Vec::new();
        let mut count_response = |outcome: &'static str, stage: &'static str, response: &str| {
            let same = |f: &&mut FailureResponse| {
                f.outcome == outcome && f.stage == stage && f.response == response
            };
            match failure_responses.iter_mut().find(same) {
                Some(known) => known.count += 1,
                None => failure_responses.push(FailureResponse {
                    outcome,
                    stage,
                    response: response.to_string(),
                    count: 1,
                }),
            }
        };
        for record in &records {
            match &record.result {
                Ok(outcome) => {
                    if let Some(response) = &outcome.response {
                        count_response(outcome.status.name(), outcome.stage, response);
                    }
                    latencies.push(record.latency);
                    let count = statuses.entry(outcome.status).or_default();
                    count.count += 1;
                    match count.stages.iter_mut().find(|(stage, _)| *stage == outcome.stage) {
                        Some((_, n)) => *n += 1,
                        None => count.stages.push((outcome.stage, 1)),
                    }
                }
                Err(failure) => {
                    count_response(failure.kind.name(), "", &failure.message);
                    errors
                        .entry(failure.kind)
                        .or_insert_with(|| ErrorCount { count: 0, first: failure.message.clone() })
                        .count += 1;
                }
            }
        }
        Self {
            sessions: records.len(),
            elapsed,
            statuses,
            errors,
            latencies: Latencies::new(latencies),
            failure_responses,
        }
    }

    /// Sessions that reached a final status.
    pub fn completed(&self) -> usize {
        self.latencies.len()
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().map(|e| e.count).sum()
    }

    /// Completed sessions per second of the whole run.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.completed() as f64 / seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use crate::tools::performance::{Failure, Outcome};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let latencies = Latencies::new((1..=100).rev().map(ms).collect());
        assert_eq!(latencies.percentile(50.0), Some(ms(50)));
        assert_eq!(latencies.percentile(90.0), Some(ms(90)));
        assert_eq!(latencies.percentile(99.0), Some(ms(99)));
        assert_eq!(latencies.max(), Some(ms(100)));
        let one = Latencies::new(vec![ms(7)]);
        assert_eq!(one.percentile(50.0), Some(ms(7)));
        assert_eq!(one.percentile(0.0), Some(ms(7)));
        let three = Latencies::new(vec![ms(3), ms(1), ms(2)]);
        assert_eq!(three.percentile(50.0), Some(ms(2)));
        assert_eq!(three.percentile(99.0), Some(ms(3)));
        assert_eq!(Latencies::default().percentile(50.0), None);
        assert_eq!(Latencies::default().max(), None);
    }

    #[test]
    fn counts_add_up_and_the_first_error_is_kept() {
        let ok = |index, status: Status, stage| SessionRecord {
            index,
            latency: ms(index as u64 + 1),
            result: Ok(Outcome::new(status.into(), stage)),
        };
        let failed = |index, message: &str| SessionRecord {
            index,
            latency: ms(1000),
            result: Err(Failure::new(ErrorKind::Connect, message)),
        };
        // Out of order, as threads hand them in.
        let records = vec![
            failed(4, "second refusal"),
            ok(0, Status::Accept, "end-of-message"),
            ok(3, Status::Reject, "end-of-message"),
            failed(1, "first refusal"),
            ok(2, Status::Reject, "envelope-recipient"),
            ok(5, Status::Reject, "envelope-recipient"),
        ];
        let summary = Summary::new(records, Duration::from_secs(2));
        assert_eq!(summary.sessions, 6);
        assert_eq!(summary.completed(), 4);
        assert_eq!(summary.error_count(), 2);
        assert_eq!(summary.throughput(), 2.0);
        assert_eq!(summary.statuses[&Status::Accept.into()].count, 1);
        let reject = &summary.statuses[&Status::Reject.into()];
        assert_eq!(reject.count, 3);
        assert_eq!(reject.stages, vec![("envelope-recipient", 2), ("end-of-message", 1)]);
        let connect = &summary.errors[&ErrorKind::Connect];
        assert_eq!((connect.count, connect.first.as_str()), (2, "first refusal"));
        // Failed sessions do not count in the latencies.
        assert_eq!(summary.latencies.max(), Some(ms(6)));
    }
}
