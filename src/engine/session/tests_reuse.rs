//! Kept child connections: when a session keeps one (`K` instead of quit), how a later
//! session takes it, and how a kept connection found dead is replaced unnoticed.

use std::time::Duration;

use super::*;
use crate::engine::{ChildConfig, ConnectionReuse, NoConditions};
use crate::protocol::{Actions, ConnectAddress, Steps};

const REUSE: ConnectionReuse =
    ConnectionReuse { max_idle: 4, idle_timeout: Duration::from_secs(60) };

fn config(reuse: bool) -> Arc<EngineConfig> {
    let mut child = ChildConfig::new("a");
    child.reuse = reuse.then_some(REUSE);
    Arc::new(EngineConfig { children: vec![child], ..EngineConfig::default() })
}

fn offer() -> Negotiation {
    Negotiation::new(6, Actions::ALL, Steps::empty())
}

fn answer() -> Negotiation {
    Negotiation::new(6, Actions::ADD_HEADERS, Steps::empty())
}

fn encode(command: Command) -> Vec<u8> {
    let mut bytes = Vec::new();
    command.encode(&mut bytes);
    bytes
}

fn reply(reply: Reply) -> Vec<u8> {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes);
    bytes
}

fn codes(bytes: &[u8]) -> Vec<u8> {
    let mut deframer = Deframer::default();
    deframer.push(bytes);
    std::iter::from_fn(|| deframer.next_frame().map(|frame| frame.unwrap().code)).collect()
}

/// What a session did, in order, with bytes shown as packet codes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Mta(Vec<u8>),
    Child(Vec<u8>),
    Connect { reuse: bool },
    Keep,
    Close,
}

struct Run {
    session: Session,
    now: Instant,
    /// The key and memo of the last `KeepChild`, and the key of the last `Connect`.
    kept: Option<(Vec<u8>, Vec<u8>)>,
    asked_key: Option<Vec<u8>>,
}

impl Run {
    fn new(reuse: bool) -> Self {
        let now = Instant::now();
        let session = Session::new(config(reuse), Box::new(NoConditions), 1, now);
        Self { session, now, kept: None, asked_key: None }
    }

    fn mta(&mut self, command: Command) -> Vec<Seen> {
        self.session.handle_mta_data(&encode(command), self.now);
        self.seen()
    }

    fn child(&mut self, answer: Reply) -> Vec<Seen> {
        self.session.handle_child_data(0, &reply(answer), self.now);
        self.seen()
    }

    fn seen(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some(output) = self.session.poll_output() {
            seen.push(match output {
                Output::ToMta(bytes) => Seen::Mta(codes(&bytes)),
                Output::ToChild { bytes, .. } => Seen::Child(codes(&bytes)),
                Output::Connect { reuse, .. } => {
                    let seen = Seen::Connect { reuse: reuse.is_some() };
                    self.asked_key = reuse;
                    seen
                }
                Output::KeepChild { key, memo, .. } => {
                    self.kept = Some((key, memo));
                    Seen::Keep
                }
                Output::CloseChild { .. } => Seen::Close,
                Output::AcknowledgeChild { .. } | Output::CloseMta => continue,
            });
        }
        seen
    }

    /// Negotiation on a new connection, then connect, helo and one whole message that
    /// the child answers `eom_answer`.
    fn message(&mut self, eom_answer: Reply) {
        assert_eq!(self.mta(Command::Negotiate(offer())), [Seen::Connect { reuse: true }]);
        self.session.handle_child_connected(0, Ok(()), self.now);
        assert_eq!(self.seen(), [Seen::Child(vec![b'O'])]);
        assert_eq!(self.child(Reply::Negotiate(answer())), [Seen::Mta(vec![b'O'])]);
        self.rest_of_message(eom_answer);
    }

    fn rest_of_message(&mut self, eom_answer: Reply) {
        for command in [
            connect(),
            Command::Helo { fqdn: b"client.example".to_vec() },
            Command::EnvelopeFrom { address: b"<a@example.org>".to_vec(), parameters: vec![] },
            Command::EnvelopeRecipient { address: b"<b@example.net>".to_vec(), parameters: vec![] },
            Command::Data,
            Command::EndOfHeader,
        ] {
            self.mta(command);
            assert_eq!(self.child(Reply::Continue), [Seen::Mta(vec![b'c'])]);
        }
        self.mta(Command::EndOfMessage { chunk: Vec::new() });
        self.child(eom_answer);
    }
}

