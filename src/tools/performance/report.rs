//! The report of a run, as text for people or as one JSON object for scripts. Both say
//! the same: sessions, elapsed time, throughput, latency percentiles, counts per final
//! status (with the stages) and per kind of error (with the first message).

use std::fmt::Write;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::statistics::{FailureResponse, Summary};
use crate::status::Status;

/// What was run, for the report's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// `milter` or `smtp`.
    pub mode: &'static str,
    /// The milter's connection spec or the SMTP server's `host:port`.
    pub target: String,
    pub concurrency: usize,
    /// `--report-failure-responses`: list what the server answered when it refused.
    pub failure_responses: bool,
}

const PERCENTILES: [(&str, f64); 3] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)];

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The latency figures: p50, p90, p99 and max, or `None` without completed sessions.
fn latency_figures(summary: &Summary) -> Option<Vec<(&'static str, f64)>> {
    let latencies = &summary.latencies;
    let max = latencies.max()?;
    let mut figures: Vec<(&'static str, f64)> = PERCENTILES
        .iter()
        .map(|&(name, percent)| (name, milliseconds(latencies.percentile(percent).unwrap_or(max))))
        .collect();
    figures.push(("max", milliseconds(max)));
    Some(figures)
}

/// The report for people.
pub fn text_report(summary: &Summary, info: &RunInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target: {} {}", info.mode, info.target);
    let _ = writeln!(
        out,
        "sessions: {} (completed: {}, errors: {}, concurrency: {})",
        summary.sessions,
        summary.completed(),
        summary.error_count(),
        info.concurrency
    );
    let _ = writeln!(out, "elapsed: {:.3} s", summary.elapsed.as_secs_f64());
    let _ = writeln!(out, "throughput: {:.1} sessions/s", summary.throughput());
    match latency_figures(summary) {
        Some(figures) => {
            let shown: Vec<String> =
                figures.iter().map(|(name, ms)| format!("{name} {ms:.3} ms")).collect();
            let _ = writeln!(out, "latency: {}", shown.join(", "));
        }
        None => out.push_str("latency: none (no session completed)\n"),
    }
    if summary.statuses.is_empty() {
        out.push_str("statuses: none\n");
    } else {
        out.push_str("statuses:\n");
    }
    for (status, count) in &summary.statuses {
        let stages: Vec<String> =
            count.stages.iter().map(|(stage, n)| format!("{stage}: {n}")).collect();
        let _ = writeln!(out, "  {}: {} ({})", status.name(), count.count, stages.join(", "));
    }
    let _ = writeln!(out, "errors: {}", summary.error_count());
    for (kind, error) in &summary.errors {
        let _ = writeln!(out, "  {}: {} (first: {})", kind.name(), error.count, error.first);
    }
    if info.failure_responses {
        let _ = writeln!(out, "failure responses: {}", summary.failure_responses.len());
        for failure in &summary.failure_responses {
            let at = if failure.stage.is_empty() {
                String::new()
            } else {
                format!(" at {}", failure.stage)
            };
            let _ =
                writeln!(out, "  {}{at}: {}: {}", failure.outcome, failure.count, failure.response);
        }
    }
    out
}

/// The columns of `--report-periodically`.
pub fn periodic_header() -> String {
    format!(
        "{:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
        "elapsed",
        "sessions",
        "per-sec",
        "min-ms",
        "avg-ms",
        "max-ms",
        "tempfail",
        "reject",
        "errors"
    )
}

/// One `--report-periodically` line: the sessions that ended in the interval `window`
/// sums up, `at` seconds into the run. Latencies are `-` when none completed.
pub fn periodic_line(at: Duration, window: &Summary) -> String {
    let latency = |value: Option<Duration>| {
        value.map_or_else(|| "-".to_string(), |d| format!("{:.3}", milliseconds(d)))
    };
    let count = |status: Status| window.statuses.get(&status.into()).map_or(0, |c| c.count);
    let seconds = window.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { window.sessions as f64 / seconds } else { 0.0 };
    format!(
        "{:>9} {:>8} {:>8.1} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
        format!("{:.1}s", at.as_secs_f64()),
        window.sessions,
        rate,
        latency(window.latencies.min()),
        latency(window.latencies.mean()),
        latency(window.latencies.max()),
        count(Status::TemporaryFailure),
        count(Status::Reject),
        window.error_count()
    )
}

/// The report as one JSON object on one line.
pub fn json_report(summary: &Summary, info: &RunInfo) -> String {
    let decimals = |value, places| Decimal { value, places };
    let report = JsonReport {
        mode: info.mode,
        target: &info.target,
        concurrency: info.concurrency,
        sessions: summary.sessions,
        completed: summary.completed(),
        elapsed_seconds: decimals(summary.elapsed.as_secs_f64(), 6),
        throughput: decimals(summary.throughput(), 3),
        latency_ms: latency_figures(summary).map(|figures| {
            Ordered(figures.into_iter().map(|(name, ms)| (name, decimals(ms, 3))).collect())
        }),
        statuses: Ordered(
            summary
                .statuses
                .iter()
                .map(|(status, count)| {
                    let stages = Ordered(count.stages.clone());
                    (status.name(), JsonStatus { count: count.count, stages })
                })
                .collect(),
        ),
        failure_responses: info
            .failure_responses
            .then(|| summary.failure_responses.iter().map(JsonFailureResponse::from).collect()),
        errors: JsonErrors {
            count: summary.error_count(),
            kinds: Ordered(
                summary
                    .errors
                    .iter()
                    .map(|(kind, error)| {
                        (kind.name(), JsonError { count: error.count, first: &error.first })
                    })
                    .collect(),
            ),
        },
    };
    serde_json::to_string(&report).expect("the report has string keys and finite numbers")
}

/// The JSON report, its fields in the order printed.
#[derive(Serialize)]
struct JsonReport<'a> {
    mode: &'a str,
    target: &'a str,
    concurrency: usize,
    sessions: usize,
    completed: usize,
    elapsed_seconds: Decimal,
    throughput: Decimal,
    /// `null` when no session completed.
    latency_ms: Option<Ordered<Decimal>>,
    statuses: Ordered<JsonStatus>,
    errors: JsonErrors<'a>,
    /// Only with `--report-failure-responses`.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_responses: Option<Vec<JsonFailureResponse<'a>>>,
}

