//! milter-performance-check through the real binary: against milter-test-client, against
//! small milters and SMTP servers written here (one that rejects some sessions, one that
//! never answers), against nothing at all, and with bad arguments. Every test checks the
//! counts the tool prints and its exit status.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

// --- The original's SMTP options -------------------------------------------------------

/// What a recording SMTP server saw in one session.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Every command line, without its CRLF (the DATA bytes are not commands).
    commands: Vec<String>,
    data: Vec<u8>,
    /// The index in `commands` of the first command read over TLS.
    tls_from: Option<usize>,
    /// When the connection was accepted.
    accepted: Option<Instant>,
}

/// A recording SMTP server: every session's commands and data, in connection order.
#[derive(Clone, Default)]
struct Recorder {
    sessions: Arc<Mutex<Vec<(usize, Seen)>>>,
}

impl Recorder {
    fn sorted(&self) -> Vec<Seen> {
        let mut sessions = self.sessions.lock().unwrap().clone();
        sessions.sort_by_key(|(number, _)| *number);
        sessions.into_iter().map(|(_, seen)| seen).collect()
    }

    fn count(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }
}

/// What a recording server offers and answers.
#[derive(Clone, Default)]
struct ServerOptions {
    xclient: bool,
    /// Every RCPT gets a 550.
    reject_rcpt: bool,
    /// STARTTLS with this configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The AUTH mechanisms its EHLO lists (none: no AUTH).
    auth: &'static [&'static str],
}

/// Starts a recording server; `xclient` says whether its EHLO offers XCLIENT, and
/// `reject_rcpt` refuses every RCPT with a 550.
fn recording_server(xclient: bool, reject_rcpt: bool) -> (u16, Recorder) {
    recording_server_with(ServerOptions { xclient, reject_rcpt, ..ServerOptions::default() })
}

fn recording_server_with(options: ServerOptions) -> (u16, Recorder) {
    let recorder = Recorder::default();
    let sessions = Arc::clone(&recorder.sessions);
    let port = serve_tcp(move |stream, number| {
        let mut seen = Seen { accepted: Some(Instant::now()), ..Seen::default() };
        let _ = record_session(stream, &options, &mut seen);
        sessions.lock().unwrap().push((number, seen));
    });
    (port, recorder)
}

fn record_session(
    mut stream: TcpStream,
    options: &ServerOptions,
    seen: &mut Seen,
) -> std::io::Result<()> {
    stream.write_all(b"220 smtp.test ESMTP\r\n")?;
    let Some(plain) = converse(BufReader::new(stream), options, false, seen)? else {
        return Ok(());
    };
    let config = Arc::clone(options.tls.as_ref().expect("STARTTLS only when offered"));
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    seen.tls_from = Some(seen.commands.len());
    converse(BufReader::new(rustls::StreamOwned::new(connection, plain)), options, true, seen)?;
    Ok(())
}

