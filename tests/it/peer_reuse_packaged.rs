//! Kept child connections (`reuse_connection`) with the real milters Debian bookworm
//! packages (`support::packaged_milters`), each the manager's one child. The same
//! sessions, one of them a message the milter flags, give the same verdicts and the same
//! message with reuse on and off, with no fallback and no timeout. What each answers at
//! end-of-message decides whether its connections are kept (the manager keeps only a
//! child that answered the last end-of-message with continue and asked for CONNECT: that
//! is where libmilter takes a `K`):
//!
//! | milter | end-of-message answer | kept |
//! |---|---|---|
//! | spamass-milter 0.4.0 (libmilter) | X-Spam-* headers, then continue (GTUBE too: it only tags) | yes |
//! | clamav-milter 1.4 (libmilter) | X-Virus-* headers, then accept (clean) or reject (infected) | no |
//! | opendmarc 1.4.2 (libmilter) | an Authentication-Results header inserted, then accept | no |
//! | rspamd 3.4 proxy (its own milter code) | accept, or a 554 reply code (GTUBE) | no |
//!
//! The answers were read with `milter-test-server -v` against each milter directly.

use crate::peer_reuse::{config, metric, metrics_text, session_output, wait_for_metric};
use crate::support;

use support::packaged_milters::{
    ClamAv, OpenDmarc, Rspamd, SpamAssassin, CLAMAV_MARKER, DMARC_AUTHSERV_ID, GTUBE,
};
use support::{ManagerProcess, TempDir};

const SESSIONS: usize = 6;

/// The session (of `SESSIONS`) that sends the message the milter flags.
const FLAGGED: usize = 3;

/// One session through the manager, sending `body` (`session_output`).
fn session(dir: &TempDir, manager: &ManagerProcess, name: &str, body: &str) -> String {
    // A domain with no DMARC policy wherever the test runs (RFC 6761).
    let body = format!("{body}\r\n");
    session_output(dir, manager, name, &["--header", "From:a@example.invalid", "--body", &body])
}

/// Runs the `SESSIONS` sessions (`flagged` the body of the `FLAGGED`th, "Hello." the
/// others') through a manager whose one child `milter` listens on `port`, once with
/// reuse on and once off, and returns what each session printed. Asserts that both runs
/// printed the same, that no session fell back or timed out, and that every session but
/// the first took the kept connection when the milter is `kept`, none otherwise.
fn with_and_without_reuse(milter: &str, port: u16, flagged: &str, kept: bool) -> Vec<String> {
    let mut runs = Vec::new();
    for reuse in [true, false] {
        let dir = TempDir::new(&format!("reuse-{milter}-{reuse}"));
        let manager = ManagerProcess::start(&dir, &config(&dir, &[(milter, port)], reuse));
        let outputs: Vec<String> = (0..SESSIONS)
            .map(|i| {
                let body = if i == FLAGGED { flagged } else { "Hello." };
                session(&dir, &manager, &format!("session-{i}"), body)
            })
            .collect();
        // The counts are taken as each session ends, a moment after the MTA is answered.
        let counted = support::wait_for(support::deadline(), || {
            sessions_counted(&dir, milter) == SESSIONS as u64
        });
        assert!(counted, "{} sessions counted\n{}", sessions_counted(&dir, milter), manager.log());
        let reused = if reuse && kept { SESSIONS as u64 - 1 } else { 0 };
        assert_eq!(metric(&dir, "reused_connections", milter), reused, "{}", manager.log());
        assert_eq!(metric(&dir, "fallbacks", milter), 0, "{}", manager.log());
        assert_eq!(metric(&dir, "timeouts", milter), 0, "{}", manager.log());
        assert_eq!(metric(&dir, "reconnections", milter), 0, "{}", manager.log());
        let plain: Vec<&String> =
            outputs.iter().enumerate().filter(|(i, _)| *i != FLAGGED).map(|(_, o)| o).collect();
        assert!(plain.iter().all(|output| output == &plain[0]), "{outputs:#?}");
        runs.push(outputs);
    }
    assert_eq!(runs[0], runs[1], "the same with reuse on (left) and off (right)");
    runs.swap_remove(0)
}

