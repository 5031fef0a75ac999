//! Where the simulated SMTP session stands.

use crate::protocol::CommandKind;

/// Where the simulated SMTP session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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
    pub(super) fn command(self) -> CommandKind {
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

    pub(super) fn stage_name(self) -> &'static str {
        self.command().name()
    }
}