/// One SMTP conversation over `reader`; gives the stream back after a STARTTLS.
fn converse<S: Read + Write>(
    mut reader: BufReader<S>,
    options: &ServerOptions,
    in_tls: bool,
    seen: &mut Seen,
) -> std::io::Result<Option<S>> {
    let mut line = Vec::new();
    let mut read_line = |reader: &mut BufReader<S>, seen: &mut Seen| -> std::io::Result<bool> {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        seen.commands.push(String::from_utf8_lossy(&line).trim_end().to_string());
        Ok(true)
    };
    let send = |reader: &mut BufReader<S>, bytes: &[u8]| -> std::io::Result<()> {
        let stream = reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    };
    loop {
        if !read_line(&mut reader, seen)? {
            return Ok(None);
        }
        let command = seen.commands.last().unwrap().clone();
        let upper = command.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("EHLO") {
            let mut reply = String::from("250-smtp.test\r\n");
            if options.xclient {
                reply.push_str("250-XCLIENT NAME ADDR\r\n");
            }
            if options.tls.is_some() && !in_tls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if !options.auth.is_empty() {
                reply.push_str(&format!("250-AUTH {}\r\n", options.auth.join(" ")));
            }
            reply.push_str("250 8BITMIME\r\n");
            reply.into_bytes()
        } else if upper == "STARTTLS" && options.tls.is_some() && !in_tls {
            send(&mut reader, b"220 2.0.0 ready to start TLS\r\n")?;
            assert!(reader.buffer().is_empty(), "the client sent more after STARTTLS");
            return Ok(Some(reader.into_inner()));
        } else if upper.starts_with("AUTH ") {
            // Mechanism exchanges of RFC 4616, the LOGIN draft and RFC 2195 (its example
            // challenge); the test checks what the client sent, so any answer passes.
            let mechanism = upper.split(' ').nth(1).unwrap_or_default().to_string();
            let prompts: &[&[u8]] = match mechanism.as_str() {
                "PLAIN" if upper.split(' ').count() == 2 => &[b"334 \r\n"],
                "LOGIN" => &[b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"],
                "CRAM-MD5" => {
                    &[b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"]
                }
                _ => &[],
            };
            for prompt in prompts {
                send(&mut reader, prompt)?;
                if !read_line(&mut reader, seen)? {
                    return Ok(None);
                }
            }
            b"235 2.7.0 Authentication successful\r\n".to_vec()
        } else if upper.starts_with("XCLIENT") {
            b"220 smtp.test ESMTP\r\n".to_vec()
        } else if upper.starts_with("MAIL FROM:") {
            b"250 2.1.0 Ok\r\n".to_vec()
        } else if upper.starts_with("RCPT TO:") {
            if options.reject_rcpt {
                b"550 5.1.1 <nobody>: no such user\r\n".to_vec()
            } else {
                b"250 2.1.5 Ok\r\n".to_vec()
            }
        } else if upper == "DATA" {
            send(&mut reader, b"354 go ahead\r\n")?;
            let mut data_line = Vec::new();
            loop {
                data_line.clear();
                if reader.read_until(b'\n', &mut data_line)? == 0 {
                    return Ok(None);
                }
                if data_line == b".\r\n" {
                    break;
                }
                seen.data.extend_from_slice(&data_line);
            }
            b"250 2.0.0 queued\r\n".to_vec()
        } else if upper == "QUIT" {
            send(&mut reader, b"221 2.0.0 bye\r\n")?;
            return Ok(None);
        } else {
            b"502 5.5.2 what?\r\n".to_vec()
        };
        send(&mut reader, &reply)?;
    }
}

/// A server configuration with a self-signed certificate for `localhost` made now.
fn tls_server_config() -> (Arc<rustls::ServerConfig>, String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    (Arc::new(config), certified.cert.pem(), certified.signing_key.serialize_pem())
}

fn commands_starting(seen: &Seen, prefix: &str) -> Vec<String> {
    seen.commands.iter().filter(|c| c.starts_with(prefix)).cloned().collect()
}

#[test]
fn xclient_helo_and_forced_envelope_reach_the_server() {
    let (port, recorder) = recording_server(true, false);
    let dir = TempDir::new("perf-smtp-xclient");
    let mail = dir.join("mail.eml");
    std::fs::write(&mail, "From: file@example.net\nTo: file-to@example.org\n\nbody\n").unwrap();
    let port_text = port.to_string();
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--connect-host",
            "client.test",
            "--connect-address",
            "192.0.2.7",
            "--helo-fqdn",
            "helo.test",
            "--from",
            "ignored@example.net",
            "--force-from",
            "forced@example.net",
            "--recipient",
            "ignored@example.org",
            "--force-recipient",
            "one@example.org",
            "--force-recipient",
            "two@example.org",
            "--n-mails",
            "2",
            mail.to_str().unwrap(),
        ],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let sessions = recorder.sorted();
    assert_eq!(sessions.len(), 2);
    for seen in &sessions {
        assert_eq!(
            seen.commands,
            [
                "EHLO helo.test",
                "XCLIENT NAME=client.test ADDR=192.0.2.7",
                "EHLO helo.test",
                "MAIL FROM:<forced@example.net>",
                "RCPT TO:<one@example.org>",
                "RCPT TO:<two@example.org>",
                "DATA",
                "QUIT"
            ],
            "{seen:?}"
        );
    }

    // Without --force-*, the file's From: and To: win over --from and --recipient.
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--from",
            "ignored@example.net",
            "--recipient",
            "ignored@example.org",
            "--n-mails",
            "1",
            mail.to_str().unwrap(),
        ],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let last = recorder.sorted().pop().unwrap();
    assert_eq!(commands_starting(&last, "MAIL"), ["MAIL FROM:<file@example.net>"]);
    assert_eq!(commands_starting(&last, "RCPT"), ["RCPT TO:<file-to@example.org>"]);
    assert!(commands_starting(&last, "XCLIENT").is_empty());
}

#[test]
fn a_server_without_xclient_fails_each_session_saying_so() {
    let (port, recorder) = recording_server(false, false);
    let dir = TempDir::new("perf-smtp-no-xclient");
    let port_text = port.to_string();
    let finished = check(
        &dir,
        &["--smtp-port", &port_text, "--connect-host", "client.test", "--n-mails", "2"],
    );
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "errors: 2\n  protocol: 2 (first: the SMTP server at 127.0.0.1:{port} does not offer \
             XCLIENT, which --connect-host and --connect-address need (Postfix: list this client \
             in smtpd_authorized_xclient_hosts))\n"
        )),
        "{}",
        finished.describe()
    );
    // Nothing was sent as if from the real client.
    assert!(recorder.sorted().iter().all(|s| commands_starting(s, "MAIL").is_empty()));
}

