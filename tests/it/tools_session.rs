//! milter-test-server drives milter-test-client through a whole session (macros at every
//! stage, two recipients, headers, a 200 KiB body, a second message on the same
//! connection) and the client's report shows exactly what was sent.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{TestClient, TEST_SERVER as SERVER};

/// Stops milter-test-client with SIGTERM, which it exits 0 on, and returns its report.
fn report_of(client: TestClient) -> String {
    let (status, report) = client.stop();
    assert!(status.success(), "milter-test-client exited with {status}");
    report
}

fn run_server(dir: &Path, args: &[String]) -> Output {
    Command::new(SERVER)
        .arg("-s")
        .arg(format!("unix:{}", dir.join("client.sock").display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn escape(bytes: &[u8]) -> String {
    milter_manager::text::escape(bytes)
}

#[test]
fn whole_session_is_reported_exactly() {
    let dir = support::TempDir::new("whole-session");
    let client = TestClient::start_unix(&dir, &[]);
    // 200 KiB of every byte value but CR and LF, NUL included, in CRLF-ended lines. It
    // travels in a mail file: a command-line argument cannot hold a NUL.
    let body: Vec<u8> = (0..200 * 1024u32)
        .map(|i| match (i % 80, (i % 251) as u8) {
            (78, _) => b'\r',
            (79, _) => b'\n',
            (_, b'\r' | b'\n') => 0,
            (_, byte) => byte,
        })
        .collect();
    assert!(body.len() > 3 * 65535);
    let mail = dir.path().join("body.eml");
    std::fs::write(&mail, [b"X-From-File: ignored\n\n".as_slice(), &body].concat()).unwrap();
    let args: Vec<String> = [
        "--name",
        "mts-test",
        "--connect-host",
        "client.example.net",
        "--connect-address",
        "inet:2525@[192.0.2.7]",
        "--helo-fqdn",
        "helo.example.net",
        "--from",
        "<sender@example.net> SIZE=204800",
        "--recipient",
        "<rcpt1@example.org>",
        "--recipient",
        "<rcpt2@example.org> NOTIFY=NEVER",
        "--header",
        "From: Sender <sender@example.net>",
        "--header",
        "Subject: folded\n\tsubject",
        "--header",
        "X-Empty:",
        "--connect-macro",
        "{client_ptr}:client.example.net",
        "--helo-macro",
        "{tls_version}:TLSv1.3",
        "--envelope-from-macro",
        "{auth_type}:PLAIN",
        "--envelope-recipient-macro",
        "{rcpt_extra}:yes",
        "--data-macro",
        "{data_macro}:d",
        "--end-of-header-macro",
        "{eoh_macro}:h",
        "--end-of-message-macro",
        "{eom_macro}:m",
        "--authenticated-name",
        "alice",
        "--n-messages",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--mail-file".to_string(), mail.display().to_string()])
    .collect();
    let output = run_server(dir.path(), &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.matches("status: pass\n").count(), 2, "{stdout}");
    assert!(stdout.contains("elapsed-time: "), "{stdout}");
    let report = report_of(client);
    let lines: Vec<&str> = report.lines().collect();

    // What the client must have printed, in order (--header replaces the file's headers).
    let mut expected = vec![
        "[1] negotiate: version=6 actions=add-headers|change-body|add-envelope-recipient|delete-envelope-recipient|change-headers|quarantine|change-envelope-from|add-envelope-recipient-with-parameters|set-symbol-list steps=no-connect|no-helo|no-envelope-from|no-envelope-recipient|no-body|no-headers|no-end-of-header|no-reply-header|no-unknown|no-data|skip|envelope-recipient-rejected|no-reply-connect|no-reply-helo|no-reply-envelope-from|no-reply-envelope-recipient|no-reply-data|no-reply-unknown|no-reply-end-of-header|no-reply-body|header-value-with-leading-space".to_string(),
    ];
    let hostname = nix_hostname();
    expected.push(format!(
        "[1] define-macro: stage=connect j=<{hostname}> {{daemon_name}}=<mts-test> v=<milter-test-server> _=<client.example.net [192.0.2.7]> {{client_ptr}}=<client.example.net>"
    ));
    expected.push("[1] connect: host=<client.example.net> address=<inet:2525@[192.0.2.7]>".into());
    expected.push("[1] define-macro: stage=helo {tls_version}=<TLSv1.3>".into());
    expected.push("[1] helo: fqdn=<helo.example.net>".into());
    for message in 1..=2 {
        let qid = format!("4Q{message:08X}");
        expected.push(
            "[1] define-macro: stage=envelope-from {auth_authen}=<alice> {mail_addr}=<sender@example.net> {auth_type}=<PLAIN>".into(),
        );
        expected.push(
            "[1] envelope-from: address=<<sender@example.net>> parameter=<SIZE=204800>".into(),
        );
        for (n, parameter) in [(1, ""), (2, " parameter=<NOTIFY=NEVER>")] {
            expected.push(format!(
                "[1] define-macro: stage=envelope-recipient i=<{qid}> {{rcpt_addr}}=<rcpt{n}@example.org> {{rcpt_host}}=<example.org> {{rcpt_mailer}}=<smtp> {{rcpt_extra}}=<yes>"
            ));
            expected.push(format!(
                "[1] envelope-recipient: address=<<rcpt{n}@example.org>>{parameter}"
            ));
        }
        expected.push(format!("[1] define-macro: stage=data i=<{qid}> {{data_macro}}=<d>"));
        expected.push("[1] data".into());
        for (name, value) in [
            ("From", "Sender <sender@example.net>"),
            ("Subject", "folded\\n\\tsubject"),
            ("X-Empty", ""),
        ] {
            expected.push(format!("[1] define-macro: stage=header i=<{qid}>"));
            expected.push(format!("[1] header: name=<{name}> value=<{value}>"));
        }
        expected.push(format!("[1] define-macro: stage=end-of-header i=<{qid}> {{eoh_macro}}=<h>"));
        expected.push("[1] end-of-header".into());
        for chunk in body.chunks(65535) {
            expected.push(format!("[1] define-macro: stage=body i=<{qid}>"));
            expected.push(format!("[1] body: size={} chunk=<{}>", chunk.len(), escape(chunk)));
        }
        expected
            .push(format!("[1] define-macro: stage=end-of-message i=<{qid}> {{eom_macro}}=<m>"));
        expected.push("[1] end-of-message: size=0".into());
        expected.push("[1] abort".into());
    }
    expected.push("[1] quit".into());
    assert_eq!(
        lines.len(),
        expected.len(),
        "report:\n{}",
        report.chars().take(4000).collect::<String>()
    );
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line, want, "line {}", i + 1);
    }
}

#[test]
fn mail_file_and_output_message() {
    let dir = support::TempDir::new("mail-file");
    let client = TestClient::start_unix(&dir, &["--no-report-request"]);
    let mail = dir.path().join("mail.eml");
    std::fs::write(
        &mail,
        "From: Alice <alice@example.net>\nTo: bob@example.org\nSubject: hi\n\nline one\nline two\n",
    )
    .unwrap();
    let output = run_server(
        dir.path(),
        &["--mail-file".into(), mail.display().to_string(), "--output-message".into()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let expected = "status: pass
------------------------------
  envelope-from: <alice@example.net>
  envelope-recipient: <bob@example.org>
------------------------------
  From: Alice <alice@example.net>
  To: bob@example.org
  Subject: hi

line one
line two
";
    assert!(stdout.starts_with(expected), "{stdout}");
    // --no-report-request: nothing about the session is printed.
    assert_eq!(report_of(client), "");
}

fn nix_hostname() -> String {
    String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap().trim().to_string()
}

#[test]
fn version_8_is_offered_as_the_original_does_and_gets_a_version_6_session() {
    let dir = support::TempDir::new("negotiate-8");
    let client = TestClient::start_unix(&dir, &[]);
    let mut lines = Vec::new();
    for version in ["6", "8"] {
        let out = run_server(dir.path(), &["--negotiate-version".into(), version.into()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("status: pass"), "{version}: {out:?}");
    }
    let report = report_of(client);
    for line in report.lines().filter(|l| l.contains("] negotiate: ")) {
        lines.push(line.split_once("] ").unwrap().1.to_string());
    }
    assert_eq!(lines.len(), 2, "{report}");
    // The version field is all that differs on the wire.
    assert!(lines[0].starts_with("negotiate: version=6 "), "{}", lines[0]);
    assert_eq!(lines[1], lines[0].replace("version=6 ", "version=8 "));

    let out = run_server(dir.path(), &["--negotiate-version".into(), "5".into()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "milter-test-server: --negotiate-version 5: protocol versions are 2, 3, 4 and 6 (7 and 8 \
         offer what 6 does)\n"
    );
}

#[test]
fn output_cut_short_by_the_reader_ends_quietly() {
    let dir = support::TempDir::new("broken-pipe");
    let client = TestClient::start_unix(&dir, &[]);
    // The reader is gone before the server prints anything, as `| head` is after its lines.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(SERVER)
        .arg("-s")
        .arg(format!("unix:{}", dir.path().join("client.sock").display()))
        .args(["--output-message", "--body", "Hello.\r\n"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    drop(client);
}

/// Answers every command with continue and end-of-message with an added header and
/// accept; the connect of each session waits until `together` sessions are connected (or
/// 20 s), then answers temporary failure if they never were.
fn accepting_milter(together: usize) -> u16 {
    use milter_manager::protocol::{Command as MilterCommand, Reply};
    use std::sync::{Arc, Condvar, Mutex};
    let arrived = Arc::new((Mutex::new(0), Condvar::new()));
    support::milter::serve_tcp(move |stream, _| {
        let arrived = Arc::clone(&arrived);
        support::milter::milter_session(stream, move |command| match command {
            MilterCommand::Connect { .. } => {
                let (count, changed) = &*arrived;
                let mut count = count.lock().unwrap();
                *count += 1;
                changed.notify_all();
                let timeout = std::time::Duration::from_secs(20);
                let (count, _) =
                    changed.wait_timeout_while(count, timeout, |n| *n < together).unwrap();
                vec![if *count >= together { Reply::Continue } else { Reply::TemporaryFailure }]
            }
            MilterCommand::EndOfMessage { .. } => vec![
                Reply::AddHeader { name: b"X-Added".to_vec(), value: b"yes".to_vec() },
                Reply::Accept,
            ],
            _ => vec![Reply::Continue],
        })
    })
}

fn run_against(port: u16, args: &[&str]) -> Output {
    Command::new(SERVER)
        .args(["-s", &format!("inet:{port}@[127.0.0.1]")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn threads_run_sessions_at_once_and_print_each_whole_in_order() {
    // Run one after the other, the first session would wait for the others in vain.
    let port = accepting_milter(3);
    let out = run_against(port, &["--threads", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let shown: Vec<&str> =
        stdout.lines().map(|l| l.split_once(": ").map_or(l, |(key, _)| key)).collect();
    let one = ["status", "elapsed-time"];
    let expected: Vec<&str> = (0..3).flat_map(|_| ["session"].into_iter().chain(one)).collect();
    assert_eq!(shown, expected, "{stdout}");
    let labels: Vec<&str> = stdout.lines().filter(|l| l.starts_with("session: ")).collect();
    assert_eq!(labels, ["session: 1", "session: 2", "session: 3"]);
    assert_eq!(stdout.matches("status: accept at end-of-message\n").count(), 3, "{stdout}");

    let out = run_against(port, &["--threads", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads <THREADS>"), "{out:?}");
}

#[test]
fn color_marks_the_changes_when_asked_or_on_a_terminal_only() {
    let port = accepting_milter(1);
    let added = "+ X-Added: yes\n";
    let colored = "\x1b[32m+ X-Added: yes\x1b[0m\n";
    for (color, expected) in [
        (Some("--color=yes"), colored),
        (Some("--color"), added),
        (Some("--color=auto"), added),
        (Some("--color=no"), added),
        (None, added),
    ] {
        let mut args = vec!["--output-message"];
        args.extend(color);
        let out = run_against(port, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{color:?}: {out:?}");
        assert!(stdout.contains(expected), "{color:?}: {stdout}");
        // Only the change is colored.
        let escapes = if expected == colored { 2 } else { 0 };
        assert_eq!(stdout.matches('\x1b').count(), escapes, "{color:?}: {stdout}");
    }
}
