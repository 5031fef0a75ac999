//! The session driven directly, for what the scenario language cannot say (the SMTP
//! client leaving is the runtime's news, not a packet).

use super::*;
use crate::engine::{ChildConfig, NoConditions};
use crate::protocol::{Actions, ConnectAddress, Steps};

struct Harness {
    session: Session,
    now: Instant,
}

impl Harness {
    fn new(children: &[&str]) -> Self {
        let config = EngineConfig {
            children: children.iter().map(|name| ChildConfig::new(name)).collect(),
            ..EngineConfig::default()
        };
        let now = Instant::now();
        Self { session: Session::new(Arc::new(config), Box::new(NoConditions), 1, now), now }
    }

    fn mta(&mut self, command: Command) {
        let mut bytes = Vec::new();
        command.encode(&mut bytes);
        self.session.handle_mta_data(&bytes, self.now);
    }

    fn child(&mut self, i: usize, reply: Reply) {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        self.session.handle_child_data(i, &bytes, self.now);
    }

    /// Everything the session wants done, with connections opened at once.
    fn outputs(&mut self) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(output) = self.session.poll_output() {
            if let Output::Connect { child, .. } = output {
                self.session.handle_child_connected(child, Ok(()), self.now);
            }
            outputs.push(output);
        }
        outputs
    }

    /// The packet codes the MTA got, and those each child got, since the last call.
    fn codes(&mut self) -> (Vec<u8>, Vec<(usize, u8)>) {
        let (mut mta, mut children) = (Vec::new(), Vec::new());
        for output in self.outputs() {
            match output {
                Output::ToMta(bytes) => mta.extend(frame_codes(&bytes)),
                Output::ToChild { child, bytes } => {
                    children.extend(frame_codes(&bytes).into_iter().map(|code| (child, code)))
                }
                _ => {}
            }
        }
        (mta, children)
    }

    fn negotiate(&mut self) {
        self.mta(Command::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())));
        assert_eq!(self.codes(), (vec![], vec![(0, b'O')]));
        self.child(0, Reply::Negotiate(Negotiation::new(6, Actions::empty(), Steps::empty())));
        assert_eq!(self.codes(), (vec![b'O'], vec![]));
    }
}

fn frame_codes(bytes: &[u8]) -> Vec<u8> {
    let mut deframer = Deframer::default();
    deframer.push(bytes);
    std::iter::from_fn(|| deframer.next_frame().map(|frame| frame.unwrap().code)).collect()
}

fn connect() -> Command {
    let address = ConnectAddress::Inet { port: 25, address: b"192.0.2.1".to_vec() };
    Command::Connect { hostname: b"client.example".to_vec(), address }
}

#[test]
fn after_the_client_left_a_new_connection_starts_clean() {
    let mut harness = Harness::new(&["a"]);
    harness.negotiate();
    harness.mta(connect());
    assert_eq!(harness.codes(), (vec![], vec![(0, b'C')]));
    harness.session.handle_client_disconnected(harness.now);
    // Temporary failure (the default fallback_status_at_disconnect); the child quits.
    assert_eq!(harness.codes(), (vec![b't'], vec![(0, b'Q')]));

    harness.mta(Command::QuitNewConnection);
    harness.negotiate();
    harness.mta(connect());
    // The new client is filtered, and its leaving is news again.
    assert_eq!(harness.codes(), (vec![], vec![(0, b'C')]));
    assert!(harness.session.is_waiting_on_children());
    harness.session.handle_client_disconnected(harness.now);
    assert_eq!(harness.codes(), (vec![b't'], vec![(0, b'Q')]));
}

#[test]
fn the_tally_counts_answer_times_failures_timeouts_and_fallbacks() {
    use std::time::Duration;
    let mut harness = Harness::new(&["fast", "refused", "slow"]);
    harness.mta(Command::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())));
    while let Some(output) = harness.session.poll_output() {
        if let Output::Connect { child, .. } = output {
            let result = match child {
                1 => Err(ConnectFailure::Unreachable(io::ErrorKind::ConnectionRefused.into())),
                _ => Ok(()),
            };
            harness.session.handle_child_connected(child, result, harness.now);
        }
    }
    harness.now += Duration::from_millis(2);
    let answer = Negotiation::new(6, Actions::empty(), Steps::empty());
    harness.child(0, Reply::Negotiate(answer.clone()));
    harness.child(2, Reply::Negotiate(answer));
    harness.codes();
    harness.mta(connect());
    harness.codes();
    harness.now += Duration::from_millis(5);
    harness.child(0, Reply::Continue);
    // "slow" never answers CONNECT: its reading timeout runs out.
    harness.now += ChildConfig::new("x").timeouts.reading;
    harness.session.handle_timeout(harness.now);
    harness.codes();

    let tally = |i| harness.session.child_tally(i).unwrap().clone();
    let times: Vec<_> = tally(0).answer_times().collect();
    assert_eq!(
        times,
        [(Stage::Negotiate, Duration::from_millis(2)), (Stage::Connect, Duration::from_millis(5))]
    );
    assert_eq!((tally(0).connect_failures, tally(0).timeouts, tally(0).fallbacks), (0, 0, 0));
    assert_eq!((tally(1).connect_failures, tally(1).timeouts, tally(1).fallbacks), (1, 0, 1));
    assert_eq!((tally(2).connect_failures, tally(2).timeouts, tally(2).fallbacks), (0, 1, 1));
    assert_eq!(
        tally(2).answer_times().map(|(stage, _)| stage).collect::<Vec<_>>(),
        [Stage::Negotiate]
    );
    assert_eq!(harness.session.child_tally(3), None);
    assert_eq!(harness.session.end_state(), (Stage::Connect, "pass"));
}