#[test]
fn generated_mails_workers_lines_statistics_data_and_failure_responses() {
    let (port, recorder) = recording_server(false, false);
    let dir = TempDir::new("perf-smtp-generated");
    let data_file = dir.join("statistics.csv");
    let port_text = port.to_string();
    let data_arg = format!("--report-statistics-data={}", data_file.display());
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--from",
            "sender@example.net",
            "--recipient",
            "a@example.org",
            "--recipient",
            "b@example.org",
            "--n-additional-lines",
            "3",
            "--n-workers",
            "2",
            "--n-mails",
            "3",
            "--n-concurrent-connections",
            "2",
            &data_arg,
        ],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    // Two workers, each sending the 3 mails.
    assert!(
        finished.stdout.contains("sessions: 6 (completed: 6, errors: 0, concurrency: 4)\n"),
        "{}",
        finished.describe()
    );
    let sessions = recorder.sorted();
    assert_eq!(sessions.len(), 6);
    let line = std::str::from_utf8(milter_manager::tools::performance::ADDITIONAL_LINE).unwrap();
    for seen in &sessions {
        assert_eq!(commands_starting(seen, "MAIL"), ["MAIL FROM:<sender@example.net>"]);
        assert_eq!(
            commands_starting(seen, "RCPT"),
            ["RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>"]
        );
        let data = String::from_utf8_lossy(&seen.data);
        assert!(data.ends_with(&line.repeat(3)), "{data:?}");
        assert!(!data.ends_with(&line.repeat(4)), "{data:?}");
    }
    // One CSV line per session: end time, seconds, the bytes sent after DATA.
    let csv = std::fs::read_to_string(&data_file).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("wall clock time,response time,message size"));
    let size = sessions[0].data.len() + ".\r\n".len();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 6, "{csv}");
    for row in rows {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 3, "{row}");
        assert!(fields[0].len() == 27 && fields[0].ends_with('Z'), "{row}");
        assert!(fields[1].parse::<f64>().unwrap() > 0.0, "{row}");
        assert_eq!(fields[2], size.to_string(), "{row}");
    }

    // A refusing server: the responses are listed once each, with their counts.
    let (port, _) = recording_server(false, true);
    let port_text = port.to_string();
    let finished =
        check(&dir, &["--smtp-port", &port_text, "--n-mails", "3", "--report-failure-responses"]);
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert!(
        finished.stdout.ends_with(
            "failure responses: 1\n  reject at envelope-recipient: 3: 550 5.1.1 <nobody>: no such user\n"
        ),
        "{}",
        finished.describe()
    );
    let finished = check(
        &dir,
        &["--smtp-port", &port_text, "--n-mails", "1", "--report-failure-responses", "--json"],
    );
    let report: Value = serde_json::from_str(&finished.stdout).expect("JSON");
    assert_eq!(
        report["failure_responses"],
        serde_json::json!([{"outcome": "reject", "stage": "envelope-recipient",
                            "response": "550 5.1.1 <nobody>: no such user", "count": 1}])
    );
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--n-mails",
            "1",
            "--report-failure-responses",
            "--no-report-failure-responses",
        ],
    );
    assert!(!finished.stdout.contains("failure responses"), "{}", finished.describe());
}

#[test]
fn interval_and_period_space_the_sessions_out() {
    let dir = TempDir::new("perf-smtp-pace");
    for (args, n, at_least) in [
        (&["--interval=0.2"][..], 3, 0.2),
        (&["--interval", "200ms"][..], 0, 0.0),
        (&["--period=0.6s"][..], 3, 0.2),
    ] {
        let (port, recorder) = recording_server(false, false);
        let port_text = port.to_string();
        let mut all = vec!["--smtp-port", &port_text, "--n-mails", "3"];
        all.extend_from_slice(args);
        let finished = check(&dir, &all);
        if n == 0 {
            assert_eq!(exit_code(&finished), 2, "{}", finished.describe());
            assert!(finished.stderr.contains("--interval"), "{}", finished.stderr);
            continue;
        }
        assert_eq!(exit_code(&finished), 0, "{args:?}\n{}", finished.describe());
        let mut accepted: Vec<Instant> =
            recorder.sorted().iter().map(|s| s.accepted.unwrap()).collect();
        accepted.sort();
        assert_eq!(accepted.len(), n);
        for pair in accepted.windows(2) {
            // A sleep never ends early; 10 ms for the thread that accepts.
            let gap = (pair[1] - pair[0]).as_secs_f64();
            assert!(gap >= at_least - 0.01, "{args:?}: {gap} s");
        }
    }
}