#[derive(Serialize)]
struct JsonFailureResponse<'a> {
    outcome: &'a str,
    /// Empty for an error.
    stage: &'a str,
    response: &'a str,
    count: usize,
}

impl<'a> From<&'a FailureResponse> for JsonFailureResponse<'a> {
    fn from(failure: &'a FailureResponse) -> Self {
        Self {
            outcome: failure.outcome,
            stage: failure.stage,
            response: &failure.response,
            count: failure.count,
        }
    }
}

#[derive(Serialize)]
struct JsonStatus {
    count: usize,
    stages: Ordered<usize>,
}

#[derive(Serialize)]
struct JsonErrors<'a> {
    count: usize,
    kinds: Ordered<JsonError<'a>>,
}

#[derive(Serialize)]
struct JsonError<'a> {
    count: usize,
    first: &'a str,
}

/// A JSON object whose keys keep the order given.
struct Ordered<T>(Vec<(&'static str, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

/// A number with a fixed count of decimals (`0.500000`), as scripts reading the report
/// have always seen it; serde_json alone would print the shortest form (`0.5`).
struct Decimal {
    value: f64,
    places: usize,
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = format!("{:.*}", self.places, self.value);
        RawValue::from_string(text).map_err(serde::ser::Error::custom)?.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::performance::{ErrorKind, Failure, Outcome, SessionRecord};

    fn summary() -> Summary {
        Summary::new(summary_records(), Duration::from_millis(500))
    }

    fn summary_records() -> Vec<SessionRecord> {
        let record =
            |index, ms, result| SessionRecord { index, latency: Duration::from_millis(ms), result };
        vec![
            record(0, 2, Ok(Outcome::new(Status::Accept.into(), "end-of-message"))),
            record(1, 4, Ok(Outcome::new(Status::Reject.into(), "envelope-recipient"))),
            record(2, 9, Err(Failure::new(ErrorKind::Timeout, "no \"answer\"\tin time"))),
        ]
    }

    fn info() -> RunInfo {
        RunInfo {
            mode: "milter",
            target: "inet:10025@[127.0.0.1]".into(),
            concurrency: 2,
            failure_responses: false,
        }
    }

    #[test]
    fn text_shows_counts_latency_and_errors() {
        assert_eq!(
            text_report(&summary(), &info()),
            "target: milter inet:10025@[127.0.0.1]\n\
             sessions: 3 (completed: 2, errors: 1, concurrency: 2)\n\
             elapsed: 0.500 s\n\
             throughput: 4.0 sessions/s\n\
             latency: p50 2.000 ms, p90 4.000 ms, p99 4.000 ms, max 4.000 ms\n\
             statuses:\n  \
             accept: 1 (end-of-message: 1)\n  \
             reject: 1 (envelope-recipient: 1)\n\
             errors: 1\n  \
             timeout: 1 (first: no \"answer\"\tin time)\n"
        );
    }

    #[test]
    fn json_says_the_same() {
        assert_eq!(
            json_report(&summary(), &info()),
            "{\"mode\":\"milter\",\"target\":\"inet:10025@[127.0.0.1]\",\"concurrency\":2,\
             \"sessions\":3,\"completed\":2,\"elapsed_seconds\":0.500000,\"throughput\":4.000,\
             \"latency_ms\":{\"p50\":2.000,\"p90\":4.000,\"p99\":4.000,\"max\":4.000},\
             \"statuses\":{\"accept\":{\"count\":1,\"stages\":{\"end-of-message\":1}},\
             \"reject\":{\"count\":1,\"stages\":{\"envelope-recipient\":1}}},\
             \"errors\":{\"count\":1,\"kinds\":{\"timeout\":{\"count\":1,\
             \"first\":\"no \\\"answer\\\"\\tin time\"}}}}"
        );
    }

    #[test]
    fn failure_responses_and_periodic_lines() {
        let refused = |index, response: &str| SessionRecord {
            index,
            latency: Duration::from_millis(3),
            result: Ok(Outcome {
                status: Status::Reject.into(),
                stage: "envelope-recipient",
                response: Some(response.into()),
            }),
        };
        let mut records = summary_records();
        records.push(refused(3, "550 no"));
        records.push(refused(4, "550 never"));
        records.push(refused(5, "550 no"));
        let summary = Summary::new(records, Duration::from_secs(2));
        let info = RunInfo { failure_responses: true, ..info() };
        assert!(
            text_report(&summary, &info).ends_with(
                "failure responses: 3\n  \
                 timeout: 1: no \"answer\"\tin time\n  \
                 reject at envelope-recipient: 2: 550 no\n  \
                 reject at envelope-recipient: 1: 550 never\n"
            ),
            "{}",
            text_report(&summary, &info)
        );
        assert!(!text_report(&summary, &RunInfo { failure_responses: false, ..info })
            .contains("failure responses"));
        assert_eq!(
            periodic_line(Duration::from_millis(1500), &summary)
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["1.5s", "6", "3.0", "2.000", "3.000", "4.000", "0", "4", "1"]
        );
        let empty = Summary::new(Vec::new(), Duration::from_secs(1));
        assert_eq!(
            periodic_line(Duration::from_secs(1), &empty).split_whitespace().collect::<Vec<_>>(),
            ["1.0s", "0", "0.0", "-", "-", "-", "0", "0", "0"]
        );
        assert_eq!(periodic_header().split_whitespace().count(), 9);
    }

    #[test]
    fn nothing_completed() {
        let summary = Summary::new(Vec::new(), Duration::ZERO);
        let text = text_report(&summary, &info());
        assert!(text.contains("latency: none (no session completed)\nstatuses: none\nerrors: 0\n"));
        assert!(json_report(&summary, &info()).contains("\"latency_ms\":null"));
        let control = Summary::new(
            vec![SessionRecord {
                index: 0,
                latency: Duration::ZERO,
                result: Err(Failure::new(ErrorKind::Timeout, "a\u{1}b")),
            }],
            Duration::ZERO,
        );
        assert!(json_report(&control, &info()).contains("\"first\":\"a\\u0001b\""));
    }
}
