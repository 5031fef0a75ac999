//! The milter domain of milter-manager: protocol codec, connection specs and the sans-IO
//! session logic. Nothing in this library opens a socket; only `config` and `detect` read
//! files.

pub mod client_link;
pub mod conditions;
pub mod config;
pub mod control_protocol;
pub mod detect;
pub mod engine;
pub mod launcher_protocol;
pub mod logging;
pub mod message;
pub mod protocol;
pub mod shell_words;
pub mod spec;
pub mod status;
pub mod text;
pub mod tools;