#[test]
fn a_flood_runs_for_its_period_and_without_one_until_interrupted() {
    let dir = TempDir::new("perf-smtp-flood");
    let (port, recorder) = recording_server(false, false);
    let port_text = port.to_string();
    let finished = check(
        &dir,
        &["--smtp-port", &port_text, "--flood=0.3", "--n-concurrent-connections", "2", "--json"],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let report: Value = serde_json::from_str(&finished.stdout).expect("JSON");
    assert!(report["elapsed_seconds"].as_f64().unwrap() >= 0.3, "{report}");
    let sessions = report["sessions"].as_u64().unwrap();
    assert!(sessions >= 1, "{report}");
    assert_eq!(report["completed"].as_u64().unwrap(), sessions);

    let before = recorder.count();
    let child = Command::new(CHECK)
        .args(["--smtp-port", &port_text, "--flood", "--n-concurrent-connections", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let flooding = support::wait_for(support::deadline(), || recorder.count() >= before + 5);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(flooding, "the flood did not start");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("errors: 0\n"), "{stdout}");
    let sessions: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sessions: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(sessions >= 5, "{stdout}");
}

#[test]
fn shuffle_sends_every_file_in_another_order() {
    let dir = TempDir::new("perf-smtp-shuffle");
    let mails = dir.join("mails");
    std::fs::create_dir(&mails).unwrap();
    for n in 0..12 {
        std::fs::write(mails.join(format!("{n:02}.eml")), format!("Subject: {n:02}\n\nbody\n"))
            .unwrap();
    }
    let subjects = |shuffle: &str| {
        let (port, recorder) = recording_server(false, false);
        let port_text = port.to_string();
        let args = [
            "--smtp-port",
            &port_text,
            "--n-mails",
            "12",
            "--n-concurrent-connections",
            "1",
            shuffle,
            mails.to_str().unwrap(),
        ];
        let finished = check(&dir, &args);
        assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
        recorder
            .sorted()
            .iter()
            .map(|s| String::from_utf8_lossy(&s.data[9..11]).into_owned())
            .collect::<Vec<_>>()
    };
    let in_order: Vec<String> = (0..12).map(|n| format!("{n:02}")).collect();
    assert_eq!(subjects("--no-shuffle"), in_order);
    let shuffled = subjects("--shuffle");
    let mut sorted = shuffled.clone();
    sorted.sort();
    assert_eq!(sorted, in_order, "every file once");
    // 1 in 12! (about 2e-9) to come out in name order by chance.
    assert_ne!(shuffled, in_order);
}

#[test]
fn the_reading_timeout_names_itself() {
    // Greets, then reads and never answers.
    let port = serve_tcp(|mut stream, _| {
        let _ = stream.write_all(b"220 slow\r\n");
        let mut buffer = [0; 4096];
        while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
    });
    let dir = TempDir::new("perf-smtp-reading-timeout");
    let port_text = port.to_string();
    let finished =
        check(&dir, &["--smtp-port", &port_text, "--n-mails", "2", "--reading-timeout", "0.3"]);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "errors: 2\n  timeout: 2 (first: the SMTP server at 127.0.0.1:{port} did not answer \
             helo within 0.3 seconds (--reading-timeout))\n"
        )),
        "{}",
        finished.describe()
    );
}

#[test]
fn periodic_lines_add_up_to_the_run() {
    let (port, _) = recording_server(false, false);
    let dir = TempDir::new("perf-smtp-periodic");
    let port_text = port.to_string();
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--n-mails",
            "6",
            "--interval=0.05",
            "--report-periodically=0.1",
        ],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    let mut lines = finished.stdout.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "elapsed", "sessions", "per-sec", "min-ms", "avg-ms", "max-ms", "tempfail", "reject",
            "errors"
        ]
    );
    let periodic: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    assert!(!periodic.is_empty(), "{}", finished.stdout);
    let total: usize = periodic
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 6, "{}", finished.stdout);
    assert!(lines.next().unwrap().starts_with("target: smtp "), "{}", finished.stdout);
}

