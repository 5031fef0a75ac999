//! The milter wire protocol, without I/O: framing, commands and replies with their
//! encoders and decoders, the option negotiation, and reply-code checking.
//!
//! Decoding never panics: every malformed input becomes a [`DecodeError`] or
//! [`FrameError`] that names the packet and the field.

mod address;
mod command;
mod flags;
mod frame;
mod negotiation;
pub mod order;
mod reply;
mod reply_code;
mod wire;

pub use address::{ip_of, parse_ip_text, socket_address_of};
pub use command::{command_name, Command, ConnectAddress};
pub use flags::{Actions, Steps};
pub use frame::{encode_frame, Deframer, Frame, FrameError, DEFAULT_MAX_FRAME_DATA, MAX_DATA_SIZE};
pub use negotiation::{
    MacroRequestStage, MacroStage, Negotiation, MAX_VERSION, SUPPORTED_VERSIONS,
};
pub use reply::{reply_name, Reply};
pub use reply_code::{InvalidReplyCode, ReplyCode};
pub use wire::DecodeError;

/// Shows a protocol code byte readably: `'B'` for printable ones, `0x00` otherwise.
pub fn code_name(code: u8) -> String {
    if code.is_ascii_graphic() {
        format!("'{}'", code as char)
    } else {
        format!("0x{code:02x}")
    }
}

#[cfg(test)]
mod tests;
