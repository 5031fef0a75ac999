//! milter-test-server against an independent milter: `tests/peers/pymilter_modifier.py`,
//! built on pymilter (Debian package `python3-milter`, a binding of the real libmilter).
//! It rejects one sender and one recipient with a custom reply, adds a header and
//! replaces the body; the tests check what milter-test-server prints about it.
//!
//! These tests fail, never skip, when python3-milter is missing:
//! `scripts/install-test-deps.sh` installs it.

use crate::support;
use crate::support::postfix;

use std::process::Command;

use postfix::Pymilter;
use serde_json::Value;
use support::{
    free_tcp_port, run, Finished, ManagerProcess, TempDir, PERFORMANCE_CHECK, TEST_SERVER, TIMEOUT,
};

/// The pymilter child's connection spec.
fn spec_of(milter: &Pymilter) -> String {
    format!("inet:{}@[127.0.0.1]", milter.port())
}

/// Runs milter-test-server with `args`.
fn test_server(dir: &TempDir, args: &[&str]) -> Finished {
    let mut command = Command::new(TEST_SERVER);
    command.args(args);
    run(dir, "milter-test-server", &mut command, TIMEOUT)
}

/// The output with the number of the final `elapsed-time: N seconds` line replaced by
/// `N`, after checking that it is one.
fn without_elapsed_time(output: &Finished) -> String {
    let mut lines: Vec<&str> = output.stdout.lines().collect();
    let last = lines.pop().unwrap_or_default();
    let seconds = last
        .strip_prefix("elapsed-time: ")
        .and_then(|rest| rest.strip_suffix(" seconds"))
        .unwrap_or_else(|| panic!("no final elapsed-time line\n{}", output.describe()));
    let seconds: f64 = seconds
        .parse()
        .unwrap_or_else(|e| panic!("elapsed time {seconds:?}: {e}\n{}", output.describe()));
    assert!((0.0..TIMEOUT.as_secs_f64()).contains(&seconds), "elapsed time {seconds}");
    lines
        .iter()
        .map(|line| format!("{line}\n"))
        .chain(["elapsed-time: N seconds\n".into()])
        .collect()
}

#[test]
fn recipient_rejected_header_added_and_body_replaced() {
    let dir = TempDir::new("pymilter-modify");
    let milter = Pymilter::start(&dir);
    let spec = spec_of(&milter);
    let output = test_server(
        &dir,
        &[
            "-s",
            &spec,
            "--from",
            "<sender@example.org>",
            "--recipient",
            "<ok@example.org>",
            "--recipient",
            "<reject@example.org>",
            "--header",
            "From:sender@example.org",
            "--header",
            "To:ok@example.org, reject@example.org",
            "--header",
            "Subject:pymilter test",
            "--body",
            "Original body.\r\nLine two.\r\n",
            "--output-message",
        ],
    );
    let details = format!("{}\n--- pymilter log:\n{}", output.describe(), milter.log());
    assert!(output.status.success(), "milter-test-server failed\n{details}");
    assert_eq!(output.stderr, "", "nothing on stderr\n{details}");
    assert!(
        output.stdout.starts_with(
            "recipient: <reject@example.org> reject [550 5.7.1 no thanks] at envelope-recipient\n\
             status: accept at end-of-message\n"
        ),
        "the rejected recipient, then the verdict\n{details}"
    );
    // Postfix (like any MTA) drops a recipient the milter refused at RCPT: the message
    // goes to <ok@example.org> only. Upstream milter-test-server shows it removed
    // ("- RCPT TO:<reject@example.org>").
    assert!(
        output.stdout.contains("\n- envelope-recipient: <reject@example.org>\n"),
        "the refused recipient is shown as removed from the envelope\n{details}"
    );
    assert_eq!(
        without_elapsed_time(&output),
        "recipient: <reject@example.org> reject [550 5.7.1 no thanks] at envelope-recipient\n\
         status: accept at end-of-message\n\
         ------------------------------\n\
         \x20 envelope-from: <sender@example.org>\n\
         \x20 envelope-recipient: <ok@example.org>\n\
         - envelope-recipient: <reject@example.org>\n\
         ------------------------------\n\
         \x20 From: sender@example.org\n\
         \x20 To: ok@example.org, reject@example.org\n\
         \x20 Subject: pymilter test\n\
         + X-Pymilter: seen\n\
         \n\
         - Original body.\n\
         - Line two.\n\
         + Replaced by pymilter.\n\
         + Second replaced line.\n\
         elapsed-time: N seconds\n",
        "the whole output\n{details}"
    );
}