#[test]
fn postfix_takes_xclient_from_an_authorized_client_only() {
    let dir = TempDir::new("perf-postfix-xclient");
    let postfix = support::postfix::Postfix::start_with_main_cf(
        &dir,
        &[],
        &[("smtpd_authorized_xclient_hosts", "127.0.0.1")],
    );
    let port_text = postfix.smtp_port().to_string();
    let args = [
        "--smtp-port",
        &port_text,
        "--connect-host",
        "client.test",
        "--connect-address",
        "127.0.0.2",
        "--helo-fqdn",
        "helo.test",
        "--recipient",
        "someone@example.org",
        "--n-mails",
        "1",
    ];
    let finished = check(&dir, &args);
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert!(
        finished.stdout.contains("\n  pass: 1 (end-of-message: 1)\n"),
        "{}",
        finished.describe()
    );
    // Postfix logged the session as coming from the client XCLIENT named.
    let seen = support::wait_for(support::deadline(), || {
        postfix.maillog().contains("client=client.test[127.0.0.2]")
    });
    assert!(seen, "{}", postfix.maillog_tail(20));
    drop(postfix);

    let dir = TempDir::new("perf-postfix-no-xclient");
    let postfix = support::postfix::Postfix::start_with_main_cf(&dir, &[], &[]);
    let port_text = postfix.smtp_port().to_string();
    let mut args = args;
    args[1] = &port_text;
    let finished = check(&dir, &args);
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(finished.stdout.contains("does not offer XCLIENT"), "{}", finished.describe());
}

#[test]
fn starttls_auto_always_and_disable() {
    let (config, _, _) = tls_server_config();
    let tls = ServerOptions { tls: Some(config), ..ServerOptions::default() };
    let dir = TempDir::new("perf-smtp-starttls");
    let run = |options: &ServerOptions, how: &str| {
        let (port, recorder) = recording_server_with(options.clone());
        let port_text = port.to_string();
        let args = [
            "--smtp-server",
            "localhost",
            "--smtp-port",
            &port_text,
            "--helo-fqdn",
            "helo.test",
            "--n-mails",
            "2",
            how,
        ];
        (check(&dir, &args), recorder.sorted(), port)
    };
    let over_tls = [
        "EHLO helo.test",
        "STARTTLS",
        "EHLO helo.test",
        "MAIL FROM:<sender@example.com>",
        "RCPT TO:<receiver@example.com>",
        "DATA",
        "QUIT",
    ];
    for how in ["--starttls=auto", "--starttls=always"] {
        let (finished, sessions, _) = run(&tls, how);
        assert_eq!(exit_code(&finished), 0, "{how}\n{}", finished.describe());
        assert_eq!(sessions.len(), 2);
        for seen in &sessions {
            assert_eq!(seen.commands, over_tls, "{how}");
            // Everything after STARTTLS came through the TLS session.
            assert_eq!(seen.tls_from, Some(2), "{how}");
            assert!(!seen.data.is_empty());
        }
    }
    let plain = [
        "EHLO helo.test",
        "MAIL FROM:<sender@example.com>",
        "RCPT TO:<receiver@example.com>",
        "DATA",
        "QUIT",
    ];
    let (finished, sessions, _) = run(&tls, "--starttls=disable");
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert!(sessions.iter().all(|s| s.commands == plain && s.tls_from.is_none()), "{sessions:?}");
    let (finished, sessions, _) = run(&ServerOptions::default(), "--starttls=auto");
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert!(sessions.iter().all(|s| s.commands == plain), "{sessions:?}");

    let (finished, sessions, port) = run(&ServerOptions::default(), "--starttls=always");
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "errors: 2\n  protocol: 2 (first: the SMTP server at localhost:{port} does not offer \
             STARTTLS (--starttls=always))\n"
        )),
        "{}",
        finished.describe()
    );
    assert!(sessions.iter().all(|s| commands_starting(s, "MAIL").is_empty()));
    let finished = check(&dir, &["--milter", "inet:1@[127.0.0.1]", "--starttls=always"]);
    assert_eq!(exit_code(&finished), 2, "{}", finished.describe());
    assert!(finished.stderr.contains("--starttls"), "{}", finished.stderr);
}

#[test]
fn postfix_takes_starttls_with_a_certificate_made_now() {
    let dir = TempDir::new("perf-postfix-starttls");
    let (_, cert_pem, key_pem) = tls_server_config();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let postfix = support::postfix::Postfix::start_with_main_cf(
        &dir,
        &[],
        &[
            ("smtpd_tls_security_level", "may"),
            ("smtpd_tls_cert_file", &cert),
            ("smtpd_tls_key_file", &key),
            ("smtpd_tls_loglevel", "1"),
        ],
    );
    let port_text = postfix.smtp_port().to_string();
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--starttls=always",
            "--recipient",
            "someone@example.org",
            "--n-mails",
            "2",
        ],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert!(
        finished.stdout.contains("\n  pass: 2 (end-of-message: 2)\n"),
        "{}",
        finished.describe()
    );
    let seen = support::wait_for(support::deadline(), || {
        postfix.maillog().matches("TLS connection established from").count() >= 2
    });
    assert!(seen, "{}", postfix.maillog_tail(20));
}

