//! The milter domain of milter-manager: protocol codec, connection specs and the sans-IO
//! session logic. Nothing in the domain opens a socket; only `config` and `detect` read
//! files. `program` is the exception: the I/O edge the binaries share, which the domain
//! modules never use.
//!
//! No unsafe code, but for the two calls into the C library's syslog in `program::logger`
//! (std has no syslog; each is allowed where it is, with why it is sound).
#![deny(unsafe_code)]

pub mod calendar;
pub mod client_link;
pub mod conditions;
pub mod config;
pub mod control_protocol;
pub mod detect;
pub mod engine;
pub mod launcher_protocol;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod migrate;
pub mod program;
pub mod protocol;
pub mod spec;
pub mod status;
pub mod text;
pub mod tools;
