//! Reading the fields of one frame's data, with errors that name the field.

use std::fmt;

/// Why a frame's data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The command or reply byte is not one the protocol defines.
    UnknownCode { code: u8, reply: bool },
    /// The data ended before `field`.
    Truncated { packet: &'static str, field: &'static str },
    /// `field` has no terminating NUL.
    Unterminated { packet: &'static str, field: &'static str },
    /// Bytes are left after the last field.
    TrailingData { packet: &'static str, extra: usize },
    /// A field has a value the protocol does not allow.
    Invalid { packet: &'static str, field: &'static str, detail: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCode { code, reply } => {
                let kind = if *reply { "reply" } else { "command" };
                write!(f, "unknown {kind} code {}", super::code_name(*code))
            }
            Self::Truncated { packet, field } => {
                write!(f, "{packet} packet ends before its {field}")
            }
            Self::Unterminated { packet, field } => {
                write!(f, "{packet} packet: {field} is not NUL-terminated")
            }
            Self::TrailingData { packet, extra } => {
                write!(f, "{packet} packet has {extra} unexpected trailing bytes")
            }
            Self::Invalid { packet, field, detail } => {
                write!(f, "{packet} packet: invalid {field}: {detail}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A packet that cannot be read: its frame is broken, or its data does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error(transparent)]
    Frame(#[from] super::frame::FrameError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// A cursor over one frame's data.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(packet: &'static str, data: &'a [u8]) -> Self {
        Reader { data, packet }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (&byte, rest) = self.data.split_first().ok_or(self.truncated(field))?;
        self.data = rest;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(self.truncated(field));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// A NUL-terminated string, without its NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.data.is_empty() {
            return Err(self.truncated(field));
        }
        let nul = self
            .data
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Unterminated { packet: self.packet, field })?;
        let text = &self.data[..nul];
        self.data = &self.data[nul + 1..];
        Ok(text)
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Fails if anything is left.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData { packet: self.packet, extra: self.data.len() })
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid { packet: self.packet, field, detail: detail.into() }
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated { packet: self.packet, field }
    }
}

/// Appends `text` and its NUL. A NUL inside `text` would end the string early on the
/// receiving side and shift every later field, so the text is cut there instead.
pub(crate) fn put_cstr(out: &mut Vec<u8>, text: &[u8]) {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    out.extend_from_slice(&text[..end]);
    out.push(0);
}