/// The commands between the EHLO that preceded AUTH and MAIL.
fn auth_exchange(seen: &Seen) -> Vec<String> {
    let start = seen.commands.iter().position(|c| c.starts_with("AUTH")).unwrap_or_else(|| {
        panic!("no AUTH: {seen:?}");
    });
    let end = seen.commands.iter().position(|c| c.starts_with("MAIL")).unwrap_or_else(|| {
        panic!("no MAIL: {seen:?}");
    });
    seen.commands[start..end].to_vec()
}

#[test]
fn auth_sends_each_mechanisms_exact_exchange() {
    // RFC 2195's example user and secret; the server sends its example challenge.
    let (config, _, _) = tls_server_config();
    let all = ServerOptions { auth: &["PLAIN", "LOGIN", "CRAM-MD5"], ..ServerOptions::default() };
    let dir = TempDir::new("perf-smtp-auth");
    let cram = ["AUTH CRAM-MD5", "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"];
    for (mechanism, server, expected) in [
        ("plain", &all, &["AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm"][..]),
        ("login", &all, &["AUTH LOGIN", "dGlt", "dGFuc3RhYWZ0YW5zdGFhZg=="][..]),
        ("cram_md5", &all, &cram[..]),
        ("cram-md5", &all, &cram[..]),
        ("auto", &all, &cram[..]),
        (
            "auto",
            &ServerOptions { auth: &["LOGIN", "PLAIN"], tls: Some(config), ..all.clone() },
            &["AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm"][..],
        ),
    ] {
        let (port, recorder) = recording_server_with(server.clone());
        let port_text = port.to_string();
        let mechanism_arg = format!("--auth-mechanism={mechanism}");
        let args = [
            "--smtp-server",
            "localhost",
            "--smtp-port",
            &port_text,
            "--auth-user",
            "tim",
            "--auth-password",
            "tanstaaftanstaaf",
            &mechanism_arg,
            "--n-mails",
            "1",
        ];
        let finished = check(&dir, &args);
        assert_eq!(exit_code(&finished), 0, "{mechanism}\n{}", finished.describe());
        let seen = &recorder.sorted()[0];
        assert_eq!(auth_exchange(seen), expected, "{mechanism}");
        if server.tls.is_some() {
            // AUTH after STARTTLS, over TLS.
            let auth = seen.commands.iter().position(|c| c.starts_with("AUTH")).unwrap();
            assert!(seen.tls_from.is_some_and(|tls| tls <= auth), "{seen:?}");
        }
    }

    // --auth-map: the entry for the server, with the best mechanism offered.
    let (port, recorder) = recording_server_with(all.clone());
    let map = dir.join("sasl_passwd");
    std::fs::write(
        &map,
        format!(
            "# Postfix form\n[localhost]:{} other:x\n[localhost]:{port} tim:tanstaaftanstaaf\n",
            port + 1
        ),
    )
    .unwrap();
    let port_text = port.to_string();
    let map_arg = format!("--auth-map={}", map.display());
    let finished = check(
        &dir,
        &["--smtp-server", "localhost", "--smtp-port", &port_text, &map_arg, "--n-mails", "1"],
    );
    assert_eq!(exit_code(&finished), 0, "{}", finished.describe());
    assert_eq!(auth_exchange(&recorder.sorted()[0]), cram);
}

#[test]
fn auth_problems_are_one_line_naming_the_option() {
    let dir = TempDir::new("perf-smtp-auth-problems");
    let (port, recorder) =
        recording_server_with(ServerOptions { auth: &["PLAIN"], ..ServerOptions::default() });
    let port_text = port.to_string();
    let finished = check(
        &dir,
        &[
            "--smtp-port",
            &port_text,
            "--auth-user",
            "tim",
            "--auth-password",
            "x",
            "--auth-mechanism",
            "login",
            "--n-mails",
            "2",
        ],
    );
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "errors: 2\n  protocol: 2 (first: the SMTP server at 127.0.0.1:{port} does not offer \
             AUTH LOGIN (it offers PLAIN) (--auth-user, --auth-mechanism, --auth-map))\n"
        )),
        "{}",
        finished.describe()
    );
    assert!(recorder.sorted().iter().all(|s| commands_starting(s, "MAIL").is_empty()));

    let bad_map = dir.join("bad_map");
    std::fs::write(&bad_map, "# ok\nlocalhost:25 no-password\n").unwrap();
    let map_arg = format!("--auth-map={}", bad_map.display());
    for (args, expected) in [
        (vec!["--auth-user", "tim"], "--auth-password".to_string()),
        (vec!["--auth-mechanism", "digest-md5"], "--auth-mechanism".to_string()),
        (
            vec![&map_arg[..]],
            format!(
                "--auth-map: {}: line 2: no ':' between the user and the password; write \
                 HOST[:PORT] USER:PASSWORD",
                bad_map.display()
            ),
        ),
        (vec!["--auth-map=/nonexistent/map"], "--auth-map: cannot read /nonexistent/map".into()),
    ] {
        let finished = check(&dir, &args);
        assert_eq!(exit_code(&finished), 2, "{args:?}\n{}", finished.describe());
        assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
        assert!(finished.stderr.contains(&expected), "{args:?}: {}", finished.stderr);
    }
}

