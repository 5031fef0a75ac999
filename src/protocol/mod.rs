//! The milter wire protocol, without I/O: framing, commands and replies with their
//! encoders and decoders, the option negotiation, and reply-code checking.
//!
//! Decoding never panics: every malformed input becomes a [`DecodeError`] or
//! [`FrameError`] that names the packet and the field.

mod address;
mod code;
mod command;
mod flags;
mod frame;
mod negotiation;
pub mod order;
mod reply;
mod reply_code;
mod wire;

pub use address::{ip_of, parse_ip_text, socket_address_of};
pub use code::{code_name, CommandKind, ReplyKind};
pub use command::{Command, ConnectAddress};
pub use flags::{Actions, FlagsError, Steps};
pub use frame::{encode_frame, Deframer, Frame, FrameError, DEFAULT_MAX_FRAME_DATA, MAX_DATA_SIZE};
pub use negotiation::{
    MacroRequestStage, MacroStage, Negotiation, MAX_VERSION, SUPPORTED_VERSIONS,
};
pub use reply::Reply;
pub use reply_code::{InvalidReplyCode, ReplyCode};
pub use wire::{DecodeError, PacketError};

#[cfg(test)]
mod tests;
