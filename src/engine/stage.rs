//! The stages of a milter session, named after their commands.

use crate::protocol::{CommandKind, Steps};

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
    /// Every stage, in protocol order; [`Stage::index`] is a stage's place here.
    pub const ALL: [Self; 14] = [
        Self::Start,
        Self::Negotiate,
        Self::Connect,
        Self::Helo,
        Self::EnvelopeFrom,
        Self::EnvelopeRecipient,
        Self::Data,
        Self::Unknown,
        Self::Header,
        Self::EndOfHeader,
        Self::Body,
        Self::EndOfMessage,
        Self::Abort,
        Self::Quit,
    ];

    /// Its place in [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The command that brings a session to this stage (none for the start).
    pub fn command(self) -> Option<CommandKind> {
        Some(match self {
            Self::Start => return None,
            Self::Negotiate => CommandKind::Negotiate,
            Self::Connect => CommandKind::Connect,
            Self::Helo => CommandKind::Helo,
            Self::EnvelopeFrom => CommandKind::EnvelopeFrom,
            Self::EnvelopeRecipient => CommandKind::EnvelopeRecipient,
            Self::Data => CommandKind::Data,
            Self::Unknown => CommandKind::Unknown,
            Self::Header => CommandKind::Header,
            Self::EndOfHeader => CommandKind::EndOfHeader,
            Self::Body => CommandKind::Body,
            Self::EndOfMessage => CommandKind::EndOfMessage,
            Self::Abort => CommandKind::Abort,
            Self::Quit => CommandKind::Quit,
        })
    }

    /// The name in logs: its command's.
    pub fn name(self) -> &'static str {
        self.command().map_or("start", CommandKind::name)
    }

    /// The command letter of this stage, also the stage byte of its `D` packet (none for
    /// the stages that have no macros).
    pub fn command_code(self) -> Option<u8> {
        match self {
            Self::Start | Self::Negotiate | Self::Abort | Self::Quit => None,
            other => other.command().map(CommandKind::byte),
        }
    }

    /// The step bits by which a milter declines this event and says it will not answer
    /// it, if it can.
    fn steps(self) -> (Steps, Steps) {
        match self {
            Self::Connect => (Steps::NO_CONNECT, Steps::NR_CONNECT),
            Self::Helo => (Steps::NO_HELO, Steps::NR_HELO),
            Self::EnvelopeFrom => (Steps::NO_MAIL, Steps::NR_MAIL),
            Self::EnvelopeRecipient => (Steps::NO_RCPT, Steps::NR_RCPT),
            Self::Data => (Steps::NO_DATA, Steps::NR_DATA),
            Self::Unknown => (Steps::NO_UNKNOWN, Steps::NR_UNKNOWN),
            Self::Header => (Steps::NO_HEADERS, Steps::NR_HEADER),
            Self::EndOfHeader => (Steps::NO_EOH, Steps::NR_EOH),
            Self::Body => (Steps::NO_BODY, Steps::NR_BODY),
            _ => (Steps::empty(), Steps::empty()),
        }
    }

    /// The step bit by which a milter declines this event, if it can.
    pub fn no_event_step(self) -> Steps {
        self.steps().0
    }

    /// The step bit by which a milter says it will not answer this event.
    pub fn no_reply_step(self) -> Steps {
        self.steps().1
    }

    /// Whether commands of this stage belong to the message phase (one child at a time).
    pub fn is_message_stage(self) -> bool {
        matches!(self, Self::Header | Self::EndOfHeader | Self::Body | Self::EndOfMessage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_keep_their_log_names_and_macro_letters() {
        let stages = Stage::ALL;
        assert!(stages.iter().enumerate().all(|(i, stage)| stage.index() == i));
        let shown: Vec<String> = stages
            .iter()
            .map(|s| match s.command_code() {
                Some(code) => format!("{}:{}", s.name(), code as char),
                None => s.name().to_string(),
            })
            .collect();
        assert_eq!(
            shown.join(" "),
            "start negotiate connect:C helo:H envelope-from:M envelope-recipient:R data:T \
             unknown:U header:L end-of-header:N body:B end-of-message:E abort quit"
        );
        assert_eq!(Stage::Header.no_event_step(), Steps::NO_HEADERS);
        assert_eq!(Stage::Header.no_reply_step(), Steps::NR_HEADER);
        assert!(Stage::EndOfMessage.no_reply_step().is_empty());
    }
}
