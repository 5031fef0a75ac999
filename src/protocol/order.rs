//! The order of the MTA's commands: which may follow which, given what was negotiated.
//!
//! A conversation is the option negotiation, connect, HELO, then messages: MAIL, RCPT...,
//! DATA, headers, end-of-header, body chunks, end-of-message. A command may be left out
//! where the MTA will not send it: negotiated away by its `NO_*` step, or newer than the
//! protocol version; HELO, headers and the body may be missing anyway. Macros, unknown
//! SMTP commands, abort and the two quits fit anywhere after the negotiation.
//!
//! MTAs do not all keep to this order (an MTA older than DATA goes from RCPT to the
//! headers, Postfix sends abort after end-of-message), so a misplaced command is reported
//! with where the conversation resumes, for the caller to decide how lenient to be.

use super::{Command, Negotiation, Steps};

/// Where the MTA's conversation is, as far as the order of its commands goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Before the option negotiation (also after `K`: a new one follows).
    Start,
    Negotiated,
    Connected,
    /// After HELO, or between messages.
    Greeted,
    Mail,
    Recipients,
    Data,
    Headers,
    EndOfHeader,
    Body,
    /// After `Q`: nothing may follow.
    Quit,
}

/// Why a command does not fit where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfOrder {
    /// Anything but the option negotiation comes first.
    BeforeNegotiation,
    /// A second option negotiation.
    NegotiatedTwice,
    /// Anything after `Q`.
    AfterQuit,
    /// A command its position does not allow; taken anyway, it leaves the conversation
    /// at `resume`.
    Misplaced { after: Position, resume: Position },
}

/// When the MTA may leave a command of the sequence out.
#[derive(Clone, Copy)]
enum LeftOut {
    Never,
    Always,
    /// When this step was negotiated.
    By(Steps),
    /// When this step was negotiated, or the protocol version is older than the command.
    ByOrBefore(Steps, u32),
}

/// One command of the conversation's sequence.
struct Row {
    code: u8,
    /// Where the conversation is once it was sent.
    leads_to: Position,
    /// It may come again right after itself.
    repeats: bool,
    left_out: LeftOut,
}

/// The sequence, in order. [`Position::rows_done`] says how far into it a position is.
const SEQUENCE: [Row; 9] = [
    Row {
        code: b'C',
        leads_to: Position::Connected,
        repeats: false,
        left_out: LeftOut::By(Steps::NO_CONNECT),
    },
    Row { code: b'H', leads_to: Position::Greeted, repeats: true, left_out: LeftOut::Always },
    Row {
        code: b'M',
        leads_to: Position::Mail,
        repeats: false,
        left_out: LeftOut::By(Steps::NO_MAIL),
    },
    Row {
        code: b'R',
        leads_to: Position::Recipients,
        repeats: true,
        left_out: LeftOut::By(Steps::NO_RCPT),
    },
    Row {
        code: b'T',
        leads_to: Position::Data,
        repeats: false,
        left_out: LeftOut::ByOrBefore(Steps::NO_DATA, 4),
    },
    Row { code: b'L', leads_to: Position::Headers, repeats: true, left_out: LeftOut::Always },
    Row {
        code: b'N',
        leads_to: Position::EndOfHeader,
        repeats: false,
        left_out: LeftOut::By(Steps::NO_EOH),
    },
    Row { code: b'B', leads_to: Position::Body, repeats: true, left_out: LeftOut::Always },
    // End-of-message closes the message: the next one may start (or HELO come again).
    Row { code: b'E', leads_to: Position::Greeted, repeats: false, left_out: LeftOut::Never },
];

impl Position {
    /// Where the conversation is after `command`, or why `command` does not fit here.
    /// `granted` is what the MTA was answered in the negotiation.
    pub fn next(self, command: &Command, granted: &Negotiation) -> Result<Self, OutOfOrder> {
        match (self, command) {
            (Self::Start, Command::Negotiate(_)) => return Ok(Self::Negotiated),
            (Self::Start, _) => return Err(OutOfOrder::BeforeNegotiation),
            (Self::Quit, _) => return Err(OutOfOrder::AfterQuit),
            (_, Command::Negotiate(_)) => return Err(OutOfOrder::NegotiatedTwice),
            (_, Command::DefineMacros { .. } | Command::Unknown { .. }) => return Ok(self),
            (_, Command::Abort) => return Ok(self.after_abort()),
            (_, Command::Quit) => return Ok(Self::Quit),
            (_, Command::QuitNewConnection) => return Ok(Self::Start),
            _ => {}
        }
        let code = command.code();
        let Some(row) = SEQUENCE.iter().position(|row| row.code == code) else {
            // Every command is matched above or has a row.
            return Ok(self);
        };
        let resume = SEQUENCE[row].leads_to;
        let done = self.rows_done();
        let repeated = row + 1 == done && SEQUENCE[row].repeats;
        let reached = row >= done && SEQUENCE[done..row].iter().all(|r| r.may_be_left_out(granted));
        if repeated || reached {
            Ok(resume)
        } else {
            Err(OutOfOrder::Misplaced { after: self, resume })
        }
    }

