//! Commands, MTA to milter (`SMFIC_*`).

use super::code::CommandKind;
use super::frame::encode_frame;
use super::negotiation::Negotiation;
use super::wire::{put_cstr, DecodeError, Reader};

/// The address part of a CONNECT command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectAddress {
    /// Family `U`: the MTA does not know; nothing follows.
    Unknown,
    /// Family `L`: a unix socket; the port is sent (as 0) but meaningless.
    Unix { port: u16, path: Vec<u8> },
    /// Family `4`. The address stays text, exactly as the MTA wrote it.
    Inet { port: u16, address: Vec<u8> },
    /// Family `6`.
    Inet6 { port: u16, address: Vec<u8> },
}

impl ConnectAddress {
    pub fn family(&self) -> u8 {
        match self {
            Self::Unknown => b'U',
            Self::Unix { .. } => b'L',
            Self::Inet { .. } => b'4',
            Self::Inet6 { .. } => b'6',
        }
    }
}

/// A command sent by the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `O`: the MTA's offer.
    Negotiate(Negotiation),
    /// `D`: macros for the command whose letter is `stage`; never answered.
    DefineMacros { stage: u8, macros: Vec<(Vec<u8>, Vec<u8>)> },
    /// `C`
    Connect { hostname: Vec<u8>, address: ConnectAddress },
    /// `H`
    Helo { fqdn: Vec<u8> },
    /// `M`: the sender and its ESMTP parameters.
    EnvelopeFrom { address: Vec<u8>, parameters: Vec<Vec<u8>> },
    /// `R`
    EnvelopeRecipient { address: Vec<u8>, parameters: Vec<Vec<u8>> },
    /// `T`
    Data,
    /// `L`
    Header { name: Vec<u8>, value: Vec<u8> },
    /// `N`
    EndOfHeader,
    /// `B`: a chunk of the body, at most the negotiated data size.
    Body { chunk: Vec<u8> },
    /// `E`: normally empty; libmilter treats data here as a last body chunk.
    EndOfMessage { chunk: Vec<u8> },
    /// `A`: forget the current message; never answered.
    Abort,
    /// `U`: an SMTP command the MTA did not recognise.
    Unknown { command: Vec<u8> },
    /// `Q`: the session is over.
    Quit,
    /// `K`: the session is over, a new one follows on this connection.
    QuitNewConnection,
}

