//! What the simulated MTA sends: the script of the session and its timeouts.

use std::time::Duration;

use crate::protocol::{ConnectAddress, Negotiation};

/// How long to wait for the milter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting and the negotiation reply.
    pub connection: Duration,
    /// Writing one batch of packets.
    pub writing: Duration,
    /// Each reply but the end-of-message one.
    pub reading: Duration,
    /// The end-of-message reply (and its modifications).
    pub end_of_message: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connection: Duration::from_secs(300),
            writing: Duration::from_secs(10),
            reading: Duration::from_secs(10),
            end_of_message: Duration::from_secs(300),
        }
    }
}

/// Everything the simulated MTA sends.
#[derive(Debug, Clone)]
pub struct Script {
    pub offer: Negotiation,
    /// `{daemon_name}`.
    pub daemon_name: String,
    /// `j`: the MTA's host name.
    pub mta_hostname: String,
    pub connect_host: Vec<u8>,
    pub connect_address: ConnectAddress,
    pub helo_fqdn: Option<Vec<u8>>,
    pub envelope_from: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Explicit body chunks (`--body` given several times); when empty, `body` is cut
    /// into chunks of the negotiated size.
    pub body_chunks: Vec<Vec<u8>>,
    pub unknown_command: Option<Vec<u8>>,
    /// `{auth_authen}`, `{auth_type}`, `{auth_author}`.
    pub auth_name: Option<Vec<u8>>,
    pub auth_type: Option<Vec<u8>>,
    pub auth_author: Option<Vec<u8>>,
    /// Extra macros per stage (by the command letter of the `D` packet).
    pub extra_macros: Vec<(u8, Vec<u8>, Vec<u8>)>,
    /// Messages sent on the connection, one after the other.
    pub n_messages: u32,
    pub timeouts: Timeouts,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            offer: Negotiation::mta_default(),
            daemon_name: "milter-test-server".into(),
            mta_hostname: "mta.example.org".into(),
            connect_host: b"mx.example.net".to_vec(),
            connect_address: ConnectAddress::Inet { port: 50443, address: b"192.0.2.1".to_vec() },
            helo_fqdn: Some(b"mx.example.net".to_vec()),
            envelope_from: b"<sender@example.net>".to_vec(),
            recipients: vec![b"<receiver@example.org>".to_vec()],
            headers: vec![
                (b"From".to_vec(), b"<sender@example.net>".to_vec()),
                (b"To".to_vec(), b"<receiver@example.org>".to_vec()),
                (b"Subject".to_vec(), b"Hello".to_vec()),
            ],
            body: b"Hello, milter.\r\n".to_vec(),
            body_chunks: Vec::new(),
            unknown_command: None,
            auth_name: None,
            auth_type: None,
            auth_author: None,
            extra_macros: Vec::new(),
            n_messages: 1,
            timeouts: Timeouts::default(),
        }
    }
}

/// Splits `<addr> PARAM=1 PARAM=2` into the address and its ESMTP parameters; adds the
/// angle brackets when they are missing.
pub fn split_esmtp(text: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut parts = text.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let address = parts.next().unwrap_or_default();
    let address =
        if address.starts_with(b"<") { address.to_vec() } else { [b"<", address, b">"].concat() };
    (address, parts.map(<[u8]>::to_vec).collect())
}
