//! The MTA behind `milter-test-server`: it drives one milter through a scripted SMTP
//! session the way Postfix does (macros before every event, the milter's negotiated steps
//! and no-reply flags honoured, body in 64 KiB chunks, abort after each message) and
//! records what the milter answered and changed.
//!
//! Sans-IO: [`TestServerSession::take_output`] gives the bytes to write,
//! [`TestServerSession::handle_bytes`] takes what the milter sent, and
//! [`TestServerSession::deadline`] says until when the session may wait for it.

use std::fmt;
use std::time::{Duration, Instant};

use crate::message::Message;
use crate::protocol::{
    Actions, Command, CommandKind, ConnectAddress, Deframer, MacroStage, Negotiation, Reply,
    ReplyCode, Steps, SUPPORTED_VERSIONS,
};
use crate::status::Status;
use crate::tools::Ending;

/// How long to wait for the milter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting and the negotiation reply.
    pub connection: Duration,
    /// Writing one batch of packets.
    pub writing: Duration,
    /// Each reply but the end-of-message one.
    pub reading: Duration,
    /// The end-of-message reply (and its modifications).
    pub end_of_message: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connection: Duration::from_secs(300),
            writing: Duration::from_secs(10),
            reading: Duration::from_secs(10),
            end_of_message: Duration::from_secs(300),
        }
    }
}

/// Everything the simulated MTA sends.
#[derive(Debug, Clone)]
pub struct Script {
    pub offer: Negotiation,
    /// `{daemon_name}`.
    pub daemon_name: String,
    /// `j`: the MTA's host name.
    pub mta_hostname: String,
    pub connect_host: Vec<u8>,
    pub connect_address: ConnectAddress,
    pub helo_fqdn: Option<Vec<u8>>,
    pub envelope_from: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Explicit body chunks (`--body` given several times); when empty, `body` is cut
    /// into chunks of the negotiated size.
    pub body_chunks: Vec<Vec<u8>>,
    pub unknown_command: Option<Vec<u8>>,
    /// `{auth_authen}`, `{auth_type}`, `{auth_author}`.
    pub auth_name: Option<Vec<u8>>,
    pub auth_type: Option<Vec<u8>>,
    pub auth_author: Option<Vec<u8>>,
    /// Extra macros per stage (by the command letter of the `D` packet).
    pub extra_macros: Vec<(u8, Vec<u8>, Vec<u8>)>,
    /// Messages sent on the connection, one after the other.
    pub n_messages: u32,
    pub timeouts: Timeouts,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            offer: Negotiation::mta_default(),
            daemon_name: "milter-test-server".into(),
            mta_hostname: "mta.example.org".into(),
            connect_host: b"mx.example.net".to_vec(),
            connect_address: ConnectAddress::Inet { port: 50443, address: b"192.0.2.1".to_vec() },
            helo_fqdn: Some(b"mx.example.net".to_vec()),
            envelope_from: b"<sender@example.net>".to_vec(),
            recipients: vec![b"<receiver@example.org>".to_vec()],
            headers: vec![
                (b"From".to_vec(), b"<sender@example.net>".to_vec()),
                (b"To".to_vec(), b"<receiver@example.org>".to_vec()),
                (b"Subject".to_vec(), b"Hello".to_vec()),
            ],
            body: b"Hello, milter.\r\n".to_vec(),
            body_chunks: Vec::new(),
            unknown_command: None,
            auth_name: None,
            auth_type: None,
            auth_author: None,
            extra_macros: Vec::new(),
            n_messages: 1,
            timeouts: Timeouts::default(),
        }
    }
}

/// A decision with the stage it was made at and the SMTP reply, if the milter gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: Ending,
    pub stage: &'static str,
    pub reply: Option<String>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.name())?;
        if let Some(reply) = &self.reply {
            write!(f, " [{}]", reply.replace("\r\n", " "))?;
        }
        if self.status != Ending::PASS {
            write!(f, " at {}", self.stage)?;
        }
        Ok(())
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResult {
    pub verdict: Decision,
    /// Recipients the milter refused, with the verdict for each.
    pub rejected_recipients: Vec<(Vec<u8>, Decision)>,
    /// The message after the milter's modifications.
    pub message: Message,
    /// Every modification packet, in order.
    pub modifications: Vec<Reply>,
}

