//! End to end with real peers: Postfix in front, milter-manager in the middle, real child
//! milters behind it, the delivered mail checked byte by byte (harness: `support::postfix`).
//!
//! ```text
//! send_mail -> Postfix -> milter-manager -> [milter-test-client, pymilter_modifier.py, opendkim]
//!                 └-> sink: the delivered messages
//! ```
//!
//! pymilter_modifier.py rejects RCPT <reject@example.org> (550 5.7.1) and, at end of
//! message, adds `X-Pymilter: seen` and replaces the body; opendkim signs mail from
//! example.com. The children's order matters: opendkim comes last, so it must be given the
//! message as pymilter left it, or the signature of the delivered message does not verify.
//!
//! Needs root (Postfix) and the Debian packages postfix, opendkim, opendkim-tools,
//! python3-milter and python3-dkim. These tests fail, never skip, when something is
//! missing: `scripts/install-test-deps.sh` installs it all.

use crate::support;
use crate::support::postfix;

use postfix::{simple_message, ManagedMilter, Manager, OpenDkim, Postfix, Pymilter, PYMILTER_BODY};
use support::{deadline, wait_for, TempDir, TestClient};

const SENDER: &str = "sender@example.com";
const RECIPIENT: &str = "ok@example.org";
/// pymilter_modifier.py refuses it at RCPT.
const REJECTED: &str = "reject@example.org";

const BODY: &str = "Original body.\nSecond original line.\n";
const BODY_CRLF: &[u8] = b"Original body.\r\nSecond original line.\r\n";

/// Postfix -> milter-manager -> [milter-test-client, pymilter, opendkim]. Fields drop in
/// order: Postfix first, the temporary directory last.
struct Chain {
    postfix: Postfix,
    manager: Manager,
    test_client: TestClient,
    pymilter: Pymilter,
    opendkim: OpenDkim,
    _dir: TempDir,
}

impl Chain {
    fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let test_client = TestClient::start_tcp(&dir, &[]);
        let pymilter = Pymilter::start(&dir);
        let opendkim = OpenDkim::start(&dir);
        let manager = Manager::start(
            &dir,
            &[
                ManagedMilter {
                    name: "test-client",
                    port: test_client.port(),
                    fallback_status: None,
                },
                ManagedMilter {
                    name: "pymilter",
                    port: pymilter.port(),
                    fallback_status: Some("accept"),
                },
                ManagedMilter { name: "opendkim", port: opendkim.port(), fallback_status: None },
            ],
        );
        let postfix = Postfix::start(&dir, manager.port());
        Self { postfix, manager, test_client, pymilter, opendkim, _dir: dir }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== milter-test-client report =====\n{}===== end of report =====",
                self.test_client.report()
            );
        }
    }
}

#[test]
fn postfix_signs_through_opendkim_directly() {
    let dir = TempDir::new("postfix-opendkim");
    let opendkim = OpenDkim::start(&dir);
    let postfix = Postfix::start(&dir, opendkim.port());

    let message = simple_message(SENDER, &[RECIPIENT], "signed directly", BODY);
    let transcript = postfix.send(SENDER, &[RECIPIENT], &message);
    assert!(transcript.accepted(), "Postfix accepts the message\n{}", transcript.describe());

    let delivered = postfix.wait_for_deliveries(1);
    let mail = &delivered[0];
    assert_eq!(mail.mail_from, format!("<{SENDER}>"), "envelope sender");
    assert_eq!(mail.recipients, [format!("<{RECIPIENT}>")], "envelope recipients");
    assert_eq!(mail.body(), BODY_CRLF, "the body is delivered unchanged\n{}", mail.text());
    let signatures = mail.header_values("DKIM-Signature");
    assert_eq!(signatures.len(), 1, "one DKIM-Signature\n{}", mail.text());
    assert!(
        signatures[0].contains("d=example.com;") && signatures[0].contains("s=test;"),
        "signed for example.com with selector test: {}",
        signatures[0]
    );
    opendkim.assert_signed(mail);
}

#[test]
fn postfix_through_manager_delivers_modified_and_signed_mail() {
    let chain = Chain::start("postfix-manager-modify");
    let message = simple_message(SENDER, &[RECIPIENT], "through the manager", BODY);
    let transcript = chain.postfix.send(SENDER, &[RECIPIENT], &message);
    assert!(transcript.accepted(), "Postfix accepts the message\n{}", transcript.describe());

    let delivered = chain.postfix.wait_for_deliveries(1);
    let mail = &delivered[0];
    assert_eq!(mail.recipients, [format!("<{RECIPIENT}>")], "envelope recipients");
    assert_eq!(
        mail.header_values("X-Pymilter"),
        ["seen"],
        "pymilter's header is there once\n{}",
        mail.text()
    );
    assert_eq!(
        mail.body(),
        PYMILTER_BODY,
        "pymilter's body replaced the original\n{}",
        mail.text()
    );
    assert_eq!(mail.header_values("DKIM-Signature").len(), 1, "one signature\n{}", mail.text());
    // opendkim signed the message as pymilter left it: the replaced body verifies.
    chain.opendkim.assert_signed(mail);

    // The statistics lines the original's log analyzer reads.
    let log = chain.manager.output();
    assert!(
        log.contains("[statistics] [milter][header][add](")
            && log.contains("X-Pymilter=seen: pymilter"),
        "the manager logs pymilter's header\n{log}"
    );
    assert!(log.contains("[statistics] [session][header][add]("), "{log}");
    assert!(log.contains("[statistics] [milter][end][end-of-message][pass]["), "{log}");

    let report = chain.test_client.report();
    assert!(
        report.lines().any(|line| line.contains("envelope-from:") && line.contains(SENDER)),
        "milter-test-client saw the envelope sender\n{report}"
    );
    assert!(
        report.lines().any(|line| line.contains("envelope-recipient:") && line.contains(RECIPIENT)),
        "milter-test-client saw the recipient\n{report}"
    );
}

