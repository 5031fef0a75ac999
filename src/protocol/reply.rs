//! Replies, milter to MTA (`SMFIR_*`).

use super::code::ReplyKind;
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
    /// Which reply this is.
    pub fn kind(&self) -> ReplyKind {
        match self {
            Reply::Negotiate(_) => ReplyKind::Negotiate,
            Reply::Continue => ReplyKind::Continue,
            Reply::Accept => ReplyKind::Accept,
            Reply::Reject => ReplyKind::Reject,
            Reply::TemporaryFailure => ReplyKind::TemporaryFailure,
            Reply::Discard => ReplyKind::Discard,
            Reply::Skip => ReplyKind::Skip,
            Reply::Progress => ReplyKind::Progress,
            Reply::ConnectionFailure => ReplyKind::ConnectionFailure,
            Reply::Shutdown => ReplyKind::Shutdown,
            Reply::ReplyCode { .. } => ReplyKind::ReplyCode,
            Reply::AddHeader { .. } => ReplyKind::AddHeader,
            Reply::InsertHeader { .. } => ReplyKind::InsertHeader,
            Reply::ChangeHeader { .. } => ReplyKind::ChangeHeader,
            Reply::ChangeFrom { .. } => ReplyKind::ChangeFrom,
            Reply::AddRecipient { .. } => ReplyKind::AddRecipient,
            Reply::AddRecipientWithParameters { .. } => ReplyKind::AddRecipientWithParameters,
            Reply::DeleteRecipient { .. } => ReplyKind::DeleteRecipient,
            Reply::ReplaceBody { .. } => ReplyKind::ReplaceBody,
            Reply::Quarantine { .. } => ReplyKind::Quarantine,
        }
    }

    /// The reply letter.
    pub fn code(&self) -> u8 {
        self.kind().byte()
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
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
        let kind =
            ReplyKind::from_byte(code).ok_or(DecodeError::UnknownCode { code, reply: true })?;
        let mut r = Reader::new(kind.name(), data);
        let reply = match kind {
            ReplyKind::Negotiate => Reply::Negotiate(Negotiation::decode(&mut r, true)?),
            ReplyKind::Continue => Reply::Continue,
            ReplyKind::Accept => Reply::Accept,
            ReplyKind::Reject => Reply::Reject,
            ReplyKind::TemporaryFailure => Reply::TemporaryFailure,
            ReplyKind::Discard => Reply::Discard,
            ReplyKind::Skip => Reply::Skip,
            ReplyKind::Progress => Reply::Progress,
            ReplyKind::ConnectionFailure => Reply::ConnectionFailure,
            ReplyKind::Shutdown => Reply::Shutdown,
            ReplyKind::ReplyCode => Reply::ReplyCode { text: r.cstr("reply text")?.to_vec() },
            ReplyKind::AddHeader => {
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                Reply::AddHeader { name, value }
            }
            ReplyKind::InsertHeader | ReplyKind::ChangeHeader => {
                let index = r.u32("header index")?;
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                if kind == ReplyKind::InsertHeader {
                    Reply::InsertHeader { index, name, value }
                } else {
                    Reply::ChangeHeader { index, name, value }
                }
            }
            ReplyKind::ChangeFrom | ReplyKind::AddRecipientWithParameters => {
                let address = r.cstr("address")?.to_vec();
                let parameters =
                    if r.is_empty() { None } else { Some(r.cstr("ESMTP parameters")?.to_vec()) };
                if kind == ReplyKind::ChangeFrom {
                    Reply::ChangeFrom { address, parameters }
                } else {
                    Reply::AddRecipientWithParameters { address, parameters }
                }
            }
            ReplyKind::AddRecipient => Reply::AddRecipient { address: r.cstr("address")?.to_vec() },
            ReplyKind::DeleteRecipient => {
                Reply::DeleteRecipient { address: r.cstr("address")?.to_vec() }
            }
            ReplyKind::ReplaceBody => Reply::ReplaceBody { chunk: r.rest().to_vec() },
            ReplyKind::Quarantine => Reply::Quarantine { reason: r.cstr("reason")?.to_vec() },
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
