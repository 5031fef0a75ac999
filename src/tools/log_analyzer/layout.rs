//! The columns of a bucket: what is counted, by name, at which index. The store writes
//! rows of these counters; the charts read them back by the same names.

/// Final statuses, of sessions and of child milters; `stop` is a child stopped by an
/// applicable condition; a name neither manager writes counts as `other`.
pub const STATUSES: [&str; 11] = [
    "pass",
    "accept",
    "skip",
    "reject",
    "discard",
    "temporary-failure",
    "quarantine",
    "abort",
    "error",
    "stop",
    "other",
];

/// The stage a session ended in.
pub const STAGES: [&str; 15] = [
    "start",
    "negotiate",
    "connect",
    "helo",
    "envelope-from",
    "envelope-recipient",
    "data",
    "unknown",
    "header",
    "end-of-header",
    "body",
    "end-of-message",
    "abort",
    "quit",
    "other",
];

/// What a header a child milter added or changed says about the message.
pub const MODIFICATIONS: [&str; 8] =
    ["spam", "virus", "greylist", "spf-pass", "spf-fail", "dkim-pass", "dkim-fail", "other-header"];

/// Elapsed-time buckets: bucket 0 is under 1 ms, bucket i (i ≥ 1) ends at 1 ms × 2^(i/2),
/// the last one is open. A percentile is read as the end of its bucket (within √2).
pub const ELAPSED_BUCKETS: usize = 40;

pub const SESSION_STATUS: usize = 0;
pub const SESSION_DISCONNECTED: usize = SESSION_STATUS + STATUSES.len();
pub const SESSION_STARTED: usize = SESSION_DISCONNECTED + 1;
pub const SESSION_STAGE: usize = SESSION_STARTED + 1;
pub const SESSION_ELAPSED: usize = SESSION_STAGE + STAGES.len();
pub const SESSION_MODIFICATION: usize = SESSION_ELAPSED + ELAPSED_BUCKETS;
pub const SESSION_WIDTH: usize = SESSION_MODIFICATION + MODIFICATIONS.len();

pub const MILTER_STATUS: usize = 0;
pub const MILTER_WIDTH: usize = STATUSES.len();

/// The index of `name` in `names`, or of the last (`other`) entry.
pub fn index_of(names: &[&str], name: &str) -> usize {
    names.iter().position(|&known| known == name).unwrap_or(names.len() - 1)
}

/// The elapsed-time bucket of `seconds`.
pub fn elapsed_bucket(seconds: f64) -> usize {
    if seconds < 0.001 {
        return 0;
    }
    // A small positive number (1e300 s is 2000 half-octaves): no truncation.
    #[allow(clippy::cast_possible_truncation)]
    let half_octaves = ((seconds / 0.001).log2() * 2.0).floor() as usize + 1;
    half_octaves.min(ELAPSED_BUCKETS - 1)
}

/// Where the elapsed-time bucket ends, in seconds (the last one: where it starts).
pub fn elapsed_bucket_end(bucket: usize) -> f64 {
    let bucket = bucket.min(ELAPSED_BUCKETS - 2);
    0.001 * 2f64.powf(bucket as f64 / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_other() {
        assert_eq!(STATUSES[index_of(&STATUSES, "reject")], "reject");
        assert_eq!(STATUSES[index_of(&STATUSES, "not-a-status")], "other");
        assert_eq!(STAGES[index_of(&STAGES, "envelope-from")], "envelope-from");
    }

    #[test]
    fn elapsed_buckets_end_after_their_values() {
        for seconds in [0.0, 0.0005, 0.001, 0.0015, 0.3, 1.0, 29.9, 300.0] {
            let bucket = elapsed_bucket(seconds);
            assert!(seconds < elapsed_bucket_end(bucket), "{seconds} in {bucket}");
            assert!(
                bucket == 0 || seconds >= elapsed_bucket_end(bucket - 1),
                "{seconds} in {bucket}"
            );
        }
        assert_eq!(elapsed_bucket(1e9), ELAPSED_BUCKETS - 1);
    }
}
