//! Records into the store's counters.

use super::layout::*;
use super::parse::Record;
use super::store::Store;

/// Counts `record`, dated `time`, in `store`.
pub fn count(store: &mut Store, time: i64, record: &Record<'_>) {
    let sessions = &mut store.sessions;
    match *record {
        Record::SessionEnd { stage, status, elapsed } => {
            sessions.add(time, SESSION_STATUS + index_of(&STATUSES, status), 1);
            sessions.add(time, SESSION_STAGE + index_of(&STAGES, stage), 1);
            sessions.add(time, SESSION_ELAPSED + elapsed_bucket(elapsed), 1);
        }
        Record::SessionDisconnected { .. } => sessions.add(time, SESSION_DISCONNECTED, 1),
        Record::SessionStart => sessions.add(time, SESSION_STARTED, 1),
        Record::MilterEnd { status, milter, .. } => {
            store.milter(milter).add(time, MILTER_STATUS + index_of(&STATUSES, status), 1);
        }
        Record::MilterHeader { name, value, .. } => {
            if let Some(kind) = modification(name, value) {
                sessions.add(time, SESSION_MODIFICATION + kind, 1);
            }
        }
        Record::Quarantine => {
            sessions.add(time, SESSION_STATUS + index_of(&STATUSES, "quarantine"), 1)
        }
        Record::SessionHeader { .. } | Record::Other => return,
    }
    store.watermark.advance(time);
}

/// What a header says about the message, as the original's report graph reads headers
/// (spam and virus flags, greylisting, SPF and DKIM results); `None` for a header a
/// milter changed that says nothing of these.
fn modification(name: &str, value: &str) -> Option<usize> {
    let kind = |name| Some(index_of(&MODIFICATIONS, name));
    let value_has = |word: &str| contains_ignore_case(value, word);
    if name.eq_ignore_ascii_case("X-Spam-Flag") || name.eq_ignore_ascii_case("X-Spam") {
        return if value_has("yes") { kind("spam") } else { None };
    }
    if name.eq_ignore_ascii_case("X-Spam-Status") {
        return if starts_with_ignore_case(value, "yes") { kind("spam") } else { None };
    }
    if name.eq_ignore_ascii_case("X-Virus-Status") {
        return if value_has("infected") { kind("virus") } else { None };
    }
    if name.eq_ignore_ascii_case("X-Greylist") {
        return kind("greylist");
    }
    if name.eq_ignore_ascii_case("Received-SPF") {
        return if starts_with_ignore_case(value, "pass") {
            kind("spf-pass")
        } else {
            kind("spf-fail")
        };
    }
    if name.eq_ignore_ascii_case("Authentication-Results") {
        if value_has("dkim=pass") {
            return kind("dkim-pass");
        }
        if value_has("dkim=fail") {
            return kind("dkim-fail");
        }
        if value_has("spf=pass") {
            return kind("spf-pass");
        }
        if value_has("spf=fail") || value_has("spf=softfail") {
            return kind("spf-fail");
        }
    }
    kind("other-header")
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn contains_ignore_case(text: &str, word: &str) -> bool {
    text.as_bytes().windows(word.len()).any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_256_000;

    fn row(store: &Store) -> Vec<u32> {
        store.sessions.ring(300).unwrap().row(T).unwrap().to_vec()
    }

    #[test]
    fn session_end_counts_status_stage_and_elapsed() {
        let mut store = Store::default();
        count(
            &mut store,
            T,
            &Record::SessionEnd { stage: "envelope-recipient", status: "reject", elapsed: 0.25 },
        );
        let row = row(&store);
        assert_eq!(row[SESSION_STATUS + 3], 1);
        assert_eq!(row[SESSION_STAGE + 5], 1);
        assert_eq!(row[SESSION_ELAPSED + elapsed_bucket(0.25)], 1);
        assert_eq!(row.iter().sum::<u32>(), 3);
        assert_eq!(store.watermark.time, T);
    }

    #[test]
    fn headers_are_classified() {
        let cases = [
            ("X-Spam-Flag", "YES", Some("spam")),
            ("X-Spam-Flag", "NO", None),
            ("X-Spam-Status", "Yes, score=7", Some("spam")),
            ("X-Spam-Status", "No, score=0", None),
            ("X-Virus-Status", "Infected (Eicar)", Some("virus")),
            ("X-Virus-Status", "Clean", None),
            ("X-Greylist", "delayed 300 seconds", Some("greylist")),
            ("Authentication-Results", "mx; dkim=pass header.d=example.org", Some("dkim-pass")),
            ("Authentication-Results", "mx; dkim=fail", Some("dkim-fail")),
            ("Authentication-Results", "mx; spf=softfail", Some("spf-fail")),
            ("Received-SPF", "Pass (sender)", Some("spf-pass")),
            ("X-Mailer", "x", Some("other-header")),
        ];
        for (name, value, expected) in cases {
            assert_eq!(
                modification(name, value).map(|i| MODIFICATIONS[i]),
                expected,
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn records_without_counters_leave_the_watermark() {
        let mut store = Store::default();
        count(&mut store, T, &Record::Other);
        count(&mut store, T, &Record::SessionHeader { operation: "add", name: "X", value: "y" });
        assert_eq!(store.watermark.count, 0);
    }
}
