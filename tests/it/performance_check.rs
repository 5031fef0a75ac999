//! milter-performance-check through the real binary: against milter-test-client, against
//! small milters and SMTP servers written here (one that rejects some sessions, one that
//! never answers), against nothing at all, and with bad arguments. Every test checks the
//! counts the tool prints and its exit status.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};

use milter_manager::protocol::{Command as MilterCommand, Reply};
use serde_json::Value;
use support::milter::{milter_session, serve_tcp};
use support::{Finished, TempDir, TestClient, PERFORMANCE_CHECK as CHECK};

fn check(dir: &TempDir, args: &[&str]) -> Finished {
    support::run(dir, "milter-performance-check", Command::new(CHECK).args(args), support::TIMEOUT)
}

fn exit_code(finished: &Finished) -> i32 {
    finished.status.code().unwrap_or_else(|| panic!("killed by a signal\n{}", finished.describe()))
}

// ---------------------------------------------------------------------------------------

#[test]
fn milter_mode_against_the_test_client_reports_json_that_adds_up() {
    let dir = TempDir::new("perf-client");
    let client = TestClient::start_tcp(&dir, &[]);
    let spec = client.spec.clone();
    let finished = check(
        &dir,
        &["--milter", &spec, "--n-mails", "20", "--n-concurrent-connections", "4", "--json"],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert_eq!(finished.stdout.lines().count(), 1, "one JSON line\n{}", finished.describe());
    let report: Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON: {e}\n{}", finished.describe()));
    assert_eq!(report["mode"], "milter");
    assert_eq!(report["target"], spec);
    assert_eq!(report["concurrency"], 4);
    assert_eq!(report["sessions"], 20);
    assert_eq!(report["completed"], 20);
    let statuses = report["statuses"].as_object().expect("statuses is an object");
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["accept"], "{statuses:?}");
    let accept = &statuses["accept"];
    assert_eq!(accept["count"], 20);
    assert_eq!(accept["stages"]["end-of-message"], 20);
    assert_eq!(report["errors"]["count"], 0);
    assert_eq!(report["errors"]["kinds"], serde_json::json!({}));
    // The numbers fit together: percentiles in order, throughput = completed / elapsed.
    let latency = &report["latency_ms"];
    let [p50, p90, p99, max] =
        ["p50", "p90", "p99", "max"].map(|k| latency[k].as_f64().expect("a number"));
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{latency:?}");
    let elapsed = report["elapsed_seconds"].as_f64().expect("a number");
    assert!(elapsed > 0.0 && max / 1000.0 <= elapsed + 0.001, "{elapsed} s, max {max} ms");
    let throughput = report["throughput"].as_f64().expect("a number");
    assert!((throughput - 20.0 / elapsed).abs() <= 0.01 * throughput + 0.01, "{throughput}");

    // The client saw 20 complete sessions, each with its message.
    let (status, report) = client.stop();
    assert!(status.success());
    assert_eq!(report.lines().filter(|l| l.ends_with("] quit")).count(), 20, "{report}");
    assert_eq!(report.lines().filter(|l| l.contains("] end-of-message")).count(), 20);
}

#[test]
fn a_report_nobody_reads_ends_quietly() {
    let dir = TempDir::new("perf-stdout-closed");
    let client = TestClient::start_tcp(&dir, &[]);
    for (name, json) in [("text", None), ("json", Some("--json"))] {
        let mut command = Command::new(CHECK);
        command.args(["--milter", &client.spec, "--n-mails", "2"]).args(json);
        let out = support::run_with_stdout_closed(&dir, name, &mut command, support::TIMEOUT);
        support::assert_ended_quietly(&out);
    }
}

