//! Calendar arithmetic on Unix seconds (UTC): enough to read log timestamps and to label
//! chart axes, without a date-time library.

pub use crate::calendar::{civil_from_days, days_from_civil};

/// The year of a Unix time.
pub fn year_of(seconds: i64) -> i64 {
    civil_from_days(seconds.div_euclid(86_400)).0
}

/// `YYYY-MM-DD HH:MM` (UTC), for tables.
pub fn format_minute(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let rest = seconds.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest / 60 % 60)
}

/// An axis label: the time of day for a day's chart, the date otherwise.
pub fn format_axis(seconds: i64, with_time: bool) -> String {
    let (_, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let rest = seconds.rem_euclid(86_400);
    if with_time {
        format!("{:02}:{:02}", rest / 3600, rest / 60 % 60)
    } else {
        format!("{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_utc() {
        assert_eq!(format_minute(1_764_729_000), "2025-12-03 02:30");
        assert_eq!(format_axis(1_764_729_000, true), "02:30");
        assert_eq!(format_axis(1_764_729_000, false), "12-03");
        assert_eq!(year_of(1_764_729_000), 2025);
    }
}