/// The sessions of `milter` the manager has counted, whatever their status.
fn sessions_counted(dir: &TempDir, milter: &str) -> u64 {
    let text = metrics_text(dir);
    let prefix = format!("milter_manager_milter_sessions_total{{milter=\"{milter}\",status=");
    let counts = text.lines().filter_map(|line| line.strip_prefix(&prefix));
    counts
        .map(|rest| rest.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

#[test]
fn spamass_milter_connections_are_kept_and_tag_the_same() {
    let dir = TempDir::new("reuse-spamassassin");
    let spamassassin = SpamAssassin::start(&dir);
    let outputs = with_and_without_reuse("spamass", spamassassin.port(), GTUBE, true);
    let (plain, gtube) = (&outputs[0], &outputs[FLAGGED]);
    assert!(plain.contains("status: pass"), "{plain}");
    assert!(plain.contains("+ X-Spam-Status: No, score="), "{plain}");
    assert!(!plain.contains("X-Spam-Flag"), "{plain}");
    assert!(gtube.contains("status: pass"), "{gtube}");
    assert!(gtube.contains("+ X-Spam-Flag: YES"), "{gtube}");
    assert!(gtube.contains("+ X-Spam-Status: Yes, score=100"), "{gtube}");
    assert!(gtube.contains("tests=GTUBE"), "{gtube}");
}

#[test]
fn clamav_milter_connections_are_not_kept_and_reject_the_same() {
    let dir = TempDir::new("reuse-clamav");
    let clamav = ClamAv::start(&dir);
    let outputs = with_and_without_reuse("clamav", clamav.port(), CLAMAV_MARKER, false);
    let (clean, infected) = (&outputs[0], &outputs[FLAGGED]);
    assert!(clean.contains("status: accept"), "{clean}");
    assert!(clean.contains("+ X-Virus-Status: Clean"), "{clean}");
    assert!(infected.contains("status: reject"), "{infected}");
}

#[test]
fn opendmarc_connections_are_not_kept_and_report_the_same() {
    let dir = TempDir::new("reuse-opendmarc");
    let opendmarc = OpenDmarc::start(&dir);
    // It flags nothing without a published policy: every session is a plain one.
    let outputs = with_and_without_reuse("opendmarc", opendmarc.port(), "Hello.", false);
    let header = format!("+ Authentication-Results: {DMARC_AUTHSERV_ID}; dmarc=none");
    assert!(outputs[0].contains("status: accept"), "{}", outputs[0]);
    assert!(outputs[0].contains(&header), "{}", outputs[0]);
}

#[test]
fn rspamd_proxy_connections_are_not_kept_and_reject_gtube_the_same() {
    let dir = TempDir::new("reuse-rspamd");
    let rspamd = Rspamd::start(&dir);
    let outputs = with_and_without_reuse("rspamd", rspamd.port(), GTUBE, false);
    let (plain, gtube) = (&outputs[0], &outputs[FLAGGED]);
    assert!(plain.contains("status: accept"), "{plain}");
    assert!(gtube.contains("status: reject [554 5.7.1 Gtube pattern]"), "{gtube}");
}

#[test]
fn spamass_milter_restarted_while_its_connection_is_kept_costs_the_mta_nothing() {
    let dir = TempDir::new("reuse-spamassassin-restart");
    let mut spamassassin = SpamAssassin::start(&dir);
    let manager =
        ManagerProcess::start(&dir, &config(&dir, &[("spamass", spamassassin.port())], true));
    let first = session(&dir, &manager, "before-1", "Hello.");
    assert_eq!(session(&dir, &manager, "before-2", "Hello."), first);
    assert_eq!(wait_for_metric(&dir, "reused_connections", "spamass", 1), 1);

    // Killed while the manager keeps a connection to it, then started again (spamd goes
    // on). The manager sees the kept connection close and drops it, or, if the next
    // session takes it first, finds it dead at its first use and connects anew.
    spamassassin.restart_milter();
    for i in 0..3 {
        assert_eq!(session(&dir, &manager, &format!("after-{i}"), "Hello."), first);
    }
    assert_eq!(metric(&dir, "fallbacks", "spamass"), 0, "{}", manager.log());
    assert_eq!(metric(&dir, "timeouts", "spamass"), 0, "{}", manager.log());
    let log = manager.log();
    assert!(
        log.contains("the peer closed a kept connection")
            || log.contains("spamass: a kept connection closed the connection before its first"),
        "{log}"
    );
    // The new spamass-milter's connection is kept in turn: after-1 and after-2 take it.
    assert!(wait_for_metric(&dir, "reused_connections", "spamass", 3) >= 3, "{}", manager.log());
}
