//! Whole sessions against scripted milters (and against the test client).

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::{Actions, Command, Deframer, Negotiation, Reply, Steps};
use crate::status::Status;
use crate::tools::test_client::TestClientSession;
use crate::tools::Ending;

/// Runs the session against a milter given as a function from each command to its
/// replies.
fn run(
    script: Script,
    mut milter: impl FnMut(&Command) -> Vec<Reply>,
) -> (TestServerSession, Vec<Command>) {
    let now = Instant::now();
    let mut session = TestServerSession::new(script, now);
    let mut deframer = Deframer::default();
    let mut received = Vec::new();
    while !session.is_done() {
        let output = session.take_output();
        assert!(!output.is_empty(), "the session waits for a reply nobody owes");
        deframer.push(&output);
        let mut answer = Vec::new();
        while let Some(frame) = deframer.next_frame() {
            let frame = frame.unwrap();
            let command = Command::decode(frame.code, frame.data).unwrap();
            for reply in milter(&command) {
                reply.encode(&mut answer);
            }
            received.push(command);
        }
        session.handle_bytes(&answer, now);
    }
    deframer.push(&session.take_output());
    while let Some(frame) = deframer.next_frame() {
        let frame = frame.unwrap();
        received.push(Command::decode(frame.code, frame.data).unwrap());
    }
    (session, received)
}

fn plain_milter(steps: Steps) -> impl FnMut(&Command) -> Vec<Reply> {
    move |command| match command {
        Command::Negotiate(_) => {
            vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, steps))]
        }
        Command::DefineMacros { .. } | Command::Abort | Command::Quit => vec![],
        _ => vec![Reply::Continue],
    }
}

fn codes(commands: &[Command]) -> String {
    commands.iter().map(|c| c.code() as char).collect()
}

#[test]
fn a_plain_session_looks_like_postfix() {
    let (session, received) = run(Script::default(), plain_milter(Steps::empty()));
    assert_eq!(session.error(), None);
    // D before every event, one L per header, A after the message, then Q.
    assert_eq!(codes(&received), "ODCDHDMDRDTDLDLDLDNDBDEAQ");
    let result = &session.messages()[0];
    assert_eq!(result.verdict.status, Ending::PASS);
    assert_eq!(result.message.body, b"Hello, milter.\r\n");
    match &received[1] {
        Command::DefineMacros { stage: b'C', macros } => {
            let names: Vec<_> =
                macros.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect();
            assert_eq!(names, vec!["j", "{daemon_name}", "v", "_"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_event_and_no_reply_steps_are_honoured() {
    let steps =
        Steps::NO_HELO | Steps::NO_HEADERS | Steps::NR_CONNECT | Steps::NR_RCPT | Steps::NR_BODY;
    let (session, received) = run(Script::default(), |command| match command {
        Command::Negotiate(_) => {
            vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, steps))]
        }
        Command::Connect { .. } | Command::EnvelopeRecipient { .. } | Command::Body { .. } => {
            vec![]
        }
        Command::DefineMacros { .. } | Command::Abort | Command::Quit => vec![],
        _ => vec![Reply::Continue],
    });
    assert_eq!(session.error(), None);
    // HELO and the headers are not sent, their macros are.
    // (The run helper fails if the session waited for a reply to C, R or B.)
    assert_eq!(codes(&received), "ODCDDMDRDTDDDDNDBDEAQ");
}

#[test]
fn rejected_recipient_and_modifications() {
    let b = |s: &str| s.as_bytes().to_vec();
    let script = Script {
        recipients: vec![b("<bad@example.org>"), b("<good@example.org>")],
        ..Script::default()
    };
    let (session, _) = run(script, |command| match command {
        Command::Negotiate(_) => {
            vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty()))]
        }
        Command::EnvelopeRecipient { address, .. } if address == b"<bad@example.org>" => {
            vec![Reply::ReplyCode { text: b("550 5.7.1 no such user") }]
        }
        Command::EndOfMessage { .. } => vec![
            Reply::AddHeader { name: b("X-Test"), value: b("yes") },
            Reply::ReplaceBody { chunk: b("replaced\r\n") },
            Reply::Accept,
        ],
        Command::DefineMacros { .. } | Command::Abort | Command::Quit => vec![],
        _ => vec![Reply::Continue],
    });
    assert_eq!(session.error(), None);
    let result = &session.messages()[0];
    assert_eq!(result.verdict.status, Status::Accept.into());
    assert_eq!(result.rejected_recipients.len(), 1);
    assert_eq!(
        result.rejected_recipients[0].1.to_string(),
        "reject [550 5.7.1 no such user] at envelope-recipient"
    );
    assert_eq!(result.message.body, b"replaced\r\n");
    let live: Vec<_> = result.message.live_recipients().map(|r| r.address.clone()).collect();
    assert_eq!(live, vec![b("<good@example.org>")], "the refused recipient left the envelope");
    assert_eq!(result.modifications.len(), 2);
}

