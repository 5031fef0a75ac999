//! The milter behind `milter-test-client`: it answers "continue" to everything and reports
//! every command and macro the MTA sent, one line each, so an admin can see exactly what
//! the MTA passes to milters.
//!
//! Sans-IO: bytes from the MTA go in with [`TestClientSession::handle_bytes`]; the replies
//! to send and the report lines come out of [`TestClientSession::take_output`] and
//! [`TestClientSession::take_report`].

use std::time::{Duration, Instant};

use crate::protocol::{
    Actions, Command, CommandKind, ConnectAddress, Deframer, Negotiation, PacketError, Reply,
    Steps, MAX_VERSION,
};
use crate::text::escape_into;

/// How long the MTA may stay silent before the session is dropped (libmilter's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(7210);

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The MTA sent QUIT.
    Quit,
    /// The MTA closed the connection.
    Closed,
    /// The MTA broke the protocol.
    ProtocolError(MtaError),
    /// The MTA was silent for [`IDLE_TIMEOUT`].
    IdleTimeout,
}

/// How the MTA broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MtaError {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error("the MTA closed the connection in the middle of a packet")]
    ClosedMidPacket,
    #[error("the MTA offered protocol version {0}; 2 is the oldest")]
    OldVersion(u32),
}

/// One MTA connection.
#[derive(Debug)]
pub struct TestClientSession {
    label: String,
    report_requests: bool,
    deframer: Deframer,
    output: Vec<u8>,
    report: String,
    end: Option<SessionEnd>,
    deadline: Instant,
    messages: u64,
    /// Negotiated (or told `K`) and no conversation started since.
    between_sessions: bool,
}

impl TestClientSession {
    /// `label` names the session in the report (`[label] ...`); `report_requests` false
    /// keeps the report to errors only (`--no-report-request`).
    pub fn new(label: impl Into<String>, report_requests: bool, now: Instant) -> Self {
        Self {
            label: label.into(),
            report_requests,
            // Up to the largest negotiable data size; the MTA decides what it sends.
            deframer: Deframer::default(),
            output: Vec::new(),
            report: String::new(),
            end: None,
            deadline: now + IDLE_TIMEOUT,
            messages: 0,
            between_sessions: false,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Messages that reached end-of-message.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Feeds bytes received from the MTA.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if self.end.is_some() {
            return;
        }
        self.deadline = now + IDLE_TIMEOUT;
        self.deframer.push(bytes);
        while self.end.is_none() {
            let decoded = match self.deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(PacketError::from(error)),
                Some(Ok(frame)) => {
                    Command::decode(frame.code, frame.data).map_err(PacketError::from)
                }
            };
            match decoded {
                Ok(command) => self.handle_command(command),
                Err(error) => self.fail(error.into()),
            }
        }
    }

    /// The MTA closed the connection.
    pub fn handle_closed(&mut self) {
        if self.end.is_none() {
            if self.deframer.has_partial_frame() {
                self.fail(MtaError::ClosedMidPacket);
            } else {
                self.finish(SessionEnd::Closed);
            }
        }
    }

    /// Time passed; ends the session when the MTA has been idle too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.end.is_none() && now >= self.deadline {
            self.line("error: the MTA sent nothing for 7210 seconds; closing");
            self.finish(SessionEnd::IdleTimeout);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.end.is_none().then_some(self.deadline)
    }

    /// Reply bytes to send to the MTA, all at once.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Report text produced since the last call (whole lines).
    pub fn take_report(&mut self) -> String {
        std::mem::take(&mut self.report)
    }

    pub fn end(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }

    /// Between conversations with nothing pending: negotiated or told `K`, no command
    /// since. Like a libmilter milter, the program does not wait for such a connection
    /// when it stops.
    pub fn is_idle(&self) -> bool {
        self.between_sessions
            && self.end.is_none()
            && self.output.is_empty()
            && !self.deframer.has_partial_frame()
    }

    fn finish(&mut self, end: SessionEnd) {
        self.end = Some(end);
    }

    fn fail(&mut self, error: MtaError) {
        self.line(&format!("error: {error}"));
        self.finish(SessionEnd::ProtocolError(error));
    }

    fn reply(&mut self, reply: Reply) {
        reply.encode(&mut self.output);
    }

    fn handle_command(&mut self, command: Command) {
        self.between_sessions =
            matches!(command, Command::Negotiate(_) | Command::QuitNewConnection);
        if self.report_requests {
            let line = describe_command(&command);
            self.line(&line);
        }
        match command {
            Command::Negotiate(offer) => {
                if offer.version < 2 {
                    self.fail(MtaError::OldVersion(offer.version));
                    return;
                }
                // Ask for every event and answer each one, so the report is complete.
                let answer = Negotiation::new(
                    offer.version.min(MAX_VERSION),
                    Actions::empty(),
                    Steps::empty(),
                );
                self.reply(Reply::Negotiate(answer));
            }
            Command::DefineMacros { .. } | Command::Abort | Command::QuitNewConnection => {}
            Command::Quit => self.finish(SessionEnd::Quit),
            Command::EndOfMessage { .. } => {
                self.messages += 1;
                self.reply(Reply::Continue);
            }
            Command::Connect { .. }
            | Command::Helo { .. }
            | Command::EnvelopeFrom { .. }
            | Command::EnvelopeRecipient { .. }
            | Command::Data
            | Command::Header { .. }
            | Command::EndOfHeader
            | Command::Body { .. }
            | Command::Unknown { .. } => self.reply(Reply::Continue),
        }
    }

    fn line(&mut self, text: &str) {
        use std::fmt::Write;
        let _ = writeln!(self.report, "[{}] {text}", self.label);
    }
}