fn connect() -> Command {
    let address = ConnectAddress::Inet { port: 25, address: b"192.0.2.1".to_vec() };
    Command::Connect { hostname: b"client.example".to_vec(), address }
}

#[test]
fn a_child_that_answered_end_of_message_with_continue_is_kept_with_k() {
    let mut run = Run::new(true);
    run.message(Reply::Continue);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'K']), Seen::Keep]);
    let (key, memo) = run.kept.clone().unwrap();
    assert_eq!(key, encode(Command::Negotiate(crate::engine::offer_for_children(&offer()))));
    assert_eq!(memo, reply(Reply::Negotiate(answer())));
}

#[test]
fn a_child_libmilter_would_not_take_k_from_quits_and_is_closed() {
    // Accept at end-of-message puts libmilter back at HELO, where it drops a `K`.
    let mut run = Run::new(true);
    run.message(Reply::Accept);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'Q']), Seen::Close]);
    // As after a session with no message.
    let mut run = Run::new(true);
    run.mta(Command::Negotiate(offer()));
    run.session.handle_child_connected(0, Ok(()), run.now);
    run.seen();
    run.child(Reply::Negotiate(answer()));
    run.mta(connect());
    run.child(Reply::Continue);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'Q']), Seen::Close]);
}

#[test]
fn a_child_that_declined_connect_is_not_kept() {
    // pymilter rebuilds what K dropped only at CONNECT, which this child never gets.
    let mut run = Run::new(true);
    run.mta(Command::Negotiate(Negotiation::new(6, Actions::ALL, Steps::NO_CONNECT)));
    run.session.handle_child_connected(0, Ok(()), run.now);
    run.seen();
    let declines_connect = Negotiation::new(6, Actions::ADD_HEADERS, Steps::NO_CONNECT);
    run.child(Reply::Negotiate(declines_connect));
    // The MTA was granted no CONNECT either (the only child's wish).
    for command in [
        Command::Helo { fqdn: b"client.example".to_vec() },
        Command::EnvelopeFrom { address: b"<a@example.org>".to_vec(), parameters: vec![] },
        Command::EnvelopeRecipient { address: b"<b@example.net>".to_vec(), parameters: vec![] },
        Command::Data,
        Command::EndOfHeader,
    ] {
        let name = command.name();
        run.mta(command);
        assert_eq!(run.child(Reply::Continue), [Seen::Mta(vec![b'c'])], "{name}");
    }
    run.mta(Command::EndOfMessage { chunk: Vec::new() });
    assert_eq!(run.child(Reply::Continue), [Seen::Mta(vec![b'c'])]);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'Q']), Seen::Close]);
}

#[test]
fn a_child_older_than_protocol_6_is_not_kept() {
    // Its libmilter knows no K: it would take it for an unknown command and hang up.
    let mut run = Run::new(true);
    assert_eq!(run.mta(Command::Negotiate(offer())), [Seen::Connect { reuse: true }]);
    run.session.handle_child_connected(0, Ok(()), run.now);
    run.seen();
    run.child(Reply::Negotiate(Negotiation::new(2, Actions::ADD_HEADERS, Steps::empty())));
    for command in [
        connect(),
        Command::Helo { fqdn: b"client.example".to_vec() },
        Command::EnvelopeFrom { address: b"<a@example.org>".to_vec(), parameters: vec![] },
        Command::EnvelopeRecipient { address: b"<b@example.net>".to_vec(), parameters: vec![] },
        Command::EndOfHeader,
        Command::EndOfMessage { chunk: Vec::new() },
    ] {
        let name = command.name();
        run.mta(command);
        assert_eq!(run.child(Reply::Continue), [Seen::Mta(vec![b'c'])], "{name}");
    }
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'Q']), Seen::Close]);
}

#[test]
fn without_reuse_nothing_is_kept_or_asked_for() {
    let mut run = Run::new(false);
    assert_eq!(run.mta(Command::Negotiate(offer())), [Seen::Connect { reuse: false }]);
    run.session.handle_child_connected(0, Ok(()), run.now);
    run.seen();
    run.child(Reply::Negotiate(answer()));
    run.rest_of_message(Reply::Continue);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'Q']), Seen::Close]);
}

