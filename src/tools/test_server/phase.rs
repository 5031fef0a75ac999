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
            Self::Negotiate => CommandKind::Negotiate,
            Self::Connect => CommandKind::Connect,
            Self::Helo => CommandKind::Helo,
            Self::Unknown => CommandKind::Unknown,
            Self::Mail => CommandKind::EnvelopeFrom,
            Self::Rcpt(_) => CommandKind::EnvelopeRecipient,
            Self::Data => CommandKind::Data,
            Self::Header(_) => CommandKind::Header,
            Self::EndOfHeader => CommandKind::EndOfHeader,
            Self::Body(_) => CommandKind::Body,
            Self::EndOfMessage => CommandKind::EndOfMessage,
            Self::Done => CommandKind::Quit,
        }
    }

    pub(super) fn stage_name(self) -> &'static str {
        self.command().name()
    }
}