/// The macro stage named by the command letter a `D` packet carries.
pub fn stage_name(stage: u8) -> String {
    match CommandKind::from_byte(stage) {
        Some(kind) => kind.name().to_string(),
        None => crate::protocol::code_name(stage),
    }
}

/// One report line for a command: its name and every argument as `key=<value>`.
pub fn describe_command(command: &Command) -> String {
    let mut line = String::from(command.name());
    let field = |line: &mut String, key: &str, value: &[u8]| {
        line.push(' ');
        line.push_str(key);
        line.push_str("=<");
        escape_into(line, value);
        line.push('>');
    };
    match command {
        Command::Negotiate(offer) => {
            line.push_str(&format!(
                ": version={} actions={} steps={}",
                offer.version, offer.actions, offer.steps
            ));
        }
        Command::DefineMacros { stage, macros } => {
            line.push_str(": stage=");
            line.push_str(&stage_name(*stage));
            for (name, value) in macros {
                line.push(' ');
                escape_into(&mut line, name);
                line.push_str("=<");
                escape_into(&mut line, value);
                line.push('>');
            }
        }
        Command::Connect { hostname, address } => {
            line.push(':');
            field(&mut line, "host", hostname);
            field(&mut line, "address", describe_address(address).as_bytes());
        }
        Command::Helo { fqdn } => {
            line.push(':');
            field(&mut line, "fqdn", fqdn);
        }
        Command::EnvelopeFrom { address, parameters }
        | Command::EnvelopeRecipient { address, parameters } => {
            line.push(':');
            field(&mut line, "address", address);
            for parameter in parameters {
                field(&mut line, "parameter", parameter);
            }
        }
        Command::Header { name, value } => {
            line.push(':');
            field(&mut line, "name", name);
            field(&mut line, "value", value);
        }
        Command::Body { chunk } | Command::EndOfMessage { chunk } => {
            line.push_str(&format!(": size={}", chunk.len()));
            if !chunk.is_empty() {
                field(&mut line, "chunk", chunk);
            }
        }
        Command::Unknown { command } => {
            line.push(':');
            field(&mut line, "command", command);
        }
        Command::Data
        | Command::EndOfHeader
        | Command::Abort
        | Command::Quit
        | Command::QuitNewConnection => {}
    }
    line
}

