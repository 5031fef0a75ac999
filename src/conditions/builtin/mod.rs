//! The built-in applicable conditions as pure logic: each module decides, the engine asks.
//!
//! Nothing here opens a socket, starts a process, reads the clock or touches the disk.
//! `trust` (a domain list file) and `stress` (Postfix's `master.cf`/`main.cf`) read files
//! only through the [`crate::conditions::FileReader`] the caller gives.

pub mod dnsbl;
mod pattern;
pub mod remote_network;
pub mod restrict_accounts;
pub mod s25r;
pub mod sendmail_compatible;
pub mod stress;
pub mod trust;

// The client address helpers live in the protocol, which the engine uses too.
pub use crate::protocol::{ip_of, parse_ip_text};