/// Why the session could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The milter broke the protocol.
    Protocol(String),
    /// The milter did not answer in time.
    Timeout { waiting_for: &'static str, after: Duration },
    /// The milter closed the connection while a reply was due.
    Closed { waiting_for: &'static str },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Protocol(detail) => write!(f, "the milter broke the protocol: {detail}"),
            SessionError::Timeout { waiting_for, after } => write!(
                f,
                "the milter did not answer {waiting_for} within {} seconds",
                after.as_secs_f64()
            ),
            SessionError::Closed { waiting_for } => {
                write!(f, "the milter closed the connection while {waiting_for} was unanswered")
            }
        }
    }
}

impl std::error::Error for SessionError {}

/// Where the simulated SMTP session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Negotiate,
    Connect,
    Helo,
    Unknown,
    Mail,
    Rcpt(usize),
    Data,
    Header(usize),
    EndOfHeader,
    Body(usize),
    EndOfMessage,
    Done,
}

impl Phase {
    /// The command this phase waits on the answer to.
    fn command(self) -> CommandKind {
        match self {
            Phase::Negotiate => CommandKind::Negotiate,
            Phase::Connect => CommandKind::Connect,
            Phase::Helo => CommandKind::Helo,
            Phase::Unknown => CommandKind::Unknown,
            Phase::Mail => CommandKind::EnvelopeFrom,
            Phase::Rcpt(_) => CommandKind::EnvelopeRecipient,
            Phase::Data => CommandKind::Data,
            Phase::Header(_) => CommandKind::Header,
            Phase::EndOfHeader => CommandKind::EndOfHeader,
            Phase::Body(_) => CommandKind::Body,
            Phase::EndOfMessage => CommandKind::EndOfMessage,
            Phase::Done => CommandKind::Quit,
        }
    }