impl Command {
    /// Which command this is.
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::Negotiate(_) => CommandKind::Negotiate,
            Self::DefineMacros { .. } => CommandKind::DefineMacros,
            Self::Connect { .. } => CommandKind::Connect,
            Self::Helo { .. } => CommandKind::Helo,
            Self::EnvelopeFrom { .. } => CommandKind::EnvelopeFrom,
            Self::EnvelopeRecipient { .. } => CommandKind::EnvelopeRecipient,
            Self::Data => CommandKind::Data,
            Self::Header { .. } => CommandKind::Header,
            Self::EndOfHeader => CommandKind::EndOfHeader,
            Self::Body { .. } => CommandKind::Body,
            Self::EndOfMessage { .. } => CommandKind::EndOfMessage,
            Self::Abort => CommandKind::Abort,
            Self::Unknown { .. } => CommandKind::Unknown,
            Self::Quit => CommandKind::Quit,
            Self::QuitNewConnection => CommandKind::QuitNewConnection,
        }
    }

    /// The command letter.
    pub fn code(&self) -> u8 {
        self.kind().byte()
    }

    /// A readable name, as in logs.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Decodes one frame's data.
    pub fn decode(code: u8, data: &[u8]) -> Result<Self, DecodeError> {
        let kind =
            CommandKind::from_byte(code).ok_or(DecodeError::UnknownCode { code, reply: false })?;
        let mut r = Reader::new(kind.name(), data);
        let command = match kind {
            CommandKind::Negotiate => Self::Negotiate(Negotiation::decode(&mut r, false)?),
            CommandKind::DefineMacros => {
                let stage = r.u8("macro stage")?;
                if !takes_macros(stage) {
                    let detail =
                        format!("{} is not a command that macros go with", super::code_name(stage));
                    return Err(r.invalid("macro stage", detail));
                }
                let mut macros = Vec::new();
                while !r.is_empty() {
                    let name = r.cstr("macro name")?;
                    let value = r.cstr("macro value")?;
                    macros.push((name.to_vec(), value.to_vec()));
                }
                Self::DefineMacros { stage, macros }
            }
            CommandKind::Connect => {
                let hostname = r.cstr("hostname")?.to_vec();
                let family = r.u8("address family")?;
                let address = match family {
                    b'U' => ConnectAddress::Unknown,
                    b'L' | b'4' | b'6' => {
                        let port = r.u16("port")?;
                        let address = r.cstr("address")?.to_vec();
                        match family {
                            b'L' => ConnectAddress::Unix { port, path: address },
                            b'4' => ConnectAddress::Inet { port, address },
                            _ => ConnectAddress::Inet6 { port, address },
                        }
                    }
                    other => {
                        return Err(r.invalid(
                            "address family",
                            format!("{} (expected U, L, 4 or 6)", super::code_name(other)),
                        ))
                    }
                };
                Self::Connect { hostname, address }
            }
            CommandKind::Helo => Self::Helo { fqdn: r.cstr("HELO name")?.to_vec() },
            CommandKind::EnvelopeFrom | CommandKind::EnvelopeRecipient => {
                let address = r.cstr("address")?.to_vec();
                let mut parameters = Vec::new();
                while !r.is_empty() {
                    parameters.push(r.cstr("ESMTP parameter")?.to_vec());
                }
                if kind == CommandKind::EnvelopeFrom {
                    Self::EnvelopeFrom { address, parameters }
                } else {
                    Self::EnvelopeRecipient { address, parameters }
                }
            }
            CommandKind::Data => Self::Data,
            CommandKind::Header => {
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                Self::Header { name, value }
            }
            CommandKind::EndOfHeader => Self::EndOfHeader,
            CommandKind::Body => Self::Body { chunk: r.rest().to_vec() },
            CommandKind::EndOfMessage => Self::EndOfMessage { chunk: r.rest().to_vec() },
            CommandKind::Abort => Self::Abort,
            CommandKind::Unknown => Self::Unknown { command: r.cstr("command line")?.to_vec() },
            CommandKind::Quit => Self::Quit,
            CommandKind::QuitNewConnection => Self::QuitNewConnection,
        };
        r.finish()?;
        Ok(command)
    }

    /// Appends the whole frame (length, code, data).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_frame(out, self.code(), |out| self.encode_data(out));
    }

    /// Appends a `D` frame straight from borrowed name/value pairs: a proxy sends the same
    /// macros to every child, and building a `Command` for each would copy them each time.
    pub fn encode_define_macros<'a>(
        out: &mut Vec<u8>,
        stage: u8,
        macros: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        encode_frame(out, CommandKind::DefineMacros.byte(), |out| put_macros(out, stage, macros));
    }

    /// Appends a `B` frame with `chunk`, borrowed: the proxy sends each stored chunk to
    /// every child in turn.
    pub fn encode_body(out: &mut Vec<u8>, chunk: &[u8]) {
        encode_frame(out, CommandKind::Body.byte(), |out| out.extend_from_slice(chunk));
    }

    /// The frame as a new buffer.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn encode_data(&self, out: &mut Vec<u8>) {
        match self {
            // The MTA's offer has no symbol lists.
            Self::Negotiate(negotiation) => negotiation.encode_numbers(out),
            Self::DefineMacros { stage, macros } => {
                let pairs = macros.iter().map(|(name, value)| (name.as_slice(), value.as_slice()));
                put_macros(out, *stage, pairs)
            }
            Self::Connect { hostname, address } => {
                put_cstr(out, hostname);
                out.push(address.family());
                match address {
                    ConnectAddress::Unknown => {}
                    ConnectAddress::Unix { port, path: text }
                    | ConnectAddress::Inet { port, address: text }
                    | ConnectAddress::Inet6 { port, address: text } => {
                        out.extend_from_slice(&port.to_be_bytes());
                        put_cstr(out, text);
                    }
                }
            }
            Self::Helo { fqdn } => put_cstr(out, fqdn),
            Self::EnvelopeFrom { address, parameters }
            | Self::EnvelopeRecipient { address, parameters } => {
                put_cstr(out, address);
                for parameter in parameters {
                    put_cstr(out, parameter);
                }
            }
            Self::Header { name, value } => {
                put_cstr(out, name);
                put_cstr(out, value);
            }
            Self::Body { chunk } | Self::EndOfMessage { chunk } => out.extend_from_slice(chunk),
            Self::Unknown { command } => put_cstr(out, command),
            Self::Data | Self::EndOfHeader | Self::Abort | Self::Quit | Self::QuitNewConnection => {
            }
        }
    }
}

/// The data of a `D` frame: the stage's command letter, then NUL-terminated names and values.
/// Whether `stage` is a command letter the MTAs send macros before: libmilter's seven,
/// and Postfix's `L`, `B` and `U`. Any other byte would let an MTA store lists under
/// stages no child can use.
fn takes_macros(stage: u8) -> bool {
    matches!(
        CommandKind::from_byte(stage),
        Some(
            CommandKind::Connect
                | CommandKind::Helo
                | CommandKind::EnvelopeFrom
                | CommandKind::EnvelopeRecipient
                | CommandKind::Data
                | CommandKind::Header
                | CommandKind::EndOfHeader
                | CommandKind::Body
                | CommandKind::EndOfMessage
                | CommandKind::Unknown
        )
    )
}

fn put_macros<'a>(
    out: &mut Vec<u8>,
    stage: u8,
    macros: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    out.push(stage);
    for (name, value) in macros {
        put_cstr(out, name);
        put_cstr(out, value);
    }
}
