//! Sendmail Compatible: give milters written for Sendmail the macros Sendmail would have
//! sent, when the MTA is Postfix (the caller checks that). The condition never stops a
//! milter; it only adds macros the MTA did not send, and never overrides one it did.
//!
//! What Sendmail sends and Postfix does not:
//! - at CONNECT, `{if_addr}` (the server address the client connected to; IPv6 tagged
//!   `IPv6:`; undefined on loopback) and `{if_name}` (that address's host name);
//!   `{daemon_port}` (Postfix has it since 3.2, but only when listed in
//!   `milter_connect_macros`);
//! - at MAIL, `i` (the queue id): Postfix opens its queue file only at the first accepted
//!   RCPT, so by default `i` is missing at MAIL, and some milters (milter-greylist built for
//!   Sendmail) insist on it.
//!
//! The original asked `netstat` for the server side of the client's connection and reverse
//! DNS for its name. Without that I/O:
//! - `{if_addr}` comes from Postfix's `{daemon_addr}` (Postfix 3.2 and later, in the default
//!   `milter_connect_macros` since then), which is that same server address;
//! - `{if_name}` becomes `j` (Postfix's `myhostname`): for the usual single-name MTA that is
//!   what the reverse lookup would give; a multi-homed MTA with per-address names would need
//!   DNS. Without `j`, the address in brackets, which is what Sendmail itself uses when the
//!   reverse lookup fails;
//! - `{daemon_port}` cannot be guessed: add `{daemon_port}` to `milter_connect_macros`;
//! - `i` becomes [`DUMMY_QUEUE_ID`], as in the original.

use std::net::IpAddr;

use super::parse_ip_text;
use crate::protocol::ConnectAddress;

/// The stand-in queue id at MAIL.
pub const DUMMY_QUEUE_ID: &str = "dummy-id";

/// Macros to add at CONNECT. `macros` looks up what the MTA sent so far by name; it is
/// called with braced long names (`{daemon_addr}`) and bare one-letter names (`j`), and
/// should find a macro whichever form the MTA used.
pub fn connect_macros(
    macros: &dyn Fn(&str) -> Option<Vec<u8>>,
    address: &ConnectAddress,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut added = Vec::new();
    // Only TCP clients came in through an interface.
    if !matches!(address, ConnectAddress::Inet { .. } | ConnectAddress::Inet6 { .. }) {
        return added;
    }
    let if_addr = match macros("{if_addr}") {
        Some(value) => Some(value),
        None => {
            let derived = macros("{daemon_addr}").and_then(|value| interface_address(&value));
            if let Some(value) = &derived {
                added.push((b"{if_addr}".to_vec(), value.clone()));
            }
            derived
        }
    };
    if let (Some(if_addr), None) = (if_addr, macros("{if_name}")) {
        let name = match macros("j") {
            Some(j) if !j.is_empty() => j,
            _ => [b"[".as_slice(), &if_addr, b"]"].concat(),
        };
        added.push((b"{if_name}".to_vec(), name));
    }
    added
}

/// Macros to add at MAIL: `i` when the MTA sent none.
pub fn envelope_from_macros(macros: &dyn Fn(&str) -> Option<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    match macros("i") {
        Some(_) => Vec::new(),
        None => vec![(b"i".to_vec(), DUMMY_QUEUE_ID.as_bytes().to_vec())],
    }
}

