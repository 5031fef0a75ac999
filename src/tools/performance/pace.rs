//! How sessions are paced (`--period`, `--interval`, `--flood`), durations as the
//! original tool writes them (`5`, `0.5s`, `10m`, `1.5h`), and the per-session line of
//! `--report-statistics-data`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When sessions start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the concurrent connections allow (the default).
    Parallel,
    /// One new session every interval, each on its own connection, however many are
    /// still running (`--interval`, and `--period` divided by the number of mails).
    Interval(Duration),
    /// Every connection sends mails back to back until the time is up, or until
    /// interrupted when there is no end (`--flood[=PERIOD]`).
    Flood(Option<Duration>),
}

impl Pace {
    /// `--period` spreads `n_mails` evenly over `period`.
    pub fn over_period(period: Duration, n_mails: u32) -> Self {
        Self::Interval(period / n_mails.max(1))
    }
}

/// A duration that is not `NUMBER[s|sec|second(s)|m|min|minute(s)|h|hour(s)]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration: write a number of seconds, or a number with s, m or h")]
pub struct NotADuration(pub String);

/// `5` and `5s` are seconds, `10m` minutes, `0.5h` hours (the unit's full and short
/// English names are taken too). Zero is allowed: `--interval=0` starts all at once.
pub fn parse_period(text: &str) -> Result<Duration, NotADuration> {
    let bad = || NotADuration(text.to_string());
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

/// The first line of the `--report-statistics-data` file; the column names are the
/// original tool's, so that its users' scripts read ours.
pub const STATISTICS_DATA_HEADER: &str = "wall clock time,response time,message size";

/// One session's line: when it ended (UTC, microseconds), how long it took in
/// seconds, and the bytes of its message.
pub fn statistics_data_line(ended: SystemTime, response_time: Duration, size: usize) -> String {
    format!("{},{:.6},{size}", utc_timestamp(ended), response_time.as_secs_f64())
}

/// `2026-12-03T03:25:10.123456Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let (year, month, day) = crate::calendar::civil_from_days(days);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_take_the_original_units() {
        let seconds = Duration::from_secs_f64;
        for (text, expected) in [
            ("5", seconds(5.0)),
            ("0.5s", seconds(0.5)),
            ("50sec", seconds(50.0)),
            ("2seconds", seconds(2.0)),
            ("10m", seconds(600.0)),
            ("1minute", seconds(60.0)),
            ("0.5h", seconds(1800.0)),
            ("2Hours", seconds(7200.0)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_period(text), Ok(expected), "{text}");
        }
        for bad in ["", "s", "-1", "5d", "1.2.3", "5 s", "1e400"] {
            assert_eq!(parse_period(bad), Err(NotADuration(bad.to_string())), "{bad}");
        }
        assert_eq!(Pace::over_period(seconds(5.0), 100), Pace::Interval(Duration::from_millis(50)));
    }

    #[test]
    fn statistics_lines_are_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| UNIX_EPOCH + Duration::new(secs, micros * 1000);
        assert_eq!(utc_timestamp(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(utc_timestamp(at(951_782_400, 7)), "2000-02-29T00:00:00.000007Z");
        assert_eq!(utc_timestamp(at(1_796_268_310, 123_456)), "2026-12-03T03:25:10.123456Z");
        assert_eq!(
            statistics_data_line(at(86_399, 999_999), Duration::from_micros(1_500_001), 42),
            "1970-01-01T23:59:59.999999Z,1.500001,42"
        );
    }
}