/// A stand-in for Dovecot's authentication service on a unix socket, speaking the
/// protocol Postfix's `smtpd_sasl_type = dovecot` client uses, so that Postfix's own
/// smtpd runs the AUTH dialogue with the check. It knows one user, tim, with RFC 2195's
/// secret, and checks PLAIN, LOGIN and CRAM-MD5 itself. Gives each success as
/// "MECHANISM user".
fn dovecot_auth_stand_in(socket: &std::path::Path) -> Arc<Mutex<Vec<String>>> {
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;
    const USER: &str = "tim";
    const SECRET: &str = "tanstaaftanstaaf";
    const CHALLENGE: &str = "<1896.697170952@postoffice.reston.mci.net>";
    let b64 = &base64::engine::general_purpose::STANDARD;
    let listener = UnixListener::bind(socket).unwrap();
    // smtpd runs as user postfix.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let successes: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = Arc::clone(&successes);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let recorded = Arc::clone(&recorded);
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut writer = stream.try_clone()?;
                let mut lines = BufReader::new(stream).lines();
                writer.write_all(
                    b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
                      MECH\tCRAM-MD5\tdictionary\tactive\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n",
                )?;
                // Sends a challenge; gives the next CONT line's data, decoded.
                let answer =
                    |writer: &mut std::os::unix::net::UnixStream,
                     lines: &mut std::io::Lines<BufReader<std::os::unix::net::UnixStream>>,
                     id: &str,
                     prompt: &[u8]|
                     -> std::io::Result<Vec<u8>> {
                        writeln!(writer, "CONT\t{id}\t{}", b64.encode(prompt))?;
                        let line = lines.next().transpose()?.unwrap_or_default();
                        let data = line.rsplit('\t').next().unwrap_or_default();
                        Ok(b64.decode(data).unwrap_or_default())
                    };
                loop {
                    let Some(line) = lines.next().transpose()? else { return Ok(()) };
                    let fields: Vec<&str> = line.split('\t').collect();
                    if fields[0] != "AUTH" {
                        continue;
                    }
                    let (id, mechanism) = (fields[1], fields[2]);
                    let resp = fields.iter().find_map(|f| f.strip_prefix("resp="));
                    let authenticated = match mechanism {
                        "PLAIN" => {
                            resp.and_then(|r| b64.decode(r).ok())
                                == Some(format!("\0{USER}\0{SECRET}").into_bytes())
                        }
                        "LOGIN" => {
                            let user = answer(&mut writer, &mut lines, id, b"Username:")?;
                            let password = answer(&mut writer, &mut lines, id, b"Password:")?;
                            user == USER.as_bytes() && password == SECRET.as_bytes()
                        }
                        "CRAM-MD5" => {
                            let response =
                                answer(&mut writer, &mut lines, id, CHALLENGE.as_bytes())?;
                            let mut mac =
                                hmac::Hmac::<md5::Md5>::new_from_slice(SECRET.as_bytes()).unwrap();
                            mac.update(CHALLENGE.as_bytes());
                            let digest: String = mac
                                .finalize()
                                .into_bytes()
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            response == format!("{USER} {digest}").into_bytes()
                        }
                        _ => false,
                    };
                    if authenticated {
                        recorded.lock().unwrap().push(format!("{mechanism} {USER}"));
                        writeln!(writer, "OK\t{id}\tuser={USER}")?;
                    } else {
                        writeln!(writer, "FAIL\t{id}\treason=wrong user or password")?;
                    }
                }
            });
        }
    });
    successes
}

#[test]
fn postfix_authenticates_each_mechanism_through_its_sasl_backend() {
    let dir = TempDir::new("perf-postfix-auth");
    let socket = dir.join("auth-client");
    let successes = dovecot_auth_stand_in(&socket);
    authenticate_through_postfix(&dir, &socket, &mut || successes.lock().unwrap().pop());
}

