//! One log line to one statistics record, without allocating: the record borrows from the
//! line. Most lines of a mail log are not ours; a substring search rejects them before
//! anything else is looked at.

use memchr::memmem;

use super::clock;

/// What precedes every statistics message, in our logs and in the original's.
const MARKER: &[u8] = b"[statistics] ";

/// A statistics message, as both managers write it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Record<'a> {
    /// `[session][end][<stage>][<status>][<elapsed>](<id>)`
    SessionEnd { stage: &'a str, status: &'a str, elapsed: f64 },
    /// `[session][disconnected][<elapsed>](<id>)`: the SMTP client left early.
    SessionDisconnected { elapsed: f64 },
    /// `[session][start](<id>)`, in the original's older logs.
    SessionStart,
    /// `[milter][end][<stage>][<status>][<elapsed>](<id>): <milter>`
    MilterEnd { stage: &'a str, status: &'a str, elapsed: f64, milter: &'a str },
    /// `[milter][header][<operation>](<id>): <name>=<value>: <milter>`
    MilterHeader { operation: &'a str, name: &'a str, value: &'a str, milter: &'a str },
    /// `[session][header][<operation>](<id>): <name>=<value>`
    SessionHeader { operation: &'a str, name: &'a str, value: &'a str },
    /// `[reply][end-of-message][quarantine](<id>)`
    Quarantine,
    /// A statistics message the charts do not use (`[milter][start]`, `[reply][...]`,
    /// `[abort][...]`, `[sessions][finished]`, `[maintain][memory]`, ...).
    Other,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Line<'a> {
    /// Not a statistics line (another program's, or another of ours).
    NotOurs,
    /// A statistics line whose time or message cannot be read.
    Garbage,
    /// A record and its time (Unix seconds, UTC).
    Record { time: i64, record: Record<'a> },
}

/// The local time classic syslog timestamps are written in.
pub trait LocalZone {
    /// Seconds east of UTC in force at the local wall-clock time `wall` (seconds since
    /// 1970-01-01T00:00 in local time). It changes with daylight saving time, so a log
    /// that spans a change needs it per line, not once per run.
    fn offset_at(&self, wall: i64) -> i64;
}

/// A zone whose offset never changes (UTC, tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedOffset(pub i64);

impl LocalZone for FixedOffset {
    fn offset_at(&self, _wall: i64) -> i64 {
        self.0
    }
}

/// Reads lines; keeps what reading them needs (the search automaton, the clock).
pub struct Parser {
    marker: memmem::Finder<'static>,
    /// Now (Unix seconds): the year of a classic syslog timestamp is the one that does not
    /// put the line in the future (later than [`super::FUTURE_TOLERANCE`] from now).
    now: i64,
    zone: Box<dyn LocalZone>,
}

impl Parser {
    pub fn new(now: i64, zone: Box<dyn LocalZone>) -> Self {
        Self { marker: memmem::Finder::new(MARKER), now, zone }
    }

    pub fn parse<'a>(&self, line: &'a [u8]) -> Line<'a> {
        let Some(at) = self.marker.find(line) else { return Line::NotOurs };
        // Ours follows the prefix, `...]: ` in every form; elsewhere (a subject in
        // postfix's header_checks warning) the marker is someone's text.
        if !line[..at].ends_with(b"]: ") {
            return Line::NotOurs;
        }
        let Some(time) = self.timestamp(&line[..at]) else { return Line::Garbage };
        let message = trim_end(&line[at + MARKER.len()..]);
        let Ok(message) = std::str::from_utf8(message) else { return Line::Garbage };
        match record(message) {
            Some(record) => Line::Record { time, record },
            None => Line::Garbage,
        }
    }

    /// The time at the start of a line: `[ISO-8601]: ` (log files, standard output),
    /// `ISO-8601 host ident[pid]: ` (RFC 3339 syslog) or `Mon DD HH:MM:SS host ident[pid]: `.
    fn timestamp(&self, prefix: &[u8]) -> Option<i64> {
        match prefix.first()? {
            b'[' => iso_8601(prefix.get(1..)?),
            b'0'..=b'9' => iso_8601(prefix),
            _ => self.classic(prefix),
        }
    }

    fn classic(&self, prefix: &[u8]) -> Option<i64> {
        const MONTHS: [&[u8]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
            b"Dec",
        ];
        let month = MONTHS.iter().position(|name| prefix.starts_with(name))? as i64 + 1;
        let rest = prefix.get(3..)?;
        let rest = &rest[rest.iter().position(|&b| b != b' ')?..];
        let (day, rest) = number(rest, 2)?;
        let rest = rest.strip_prefix(b" ")?;
        let (seconds, _) = time_of_day(rest)?;
        if !(1..=31).contains(&day) {
            return None;
        }
        let local = |year| {
            let wall = clock::days_from_civil(year, month, day) * 86_400 + seconds;
            wall - self.zone.offset_at(wall)
        };
        let year = clock::year_of(self.now);
        // A line from December read in January belongs to last year.
        let time = local(year);
        Some(if time > self.now + super::FUTURE_TOLERANCE { local(year - 1) } else { time })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`
fn iso_8601(text: &[u8]) -> Option<i64> {
    let (year, rest) = number(text, 4)?;
    let (month, rest) = number(rest.strip_prefix(b"-")?, 2)?;
    let (day, rest) = number(rest.strip_prefix(b"-")?, 2)?;
    let rest = rest.strip_prefix(b"T").or_else(|| rest.strip_prefix(b" "))?;
    let (seconds, mut rest) = time_of_day(rest)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if let Some(fraction) = rest.strip_prefix(b".") {
        rest = &fraction
            [fraction.iter().position(|b| !b.is_ascii_digit()).unwrap_or(fraction.len())..];
    }
    let offset = match rest.first()? {
        b'Z' => 0,
        sign @ (b'+' | b'-') => {
            let (hours, rest) = number(&rest[1..], 2)?;
            let rest = rest.strip_prefix(b":").unwrap_or(rest);
            let (minutes, _) = number(rest, 2)?;
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    Some(clock::days_from_civil(year, month, day) * 86_400 + seconds - offset)
}

/// `HH:MM:SS` as seconds of the day, and what follows.
fn time_of_day(text: &[u8]) -> Option<(i64, &[u8])> {
    let (hours, rest) = number(text, 2)?;
    let (minutes, rest) = number(rest.strip_prefix(b":")?, 2)?;
    let (seconds, rest) = number(rest.strip_prefix(b":")?, 2)?;
    if hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    Some((hours * 3600 + minutes * 60 + seconds, rest))
}

/// A decimal number of 1 to `digits` digits (exactly `digits` when it is 4).
fn number(text: &[u8], digits: usize) -> Option<(i64, &[u8])> {
    let length = text.iter().take(digits).take_while(|b| b.is_ascii_digit()).count();
    if length == 0 || (digits == 4 && length != 4) {
        return None;
    }
    let value = text[..length].iter().fold(0, |value, b| value * 10 + i64::from(b - b'0'));
    Some((value, &text[length..]))
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |at| at + 1);
    &bytes[..end]
}

/// The message after the marker.
fn record(message: &str) -> Option<Record<'_>> {
    let mut tags: [&str; 5] = [""; 5];
    let mut count = 0;
    let mut rest = message;
    while let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']')?;
        if count == tags.len() {
            return None;
        }
        tags[count] = &inner[..end];
        count += 1;
        rest = &inner[end + 1..];
    }
    // `(<id>)` and what follows it.
    let after_id = match rest.strip_prefix('(') {
        Some(inner) => {
            let end = inner.find(')')?;
            if !inner[..end].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &inner[end + 1..]
        }
        None => rest,
    };
    let detail = after_id.strip_prefix(": ");
    Some(match (&tags[..count], detail) {
        (["session", "end", stage, status, elapsed], None) => {
            Record::SessionEnd { stage, status, elapsed: seconds(elapsed)? }
        }
        (["session", "disconnected", elapsed], None) => {
            Record::SessionDisconnected { elapsed: seconds(elapsed)? }
        }
        (["session", "start"], None) => Record::SessionStart,
        (["milter", "end", stage, status, elapsed], Some(milter)) if !milter.is_empty() => {
            Record::MilterEnd { stage, status, elapsed: seconds(elapsed)?, milter }
        }
        (["milter", "header", operation], Some(detail)) => {
            let (header, milter) = detail.rsplit_once(": ")?;
            let (name, value) = header.split_once('=')?;
            Record::MilterHeader { operation, name, value, milter }
        }
        (["session", "header", operation], Some(detail)) => {
            let (name, value) = detail.split_once('=')?;
            Record::SessionHeader { operation, name, value }
        }
        (["reply", "end-of-message", "quarantine"], None) => Record::Quarantine,
        // A known line of the wrong shape.
        (["session" | "milter", "end" | "disconnected" | "header", ..], _) => return None,
        (["session" | "milter" | "reply" | "abort" | "sessions" | "maintain", ..], _) => {
            Record::Other
        }
        _ => return None,
    })
}

/// An elapsed time as C's `%g` writes it; not negative, not NaN, not infinite.
fn seconds(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03T00:00:00Z
    const NOW: i64 = 1_796_256_000;

    fn parse(line: &str) -> Line<'_> {
        Parser::new(NOW, Box::new(FixedOffset(0))).parse(line.as_bytes())
    }

    #[test]
    fn our_log_file_lines() {
        assert_eq!(
            parse("[2026-12-02T10:00:01.123Z]: [statistics] [session][end][end-of-message][reject][0.5](7)\n"),
            Line::Record {
                time: NOW - 14 * 3600 + 1,
                record: Record::SessionEnd { stage: "end-of-message", status: "reject", elapsed: 0.5 }
            }
        );
        assert_eq!(
            parse("[2026-12-02T10:00:01Z]: [statistics] [milter][end][data][pass][1e-05](8): spam-checker"),
            Line::Record {
                time: NOW - 14 * 3600 + 1,
                record: Record::MilterEnd {
                    stage: "data",
                    status: "pass",
                    elapsed: 0.00001,
                    milter: "spam-checker"
                }
            }
        );
    }

    #[test]
    fn syslog_lines_classic_and_rfc_3339() {
        let classic =
            "Dec  2 10:00:01 mx milter-manager[42]: [statistics] [session][disconnected][3](9)";
        assert_eq!(
            parse(classic),
            Line::Record {
                time: NOW - 14 * 3600 + 1,
                record: Record::SessionDisconnected { elapsed: 3.0 }
            }
        );
        // Local time one hour east of UTC.
        assert_eq!(
            Parser::new(NOW, Box::new(FixedOffset(3600))).parse(classic.as_bytes()),
            Line::Record {
                time: NOW - 15 * 3600 + 1,
                record: Record::SessionDisconnected { elapsed: 3.0 }
            }
        );
        let rfc = "2026-12-02T11:00:01.654321+01:00 mx milter-manager[42]: [statistics] [session][start](9)";
        assert_eq!(
            parse(rfc),
            Line::Record { time: NOW - 14 * 3600 + 1, record: Record::SessionStart }
        );
    }

    /// Central European time: +1, and +2 from 2026-03-29T01:00Z (03:00 local).
    struct Berlin;

    impl LocalZone for Berlin {
        fn offset_at(&self, wall: i64) -> i64 {
            let change = clock::days_from_civil(2026, 3, 29) * 86_400 + 3 * 3600;
            if wall < change {
                3600
            } else {
                7200
            }
        }
    }

    #[test]
    fn each_classic_line_gets_the_offset_of_its_own_time() {
        let parser = Parser::new(NOW, Box::new(Berlin));
        let time = |line: &str| match parser.parse(line.as_bytes()) {
            Line::Record { time, .. } => time,
            other => panic!("{other:?}"),
        };
        let midnight = clock::days_from_civil(2026, 3, 29) * 86_400;
        let before = "Mar 29 01:30:00 mx milter-manager[1]: [statistics] [session][start](1)";
        let after = "Mar 29 03:30:00 mx milter-manager[1]: [statistics] [session][start](2)";
        assert_eq!(time(before), midnight + 1800, "01:30 CET is 00:30Z");
        assert_eq!(time(after), midnight + 3600 + 1800, "03:30 CEST is 01:30Z");
    }

    #[test]
    fn december_read_in_january_is_last_year() {
        let january_first = NOW + 29 * 86_400;
        let line = b"Dec 31 23:00:00 mx milter-manager[1]: [statistics] [session][start](1)";
        let Line::Record { time, .. } =
            Parser::new(january_first, Box::new(FixedOffset(0))).parse(line)
        else {
            panic!()
        };
        assert_eq!(time, january_first - 3600);
    }

    #[test]
    fn headers_keep_colons_in_values() {
        assert_eq!(
            parse("[2026-12-02T10:00:00Z]: [statistics] [milter][header][add](3): X-Spam-Status=Yes, tests=A: B: spamd"),
            Line::Record {
                time: NOW - 14 * 3600,
                record: Record::MilterHeader {
                    operation: "add",
                    name: "X-Spam-Status",
                    value: "Yes, tests=A: B",
                    milter: "spamd"
                }
            }
        );
        assert_eq!(
            parse("[2026-12-02T10:00:00Z]: [statistics] [session][header][change](3): Subject=[SPAM] hi"),
            Line::Record {
                time: NOW - 14 * 3600,
                record: Record::SessionHeader { operation: "change", name: "Subject", value: "[SPAM] hi" }
            }
        );
    }

    #[test]
    fn other_statistics_lines_are_known() {
        for message in [
            "[milter][start](3): clamav",
            "[reply][rcpt][reject](3)",
            "[abort][data](3)",
            "[sessions][finished] 10(+2) 1",
            "[maintain][memory] 123",
        ] {
            let line = format!("[2026-12-02T10:00:00Z]: [statistics] {message}");
            assert_eq!(
                parse(&line),
                Line::Record { time: NOW - 14 * 3600, record: Record::Other },
                "{message}"
            );
        }
        let quarantine =
            "[2026-12-02T10:00:00Z]: [statistics] [reply][end-of-message][quarantine](3)";
        assert_eq!(
            parse(quarantine),
            Line::Record { time: NOW - 14 * 3600, record: Record::Quarantine }
        );
    }

    #[test]
    fn other_lines_and_garbage() {
        assert_eq!(
            parse("Dec  2 10:00:01 mx postfix/smtpd[1]: connect from x[1.2.3.4]"),
            Line::NotOurs
        );
        assert_eq!(parse(""), Line::NotOurs);
        assert_eq!(parse("[statistics] [session][end][data][pass][1](1)"), Line::NotOurs);
        let subject =
            "Dec  2 10:00:01 mx postfix/cleanup[9]: 4AB: warning: header Subject: [statistics] [x]";
        assert_eq!(parse(subject), Line::NotOurs);
        for garbage in [
            "[2026-12-02T10:00:00]: [statistics] [session][end][data][pass][1](1)",
            "Dex  2 10:00:01 mx milter-manager[1]: [statistics] [session][start](1)",
            "[2026-13-02T10:00:00Z]: [statistics] [session][start](1)",
            "[2026-12-02T10:00:00Z]: [statistics] [session][end][data][pass][-1](1)",
            "[2026-12-02T10:00:00Z]: [statistics] [session][end][data][pass][NaN](1)",
            "[2026-12-02T10:00:00Z]: [statistics] [session][end][data][pass](1)",
            "[2026-12-02T10:00:00Z]: [statistics] [session][end][data][pass][1](x)",
            "[2026-12-02T10:00:00Z]: [statistics] [milter][end][data][pass][1](1)",
            "[2026-12-02T10:00:00Z]: [statistics] [milter][header][add](1): no-equals: m",
            "[2026-12-02T10:00:00Z]: [statistics] [nothing][known]",
            "[2026-12-02T10:00:00Z]: [statistics] [a][b][c][d][e][f]",
            "[2026-12-02T10:00:00Z]: [statistics] [session][end",
        ] {
            assert_eq!(parse(garbage), Line::Garbage, "{garbage}");
        }
        let invalid_utf8 = b"[2026-12-02T10:00:00Z]: [statistics] [session][start](\xff)";
        assert_eq!(Parser::new(NOW, Box::new(FixedOffset(0))).parse(invalid_utf8), Line::Garbage);
    }
}