#[test]
fn sender_rejected_at_mail_from() {
    let dir = TempDir::new("pymilter-sender");
    let milter = Pymilter::start(&dir);
    let spec = spec_of(&milter);
    let output = test_server(
        &dir,
        &[
            "-s",
            &spec,
            "-f",
            "<blocked@example.org>",
            "-r",
            "<ok@example.org>",
            "--body",
            "Hi.\r\n",
        ],
    );
    let details = format!("{}\n--- pymilter log:\n{}", output.describe(), milter.log());
    // A verdict from the milter is a result, not an error: exit status 0.
    assert!(output.status.success(), "milter-test-server failed\n{details}");
    assert_eq!(output.stderr, "", "nothing on stderr\n{details}");
    assert_eq!(
        without_elapsed_time(&output),
        "status: reject [550 5.7.1 sender blocked] at envelope-from\n\
         elapsed-time: N seconds\n",
        "the whole output\n{details}"
    );

    // The same milter process still serves the next session normally.
    let output =
        test_server(&dir, &["-s", &spec, "-f", "<fine@example.org>", "-r", "<ok@example.org>"]);
    assert!(output.status.success(), "second session\n{}", output.describe());
    assert_eq!(
        without_elapsed_time(&output),
        "status: accept at end-of-message\nelapsed-time: N seconds\n",
        "second session\n{}",
        output.describe()
    );
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let dir = TempDir::new("pymilter-refused");
    // Free a moment ago and nobody was started on it.
    let port = free_tcp_port();
    let spec = format!("inet:{port}@[127.0.0.1]");
    let socket = format!("unix:{}", dir.join("nobody.sock").display());
    for (spec, reason) in [(spec.as_str(), "refused"), (socket.as_str(), "No such file")] {
        let output = test_server(&dir, &["-s", spec, "--connection-timeout", "5"]);
        assert!(!output.status.success(), "exit status for {spec}\n{}", output.describe());
        assert_eq!(output.stdout, "", "no status line without a milter\n{}", output.describe());
        let stderr: Vec<&str> = output.stderr.lines().collect();
        assert_eq!(stderr.len(), 1, "one line on stderr\n{}", output.describe());
        let message = stderr[0];
        assert!(
            message.starts_with("milter-test-server: ")
                && message.contains("cannot connect")
                && message.contains(spec)
                && message.contains(reason),
            "a one-line reason naming the spec for {spec}, got: {message}"
        );
    }
}

/// The pymilter child answers end-of-message with three packets (add header, replace body,
/// accept), each its own write on a TCP socket without TCP_NODELAY, so Nagle holds each next
/// one until the manager ACKs the last. Without the manager's early ACK every session would
/// wait for a delayed ACK, 40 ms at the shortest on Linux; with it the median session takes
/// a few milliseconds. The 30 ms bound comes from that floor, not from a speed target: a
/// session with even one stall cannot go under it.
#[test]
fn through_the_manager_a_nagle_child_answer_does_not_wait_for_delayed_acks() {
    let dir = TempDir::new("pymilter-acks");
    let milter = Pymilter::start(&dir);
    let config = format!(
        "[milter.pymilter]\nconnection_spec = \"{}\"\n[log]\nlevel = \"info\"\n",
        spec_of(&milter)
    );
    let manager = ManagerProcess::start(&dir, &config);
    let mut command = Command::new(PERFORMANCE_CHECK);
    command.args(["--milter", &manager.spec(), "--n-mails", "20"]);
    command.args(["--n-concurrent-connections", "1", "--json"]);
    let finished = run(&dir, "milter-performance-check", &mut command, TIMEOUT);
    assert!(
        finished.status.success(),
        "{}\n--- manager log:\n{}",
        finished.describe(),
        manager.log()
    );
    let report: Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON: {e}\n{}", finished.describe()));
    assert_eq!(report["completed"], 20, "{}", finished.describe());
    let accepted = &report["statuses"]["accept"];
    assert_eq!(
        accepted["stages"]["end-of-message"],
        20,
        "every session ends accepted at end-of-message\n{}",
        finished.describe()
    );
    let p50 = report["latency_ms"]["p50"].as_f64().expect("a number");
    assert!(
        p50 < 30.0,
        "median session {p50} ms: the child's packets waited for delayed ACKs\n{}",
        finished.describe()
    );
    assert_eq!(milter.log().matches(" eom").count(), 20, "{}", milter.log());
}