/// The same through a real Dovecot (Debian's dovecot-core) as Postfix's SASL backend:
/// its passwd-file holds the user, as a site's would.
#[test]
fn postfix_authenticates_each_mechanism_through_a_real_dovecot() {
    use std::os::unix::fs::PermissionsExt;
    support::require_program("/usr/sbin/dovecot", "dovecot-core");
    let dir = TempDir::new("perf-dovecot");
    // Dovecot's auth process (user dovecot) reads the users file here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("auth-client");
    let users = dir.join("users");
    // CRAM-MD5 needs the password as it is (or its CRAM-MD5 hash).
    std::fs::write(&users, "tim:{PLAIN}tanstaaftanstaaf\n").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    for sub in ["run", "state"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    let config = dir.join("dovecot.conf");
    std::fs::write(
        &config,
        format!(
            "base_dir = {run}\nstate_dir = {state}\nlog_path = {log}\nprotocols =\nssl = no\n\
             auth_mechanisms = plain login cram-md5\ndisable_plaintext_auth = no\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {users}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n\
             service auth {{\n  unix_listener {socket} {{\n    mode = 0666\n  }}\n}}\n",
            run = dir.join("run").display(),
            state = dir.join("state").display(),
            log = dir.join("dovecot.log").display(),
            users = users.display(),
            socket = socket.display(),
        ),
    )
    .unwrap();
    let mut command = Command::new("/usr/sbin/dovecot");
    command.arg("-F").arg("-c").arg(&config);
    let _dovecot = support::ChildGuard::spawn("dovecot", &mut command);
    let listening = support::wait_for(support::deadline(), || socket.exists());
    assert!(listening, "dovecot did not start:\n{}", support::read_lossy(&dir.join("dovecot.log")));
    authenticate_through_postfix(&dir, &socket, &mut || None);
}

/// Postfix with `smtpd_sasl_type = dovecot` on `socket`: each mechanism authenticates
/// user tim (`succeeded` names the last success the backend saw, if it can tell), and a
/// wrong password gets Postfix's 535 in one line.
fn authenticate_through_postfix(
    dir: &TempDir,
    socket: &std::path::Path,
    succeeded: &mut dyn FnMut() -> Option<String>,
) {
    let socket_path = socket.display().to_string();
    let postfix = support::postfix::Postfix::start_with_main_cf(
        dir,
        &[],
        &[
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_type", "dovecot"),
            ("smtpd_sasl_path", &socket_path),
            ("smtpd_sasl_security_options", "noanonymous"),
        ],
    );
    let port_text = postfix.smtp_port().to_string();
    for (mechanism, name) in
        [("plain", "PLAIN"), ("login", "LOGIN"), ("cram_md5", "CRAM-MD5"), ("auto", "CRAM-MD5")]
    {
        let mechanism_arg = format!("--auth-mechanism={mechanism}");
        let finished = check(
            dir,
            &[
                "--smtp-port",
                &port_text,
                "--auth-user",
                "tim",
                "--auth-password",
                "tanstaaftanstaaf",
                &mechanism_arg,
                "--recipient",
                "someone@example.org",
                "--n-mails",
                "1",
            ],
        );
        assert_eq!(exit_code(&finished), 0, "{mechanism}\n{}", finished.describe());
        assert!(
            finished.stdout.contains("\n  pass: 1 (end-of-message: 1)\n"),
            "{mechanism}\n{}",
            finished.describe()
        );
        if let Some(success) = succeeded() {
            assert_eq!(success, format!("{name} tim"), "{mechanism}");
        }
        let logged = format!("sasl_method={name}, sasl_username=tim");
        let seen = support::wait_for(support::deadline(), || postfix.maillog().contains(&logged));
        assert!(seen, "{logged}\n{}", postfix.maillog_tail(20));
    }
    // A wrong password: Postfix's 535 (with the backend's reason, if any), one line naming
    // the mechanism and the user.
    let finished = check(
        dir,
        &[
            "--smtp-port",
            &port_text,
            "--auth-user",
            "tim",
            "--auth-password",
            "wrong",
            "--auth-mechanism=plain",
            "--n-mails",
            "1",
        ],
    );
    assert_eq!(exit_code(&finished), 1, "{}", finished.describe());
    assert!(
        finished.stdout.contains(&format!(
            "protocol: 1 (first: the SMTP server at 127.0.0.1:{port_text} refused AUTH PLAIN as \
             \"tim\": 535 5.7.8 Error: authentication failed: "
        )),
        "{}",
        finished.describe()
    );
}

#[test]
fn a_second_ctrl_c_does_not_wait_for_running_sessions() {
    // Greets and then never answers: the session would wait for its reading timeout.
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&connected);
    let port = serve_tcp(move |mut stream, _| {
        let _ = stream.write_all(b"220 slow\r\n");
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut buffer = [0; 4096];
        while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
    });
    let port_text = port.to_string();
    let mut child = Command::new(CHECK)
        .args(["--smtp-port", &port_text, "--n-mails", "1", "--reading-timeout", "600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    assert!(support::wait_for(support::deadline(), || connected
        .load(std::sync::atomic::Ordering::SeqCst)));
    // Ctrl-C until it is gone: the first only stops new sessions, a later one exits.
    let deadline = support::deadline();
    let status = loop {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after repeated Ctrl-C");
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout, "", "no report after the second Ctrl-C");
}