#[test]
fn rejects_and_temporary_failures_are_counted_not_errors() {
    // Connection k: k % 4 == 0 rejected at RCPT, == 1 answered 451 at end of message,
    // otherwise accepted at the end of message with a header added on the way.
    let port = serve_tcp(|stream, number| {
        milter_session(stream, |command| match command {
            MilterCommand::EnvelopeRecipient { .. } if number % 4 == 0 => vec![Reply::Reject],
            MilterCommand::EndOfMessage { .. } if number % 4 == 1 => {
                vec![Reply::ReplyCode { text: b"451 4.7.1 try again later".to_vec() }]
            }
            MilterCommand::EndOfMessage { .. } => vec![
                Reply::AddHeader { name: b"X-Checked".to_vec(), value: b"yes".to_vec() },
                Reply::Accept,
            ],
            _ => vec![Reply::Continue],
        })
    });
    let dir = TempDir::new("perf-reject");
    let spec = format!("inet:{port}@[127.0.0.1]");
    let finished =
        check(&dir, &["--milter", &spec, "--n-mails", "20", "--n-concurrent-connections", "3"]);
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let out = &finished.stdout;
    assert!(out.contains("sessions: 20 (completed: 20, errors: 0, concurrency: 3)\n"), "{out}");
    assert!(out.contains("\n  accept: 10 (end-of-message: 10)\n"), "{out}");
    assert!(out.contains("\n  temporary-failure: 5 (end-of-message: 5)\n"), "{out}");
    assert!(out.contains("\n  reject: 5 (envelope-recipient: 5)\n"), "{out}");
    assert!(out.ends_with("errors: 0\n"), "{out}");
}

#[test]
fn an_unreachable_milter_makes_every_session_an_error() {
    let dir = TempDir::new("perf-unreachable");
    let port = support::free_tcp_port();
    let spec = format!("inet:{port}@[127.0.0.1]");
    let finished = check(&dir, &["--milter", &spec, "--n-mails", "7"]);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    let out = &finished.stdout;
    assert!(out.contains("sessions: 7 (completed: 0, errors: 7, concurrency: 7)\n"), "{out}");
    assert!(out.contains("latency: none (no session completed)\nstatuses: none\n"), "{out}");
    assert!(
        out.contains(&format!(
            "errors: 7\n  connect: 7 (first: cannot connect to the milter at {spec}: \
             Connection refused"
        )),
        "{out}"
    );

    let socket = dir.join("nobody.sock");
    let spec = format!("unix:{}", socket.display());
    let finished = check(&dir, &["--milter", &spec, "--n-mails", "3", "--json"]);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    let report: Value = serde_json::from_str(&finished.stdout).expect("JSON");
    assert_eq!(report["completed"], 0);
    assert_eq!(report["latency_ms"], Value::Null);
    let connect = &report["errors"]["kinds"]["connect"];
    assert_eq!(connect["count"], 3);
    let Some(first) = connect["first"].as_str() else { panic!("{connect:?}") };
    assert!(first.contains("No such file or directory"), "{first}");
}

#[test]
fn a_silent_milter_times_out() {
    // Reads everything, answers nothing.
    let port = serve_tcp(|mut stream, _| {
        let mut buffer = [0; 4096];
        while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
    });
    let dir = TempDir::new("perf-timeout");
    let spec = format!("inet:{port}@[127.0.0.1]");
    let finished = check(&dir, &["--milter", &spec, "--n-mails", "4", "--timeout", "0.3"]);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(
            "errors: 4\n  timeout: 4 (first: the milter did not answer negotiate within 0.3 seconds)\n"
        ),
        "{}",
        finished.describe()
    );
}

/// What the test SMTP server received in the DATA of each session.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// An SMTP session: connection k % 4 == 0 gets 550 at RCPT, == 1 gets 451 after the
/// data, the others 250.
fn smtp_session(stream: TcpStream, number: usize, received: &Received) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 smtp.test ESMTP\r\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-smtp.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM:<") {
            b"250 2.1.0 Ok\r\n"
        } else if command.starts_with("RCPT TO:<") {
            if number % 4 == 0 {
                b"550 5.1.1 no such user\r\n"
            } else {
                b"250 2.1.5 Ok\r\n"
            }
        } else if command.starts_with("DATA") {
            writer.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&line);
            }
            received.lock().unwrap().push(data);
            if number % 4 == 1 {
                b"451 4.3.0 try later\r\n"
            } else {
                b"250 2.0.0 queued\r\n"
            }
        } else if command.starts_with("QUIT") {
            writer.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            b"502 5.5.2 what?\r\n"
        };
        writer.write_all(reply)?;
    }
}

