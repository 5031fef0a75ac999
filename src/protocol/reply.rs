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
            Self::Negotiate(_) => ReplyKind::Negotiate,
            Self::Continue => ReplyKind::Continue,
            Self::Accept => ReplyKind::Accept,
            Self::Reject => ReplyKind::Reject,
            Self::TemporaryFailure => ReplyKind::TemporaryFailure,
            Self::Discard => ReplyKind::Discard,
            Self::Skip => ReplyKind::Skip,
            Self::Progress => ReplyKind::Progress,
            Self::ConnectionFailure => ReplyKind::ConnectionFailure,
            Self::Shutdown => ReplyKind::Shutdown,
            Self::ReplyCode { .. } => ReplyKind::ReplyCode,
            Self::AddHeader { .. } => ReplyKind::AddHeader,
            Self::InsertHeader { .. } => ReplyKind::InsertHeader,
            Self::ChangeHeader { .. } => ReplyKind::ChangeHeader,
            Self::ChangeFrom { .. } => ReplyKind::ChangeFrom,
            Self::AddRecipient { .. } => ReplyKind::AddRecipient,
            Self::AddRecipientWithParameters { .. } => ReplyKind::AddRecipientWithParameters,
            Self::DeleteRecipient { .. } => ReplyKind::DeleteRecipient,
            Self::ReplaceBody { .. } => ReplyKind::ReplaceBody,
            Self::Quarantine { .. } => ReplyKind::Quarantine,
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
            Self::AddHeader { .. }
                | Self::InsertHeader { .. }
                | Self::ChangeHeader { .. }
                | Self::ChangeFrom { .. }
                | Self::AddRecipient { .. }
                | Self::AddRecipientWithParameters { .. }
                | Self::DeleteRecipient { .. }
                | Self::ReplaceBody { .. }
                | Self::Quarantine { .. }
        )
    }

    /// The action a milter must have negotiated to send this modification (none for
    /// other replies).
    pub fn required_action(&self) -> Actions {
        match self {
            Self::AddHeader { .. } | Self::InsertHeader { .. } => Actions::ADD_HEADERS,
            Self::ChangeHeader { .. } => Actions::CHANGE_HEADERS,
            Self::ChangeFrom { .. } => Actions::CHANGE_FROM,
            Self::AddRecipient { .. } => Actions::ADD_RCPT,
            Self::AddRecipientWithParameters { .. } => Actions::ADD_RCPT_WITH_ARGS,
            Self::DeleteRecipient { .. } => Actions::DELETE_RCPT,
            Self::ReplaceBody { .. } => Actions::CHANGE_BODY,
            Self::Quarantine { .. } => Actions::QUARANTINE,
            _ => Actions::empty(),
        }
    }

    /// Decodes one frame's data. Simple replies must carry no data (Postfix refuses
    /// trailing bytes too).
    pub fn decode(code: u8, data: &[u8]) -> Result<Self, DecodeError> {
        let kind =
            ReplyKind::from_byte(code).ok_or(DecodeError::UnknownCode { code, reply: true })?;
        let mut r = Reader::new(kind.name(), data);
        let reply = match kind {
            ReplyKind::Negotiate => Self::Negotiate(Negotiation::decode(&mut r, true)?),
            ReplyKind::Continue => Self::Continue,
            ReplyKind::Accept => Self::Accept,
            ReplyKind::Reject => Self::Reject,
            ReplyKind::TemporaryFailure => Self::TemporaryFailure,
            ReplyKind::Discard => Self::Discard,
            ReplyKind::Skip => Self::Skip,
            ReplyKind::Progress => Self::Progress,
            ReplyKind::ConnectionFailure => Self::ConnectionFailure,
            ReplyKind::Shutdown => Self::Shutdown,
            ReplyKind::ReplyCode => Self::ReplyCode { text: r.cstr("reply text")?.to_vec() },
            ReplyKind::AddHeader => {
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                Self::AddHeader { name, value }
            }
            ReplyKind::InsertHeader | ReplyKind::ChangeHeader => {
                let index = r.u32("header index")?;
                let name = r.cstr("header name")?.to_vec();
                let value = r.cstr("header value")?.to_vec();
                if kind == ReplyKind::InsertHeader {
                    Self::InsertHeader { index, name, value }
                } else {
                    Self::ChangeHeader { index, name, value }
                }
            }
            ReplyKind::ChangeFrom | ReplyKind::AddRecipientWithParameters => {
                let address = r.cstr("address")?.to_vec();
                let parameters =
                    if r.is_empty() { None } else { Some(r.cstr("ESMTP parameters")?.to_vec()) };
                if kind == ReplyKind::ChangeFrom {
                    Self::ChangeFrom { address, parameters }
                } else {
                    Self::AddRecipientWithParameters { address, parameters }
                }
            }
            ReplyKind::AddRecipient => Self::AddRecipient { address: r.cstr("address")?.to_vec() },
            ReplyKind::DeleteRecipient => {
                Self::DeleteRecipient { address: r.cstr("address")?.to_vec() }
            }
            ReplyKind::ReplaceBody => Self::ReplaceBody { chunk: r.rest().to_vec() },
            ReplyKind::Quarantine => Self::Quarantine { reason: r.cstr("reason")?.to_vec() },
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
            Self::Negotiate(negotiation) => negotiation.encode_data(out),
            Self::ReplyCode { text } => put_cstr(out, text),
            Self::AddHeader { name, value } => {
                put_cstr(out, name);
                put_cstr(out, value);
            }
            Self::InsertHeader { index, name, value }
            | Self::ChangeHeader { index, name, value } => {
                out.extend_from_slice(&index.to_be_bytes());
                put_cstr(out, name);
                put_cstr(out, value);
            }
            Self::ChangeFrom { address, parameters }
            | Self::AddRecipientWithParameters { address, parameters } => {
                put_cstr(out, address);
                if let Some(parameters) = parameters {
                    put_cstr(out, parameters);
                }
            }
            Self::AddRecipient { address } | Self::DeleteRecipient { address } => {
                put_cstr(out, address)
            }
            Self::ReplaceBody { chunk } => out.extend_from_slice(chunk),
            Self::Quarantine { reason } => put_cstr(out, reason),
            Self::Continue
            | Self::Accept
            | Self::Reject
            | Self::TemporaryFailure
            | Self::Discard
            | Self::Skip
            | Self::Progress
            | Self::ConnectionFailure
            | Self::Shutdown => {}
        }
    }
}
