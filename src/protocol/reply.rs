//! Replies, milter to MTA (`SMFIR_*`).

use super::flags::Actions;
use super::frame::encode_frame;
use super::negotiation::Negotiation;
use super::wire::{put_cstr, DecodeError, Reader};

/// A reply or modification sent by a milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `O`: the milter's answer to the negotiation, possibly with symbol lists.
    Negotiate(Negotiation),
    /// `c`
    Continue,
    /// `a`
    Accept,
    /// `r`
    Reject,
    /// `t`
    TemporaryFailure,
    /// `d`
    Discard,
    /// `s`: do not send more events of this kind (body chunks).
    Skip,
    /// `p`: still working; the MTA restarts its timer.
    Progress,
    /// `f`: defined but unused by MTAs.
    ConnectionFailure,
    /// `4`: close the SMTP session with 421.
    Shutdown,
    /// `y`: an SMTP reply such as `550 5.7.1 text`, replacing reject or tempfail.
    ReplyCode { text: Vec<u8> },
    /// `h`
    AddHeader { name: Vec<u8>, value: Vec<u8> },
    /// `i`: insert at `index` (0 = top).
    InsertHeader { index: u32, name: Vec<u8>, value: Vec<u8> },
    /// `m`: change the `index`-th (1-based) header called `name`; an empty value deletes it.
    ChangeHeader { index: u32, name: Vec<u8>, value: Vec<u8> },
    /// `e`
    ChangeFrom { address: Vec<u8>, parameters: Option<Vec<u8>> },
    /// `+`
    AddRecipient { address: Vec<u8> },
    /// `2`
    AddRecipientWithParameters { address: Vec<u8>, parameters: Option<Vec<u8>> },
    /// `-`
    DeleteRecipient { address: Vec<u8> },
    /// `b`: a chunk of the new body; several packets concatenate.
    ReplaceBody { chunk: Vec<u8> },
    /// `q`
    Quarantine { reason: Vec<u8> },
}

impl Reply {
    pub fn code(&self) -> u8 {
        match self {
            Reply::Negotiate(_) => b'O',
            Reply::Continue => b'c',
            Reply::Accept => b'a',
            Reply::Reject => b'r',
            Reply::TemporaryFailure => b't',
            Reply::Discard => b'd',
            Reply::Skip => b's',
            Reply::Progress => b'p',
            Reply::ConnectionFailure => b'f',
            Reply::Shutdown => b'4',
            Reply::ReplyCode { .. } => b'y',
            Reply::AddHeader { .. } => b'h',
            Reply::InsertHeader { .. } => b'i',
            Reply::ChangeHeader { .. } => b'm',
            Reply::ChangeFrom { .. } => b'e',
            Reply::AddRecipient { .. } => b'+',
            Reply::AddRecipientWithParameters { .. } => b'2',
            Reply::DeleteRecipient { .. } => b'-',
            Reply::ReplaceBody { .. } => b'b',
            Reply::Quarantine { .. } => b'q',
        }
    }

