//! The milter domain of milter-manager: protocol codec, connection specs and the sans-IO
//! session logic. Nothing in the domain opens a socket; only `config` and `detect` read
//! files. `program` is the exception: the I/O edge the binaries share, which the domain
//! modules never use.

pub mod client_link;
pub mod conditions;
pub mod config;
pub mod control;
pub mod detect;
pub mod engine;
pub mod launch;
pub mod logging;
pub mod message;
pub mod performance;
pub mod program;
pub mod protocol;
pub mod spec;
pub mod status;
pub mod test_client;
pub mod test_server;
pub mod text;
