//! The stages of a milter session, named as in the original's logs.

/// Where a session (or one child) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Start,
    Negotiate,
    Connect,
    Helo,
    EnvelopeFrom,
    EnvelopeRecipient,
    Data,
    Unknown,
    Header,
    EndOfHeader,
    Body,
    EndOfMessage,
    Abort,
    Quit,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Start => "start",
            Stage::Negotiate => "negotiate",
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::EnvelopeFrom => "envelope-from",
            Stage::EnvelopeRecipient => "envelope-recipient",
            Stage::Data => "data",
            Stage::Unknown => "unknown",
            Stage::Header => "header",
            Stage::EndOfHeader => "end-of-header",
            Stage::Body => "body",
            Stage::EndOfMessage => "end-of-message",
            Stage::Abort => "abort",
            Stage::Quit => "quit",
        }
    }

    /// The command letter of this stage (also the stage byte of its `D` packet).
    pub fn command_code(self) -> Option<u8> {
        Some(match self {
            Stage::Connect => b'C',
            Stage::Helo => b'H',
            Stage::EnvelopeFrom => b'M',
            Stage::EnvelopeRecipient => b'R',
            Stage::Data => b'T',
            Stage::Unknown => b'U',
            Stage::Header => b'L',
            Stage::EndOfHeader => b'N',
            Stage::Body => b'B',
            Stage::EndOfMessage => b'E',
            _ => return None,
        })
    }

    /// The step bit by which a milter declines this event, if it can.
    pub fn no_event_step(self) -> crate::protocol::Steps {
        use crate::protocol::Steps;
        match self {
            Stage::Connect => Steps::NO_CONNECT,
            Stage::Helo => Steps::NO_HELO,
            Stage::EnvelopeFrom => Steps::NO_MAIL,
            Stage::EnvelopeRecipient => Steps::NO_RCPT,
            Stage::Data => Steps::NO_DATA,
            Stage::Unknown => Steps::NO_UNKNOWN,
            Stage::Header => Steps::NO_HEADERS,
            Stage::EndOfHeader => Steps::NO_EOH,
            Stage::Body => Steps::NO_BODY,
            _ => Steps::empty(),
        }
    }

    /// The step bit by which a milter says it will not answer this event.
    pub fn no_reply_step(self) -> crate::protocol::Steps {
        use crate::protocol::Steps;
        match self {
            Stage::Connect => Steps::NR_CONNECT,
            Stage::Helo => Steps::NR_HELO,
            Stage::EnvelopeFrom => Steps::NR_MAIL,
            Stage::EnvelopeRecipient => Steps::NR_RCPT,
            Stage::Data => Steps::NR_DATA,
            Stage::Unknown => Steps::NR_UNKNOWN,
            Stage::Header => Steps::NR_HEADER,
            Stage::EndOfHeader => Steps::NR_EOH,
            Stage::Body => Steps::NR_BODY,
            _ => Steps::empty(),
        }
    }

    /// Whether commands of this stage belong to the message phase (one child at a time).
    pub fn is_message_stage(self) -> bool {
        matches!(self, Stage::Header | Stage::EndOfHeader | Stage::Body | Stage::EndOfMessage)
    }
}