/// `{daemon_addr}` in Sendmail's `{if_addr}` form, or `None` for loopback (Sendmail leaves
/// `{if_addr}` undefined there) and for what is no address.
fn interface_address(daemon_addr: &[u8]) -> Option<Vec<u8>> {
    let ip = parse_ip_text(std::str::from_utf8(daemon_addr).ok()?)?;
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string().into_bytes(),
        IpAddr::V6(v6) => format!("IPv6:{v6}").into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<Vec<u8>> {
        move |name: &str| {
            let bare = name.trim_start_matches('{').trim_end_matches('}');
            pairs
                .iter()
                .find(|(n, _)| n.trim_start_matches('{').trim_end_matches('}') == bare)
                .map(|(_, v)| v.as_bytes().to_vec())
        }
    }

    fn inet() -> ConnectAddress {
        ConnectAddress::Inet { port: 40000, address: b"198.51.100.7".to_vec() }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn postfix_defaults_give_if_addr_and_if_name() {
        let sent = lookup(&[
            ("j", "mx.example.com"),
            ("{daemon_name}", "mx.example.com"),
            ("{daemon_addr}", "192.0.2.25"),
            ("v", "Postfix 3.7.11"),
        ]);
        assert_eq!(
            connect_macros(&sent, &inet()),
            pairs(&[("{if_addr}", "192.0.2.25"), ("{if_name}", "mx.example.com")])
        );
    }

    #[test]
    fn ipv6_interface_is_tagged_like_sendmail() {
        let sent = lookup(&[("j", "mx.example.com"), ("daemon_addr", "2001:db8::25")]);
        let client = ConnectAddress::Inet6 { port: 1, address: b"2001:db8::7".to_vec() };
        assert_eq!(
            connect_macros(&sent, &client),
            pairs(&[("{if_addr}", "IPv6:2001:db8::25"), ("{if_name}", "mx.example.com")])
        );
        let mapped = lookup(&[("{daemon_addr}", "::ffff:192.0.2.25")]);
        assert_eq!(
            connect_macros(&mapped, &client),
            pairs(&[("{if_addr}", "192.0.2.25"), ("{if_name}", "[192.0.2.25]")])
        );
    }

    #[test]
    fn present_macros_are_kept() {
        let sent = lookup(&[
            ("{if_addr}", "203.0.113.1"),
            ("{if_name}", "virtual.example.com"),
            ("{daemon_addr}", "192.0.2.25"),
            ("j", "mx.example.com"),
        ]);
        assert_eq!(connect_macros(&sent, &inet()), Vec::new());
        let sent = lookup(&[("{if_addr}", "203.0.113.1")]);
        assert_eq!(connect_macros(&sent, &inet()), pairs(&[("{if_name}", "[203.0.113.1]")]));
    }

    #[test]
    fn nothing_to_derive() {
        // No {daemon_addr}: too old a Postfix or a custom milter_connect_macros.
        let sent = lookup(&[("j", "mx.example.com")]);
        assert_eq!(connect_macros(&sent, &inet()), Vec::new());
        // Loopback: Sendmail leaves {if_addr} undefined.
        let sent = lookup(&[("j", "mx.example.com"), ("{daemon_addr}", "127.0.0.1")]);
        assert_eq!(connect_macros(&sent, &inet()), Vec::new());
        let sent = lookup(&[("{daemon_addr}", "::1")]);
        assert_eq!(connect_macros(&sent, &inet()), Vec::new());
        let sent = lookup(&[("{daemon_addr}", "garbage")]);
        assert_eq!(connect_macros(&sent, &inet()), Vec::new());
        // No interface for unix sockets and unknown peers.
        let sent = lookup(&[("j", "mx.example.com"), ("{daemon_addr}", "192.0.2.25")]);
        let unix = ConnectAddress::Unix { port: 0, path: b"/run/s".to_vec() };
        assert_eq!(connect_macros(&sent, &unix), Vec::new());
        assert_eq!(connect_macros(&sent, &ConnectAddress::Unknown), Vec::new());
    }

    #[test]
    fn empty_j_falls_back_to_the_bracketed_address() {
        let sent = lookup(&[("j", ""), ("{daemon_addr}", "192.0.2.25")]);
        assert_eq!(
            connect_macros(&sent, &inet()),
            pairs(&[("{if_addr}", "192.0.2.25"), ("{if_name}", "[192.0.2.25]")])
        );
    }

    #[test]
    fn queue_id_at_mail() {
        let none = lookup(&[("{mail_addr}", "user@example.com")]);
        assert_eq!(envelope_from_macros(&none), pairs(&[("i", "dummy-id")]));
        let sent = lookup(&[("i", "4Xyz1234")]);
        assert_eq!(envelope_from_macros(&sent), Vec::new());
        let empty = lookup(&[("i", "")]);
        assert_eq!(envelope_from_macros(&empty), Vec::new());
    }
}