#[test]
fn a_kept_connection_skips_the_negotiation_round_trip() {
    let mut first = Run::new(true);
    first.message(Reply::Continue);
    first.mta(Command::Quit);
    let (key, memo) = first.kept.unwrap();

    let mut run = Run::new(true);
    assert_eq!(run.mta(Command::Negotiate(offer())), [Seen::Connect { reuse: true }]);
    assert_eq!(run.asked_key.as_ref(), Some(&key), "the key the connection was kept under");
    run.session.handle_child_reused(0, &memo, run.now);
    // The MTA is answered at once, from the kept answer; the child hears nothing.
    let expected = reply(Reply::Negotiate(merge_for_mta()));
    let mut to_mta = Vec::new();
    while let Some(output) = run.session.poll_output() {
        match output {
            Output::ToMta(bytes) => to_mta.extend(bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(to_mta, expected);
    run.rest_of_message(Reply::Continue);
    assert_eq!(run.mta(Command::Quit), [Seen::Child(vec![b'K']), Seen::Keep]);
    assert_eq!(run.session.child_tally(0).unwrap().reused_connections, 1);
}

/// What the MTA is answered with `answer()` as the only child's.
fn merge_for_mta() -> Negotiation {
    crate::engine::merge_answers(&offer(), &[&answer()])
}

fn reused_run() -> Run {
    let mut first = Run::new(true);
    first.message(Reply::Continue);
    first.mta(Command::Quit);
    let (_, memo) = first.kept.unwrap();
    let mut run = Run::new(true);
    run.mta(Command::Negotiate(offer()));
    run.session.handle_child_reused(0, &memo, run.now);
    assert_eq!(run.seen(), [Seen::Mta(vec![b'O'])]);
    run
}

#[test]
fn a_kept_connection_dead_on_first_use_is_replaced_without_the_mta_noticing() {
    let mut run = reused_run();
    assert_eq!(run.mta(connect()), [Seen::Child(vec![b'C'])]);
    // The milter was restarted meanwhile: the kept connection is closed under us.
    run.session.handle_child_closed(0, None, run.now);
    // A new connection, offered the negotiation, then sent what the kept one was.
    assert_eq!(run.seen(), [Seen::Connect { reuse: false }, Seen::Child(vec![b'O', b'C'])]);
    run.session.handle_child_connected(0, Ok(()), run.now);
    assert_eq!(run.seen(), []);
    assert_eq!(run.child(Reply::Negotiate(answer())), []);
    // The child's own answer (a refusal at connect ends its session, as always).
    assert_eq!(
        run.child(Reply::Reject),
        [Seen::Child(vec![b'Q']), Seen::Close, Seen::Mta(vec![b'r'])]
    );
    let tally = run.session.child_tally(0).unwrap();
    assert_eq!((tally.reconnections, tally.fallbacks), (1, 0));
}

#[test]
fn a_new_connection_that_negotiates_otherwise_counts_as_the_child_failing() {
    let mut run = reused_run();
    run.mta(connect());
    run.session.handle_child_closed(0, None, run.now);
    run.seen();
    run.session.handle_child_connected(0, Ok(()), run.now);
    let other = Negotiation::new(6, Actions::ALL, Steps::NO_HELO);
    // Its fallback status (accept): the MTA hears accept, and the child is closed.
    assert_eq!(run.child(Reply::Negotiate(other)), [Seen::Close, Seen::Mta(vec![b'a'])]);
    assert_eq!(run.session.child_tally(0).unwrap().fallbacks, 1);
}

#[test]
fn a_kept_connection_that_answered_once_is_not_replaced_when_it_fails_later() {
    let mut run = reused_run();
    run.mta(connect());
    run.child(Reply::Continue);
    run.mta(Command::Helo { fqdn: b"client.example".to_vec() });
    run.session.handle_child_closed(0, None, run.now);
    assert_eq!(run.seen(), [Seen::Close, Seen::Mta(vec![b'a'])], "its fallback, as always");
}

#[test]
fn a_memo_that_does_not_fit_gets_a_new_connection() {
    let mut run = Run::new(true);
    run.mta(Command::Negotiate(offer()));
    let wrong = reply(Reply::Negotiate(Negotiation::new(6, Actions::ALL, Steps::ALL)));
    run.session.handle_child_reused(0, &wrong, run.now);
    assert_eq!(run.seen(), [Seen::Close, Seen::Connect { reuse: false }]);
    run.session.handle_child_connected(0, Ok(()), run.now);
    assert_eq!(run.seen(), [Seen::Child(vec![b'O'])]);
}