#[test]
fn connect_reject_ends_the_session() {
    let (session, received) = run(Script::default(), |command| match command {
        Command::Negotiate(_) => {
            vec![Reply::Negotiate(Negotiation::new(6, Actions::empty(), Steps::empty()))]
        }
        Command::Connect { .. } => vec![Reply::Reject],
        _ => vec![],
    });
    assert_eq!(session.session_verdict().unwrap().to_string(), "reject at connect");
    assert_eq!(codes(&received), "ODCQ");
    assert!(session.messages().is_empty());
}

#[test]
fn protocol_violations_are_errors() {
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::AddHeader { name: b"X".to_vec(), value: b"y".to_vec() },
            "allowed only at end-of-message",
        ),
        (Reply::ReplyCode { text: b"554 3.7.1 bad".to_vec() }, "does not match the class"),
        (Reply::Negotiate(Negotiation::mta_default()), "not a valid answer to envelope-from"),
    ];
    for (bad, expected) in cases {
        let mut bad = Some(bad);
        let (session, _) = run(Script::default(), |command| match command {
            Command::Negotiate(_) => {
                vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty()))]
            }
            Command::EnvelopeFrom { .. } => vec![bad.take().unwrap()],
            Command::DefineMacros { .. } | Command::Abort | Command::Quit => vec![],
            _ => vec![Reply::Continue],
        });
        let error = session.error().expect("an error").to_string();
        assert!(error.contains(expected), "{error}");
    }
    let (session, _) = run(Script::default(), |command| match command {
        Command::Negotiate(_) => {
            vec![Reply::Negotiate(Negotiation::new(5, Actions::empty(), Steps::empty()))]
        }
        _ => vec![],
    });
    assert!(session.error().unwrap().to_string().contains("protocol version 5"));
}

#[test]
fn timeouts_name_the_stage() {
    let now = Instant::now();
    let mut session = TestServerSession::new(Script::default(), now);
    let deadline = session.deadline().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(300));
    session.handle_timeout(deadline);
    assert_eq!(
        session.error().unwrap().to_string(),
        "the milter did not answer negotiate within 300 seconds"
    );
}

#[test]
fn drives_the_test_client_through_two_messages() {
    let now = Instant::now();
    let script = Script {
        n_messages: 2,
        body: vec![b'x'; 200 * 1024],
        recipients: vec![b"<a@example.org>".to_vec(), b"<b@example.org>".to_vec()],
        ..Script::default()
    };
    let mut server = TestServerSession::new(script, now);
    let mut client = TestClientSession::new("1", true, now);
    while !server.is_done() {
        client.handle_bytes(&server.take_output(), now);
        server.handle_bytes(&client.take_output(), now);
    }
    client.handle_bytes(&server.take_output(), now);
    assert_eq!(server.error(), None);
    assert_eq!(server.messages().len(), 2);
    assert_eq!(client.messages(), 2);
    let report = client.take_report();
    assert_eq!(report.matches("] body: size=65535 ").count(), 6);
    assert_eq!(report.matches("] envelope-recipient: ").count(), 4);
    assert!(report.ends_with("[1] quit\n"), "{report}");
}