/// A CONNECT address in connection-spec form: `inet:PORT@[ADDRESS]`, `unix:PATH`, `unknown`.
pub fn describe_address(address: &ConnectAddress) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match address {
        ConnectAddress::Unknown => "unknown".to_string(),
        ConnectAddress::Unix { path, .. } => format!("unix:{}", text(path)),
        ConnectAddress::Inet { port, address } => format!("inet:{port}@[{}]", text(address)),
        ConnectAddress::Inet6 { port, address } => format!("inet6:{port}@[{}]", text(address)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(commands: &[Command]) -> Vec<u8> {
        let mut out = Vec::new();
        for command in commands {
            command.encode(&mut out);
        }
        out
    }

    fn decode_replies(bytes: &[u8]) -> Vec<Reply> {
        let mut deframer = Deframer::default();
        deframer.push(bytes);
        let mut replies = Vec::new();
        while let Some(frame) = deframer.next_frame() {
            let frame = frame.unwrap();
            replies.push(Reply::decode(frame.code, frame.data).unwrap());
        }
        replies
    }

    #[test]
    fn answers_every_event_but_macros_abort_and_quit() {
        let now = Instant::now();
        let mut session = TestClientSession::new("7", true, now);
        let commands = [
            Command::Negotiate(Negotiation::mta_default()),
            Command::DefineMacros {
                stage: b'C',
                macros: vec![(b"j".to_vec(), b"mx.test".to_vec())],
            },
            Command::Connect {
                hostname: b"localhost".to_vec(),
                address: ConnectAddress::Inet { port: 4242, address: b"127.0.0.1".to_vec() },
            },
            Command::Helo { fqdn: b"client.test".to_vec() },
            Command::EnvelopeFrom {
                address: b"<a@test>".to_vec(),
                parameters: vec![b"SIZE=5".to_vec()],
            },
            Command::EnvelopeRecipient { address: b"<b@test>".to_vec(), parameters: vec![] },
            Command::Data,
            Command::Header { name: b"Subject".to_vec(), value: b"a\n\tb".to_vec() },
            Command::EndOfHeader,
            Command::Body { chunk: b"hi\r\n\0".to_vec() },
            Command::EndOfMessage { chunk: vec![] },
            Command::Abort,
            Command::Quit,
        ];
        // Byte by byte, to show the session does not depend on packet boundaries.
        for byte in frames(&commands) {
            session.handle_bytes(&[byte], now);
        }
        let replies = decode_replies(&session.take_output());
        assert_eq!(
            replies[0],
            Reply::Negotiate(Negotiation::new(6, Actions::empty(), Steps::empty()))
        );
        assert_eq!(replies[1..], vec![Reply::Continue; 9]);
        assert_eq!(session.end(), Some(&SessionEnd::Quit));
        assert_eq!(session.messages(), 1);
        let report = session.take_report();
        let expected = "\
[7] negotiate: version=6 actions=add-headers|change-body|add-envelope-recipient|delete-envelope-recipient|change-headers|quarantine|change-envelope-from|add-envelope-recipient-with-parameters|set-symbol-list steps=no-connect|no-helo|no-envelope-from|no-envelope-recipient|no-body|no-headers|no-end-of-header|no-reply-header|no-unknown|no-data|skip|envelope-recipient-rejected|no-reply-connect|no-reply-helo|no-reply-envelope-from|no-reply-envelope-recipient|no-reply-data|no-reply-unknown|no-reply-end-of-header|no-reply-body|header-value-with-leading-space
[7] define-macro: stage=connect j=<mx.test>
[7] connect: host=<localhost> address=<inet:4242@[127.0.0.1]>
[7] helo: fqdn=<client.test>
[7] envelope-from: address=<<a@test>> parameter=<SIZE=5>
[7] envelope-recipient: address=<<b@test>>
[7] data
[7] header: name=<Subject> value=<a\\n\\tb>
[7] end-of-header
[7] body: size=5 chunk=<hi\\r\\n\\0>
[7] end-of-message: size=0
[7] abort
[7] quit
";
        assert_eq!(report, expected);
    }

    #[test]
    fn garbage_ends_the_session_with_a_reason() {
        let now = Instant::now();
        let mut session = TestClientSession::new("1", false, now);
        session.handle_bytes(&[0, 0, 0, 1, b'Z'], now);
        let Some(SessionEnd::ProtocolError(error)) = session.end() else {
            panic!("{:?}", session.end())
        };
        assert_eq!(error.to_string(), "unknown command code 'Z'");
        assert_eq!(session.take_report(), "[1] error: unknown command code 'Z'\n");
        assert!(session.take_output().is_empty());
    }

    #[test]
    fn close_mid_packet_is_reported() {
        let now = Instant::now();
        let mut session = TestClientSession::new("1", true, now);
        session.handle_bytes(&[0, 0, 0, 9, b'H'], now);
        session.handle_closed();
        assert_eq!(session.end(), Some(&SessionEnd::ProtocolError(MtaError::ClosedMidPacket)));
        assert!(session
            .take_report()
            .ends_with("[1] error: the MTA closed the connection in the middle of a packet\n"));
    }

    #[test]
    fn an_offer_older_than_version_2_is_refused() {
        let now = Instant::now();
        let mut session = TestClientSession::new("1", false, now);
        session.handle_bytes(&[0, 0, 0, 13, b'O', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], now);
        assert_eq!(session.end(), Some(&SessionEnd::ProtocolError(MtaError::OldVersion(1))));
        let report = session.take_report();
        assert_eq!(report, "[1] error: the MTA offered protocol version 1; 2 is the oldest\n");
    }

    #[test]
    fn idle_mta_times_out() {
        let now = Instant::now();
        let mut session = TestClientSession::new("1", true, now);
        session.handle_timeout(now + Duration::from_secs(10));
        assert_eq!(session.end(), None);
        session.handle_timeout(session.deadline().unwrap());
        assert_eq!(session.end(), Some(&SessionEnd::IdleTimeout));
    }

    #[test]
    fn idle_between_conversations_only() {
        let now = Instant::now();
        let mut session = TestClientSession::new("1", false, now);
        assert!(!session.is_idle(), "not negotiated yet");
        session.handle_bytes(&frames(&[Command::Negotiate(Negotiation::mta_default())]), now);
        assert!(!session.is_idle(), "its answer is not sent yet");
        session.take_output();
        assert!(session.is_idle());
        let connect =
            Command::Connect { hostname: b"h".to_vec(), address: ConnectAddress::Unknown };
        session.handle_bytes(&frames(&[connect]), now);
        session.take_output();
        assert!(!session.is_idle(), "a conversation is under way");
        session.handle_bytes(&frames(&[Command::QuitNewConnection]), now);
        assert!(session.is_idle(), "told K: the next conversation may never come");
        session.handle_bytes(&[0, 0], now);
        assert!(!session.is_idle(), "part of a packet came");
    }
}
