//! Kept child connections (`reuse_connection`) with real libmilter milters behind the
//! manager: pymilter (answering end-of-message with continue, so its connections are
//! kept) and opendkim (which accepts at end-of-message, after which libmilter would drop a
//! `K`: its connections must not be kept). The same sessions give the same answers and
//! the same message with reuse on and off; a milter restarted while its connections are
//! kept, and a kept connection that fails on first use, cost the MTA nothing.

use crate::support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::milter::{serve_milter, serve_tcp};
use support::postfix::{OpenDkim, Pymilter};
use support::{ctl, free_tcp_port, run, ManagerProcess, TempDir, TEST_SERVER};

use milter_manager::protocol::{Command as MilterCommand, Reply};

/// The manager's configuration: the children (name, port), reuse on or off, and a
/// controller for the metrics.
pub(crate) fn config(dir: &TempDir, children: &[(&str, u16)], reuse: bool) -> String {
    let mut config =
        format!("[controller]\nconnection_spec = \"unix:{}\"\n", dir.join("ctl.sock").display());
    for (name, port) in children {
        config.push_str(&format!(
            "\n[milter.\"{name}\"]\nconnection_spec = \"inet:{port}@[127.0.0.1]\"\n\
             reuse_connection = {reuse}\nfallback_status = \"reject\"\n"
        ));
    }
    config
}

/// One session through the manager with milter-test-server (its `extra` arguments after
/// the envelope and a Subject); what it printed, the message included, with what differs
/// between two runs of the same session masked: the time it took, and opendkim's
/// signature (it holds the signing time).
pub(crate) fn session_output(
    dir: &TempDir,
    manager: &ManagerProcess,
    name: &str,
    extra: &[&str],
) -> String {
    let mut command = Command::new(TEST_SERVER);
    command.args(["-s", &manager.spec(), "--output-message", "--from", "<a@example.com>"]);
    command.args(["--recipient", "<b@example.org>", "--header", "Subject:reuse"]).args(extra);
    let finished = run(dir, name, &mut command, Duration::from_secs(60));
    assert!(finished.status.success(), "milter-test-server: {}", finished.describe());
    let mut masked = Vec::new();
    let mut in_signature = false;
    for line in finished.stdout.lines() {
        if line.starts_with("elapsed-time:") {
            continue;
        }
        if in_signature && line.starts_with("+ \t") {
            continue;
        }
        in_signature = line.starts_with("+ DKIM-Signature:");
        masked.push(if in_signature { "+ DKIM-Signature: (masked)" } else { line });
    }
    masked.join("\n")
}

/// [`session_output`] of the session these tests send: from 127.0.0.1 (which opendkim
/// signs for), From: in example.com (the domain it signs).
fn session(dir: &TempDir, manager: &ManagerProcess, name: &str) -> String {
    let extra = ["--connect-address", "inet:50443@[127.0.0.1]", "--header", "From:a@example.com"];
    session_output(dir, manager, name, &[&extra[..], &["--body", "Hello.\r\n"]].concat())
}

/// The manager's metrics text, through its controller.
pub(crate) fn metrics_text(dir: &TempDir) -> String {
    let spec = format!("unix:{}", dir.join("ctl.sock").display());
    let out = ctl(dir, "metrics", &["-s", &spec, "metrics"]);
    assert!(out.status.success(), "milter-manager-ctl metrics: {}", out.describe());
    out.stdout
}