    fn stage_name(self) -> &'static str {
        self.command().name()
    }
}

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
        let mut session = TestServerSession {
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

    fn handle_reply(&mut self, reply: Reply, now: Instant) {
        let Some((phase, _)) = self.waiting else {
            self.fail(format!("{} sent while no reply was due", reply.name()));
            return;
        };
        let described = describe_reply(&reply);
        self.log.push(if phase == Phase::Negotiate {
            described
        } else {
            format!("{}: {described}", phase.stage_name())
        });
        if phase == Phase::Negotiate {
            self.handle_negotiation(reply, now);
            return;
        }
        match reply {
            Reply::Progress => {
                self.waiting = Some((phase, now + self.timeout_for(phase)));
                return;
            }
            // Postfix takes a quarantine request at any stage and keeps reading.
            Reply::Quarantine { ref reason } => {
                if let Some(current) = &mut self.current {
                    current.message.quarantine_reason = Some(reason.clone());
                    current.modifications.push(reply);
                }
                return;
            }
            ref modification if modification.is_modification() => {
                if phase != Phase::EndOfMessage {
                    self.fail(format!(
                        "{} is allowed only at end-of-message, not at {}",
                        modification.name(),
                        phase.stage_name()
                    ));
                    return;
                }
                self.apply_modification(modification.clone());
                return;
            }
            _ => {}
        }
        self.waiting = None;
        if reply == Reply::Skip {
            self.skip_body = true;
        }
        let verdict = match self.verdict_of(&reply, phase) {
            Ok(verdict) => verdict,
            Err(error) => return self.fail(error),
        };
        self.after_verdict(phase, verdict, now);
    }

    fn handle_negotiation(&mut self, reply: Reply, now: Instant) {
        let Reply::Negotiate(answer) = reply else {
            return self.fail(format!("expected a negotiate reply, got {}", reply.name()));
        };
        let offer = &self.script.offer;
        if !SUPPORTED_VERSIONS.contains(&answer.version) || answer.version > offer.version {
            return self.fail(format!(
                "the milter answered protocol version {} to an offer of version {}",
                answer.version, offer.version
            ));
        }
        let extra_actions = answer.actions.difference(offer.actions);
        if !extra_actions.is_empty() {
            return self.fail(format!(
                "the milter asked for actions that were not offered: {extra_actions}"
            ));
        }
        let extra_steps = answer.steps.difference(offer.steps).difference(Steps::MAX_DATA_SIZE);
        if !extra_steps.is_empty() {
            return self
                .fail(format!("the milter asked for steps that were not offered: {extra_steps}"));
        }
        if !answer.macro_requests.is_empty() && !answer.actions.contains(Actions::SET_SYMBOL_LIST) {
            return self
                .fail("the milter sent symbol lists without the set-symbol-list action".into());
        }
        self.negotiated = Some(answer);
        self.waiting = None;
        self.phase = Phase::Connect;
        self.advance(now);
    }

    fn apply_modification(&mut self, modification: Reply) {
        let Some(current) = &mut self.current else { return };
        let actions = self.negotiated.as_ref().map_or(Actions::empty(), |n| n.actions);
        let needed = modification.required_action();
        if !actions.contains(needed) {
            let error = format!("{} without the negotiated {needed} action", modification.name());
            return self.fail(error);
        }
        if let Err(error) = current.message.apply(&modification) {
            return self.fail(error.to_string());
        }
        current.modifications.push(modification);
    }

    /// The MTA's reading of a final reply at `phase`.
    fn verdict_of(&self, reply: &Reply, phase: Phase) -> Result<Decision, String> {
        let stage = phase.stage_name();
        let verdict = |status| Ok(Decision { status, stage, reply: None });
        match reply {
            Reply::Continue => verdict(Ending::PASS),
            Reply::Accept => verdict(Status::Accept.into()),
            Reply::Reject => verdict(Status::Reject.into()),
            Reply::TemporaryFailure => verdict(Status::TemporaryFailure.into()),
            Reply::Discard => verdict(Status::Discard.into()),
            Reply::Shutdown => verdict(Ending::Shutdown),
            Reply::Skip
                if matches!(phase, Phase::Body(_)) && self.steps().contains(Steps::SKIP) =>
            {
                verdict(Ending::PASS)
            }
            Reply::ReplyCode { text } => {
                let code = ReplyCode::parse(text).map_err(|e| e.to_string())?;
                let status =
                    if code.is_temporary() { Status::TemporaryFailure } else { Status::Reject };
                Ok(Decision {
                    status: status.into(),
                    stage,
                    reply: Some(String::from_utf8_lossy(text).into_owned()),
                })
            }
            other => Err(format!("{} is not a valid answer to {stage}", other.name())),
        }
    }

    fn after_verdict(&mut self, phase: Phase, verdict: Decision, now: Instant) {
        let pass = verdict.status == Ending::PASS;
        match phase {
            Phase::Connect | Phase::Helo => {
                if pass {
                    self.phase = if phase == Phase::Connect { Phase::Helo } else { Phase::Unknown };
                } else {
                    // Postfix drops the milter for the whole SMTP session after this.
                    self.session_verdict = Some(verdict);
                    self.finish_session();
                    return;
                }
            }
            Phase::Unknown => self.phase = Phase::Mail,
            Phase::Rcpt(i) => {
                if pass {
                    self.accepted_recipients += 1;
                } else if matches!(
                    verdict.status,
                    Ending::Status(Status::Reject | Status::TemporaryFailure)
                ) {
                    let recipient = self.script.recipients[i].clone();
                    if let Some(current) = &mut self.current {
                        // The MTA drops a recipient refused at RCPT from the envelope.
                        let (address, _) = split_esmtp(&recipient);
                        let refused = Reply::DeleteRecipient { address };
                        current
                            .message
                            .apply(&refused)
                            .expect("delete-recipient is a modification");
                        current.rejected_recipients.push((recipient, verdict));
                    }
                } else {
                    return self.end_message(verdict, now);
                }
                if i + 1 < self.script.recipients.len() {
                    self.phase = Phase::Rcpt(i + 1);
                } else if self.accepted_recipients == 0 {
                    // No recipient left: the MTA does not start DATA.
                    let last = self.current.as_ref().and_then(|c| c.rejected_recipients.last());
                    let verdict = last.map(|(_, v)| v.clone()).unwrap_or(Decision {
                        status: Status::Reject.into(),
                        stage: "envelope-recipient",
                        reply: None,
                    });
                    return self.end_message(verdict, now);
                } else {
                    self.phase = Phase::Data;
                }
            }
            Phase::Body(i) => {
                if !pass {
                    return self.end_message(verdict, now);
                }
                self.phase = Phase::Body(i + 1);
            }
            Phase::EndOfMessage => return self.end_message(verdict, now),
            _ => {
                if !pass {
                    return self.end_message(verdict, now);
                }
                self.phase = self.next_phase(phase);
            }
        }
        self.advance(now);
    }

    fn next_phase(&self, phase: Phase) -> Phase {
        match phase {
            Phase::Mail => Phase::Rcpt(0),
            Phase::Data => Phase::Header(0),
            Phase::Header(i) => Phase::Header(i + 1),
            Phase::EndOfHeader => Phase::Body(0),
            other => other,
        }
    }

    fn end_message(&mut self, verdict: Decision, now: Instant) {
        if let Some(mut current) = self.current.take() {
            current.verdict = verdict;
            self.messages.push(current);
        }
        // Postfix aborts the milter's message state after every message.
        Command::Abort.encode(&mut self.output);
        if (self.messages.len() as u32) < self.script.n_messages {
            self.phase = Phase::Mail;
            self.advance(now);
        } else {
            self.finish_session();
        }
    }

    fn finish_session(&mut self) {
        Command::Quit.encode(&mut self.output);
        self.phase = Phase::Done;
        self.waiting = None;
    }

    /// Sends what comes next until a reply is due or the session is over.
    fn advance(&mut self, now: Instant) {
        while self.waiting.is_none() && self.phase != Phase::Done && self.error.is_none() {
            self.step(now);
        }
    }

    /// Sends the packets of the current phase (or moves past it).
    fn step(&mut self, now: Instant) {
        let steps = self.steps();
        let version = self.negotiated.as_ref().map_or(2, |n| n.version);
        let phase = self.phase;
        let (command, skipped, no_reply) = match phase {
            Phase::Connect => (
                Command::Connect {
                    hostname: self.script.connect_host.clone(),
                    address: self.script.connect_address.clone(),
                },
                steps.contains(Steps::NO_CONNECT),
                steps.contains(Steps::NR_CONNECT),
            ),
            Phase::Helo => match self.script.helo_fqdn.clone() {
                Some(fqdn) => (
                    Command::Helo { fqdn },
                    steps.contains(Steps::NO_HELO),
                    steps.contains(Steps::NR_HELO),
                ),
                None => {
                    self.phase = Phase::Unknown;
                    return;
                }
            },
            Phase::Unknown => match self.script.unknown_command.clone() {
                Some(command) if version >= 3 => (
                    Command::Unknown { command },
                    steps.contains(Steps::NO_UNKNOWN),
                    steps.contains(Steps::NR_UNKNOWN),
                ),
                _ => {
                    self.phase = Phase::Mail;
                    return;
                }
            },
            Phase::Mail => {
                self.start_message();
                let (address, parameters) = split_esmtp(&self.script.envelope_from);
                (
                    Command::EnvelopeFrom { address, parameters },
                    steps.contains(Steps::NO_MAIL),
                    steps.contains(Steps::NR_MAIL),
                )
            }
            Phase::Rcpt(i) => {
                if i >= self.script.recipients.len() {
                    // No recipients at all: nothing to deliver.
                    let verdict = Decision {
                        status: Status::Reject.into(),
                        stage: "envelope-recipient",
                        reply: None,
                    };
                    return self.end_message(verdict, now);
                }
                let (address, parameters) = split_esmtp(&self.script.recipients[i]);
                (
                    Command::EnvelopeRecipient { address, parameters },
                    steps.contains(Steps::NO_RCPT),
                    steps.contains(Steps::NR_RCPT),
                )
            }
            Phase::Data => {
                if version < 4 {
                    self.phase = Phase::Header(0);
                    return;
                }
                (Command::Data, steps.contains(Steps::NO_DATA), steps.contains(Steps::NR_DATA))
            }
            Phase::Header(i) => {
                let Some((name, value)) = self.script.headers.get(i).cloned() else {
                    self.phase = Phase::EndOfHeader;
                    return;
                };
                let value = if steps.contains(Steps::HDR_LEADSPC)
                    && !value.starts_with(b"\t")
                    && !value.is_empty()
                {
                    [b" ".as_slice(), &value].concat()
                } else {
                    value
                };
                (
                    Command::Header { name, value },
                    steps.contains(Steps::NO_HEADERS),
                    steps.contains(Steps::NR_HEADER),
                )
            }
            Phase::EndOfHeader => {
                (Command::EndOfHeader, steps.contains(Steps::NO_EOH), steps.contains(Steps::NR_EOH))
            }
            Phase::Body(i) => {
                if self.skip_body || i >= self.body_chunks.len() {
                    self.phase = Phase::EndOfMessage;
                    return;
                }
                let chunk = self.body_chunks[i].clone();
                (
                    Command::Body { chunk },
                    steps.contains(Steps::NO_BODY),
                    steps.contains(Steps::NR_BODY),
                )
            }
            Phase::EndOfMessage => {
                if let Some(current) = &mut self.current {
                    current.message.begin_modifications();
                }
                (Command::EndOfMessage { chunk: Vec::new() }, false, false)
            }
            Phase::Negotiate | Phase::Done => return,
        };
        self.send_macros(&command);
        if skipped {
            self.phase = self.phase_after_silent(phase);
            return;
        }
        command.encode(&mut self.output);
        if no_reply {
            self.log.push(format!("{}: (no reply negotiated)", phase.stage_name()));
            let verdict = Decision { status: Ending::PASS, stage: phase.stage_name(), reply: None };
            self.after_verdict(phase, verdict, now);
            // after_verdict advanced already; stop this step.
            return;
        }
        self.waiting = Some((phase, now + self.timeout_for(phase)));
    }

    /// Where the session goes when the milter does not receive the event at all.
    fn phase_after_silent(&mut self, phase: Phase) -> Phase {
        match phase {
            Phase::Connect => Phase::Helo,
            Phase::Helo => Phase::Unknown,
            Phase::Unknown => Phase::Mail,
            Phase::Rcpt(i) => {
                self.accepted_recipients += 1;
                if i + 1 < self.script.recipients.len() {
                    Phase::Rcpt(i + 1)
                } else {
                    Phase::Data
                }
            }
            Phase::Body(_) => Phase::EndOfMessage,
            other => self.next_phase(other),
        }
    }

    fn start_message(&mut self) {
        let mut message = Message::new(&self.script.envelope_from);
        for recipient in &self.script.recipients {
            let (address, parameters) = split_esmtp(recipient);
            message.add_original_recipient(&address, parameters);
        }
        for (name, value) in &self.script.headers {
            message.add_original_header(name, value);
        }
        let body: Vec<u8> = if self.script.body_chunks.is_empty() {
            self.script.body.clone()
        } else {
            self.script.body_chunks.concat()
        };
        let max = self.steps().max_data_size();
        self.body_chunks = if self.script.body_chunks.is_empty() {
            body.chunks(max).map(<[u8]>::to_vec).collect()
        } else {
            self.script.body_chunks.iter().flat_map(|c| c.chunks(max).map(<[u8]>::to_vec)).collect()
        };
        message.body = body;
        self.current = Some(MessageResult {
            verdict: Decision { status: Ending::PASS, stage: "end-of-message", reply: None },
            rejected_recipients: Vec::new(),
            message,
            modifications: Vec::new(),
        });
        self.accepted_recipients = 0;
        self.skip_body = false;
    }

    /// Sends the `D` packet for `command`, as Postfix does: before every event, even one
    /// the milter asked not to receive, with only the macros that have a value.
    fn send_macros(&mut self, command: &Command) {
        let stage = command.code();
        let mut macros = self.default_macros(command);
        for (extra_stage, name, value) in &self.script.extra_macros {
            if *extra_stage == stage {
                macros.retain(|(n, _)| n != name);
                macros.push((name.clone(), value.clone()));
            }
        }
        if let Some(requested) = self.requested_macros(stage) {
            macros.retain(|(name, _)| requested.iter().any(|r| same_macro(r, name)));
        }
        Command::DefineMacros { stage, macros }.encode(&mut self.output);
    }

    /// The milter's symbol list for the stage of `stage`, if it sent one.
    fn requested_macros(&self, stage: u8) -> Option<Vec<Vec<u8>>> {
        let negotiated = self.negotiated.as_ref()?;
        let stage = MacroStage::ALL.into_iter().find(|s| s.command_code() == stage)?;
        negotiated
            .requested_macros(stage)
            .map(|names| names.into_iter().map(<[u8]>::to_vec).collect())
    }

    fn queue_id(&self) -> Vec<u8> {
        format!("4Q{:08X}", self.messages.len() + 1).into_bytes()
    }

    fn default_macros(&self, command: &Command) -> Vec<(Vec<u8>, Vec<u8>)> {
        let pair = |n: &str, v: &[u8]| (n.as_bytes().to_vec(), v.to_vec());
        let in_message = |m: &mut Vec<(Vec<u8>, Vec<u8>)>| m.push(pair("i", &self.queue_id()));
        let mut macros = Vec::new();
        match command {
            Command::Connect { hostname, address } => {
                macros.push(pair("j", self.script.mta_hostname.as_bytes()));
                macros.push(pair("{daemon_name}", self.script.daemon_name.as_bytes()));
                macros.push(pair("v", b"milter-test-server"));
                let client_address = match address {
                    ConnectAddress::Inet { address, .. }
                    | ConnectAddress::Inet6 { address, .. } => address.clone(),
                    _ => b"unknown".to_vec(),
                };
                let underscore = [hostname.as_slice(), b" [", &client_address, b"]"].concat();
                macros.push(pair("_", &underscore));
            }
            Command::EnvelopeFrom { address, .. } => {
                for (name, value) in [
                    ("{auth_type}", &self.script.auth_type),
                    ("{auth_authen}", &self.script.auth_name),
                    ("{auth_author}", &self.script.auth_author),
                ] {
                    if let Some(value) = value {
                        macros.push(pair(name, value));
                    }
                }
                let bare = strip_angles(address);
                macros.push(pair("{mail_addr}", bare));
            }
            Command::EnvelopeRecipient { address, .. } => {
                in_message(&mut macros);
                let bare = strip_angles(address);
                let host =
                    bare.iter().rposition(|&b| b == b'@').map_or(&b""[..], |at| &bare[at + 1..]);
                macros.push(pair("{rcpt_addr}", bare));
                macros.push(pair("{rcpt_host}", host));
                macros.push(pair("{rcpt_mailer}", b"smtp"));
            }
            Command::Data
            | Command::Header { .. }
            | Command::EndOfHeader
            | Command::Body { .. }
            | Command::EndOfMessage { .. } => in_message(&mut macros),
            _ => {}
        }
        macros
    }
}