    /// How many rows of [`SEQUENCE`] are behind the conversation: the next command is
    /// looked for from that row on.
    fn rows_done(self) -> usize {
        match self {
            Self::Start | Self::Negotiated => 0,
            Self::Connected => 1,
            Self::Greeted => 2,
            Self::Mail => 3,
            Self::Recipients => 4,
            Self::Data => 5,
            Self::Headers => 6,
            Self::EndOfHeader => 7,
            Self::Body | Self::Quit => 8,
        }
    }

    /// Abort ends a message; outside one it changes nothing (Postfix sends it after
    /// end-of-message too, often twice).
    fn after_abort(self) -> Self {
        match self {
            Self::Mail
            | Self::Recipients
            | Self::Data
            | Self::Headers
            | Self::EndOfHeader
            | Self::Body => Self::Greeted,
            other => other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "the start",
            Self::Negotiated => "the negotiation",
            Self::Connected => "connect",
            Self::Greeted => "helo",
            Self::Mail => "envelope-from",
            Self::Recipients => "envelope-recipient",
            Self::Data => "data",
            Self::Headers => "header",
            Self::EndOfHeader => "end-of-header",
            Self::Body => "body",
            Self::Quit => "quit",
        }
    }
}

impl Row {
    fn may_be_left_out(&self, granted: &Negotiation) -> bool {
        match self.left_out {
            LeftOut::Never => false,
            LeftOut::Always => true,
            LeftOut::By(step) => granted.steps.contains(step),
            LeftOut::ByOrBefore(step, version) => {
                granted.steps.contains(step) || granted.version < version
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Actions, ConnectAddress};

    fn v6(steps: Steps) -> Negotiation {
        Negotiation::new(6, Actions::empty(), steps)
    }

    fn command(code: u8) -> Command {
        match code {
            b'O' => Command::Negotiate(v6(Steps::empty())),
            b'D' => Command::DefineMacros { stage: b'C', macros: Vec::new() },
            b'C' => Command::Connect { hostname: b"mx".to_vec(), address: ConnectAddress::Unknown },
            b'H' => Command::Helo { fqdn: b"client.example".to_vec() },
            b'M' => {
                Command::EnvelopeFrom { address: b"<a@example.org>".to_vec(), parameters: vec![] }
            }
            b'R' => Command::EnvelopeRecipient {
                address: b"<b@example.org>".to_vec(),
                parameters: vec![],
            },
            b'T' => Command::Data,
            b'L' => Command::Header { name: b"Subject".to_vec(), value: b" hi".to_vec() },
            b'N' => Command::EndOfHeader,
            b'B' => Command::Body { chunk: b"text\r\n".to_vec() },
            b'E' => Command::EndOfMessage { chunk: Vec::new() },
            b'A' => Command::Abort,
            b'U' => Command::Unknown { command: b"XYZZY".to_vec() },
            b'Q' => Command::Quit,
            b'K' => Command::QuitNewConnection,
            other => panic!("no command {}", other as char),
        }
    }

    /// Feeds the letters in `codes` from the start; the position after the last one, or
    /// the first misfit with its index.
    fn walk(codes: &str, granted: &Negotiation) -> Result<Position, (usize, OutOfOrder)> {
        let mut position = Position::Start;
        for (i, code) in codes.bytes().enumerate() {
            position = position.next(&command(code), granted).map_err(|e| (i, e))?;
        }
        Ok(position)
    }

    #[test]
    fn a_full_conversation_is_in_order() {
        let all = v6(Steps::empty());
        assert_eq!(walk("ODCDHDMRRDTLLNBBE", &all), Ok(Position::Greeted));
        // A second message, HELO again, an unknown command, the end.
        assert_eq!(walk("OCHMRTNEAAHUMRTLNBEQ", &all), Ok(Position::Quit));
    }

    #[test]
    fn what_the_protocol_lets_miss_may_miss() {
        let all = v6(Steps::empty());
        // No HELO, no headers, no body.
        assert_eq!(walk("OCMRTNE", &all), Ok(Position::Greeted));
        // Headers straight to the body is not: end-of-header comes unless negotiated away.
        assert_eq!(
            walk("OCMRTLB", &all),
            Err((6, OutOfOrder::Misplaced { after: Position::Headers, resume: Position::Body }))
        );
        assert_eq!(walk("OCMRTLB", &v6(Steps::NO_EOH)), Ok(Position::Body));
    }

    #[test]
    fn negotiated_no_steps_let_their_commands_miss() {
        let skipped = v6(Steps::NO_CONNECT | Steps::NO_MAIL | Steps::NO_RCPT | Steps::NO_DATA);
        assert_eq!(walk("OLNBE", &skipped), Ok(Position::Greeted));
        assert_eq!(
            walk("OMRTLE", &v6(Steps::NO_EOH)),
            Err((1, misplaced(Position::Negotiated, Position::Mail)))
        );
    }

    #[test]
    fn data_may_miss_before_version_4() {
        let v3 = Negotiation::new(3, Actions::empty(), Steps::empty());
        assert_eq!(walk("OCHMRLNBE", &v3), Ok(Position::Greeted));
        assert_eq!(
            walk("OCHMRLNBE", &v6(Steps::empty())),
            Err((5, misplaced(Position::Recipients, Position::Headers)))
        );
    }

    #[test]
    fn repeats_only_where_a_command_may_come_again() {
        let all = v6(Steps::empty());
        assert_eq!(walk("OCHHMRRR", &all), Ok(Position::Recipients));
        assert_eq!(
            walk("OCC", &all),
            Err((2, misplaced(Position::Connected, Position::Connected)))
        );
        assert_eq!(walk("OCMM", &all), Err((3, misplaced(Position::Mail, Position::Mail))));
        assert_eq!(walk("OCMRTT", &all), Err((5, misplaced(Position::Data, Position::Data))));
    }

    #[test]
    fn nothing_goes_back_without_ending_the_message() {
        let all = v6(Steps::empty());
        assert_eq!(
            walk("OCMRH", &all),
            Err((4, misplaced(Position::Recipients, Position::Greeted)))
        );
        assert_eq!(walk("OCMRTLNBL", &all), Err((8, misplaced(Position::Body, Position::Headers))));
        // Abort or end-of-message ends it; then a new MAIL fits, a new connect does not.
        assert_eq!(walk("OCMRAMR", &all), Ok(Position::Recipients));
        assert_eq!(
            walk("OCMRTNEC", &all),
            Err((7, misplaced(Position::Greeted, Position::Connected)))
        );
    }

    #[test]
    fn an_abort_outside_a_message_changes_nothing() {
        let all = v6(Steps::empty());
        assert_eq!(walk("OA", &all), Ok(Position::Negotiated));
        assert_eq!(walk("OCA", &all), Ok(Position::Connected));
        assert_eq!(walk("OCHMRTNEAA", &all), Ok(Position::Greeted));
    }

    #[test]
    fn the_negotiation_comes_first_and_once_per_connection() {
        let all = v6(Steps::empty());
        for first in "DCHMRTLNBEAUQK".bytes() {
            assert_eq!(
                walk(&format!("{}", first as char), &all),
                Err((0, OutOfOrder::BeforeNegotiation))
            );
        }
        assert_eq!(walk("OCO", &all), Err((2, OutOfOrder::NegotiatedTwice)));
        // K ends the connection's conversation: a new negotiation follows.
        assert_eq!(walk("OCHKOC", &all), Ok(Position::Connected));
        assert_eq!(walk("OCHKC", &all), Err((4, OutOfOrder::BeforeNegotiation)));
    }

    #[test]
    fn nothing_follows_quit() {
        let all = v6(Steps::empty());
        for next in "ODCHMAUQK".bytes() {
            assert_eq!(
                walk(&format!("OCQ{}", next as char), &all),
                Err((3, OutOfOrder::AfterQuit))
            );
        }
    }

    #[test]
    fn macros_and_unknown_commands_fit_anywhere_after_the_negotiation() {
        let all = v6(Steps::empty());
        for prefix in
            ["O", "OC", "OCH", "OCHM", "OCHMR", "OCHMRT", "OCHMRTL", "OCHMRTLN", "OCHMRTLNB"]
        {
            let before = walk(prefix, &all).unwrap();
            assert_eq!(walk(&format!("{prefix}D"), &all), Ok(before), "D after {prefix}");
            assert_eq!(walk(&format!("{prefix}U"), &all), Ok(before), "U after {prefix}");
        }
    }

    fn misplaced(after: Position, resume: Position) -> OutOfOrder {
        OutOfOrder::Misplaced { after, resume }
    }
}