#[test]
fn postfix_through_manager_rejects_a_recipient() {
    let chain = Chain::start("postfix-manager-reject");
    let recipients = [RECIPIENT, REJECTED];
    let message = simple_message(SENDER, &recipients, "one recipient refused", BODY);
    let transcript = chain.postfix.send(SENDER, &recipients, &message);

    let refused = transcript.rcpt_reply(REJECTED);
    assert_eq!(refused.code, 550, "RCPT {REJECTED}\n{}", transcript.describe());
    assert!(
        refused.lines[0].starts_with("550 5.7.1 "),
        "pymilter's reply reaches the client: {:?}\n{}",
        refused.lines,
        transcript.describe()
    );
    let accepted = transcript.rcpt_reply(RECIPIENT);
    assert_eq!(accepted.code, 250, "RCPT {RECIPIENT}\n{}", transcript.describe());
    assert!(transcript.accepted(), "the message is accepted\n{}", transcript.describe());

    let delivered = chain.postfix.wait_for_deliveries(1);
    assert_eq!(delivered.len(), 1, "one delivery");
    let mail = &delivered[0];
    assert_eq!(
        mail.recipients,
        [format!("<{RECIPIENT}>")],
        "delivered to the accepted recipient only"
    );
    assert_eq!(mail.header_values("X-Pymilter"), ["seen"], "modified\n{}", mail.text());
    chain.opendkim.assert_signed(mail);
    assert!(
        chain.postfix.maillog().contains("milter-reject: RCPT from"),
        "Postfix logs the milter's reject\n{}",
        chain.postfix.maillog_tail(20)
    );
}

/// The manager takes Postfix's no-reply-header offer, so Postfix streams the headers and a
/// child's refusal at a header is told at end-of-header. The SMTP client must see just
/// what it sees with the child alone: the refusal as the reply to the final `.`.
#[test]
fn postfix_through_manager_refuses_a_message_for_a_header() {
    let dir = TempDir::new("postfix-manager-header-reject");
    let pymilter = Pymilter::start(&dir);
    let manager = Manager::start(
        &dir,
        &[ManagedMilter { name: "pymilter", port: pymilter.port(), fallback_status: None }],
    );
    let postfix = Postfix::start(&dir, manager.port());
    let message = simple_message(SENDER, &[RECIPIENT], "refused for a header", BODY).replacen(
        "Subject:",
        "X-Reject-Me: yes\r\nSubject:",
        1,
    );
    let transcript = postfix.send(SENDER, &[RECIPIENT], &message);

    let refused = transcript.end_of_data.as_ref().expect("the message was sent");
    assert_eq!(refused.code, 550, "the reply to the final dot\n{}", transcript.describe());
    assert!(
        refused.lines[0].starts_with("550 5.7.1 header refused"),
        "pymilter's reply reaches the client: {:?}\n{}",
        refused.lines,
        transcript.describe()
    );
    let log = pymilter.log();
    let headers: Vec<&str> = log.lines().filter_map(|line| line.split(" header ").nth(1)).collect();
    assert_eq!(
        headers.last(),
        Some(&"X-Reject-Me"),
        "the headers after the refused one reach the child no more\n{log}"
    );
    assert!(headers.contains(&"From"), "the headers before it do\n{log}");
    assert!(!log.contains(" eom"), "the message never reaches end-of-message\n{log}");
    // Postfix logs through syslog, after its reply: wait for the line.
    let logged =
        wait_for(deadline(), || postfix.maillog().contains("milter-reject: END-OF-MESSAGE"));
    assert!(logged, "Postfix logs the milter's reject\n{}", postfix.maillog_tail(20));
}

#[test]
fn postfix_through_manager_survives_a_killed_child() {
    let mut chain = Chain::start("postfix-manager-killed-child");

    let first = simple_message(SENDER, &[RECIPIENT], "before the kill", BODY);
    let transcript = chain.postfix.send(SENDER, &[RECIPIENT], &first);
    assert!(transcript.accepted(), "first message accepted\n{}", transcript.describe());
    let delivered = chain.postfix.wait_for_deliveries(1);
    assert_eq!(delivered[0].header_values("X-Pymilter"), ["seen"], "{}", delivered[0].text());
    chain.opendkim.assert_signed(&delivered[0]);

    // pymilter dies; its fallback_status is accept: mail flows on without it.
    chain.pymilter.kill();

    let second = simple_message(SENDER, &[RECIPIENT], "after the kill", BODY);
    let transcript = chain.postfix.send(SENDER, &[RECIPIENT], &second);
    assert!(
        transcript.accepted(),
        "second message accepted although pymilter is gone\n{}",
        transcript.describe()
    );
    let delivered = chain.postfix.wait_for_deliveries(2);
    let mail = &delivered[1];
    assert!(
        mail.header_values("Subject") == ["after the kill"],
        "the second delivery is the second message\n{}",
        mail.text()
    );
    assert!(mail.header_values("X-Pymilter").is_empty(), "no pymilter header\n{}", mail.text());
    assert_eq!(mail.body(), BODY_CRLF, "the original body\n{}", mail.text());
    chain.opendkim.assert_signed(mail);
    assert_eq!(chain.manager.exited(), None, "the manager is still running");
}