    pub fn name(&self) -> &'static str {
        reply_name(self.code()).unwrap_or("unknown-code")
    }

    /// Whether this is a message modification, legal only in answer to end-of-message.
    pub fn is_modification(&self) -> bool {
        matches!(
            self,
            Reply::AddHeader { .. }
                | Reply::InsertHeader { .. }
                | Reply::ChangeHeader { .. }
                | Reply::ChangeFrom { .. }
                | Reply::AddRecipient { .. }
                | Reply::AddRecipientWithParameters { .. }
                | Reply::DeleteRecipient { .. }
                | Reply::ReplaceBody { .. }
                | Reply::Quarantine { .. }
        )
    }

    /// The action a milter must have negotiated to send this modification (none for
    /// other replies).
    pub fn required_action(&self) -> Actions {
        match self {
            Reply::AddHeader { .. } | Reply::InsertHeader { .. } => Actions::ADD_HEADERS,
            Reply::ChangeHeader { .. } => Actions::CHANGE_HEADERS,
            Reply::ChangeFrom { .. } => Actions::CHANGE_FROM,
            Reply::AddRecipient { .. } => Actions::ADD_RCPT,
            Reply::AddRecipientWithParameters { .. } => Actions::ADD_RCPT_WITH_ARGS,
            Reply::DeleteRecipient { .. } => Actions::DELETE_RCPT,
            Reply::ReplaceBody { .. } => Actions::CHANGE_BODY,
            Reply::Quarantine { .. } => Actions::QUARANTINE,
            _ => Actions::empty(),
        }
    }

    /// Decodes one frame's data. Simple replies must carry no data (Postfix refuses
    /// trailing bytes too).
    pub fn decode(code: u8, data: &[u8]) -> Result<Reply, DecodeError> {
        let packet = reply_name(code).ok_or(DecodeError::UnknownCode { code, reply: true })?;
        let mut r = Reader::new(packet, data);
        let reply = match code {
            b'O' => Reply::Negotiate(Negotiation::decode(&mut r, true)?),
            b'c' => Reply::Continue,
            b'a' => Reply::Accept,
            b'r' => Reply::Reject,
            b't' => Reply::TemporaryFailure,
            b'd' => Reply::Discard,
            b's' => Reply::Skip,
            b'p' => Reply::Progress,
            b'f' => Reply::ConnectionFailure,
            b'4' => Reply::Shutdown,
            b'y' => Reply::ReplyCode { text: r.cstr("reply text")?.to_vec() },
            b'h' => {
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                Reply::AddHeader { name, value }
            }
            b'i' | b'm' => {
                let index = r.u32("header index")?;
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                if code == b'i' {
                    Reply::InsertHeader { index, name, value }
                } else {
                    Reply::ChangeHeader { index, name, value }
                }
            }
            b'e' | b'2' => {
                let address = r.cstr("address")?.to_vec();
                let parameters =
                    if r.is_empty() { None } else { Some(r.cstr("ESMTP parameters")?.to_vec()) };
                if code == b'e' {
                    Reply::ChangeFrom { address, parameters }
                } else {
                    Reply::AddRecipientWithParameters { address, parameters }
                }
            }
            b'+' => Reply::AddRecipient { address: r.cstr("address")?.to_vec() },
            b'-' => Reply::DeleteRecipient { address: r.cstr("address")?.to_vec() },
            b'b' => Reply::ReplaceBody { chunk: r.rest().to_vec() },
            b'q' => Reply::Quarantine { reason: r.cstr("reason")?.to_vec() },
            _ => unreachable!("reply_name knows only the codes above"),
        };
        r.finish()?;
        Ok(reply)
    }

    /// Appends the whole frame (length, code, data).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_frame(out, self.code(), |out| self.encode_data(out));
    }

    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn encode_data(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Negotiate(negotiation) => negotiation.encode_data(out),
            Reply::ReplyCode { text } => put_cstr(out, text),
            Reply::AddHeader { name, value } => {
                put_cstr(out, name);
                put_cstr(out, value);
            }
            Reply::InsertHeader { index, name, value }
            | Reply::ChangeHeader { index, name, value } => {
                out.extend_from_slice(&index.to_be_bytes());
                put_cstr(out, name);
                put_cstr(out, value);
            }
            Reply::ChangeFrom { address, parameters }
            | Reply::AddRecipientWithParameters { address, parameters } => {
                put_cstr(out, address);
                if let Some(parameters) = parameters {
                    put_cstr(out, parameters);
                }
            }
            Reply::AddRecipient { address } | Reply::DeleteRecipient { address } => {
                put_cstr(out, address)
            }
            Reply::ReplaceBody { chunk } => out.extend_from_slice(chunk),
            Reply::Quarantine { reason } => put_cstr(out, reason),
            Reply::Continue
            | Reply::Accept
            | Reply::Reject
            | Reply::TemporaryFailure
            | Reply::Discard
            | Reply::Skip
            | Reply::Progress
            | Reply::ConnectionFailure
            | Reply::Shutdown => {}
        }
    }
}

/// The readable name of a reply code.
pub fn reply_name(code: u8) -> Option<&'static str> {
    Some(match code {
        b'O' => "negotiate-reply",
        b'c' => "continue",
        b'a' => "accept",
        b'r' => "reject",
        b't' => "temporary-failure",
        b'd' => "discard",
        b's' => "skip",
        b'p' => "progress",
        b'f' => "connection-failure",
        b'4' => "shutdown",
        b'y' => "reply-code",
        b'h' => "add-header",
        b'i' => "insert-header",
        b'm' => "change-header",
        b'e' => "change-from",
        b'+' => "add-recipient",
        b'2' => "add-recipient-with-parameters",
        b'-' => "delete-recipient",
        b'b' => "replace-body",
        b'q' => "quarantine",
        _ => return None,
    })
}