/// A counter of the manager's metrics for `milter`.
pub(crate) fn metric(dir: &TempDir, family: &str, milter: &str) -> u64 {
    let text = metrics_text(dir);
    let sample = format!("milter_manager_milter_{family}_total{{milter=\"{milter}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&sample))
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
        .parse()
        .expect("a count")
}

/// The counts are taken when a session ends, a moment after the MTA is answered.
pub(crate) fn wait_for_metric(dir: &TempDir, family: &str, milter: &str, wanted: u64) -> u64 {
    let mut seen = 0;
    support::wait_for(support::deadline(), || {
        seen = metric(dir, family, milter);
        seen >= wanted
    });
    seen
}

const SESSIONS: usize = 6;

#[test]
fn libmilter_children_answer_the_same_with_and_without_kept_connections() {
    let dir = TempDir::new("reuse-libmilter");
    let pymilter = Pymilter::start_on(&dir, free_tcp_port(), "continue");
    let opendkim = OpenDkim::start(&dir);
    let children = [("pymilter", pymilter.port()), ("opendkim", opendkim.port())];
    let mut outputs = Vec::new();
    for reuse in [true, false] {
        let run_dir = TempDir::new(&format!("reuse-libmilter-{reuse}"));
        let manager = ManagerProcess::start(&run_dir, &config(&run_dir, &children, reuse));
        let runs: Vec<String> =
            (0..SESSIONS).map(|i| session(&run_dir, &manager, &format!("session-{i}"))).collect();
        let reused = SESSIONS as u64 - 1;
        if reuse {
            assert_eq!(wait_for_metric(&run_dir, "reused_connections", "pymilter", reused), reused);
        }
        // Every session but the first (reuse on) took pymilter's kept connection;
        // opendkim's never were, as it accepts at end-of-message.
        let expected = if reuse { reused } else { 0 };
        assert_eq!(metric(&run_dir, "reused_connections", "pymilter"), expected);
        assert_eq!(metric(&run_dir, "reused_connections", "opendkim"), 0);
        for milter in ["pymilter", "opendkim"] {
            assert_eq!(metric(&run_dir, "fallbacks", milter), 0, "{}", manager.log());
            assert_eq!(metric(&run_dir, "timeouts", milter), 0, "{}", manager.log());
        }
        assert!(runs.iter().all(|run| run == &runs[0]), "every session the same: {runs:#?}");
        outputs.push(runs[0].clone());
    }
    let output = &outputs[0];
    assert_eq!(outputs[0], outputs[1], "the same with and without reuse");
    // What the milters did is there: pymilter's header and body, opendkim's signature.
    assert!(output.contains("+ X-Pymilter: seen"), "{output}");
    assert!(output.contains("+ Replaced by pymilter."), "{output}");
    assert!(output.contains("+ DKIM-Signature: (masked)"), "{output}");
}

#[test]
fn a_milter_restarted_while_its_connections_are_kept_costs_the_mta_nothing() {
    let dir = TempDir::new("reuse-restart");
    let port = free_tcp_port();
    let mut pymilter = Pymilter::start_on(&dir, port, "continue");
    let manager = ManagerProcess::start(&dir, &config(&dir, &[("pymilter", port)], true));
    let first = session(&dir, &manager, "before-1");
    assert_eq!(session(&dir, &manager, "before-2"), first);
    assert_eq!(wait_for_metric(&dir, "reused_connections", "pymilter", 1), 1);

    // Killed while the manager keeps a connection to it, then started again.
    pymilter.kill();
    let _pymilter = Pymilter::start_on(&dir, port, "continue");
    for i in 0..3 {
        assert_eq!(session(&dir, &manager, &format!("after-{i}")), first, "{}", manager.log());
    }
    assert_eq!(metric(&dir, "fallbacks", "pymilter"), 0, "{}", manager.log());
    // The new milter's connection is kept in turn.
    assert!(wait_for_metric(&dir, "reused_connections", "pymilter", 3) >= 3, "{}", manager.log());
}

/// A milter whose connection breaks when a kept connection is first used: on each
/// connection it serves one conversation, and closes the connection at the second
/// CONNECT (as a milter host that restarted and answers the kept connection's first
/// packet with a reset). A new connection is served normally.
fn serve_until_second_connect(stream: TcpStream) {
    let mut connects = 0;
    serve_milter(stream, |command| match command {
        MilterCommand::Connect { .. } => {
            connects += 1;
            (connects < 2).then(|| vec![Reply::Continue])
        }
        MilterCommand::EndOfMessage { .. } => Some(vec![
            Reply::AddHeader { name: b"X-Scripted".to_vec(), value: b"yes".to_vec() },
            Reply::Continue,
        ]),
        MilterCommand::QuitNewConnection => Some(vec![]),
        _ => Some(vec![Reply::Continue]),
    })
}

#[test]
fn a_kept_connection_that_fails_on_first_use_is_replaced_unnoticed() {
    let dir = TempDir::new("reuse-first-use");
    let port = serve_tcp(|stream, _| serve_until_second_connect(stream));
    let manager = ManagerProcess::start(&dir, &config(&dir, &[("scripted", port)], true));
    let first = session(&dir, &manager, "first");
    assert!(first.contains("+ X-Scripted: yes"), "{first}");
    // Its kept connection is taken, and breaks at the first packet: a new connection
    // takes over, and the MTA gets the milter's own answers, not its fallback (reject).
    assert_eq!(session(&dir, &manager, "second"), first, "{}", manager.log());
    assert_eq!(wait_for_metric(&dir, "reconnections", "scripted", 1), 1);
    assert_eq!(metric(&dir, "reused_connections", "scripted"), 1);
    assert_eq!(metric(&dir, "fallbacks", "scripted"), 0);
    let log = manager.log();
    assert!(
        log.contains("scripted: a kept connection closed the connection before its first answer; connecting anew"),
        "{log}"
    );
}

/// The lines milter-test-client reported for its connection `[1]`, without the prefix.
fn report_lines(report: &str) -> Vec<String> {
    report.lines().filter_map(|line| line.strip_prefix("[1] ")).map(str::to_string).collect()
}

#[test]
fn through_a_kept_connection_the_milter_sees_each_session_whole() {
    // OpenDKIM's miltertest is the MTA, three times; milter-test-client (which answers
    // end-of-message with continue) reports what the manager sent it.
    support::require_program("/usr/bin/miltertest", "miltertest");
    let dir = TempDir::new("reuse-miltertest");
    let client = support::TestClient::start_tcp(&dir, &[]);
    let manager = ManagerProcess::start(&dir, &config(&dir, &[("client", client.port())], true));
    let script = support::source_path("tests/peers/miltertest_session.lua");
    for i in 0..3 {
        let mut command = Command::new("/usr/bin/miltertest");
        command.arg("-D").arg(format!("socket={}", manager.spec())).arg("-s").arg(&script);
        let run = run(&dir, &format!("miltertest-{i}"), &mut command, Duration::from_secs(60));
        assert!(run.status.success() && run.stdout.ends_with("done\n"), "{}", run.describe());
    }
    assert_eq!(wait_for_metric(&dir, "reused_connections", "client", 2), 2);
    let report = report_lines(&client.report());
    // One connection, negotiated once; each session ends with K, and all three are alike.
    assert!(report[0].starts_with("negotiate: "), "{report:#?}");
    let sessions: Vec<&[String]> =
        report[1..].split(|line| line == "quit-new-connection").collect();
    assert_eq!(sessions.len(), 4, "three sessions, each ended with K: {report:#?}");
    assert!(sessions[3].is_empty(), "{report:#?}");
    assert!(sessions[0].iter().any(|line| line.starts_with("end-of-message")), "{report:#?}");
    assert_eq!(sessions[1], sessions[0]);
    assert_eq!(sessions[2], sessions[0]);
    assert!(!report.iter().any(|line| line.starts_with("negotiate") && line != &report[0]));
}
