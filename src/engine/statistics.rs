//! Statistics log lines, in the original's format so its log analyzer reads ours. They go
//! to the `statistics` log target; the logger prefixes `[statistics] `.

use std::time::Duration;

/// Seconds as C's `%g` prints them (6 significant digits, no trailing zeros), which is
/// what the analyzer's patterns expect.
pub(super) fn elapsed(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds == 0.0 {
        return "0".to_string();
    }
    // %g picks the notation by the exponent after rounding to 6 significant digits:
    // scientific below 1e-4 and from 1e6 on.
    let scientific = format!("{seconds:.5e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (5 - exponent).max(0) as usize;
    trim_zeros(&format!("{seconds:.decimals$}")).to_string()
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

pub(super) fn session_end(tag: u64, last_state: &str, status: &str, duration: Duration) {
    log::info!(target: "statistics", "[session][end][{last_state}][{status}][{}]({tag})", elapsed(duration));
}

/// The SMTP client left while the children were deciding (the original's line).
pub(super) fn session_disconnected(tag: u64, duration: Duration) {
    log::info!(target: "statistics", "[session][disconnected][{}]({tag})", elapsed(duration));
}

pub(super) fn milter_end(tag: u64, last_state: &str, status: &str, duration: Duration, name: &str) {
    log::info!(
        target: "statistics",
        "[milter][end][{last_state}][{status}][{}]({tag}): {name}",
        elapsed(duration)
    );
}

/// A header a child added or changed (logged for evaluation-mode children too, which is
/// what makes evaluation mode useful).
pub(super) fn milter_header(tag: u64, operation: &str, name: &[u8], value: &[u8], milter: &str) {
    log::info!(
        target: "statistics",
        "[milter][header][{operation}]({tag}): {}={}: {milter}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(value).trim_start()
    );
}

/// A header the MTA is told to add or change.
pub(super) fn session_header(tag: u64, operation: &str, name: &[u8], value: &[u8]) {
    log::info!(
        target: "statistics",
        "[session][header][{operation}]({tag}): {}={}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(value).trim_start()
    );
}

pub(super) fn quarantine(tag: u64) {
    log::info!(target: "statistics", "[reply][end-of-message][quarantine]({tag})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_is_printed_like_percent_g() {
        let cases = [
            (0.0, "0"),
            (0.5, "0.5"),
            (1.25, "1.25"),
            (0.0012345678, "0.00123457"),
            (12.0, "12"),
            (123456.7, "123457"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (1234567.0, "1.23457e+06"),
        ];
        for (seconds, text) in cases {
            assert_eq!(elapsed(Duration::from_secs_f64(seconds)), text, "{seconds}");
        }
    }
}