fn strip_angles(address: &[u8]) -> &[u8] {
    let address = address.strip_prefix(b"<").unwrap_or(address);
    address.strip_suffix(b">").unwrap_or(address)
}

fn same_macro(a: &[u8], b: &[u8]) -> bool {
    let bare = |x: &[u8]| -> Vec<u8> {
        let x = x.strip_prefix(b"{").unwrap_or(x);
        x.strip_suffix(b"}").unwrap_or(x).to_vec()
    };
    bare(a) == bare(b)
}

/// Splits `<addr> PARAM=1 PARAM=2` into the address and its ESMTP parameters; adds the
/// angle brackets when they are missing.
pub fn split_esmtp(text: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut parts = text.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let address = parts.next().unwrap_or_default();
    let address =
        if address.starts_with(b"<") { address.to_vec() } else { [b"<", address, b">"].concat() };
    (address, parts.map(<[u8]>::to_vec).collect())
}

/// One readable line for a reply.
pub fn describe_reply(reply: &Reply) -> String {
    use crate::text::escape;
    match reply {
        Reply::Negotiate(n) => {
            format!("negotiate: version={} actions={} steps={}", n.version, n.actions, n.steps)
        }
        Reply::ReplyCode { text } => format!("reply-code: <{}>", escape(text)),
        Reply::AddHeader { name, value } => {
            format!("add-header: <{}>=<{}>", escape(name), escape(value))
        }
        Reply::InsertHeader { index, name, value } => {
            format!("insert-header: index={index} <{}>=<{}>", escape(name), escape(value))
        }
        Reply::ChangeHeader { index, name, value } => {
            format!("change-header: index={index} <{}>=<{}>", escape(name), escape(value))
        }
        Reply::ChangeFrom { address, parameters }
        | Reply::AddRecipientWithParameters { address, parameters } => {
            format!(
                "{}: <{}> parameters=<{}>",
                reply.name(),
                escape(address),
                escape(parameters.as_deref().unwrap_or_default())
            )
        }
        Reply::AddRecipient { address } | Reply::DeleteRecipient { address } => {
            format!("{}: <{}>", reply.name(), escape(address))
        }
        Reply::ReplaceBody { chunk } => format!("replace-body: size={}", chunk.len()),
        Reply::Quarantine { reason } => format!("quarantine: <{}>", escape(reason)),
        other => other.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::test_client::TestClientSession;

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
        let steps = Steps::NO_HELO
            | Steps::NO_HEADERS
            | Steps::NR_CONNECT
            | Steps::NR_RCPT
            | Steps::NR_BODY;
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
}
