//! The command and reply letters of the protocol, with their names: the one table the
//! codecs, the logs and the tools read them from.

use std::fmt;

/// Declares a `u8` enum of protocol letters with `byte`, `from_byte`, `name` and `ALL`.
macro_rules! codes {
    ($(#[$doc:meta])* $kind:ident { $($(#[$vdoc:meta])* $variant:ident = $byte:literal, $name:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $kind {
            $($(#[$vdoc])* $variant = $byte,)*
        }

        impl $kind {
            /// Every letter, in table order.
            pub const ALL: &'static [$kind] = &[$($kind::$variant),*];

            /// The letter on the wire.
            pub const fn byte(self) -> u8 {
                self as u8
            }

            /// The letter's meaning, if the protocol defines it.
            pub const fn from_byte(byte: u8) -> Option<$kind> {
                match byte {
                    $($byte => Some($kind::$variant),)*
                    _ => None,
                }
            }

            /// The readable name, as in logs and the tools' reports.
            pub const fn name(self) -> &'static str {
                match self {
                    $($kind::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

codes! {
    /// A command letter, MTA to milter (`SMFIC_*`).
    CommandKind {
        Negotiate = b'O', "negotiate";
        DefineMacros = b'D', "define-macro";
        Connect = b'C', "connect";
        Helo = b'H', "helo";
        EnvelopeFrom = b'M', "envelope-from";
        EnvelopeRecipient = b'R', "envelope-recipient";
        Data = b'T', "data";
        Header = b'L', "header";
        EndOfHeader = b'N', "end-of-header";
        Body = b'B', "body";
        EndOfMessage = b'E', "end-of-message";
        Abort = b'A', "abort";
        Unknown = b'U', "unknown";
        Quit = b'Q', "quit";
        QuitNewConnection = b'K', "quit-new-connection";
    }
}

codes! {
    /// A reply letter, milter to MTA (`SMFIR_*`).
    ReplyKind {
        Negotiate = b'O', "negotiate-reply";
        Continue = b'c', "continue";
        Accept = b'a', "accept";
        Reject = b'r', "reject";
        TemporaryFailure = b't', "temporary-failure";
        Discard = b'd', "discard";
        Skip = b's', "skip";
        Progress = b'p', "progress";
        ConnectionFailure = b'f', "connection-failure";
        Shutdown = b'4', "shutdown";
        ReplyCode = b'y', "reply-code";
        AddHeader = b'h', "add-header";
        InsertHeader = b'i', "insert-header";
        ChangeHeader = b'm', "change-header";
        ChangeFrom = b'e', "change-from";
        AddRecipient = b'+', "add-recipient";
        AddRecipientWithParameters = b'2', "add-recipient-with-parameters";
        DeleteRecipient = b'-', "delete-recipient";
        ReplaceBody = b'b', "replace-body";
        Quarantine = b'q', "quarantine";
    }
}

/// Shows a protocol code byte readably: `'B'` for printable ones, `0x00` otherwise.
pub fn code_name(code: u8) -> String {
    if code.is_ascii_graphic() {
        format!("'{}'", code as char)
    } else {
        format!("0x{code:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_decodes_to_the_letter_it_came_from() {
        for byte in 0..=u8::MAX {
            if let Some(kind) = CommandKind::from_byte(byte) {
                assert_eq!(kind.byte(), byte);
            }
            if let Some(kind) = ReplyKind::from_byte(byte) {
                assert_eq!(kind.byte(), byte);
            }
        }
        assert_eq!(CommandKind::ALL.len(), 15);
        assert_eq!(ReplyKind::ALL.len(), 20);
        assert_eq!(CommandKind::from_byte(b'M').map(CommandKind::name), Some("envelope-from"));
        assert_eq!(ReplyKind::from_byte(b'y').map(ReplyKind::name), Some("reply-code"));
        assert_eq!(CommandKind::from_byte(b'Z'), None);
    }
}
