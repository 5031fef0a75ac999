//! Milter mode: the performance check plays a Postfix-like MTA with the test server's
//! session ([`TestServerSession`]) and reads how each session ended.

use std::time::Duration;

use crate::protocol::Negotiation;
use crate::status::Status;
use crate::tools::test_server::{Script, SessionError, TestServerSession, Timeouts};
use crate::tools::Ending;

use super::mail::Mail;
use super::outcome::{ErrorKind, Failure, Outcome};

/// The session for `mail`: Postfix's offer (version 6, every action and step), one
/// message, `timeout` for every wait.
pub fn milter_script(mail: &Mail, timeout: Duration, mta_hostname: &str) -> Script {
    Script {
        offer: Negotiation::mta_default(),
        daemon_name: "milter-performance-check".into(),
        mta_hostname: mta_hostname.into(),
        envelope_from: mail.envelope.from.clone(),
        recipients: mail.envelope.recipients.clone(),
        headers: mail.headers.clone(),
        body: mail.body.clone(),
        n_messages: 1,
        timeouts: Timeouts {
            connection: timeout,
            writing: timeout,
            reading: timeout,
            end_of_message: timeout,
        },
        ..Script::default()
    }
}

/// How a finished session ended: the connect/HELO verdict if the milter ended the
/// session there, else the message's. Continue up to the end counts as accept; an
/// accepted message the milter asked to quarantine counts as quarantine.
pub fn milter_outcome(session: &TestServerSession) -> Result<Outcome, Failure> {
    if let Some(error) = session.error() {
        let kind = match error {
            SessionError::Protocol(_) => ErrorKind::Protocol,
            SessionError::Timeout { .. } => ErrorKind::Timeout,
            SessionError::Closed { .. } => ErrorKind::Closed,
        };
        return Err(Failure::new(kind, error.to_string()));
    }
    let (verdict, quarantined) = match (session.session_verdict(), session.messages().first()) {
        (Some(verdict), _) => (verdict, false),
        (None, Some(message)) => (&message.verdict, message.message.quarantine_reason.is_some()),
        (None, None) => {
            return Err(Failure::new(ErrorKind::Protocol, "the session ended without a verdict"))
        }
    };
    let status = match verdict.status {
        Ending::PASS | Ending::Status(Status::Accept) if quarantined => Ending::Quarantine,
        Ending::PASS => Status::Accept.into(),
        other => other,
    };
    Ok(Outcome::new(status, verdict.stage))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::protocol::{Actions, Command, Deframer, Reply, Steps};
    use crate::tools::performance::generated_mail;

    /// Runs one session against a milter given as a function from command to replies.
    fn outcome_against(milter: impl Fn(&Command) -> Vec<Reply>) -> Result<Outcome, Failure> {
        let mail = generated_mail(&super::super::EnvelopeOptions::default(), 3, 100, 0);
        let now = Instant::now();
        let mut session =
            TestServerSession::new(milter_script(&mail, Duration::from_secs(1), "mta"), now);
        let mut deframer = Deframer::default();
        while !session.is_done() {
            deframer.push(&session.take_output());
            let mut answer = Vec::new();
            while let Some(frame) = deframer.next_frame() {
                let frame = frame.unwrap();
                for reply in milter(&Command::decode(frame.code, frame.data).unwrap()) {
                    reply.encode(&mut answer);
                }
            }
            if answer.is_empty() {
                session.handle_closed();
            }
            session.handle_bytes(&answer, now);
        }
        milter_outcome(&session)
    }

    fn milter(answer: impl Fn(&Command) -> Option<Vec<Reply>>) -> impl Fn(&Command) -> Vec<Reply> {
        move |command| {
            if let Some(replies) = answer(command) {
                return replies;
            }
            match command {
                Command::Negotiate(_) => {
                    vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty()))]
                }
                Command::DefineMacros { .. } | Command::Abort | Command::Quit => vec![],
                _ => vec![Reply::Continue],
            }
        }
    }

    #[test]
    fn final_statuses_and_their_stages() {
        let outcome = |answer: fn(&Command) -> Option<Vec<Reply>>| {
            let result = outcome_against(milter(answer)).unwrap();
            (result.status.name(), result.stage)
        };
        assert_eq!(outcome(|_| None), ("accept", "end-of-message"));
        assert_eq!(
            outcome(|c| matches!(c, Command::EnvelopeRecipient { .. }).then(|| vec![Reply::Reject])),
            ("reject", "envelope-recipient")
        );
        assert_eq!(
            outcome(|c| matches!(c, Command::Connect { .. }).then(|| vec![Reply::TemporaryFailure])),
            ("temporary-failure", "connect")
        );
        assert_eq!(
            outcome(|c| matches!(c, Command::EndOfMessage { .. }).then(|| vec![
                Reply::Quarantine { reason: b"suspicious".to_vec() },
                Reply::Accept
            ])),
            ("quarantine", "end-of-message")
        );
        assert_eq!(
            outcome(|c| matches!(c, Command::EndOfMessage { .. }).then(|| vec![Reply::Discard])),
            ("discard", "end-of-message")
        );
        assert_eq!(
            outcome(|c| matches!(c, Command::Header { .. })
                .then(|| vec![Reply::ReplyCode { text: b"550 5.7.1 no".to_vec() }])),
            ("reject", "header")
        );
    }

    #[test]
    fn errors_are_classified() {
        let closed =
            outcome_against(milter(|c| matches!(c, Command::EnvelopeFrom { .. }).then(Vec::new)))
                .unwrap_err();
        assert_eq!(closed.kind, ErrorKind::Closed);
        assert!(closed.message.contains("envelope-from"), "{}", closed.message);
        let broken = outcome_against(milter(|c| {
            matches!(c, Command::Helo { .. })
                .then(|| vec![Reply::Negotiate(Negotiation::mta_default())])
        }))
        .unwrap_err();
        assert_eq!(broken.kind, ErrorKind::Protocol);
    }
}
