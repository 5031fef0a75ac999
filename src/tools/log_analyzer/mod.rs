//! The sans-IO core of `milter-manager-log-analyzer`: statistics log lines in (ours and
//! the original milter-manager's), aggregated time series in a bounded store, and a static
//! site of SVG charts out. The binary reads the files, keeps the state and writes the site.

pub mod aggregate;
pub mod charts;
pub mod clock;
pub mod layout;
pub mod parse;
pub mod site;
pub mod state;
pub mod store;

pub use parse::{FixedOffset, LocalZone};
use parse::{Line, Parser};
use store::{Store, Watermark};

/// How far ahead of the clock a line may be dated (clocks of hosts logging to one file
/// differ a little); a line dated later is skipped.
pub const FUTURE_TOLERANCE: i64 = 3600;

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    Counted,
    /// Not a statistics line, or one the charts do not use.
    Ignored,
    /// A statistics line that cannot be read.
    Garbage,
    /// Dated after now (plus [`FUTURE_TOLERANCE`]).
    Future,
    /// Covered by the store's watermark: counted by an earlier run.
    AlreadyCounted,
}

/// Feeds lines into a store.
pub struct Analyzer {
    parser: Parser,
    now: i64,
    pub store: Store,
    /// When read positions cannot be trusted (standard input, a lost state file): records
    /// up to this one were counted before.
    skip_through: Option<Watermark>,
    skipped_at_watermark: u64,
}

impl Analyzer {
    /// `now` and `zone` (the local time of classic syslog timestamps) date the lines; see
    /// [`Parser`].
    pub fn new(store: Store, now: i64, zone: Box<dyn LocalZone>) -> Self {
        Self {
            parser: Parser::new(now, zone),
            now,
            store,
            skip_through: None,
            skipped_at_watermark: 0,
        }
    }

    /// Skips from now on the records the store's watermark covers.
    pub fn skip_counted(&mut self) {
        self.skip_through = Some(self.store.watermark);
        self.skipped_at_watermark = 0;
    }

    /// Counts on from where this reader is: read positions are trusted again.
    pub fn trust_positions(&mut self) {
        self.skip_through = None;
    }

    pub fn feed(&mut self, line: &[u8]) -> Fed {
        let (time, record) = match self.parser.parse(line) {
            Line::NotOurs => return Fed::Ignored,
            Line::Garbage => return Fed::Garbage,
            Line::Record { time, record } => (time, record),
        };
        if time > self.now + FUTURE_TOLERANCE {
            return Fed::Future;
        }
        if let Some(watermark) = self.skip_through {
            if time < watermark.time {
                return Fed::AlreadyCounted;
            }
            if time == watermark.time && self.skipped_at_watermark < watermark.count {
                if counts(&record) {
                    self.skipped_at_watermark += 1;
                }
                return Fed::AlreadyCounted;
            }
        }
        if !counts(&record) {
            return Fed::Ignored;
        }
        aggregate::count(&mut self.store, time, &record);
        Fed::Counted
    }
}

/// Whether a record moves the counters (and so the watermark).
fn counts(record: &parse::Record<'_>) -> bool {
    !matches!(record, parse::Record::Other | parse::Record::SessionHeader { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_256_000;

    fn lines() -> Vec<String> {
        let mut lines = Vec::new();
        for (second, status) in [(1, "pass"), (2, "reject"), (2, "accept"), (3, "pass")] {
            lines.push(format!(
                "[2026-12-02T23:00:0{second}Z]: [statistics] [session][end][data][{status}][0.1]({second})"
            ));
            lines.push("[2026-12-02T23:00:00Z]: [info] something else".to_string());
        }
        lines
    }

    fn total(store: &Store) -> u32 {
        let ring = store.sessions.ring(3600).unwrap();
        ring.row(NOW - 3600).unwrap()[..layout::STATUSES.len()].iter().sum()
    }

    #[test]
    fn a_second_pass_over_the_same_lines_counts_nothing_when_skipping() {
        let mut analyzer = Analyzer::new(Store::default(), NOW, Box::new(FixedOffset(0)));
        let fed: Vec<Fed> = lines().iter().map(|line| analyzer.feed(line.as_bytes())).collect();
        assert_eq!(fed.iter().filter(|&&fed| fed == Fed::Counted).count(), 4);
        assert_eq!(analyzer.store.watermark, Watermark { time: NOW - 3600 + 3, count: 1 });
        analyzer.skip_counted();
        for line in lines() {
            assert_ne!(analyzer.feed(line.as_bytes()), Fed::Counted, "{line}");
        }
        assert_eq!(total(&analyzer.store), 4);
    }

    #[test]
    fn skipping_stops_at_the_right_record_of_a_second() {
        let mut analyzer = Analyzer::new(Store::default(), NOW, Box::new(FixedOffset(0)));
        // Counted before: up to the first record of second 2.
        for line in &lines()[..3] {
            analyzer.feed(line.as_bytes());
        }
        analyzer.skip_counted();
        let fed: Vec<Fed> = lines().iter().map(|line| analyzer.feed(line.as_bytes())).collect();
        assert_eq!(fed[4], Fed::Counted, "the second record of second 2");
        assert_eq!(fed[6], Fed::Counted);
        assert_eq!(total(&analyzer.store), 4);
    }

    #[test]
    fn lines_from_the_future_are_not_counted() {
        let mut analyzer = Analyzer::new(Store::default(), NOW, Box::new(FixedOffset(0)));
        let line = b"[2099-01-01T00:00:00Z]: [statistics] [session][end][data][pass][0.1](1)";
        assert_eq!(analyzer.feed(line), Fed::Future);
        assert_eq!(analyzer.store, Store::default());
        assert_eq!(
            analyzer.feed(b"[2026-12-02T10:00:00Z]: [statistics] [session][end"),
            Fed::Garbage
        );
    }
}
