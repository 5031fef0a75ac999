//! The MTA behind `milter-test-server`: it drives one milter through a scripted SMTP
//! session the way Postfix does (macros before every event, the milter's negotiated steps
//! and no-reply flags honoured, body in 64 KiB chunks, abort after each message) and
//! records what the milter answered and changed.
//!
//! Sans-IO: [`TestServerSession::take_output`] gives the bytes to write,
//! [`TestServerSession::handle_bytes`] takes what the milter sent, and
//! [`TestServerSession::deadline`] says until when the session may wait for it.
//!
//! The parts: `script` (what the MTA sends), `phase` and `flow` (the state machine),
//! `macros` (the `D` packets), `replies` (reading the milter's answers) and `outcome`
//! (what the session reports).

mod flow;
mod macros;
mod outcome;
mod phase;
mod replies;
mod script;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::protocol::{Command, Deframer, Negotiation, Reply, Steps};
use phase::Phase;

pub use outcome::{Decision, MessageResult, SessionError};
pub use replies::describe_reply;
pub use script::{split_esmtp, Script, Timeouts};

/// One simulated MTA session against one milter.
#[derive(Debug)]
pub struct TestServerSession {
    script: Script,
    deframer: Deframer,
    output: Vec<u8>,
    phase: Phase,
    /// The phase whose reply is awaited, and the deadline.
    waiting: Option<(Phase, Instant)>,
    negotiated: Option<Negotiation>,
    /// The session-level verdict when connect/helo ended the session.
    session_verdict: Option<Decision>,
    messages: Vec<MessageResult>,
    current: Option<MessageResult>,
    accepted_recipients: usize,
    body_chunks: Vec<Vec<u8>>,
    skip_body: bool,
    error: Option<SessionError>,
    /// Readable lines about each reply (for `--verbose`).
    log: Vec<String>,
}

impl TestServerSession {
    pub fn new(script: Script, now: Instant) -> Self {
        let mut session = Self {
            script,
            deframer: Deframer::default(),
            output: Vec::new(),
            phase: Phase::Negotiate,
            waiting: None,
            negotiated: None,
            session_verdict: None,
            messages: Vec::new(),
            current: None,
            accepted_recipients: 0,
            body_chunks: Vec::new(),
            skip_body: false,
            error: None,
            log: Vec::new(),
        };
        Command::Negotiate(session.script.offer.clone()).encode(&mut session.output);
        session.waiting = Some((Phase::Negotiate, now + session.script.timeouts.connection));
        session
    }

    /// Bytes to write to the milter now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Readable lines about what the milter answered since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done || self.error.is_some()
    }

    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// The milter's negotiation answer.
    pub fn negotiated(&self) -> Option<&Negotiation> {
        self.negotiated.as_ref()
    }

    /// Set when the milter ended the whole SMTP session at connect or HELO.
    pub fn session_verdict(&self) -> Option<&Decision> {
        self.session_verdict.as_ref()
    }

    pub fn messages(&self) -> &[MessageResult] {
        &self.messages
    }

    /// Until when a reply may take.
    pub fn deadline(&self) -> Option<Instant> {
        if self.is_done() {
            None
        } else {
            self.waiting.map(|(_, deadline)| deadline)
        }
    }

    /// The deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((phase, deadline)) = self.waiting {
            if !self.is_done() && now >= deadline {
                let after = self.timeout_for(phase);
                self.error = Some(SessionError::Timeout { waiting_for: phase.stage_name(), after });
            }
        }
    }

    /// The milter closed the connection.
    pub fn handle_closed(&mut self) {
        if self.is_done() {
            return;
        }
        let waiting_for = self.waiting.map_or("nothing", |(phase, _)| phase.stage_name());
        self.error = Some(SessionError::Closed { waiting_for });
    }

    /// Feeds bytes from the milter.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.deframer.push(bytes);
        while !self.is_done() {
            let reply = match self.deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(error.to_string()),
                Some(Ok(frame)) => Reply::decode(frame.code, frame.data).map_err(|e| e.to_string()),
            };
            match reply {
                Ok(reply) => self.handle_reply(reply, now),
                Err(error) => self.fail(error),
            }
        }
    }

    fn fail(&mut self, detail: String) {
        if self.error.is_none() {
            self.error = Some(SessionError::Protocol(detail));
        }
    }

    fn timeout_for(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Negotiate => self.script.timeouts.connection,
            Phase::EndOfMessage => self.script.timeouts.end_of_message,
            _ => self.script.timeouts.reading,
        }
    }

    fn steps(&self) -> Steps {
        self.negotiated.as_ref().map_or(Steps::empty(), |n| n.steps)
    }
}