#[test]
fn smtp_mode_counts_each_reply_at_its_stage() {
    let received: Received = Arc::default();
    let server_received = Arc::clone(&received);
    let port = serve_tcp(move |stream, number| {
        smtp_session(stream, number, &server_received).expect("SMTP session");
    });
    let dir = TempDir::new("perf-smtp");
    // Two mail files used in turn; one has a line that needs dot-stuffing.
    let first = dir.join("first.eml");
    let second = dir.join("second.eml");
    std::fs::write(
        &first,
        "From: a@example.net\nTo: b@example.org\nSubject: one\n\n.hidden\nend\n",
    )
    .unwrap();
    std::fs::write(&second, "From: a@example.net\nSubject: two\n\nsecond body\n").unwrap();
    let port_text = port.to_string();
    let args = [
        "--smtp-server",
        "127.0.0.1",
        "--smtp-port",
        &port_text,
        "--n-mails",
        "12",
        "--n-concurrent-connections",
        "2",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ];
    let finished = check(&dir, &args);
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let out = &finished.stdout;
    assert!(out.starts_with(&format!("target: smtp 127.0.0.1:{port}\n")), "{out}");
    assert!(out.contains("sessions: 12 (completed: 12, errors: 0, concurrency: 2)\n"), "{out}");
    assert!(out.contains("\n  pass: 6 (end-of-message: 6)\n"), "{out}");
    assert!(out.contains("\n  temporary-failure: 3 (end-of-message: 3)\n"), "{out}");
    assert!(out.contains("\n  reject: 3 (envelope-recipient: 3)\n"), "{out}");
    assert!(out.ends_with("errors: 0\n"), "{out}");

    // 9 sessions got past RCPT; what they sent is each file, CRLF and dot-stuffed.
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 9);
    let one = "From: a@example.net\r\nTo: b@example.org\r\nSubject: one\r\n\r\n..hidden\r\nend\r\n";
    let two = "From: a@example.net\r\nSubject: two\r\n\r\nsecond body\r\n";
    for data in received.iter() {
        let data = String::from_utf8_lossy(data);
        assert!(data == one || data == two, "{data:?}");
    }
    assert!(received.iter().any(|d| d == one.as_bytes()));
    assert!(received.iter().any(|d| d == two.as_bytes()));
}

#[test]
fn an_smtp_server_that_closes_is_an_error() {
    // Greets, reads EHLO, closes (after reading it, so the close is a FIN, not a reset).
    let port = serve_tcp(|mut stream, _| {
        let _ = stream.write_all(b"220 going away\r\n");
        let mut ehlo = Vec::new();
        let _ = BufReader::new(&mut stream).read_until(b'\n', &mut ehlo);
    });
    let dir = TempDir::new("perf-smtp-closed");
    let port_text = port.to_string();
    let finished = check(&dir, &["--smtp-port", &port_text, "--n-mails", "3"]);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "errors: 3\n  closed: 3 (first: the SMTP server at 127.0.0.1:{port} closed the \
             connection at helo)\n"
        )),
        "{}",
        finished.describe()
    );
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    let dir = TempDir::new("perf-usage");
    for (args, expected) in [
        (&["--bogus"][..], "unexpected argument '--bogus'"),
        (&["--n-mails", "0"], "--n-mails"),
        (&["--n-concurrent-connections", "x"], "--n-concurrent-connections"),
        (&["--timeout=-1"], "positive number of seconds"),
        (&["--milter", "tcp:10025"], "unknown type \"tcp\""),
        (&["--milter", "inet:10025", "--smtp-port", "25"], "cannot be used with"),
        (&["/nonexistent/mail.eml"], "cannot read the mail file /nonexistent/mail.eml"),
    ] {
        let finished = check(&dir, args);
        assert_eq!(exit_code(&finished), 2, "{args:?}\n{}", finished.describe());
        assert_eq!(finished.stdout, "", "{args:?}");
        assert_eq!(finished.stderr.lines().count(), 1, "{args:?}\n{}", finished.stderr);
        assert!(
            finished.stderr.starts_with("milter-performance-check: ")
                && finished.stderr.contains(expected),
            "{args:?}: {}",
            finished.stderr
        );
    }
}
