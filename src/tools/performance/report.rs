//! The report of a run, as text for people or as one JSON object for scripts. Both say
//! the same: sessions, elapsed time, throughput, latency percentiles, counts per final
//! status (with the stages) and per kind of error (with the first message).

use std::fmt::Write;
use std::time::Duration;

use super::statistics::Summary;
use crate::text::quote;

/// What was run, for the report's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// `milter` or `smtp`.
    pub mode: &'static str,
    /// The milter's connection spec or the SMTP server's `host:port`.
    pub target: String,
    pub concurrency: usize,
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
    out
}

/// The report as one JSON object on one line.
pub fn json_report(summary: &Summary, info: &RunInfo) -> String {
    let mut out = String::from("{");
    let _ = write!(
        out,
        "\"mode\":{},\"target\":{},\"concurrency\":{},\"sessions\":{},\"completed\":{},\
         \"elapsed_seconds\":{:.6},\"throughput\":{:.3},\"latency_ms\":",
        quote(info.mode),
        quote(&info.target),
        info.concurrency,
        summary.sessions,
        summary.completed(),
        summary.elapsed.as_secs_f64(),
        summary.throughput(),
    );
    match latency_figures(summary) {
        Some(figures) => {
            let fields: Vec<String> =
                figures.iter().map(|(name, ms)| format!("\"{name}\":{ms:.3}")).collect();
            let _ = write!(out, "{{{}}}", fields.join(","));
        }
        None => out.push_str("null"),
    }
    let statuses: Vec<String> = summary
        .statuses
        .iter()
        .map(|(status, count)| {
            let stages: Vec<String> =
                count.stages.iter().map(|(stage, n)| format!("{}:{n}", quote(stage))).collect();
            format!(
                "{}:{{\"count\":{},\"stages\":{{{}}}}}",
                quote(status.name()),
                count.count,
                stages.join(",")
            )
        })
        .collect();
    let errors: Vec<String> = summary
        .errors
        .iter()
        .map(|(kind, error)| {
            format!(
                "{}:{{\"count\":{},\"first\":{}}}",
                quote(kind.name()),
                error.count,
                quote(&error.first)
            )
        })
        .collect();
    let _ = write!(
        out,
        ",\"statuses\":{{{}}},\"errors\":{{\"count\":{},\"kinds\":{{{}}}}}}}",
        statuses.join(","),
        summary.error_count(),
        errors.join(",")
    );
    out
}

/// `text` as a JSON string literal.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use crate::tools::performance::{ErrorKind, Failure, Outcome, SessionRecord};

    fn summary() -> Summary {
        let record =
            |index, ms, result| SessionRecord { index, latency: Duration::from_millis(ms), result };
        Summary::new(
            vec![
                record(
                    0,
                    2,
                    Ok(Outcome { status: Status::Accept.into(), stage: "end-of-message" }),
                ),
                record(
                    1,
                    4,
                    Ok(Outcome { status: Status::Reject.into(), stage: "envelope-recipient" }),
                ),
                record(2, 9, Err(Failure::new(ErrorKind::Timeout, "no \"answer\"\tin time"))),
            ],
            Duration::from_millis(500),
        )
    }

    fn info() -> RunInfo {
        RunInfo { mode: "milter", target: "inet:10025@[127.0.0.1]".into(), concurrency: 2 }
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
    fn nothing_completed() {
        let summary = Summary::new(Vec::new(), Duration::ZERO);
        let text = text_report(&summary, &info());
        assert!(text.contains("latency: none (no session completed)\nstatuses: none\nerrors: 0\n"));
        assert!(json_report(&summary, &info()).contains("\"latency_ms\":null"));
        assert_eq!(quote("a\u{1}b"), "\"a\\u0001b\"");
    }
}
