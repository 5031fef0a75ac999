//! The milter domain of milter-manager: protocol codec, connection specs and the sans-IO
//! session logic. Nothing in this library opens a socket or a file.

pub mod protocol;
pub mod spec;
pub mod text;
pub mod test_client;
