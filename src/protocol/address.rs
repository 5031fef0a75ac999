//! The SMTP client's address as the MTA gives it: in CONNECT, and as text in macros.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ConnectAddress;

/// The client's IP address from a CONNECT, or `None` for unix sockets, unknown peers and
/// text that is no address.
///
/// Tolerant of the forms MTAs use: Postfix sends a bare address, Sendmail may tag IPv6 as
/// `IPv6:…` (libmilter strips that tag itself), and an address may come in brackets or
/// with a zone (`%eth0`). A v4-mapped IPv6 address comes back as IPv4, because the client
/// is an IPv4 host whichever socket family accepted it.
pub fn ip_of(address: &ConnectAddress) -> Option<IpAddr> {
    match address {
        ConnectAddress::Inet { address, .. } | ConnectAddress::Inet6 { address, .. } => {
            parse_ip_text(std::str::from_utf8(address).ok()?)
        }
        ConnectAddress::Unix { .. } | ConnectAddress::Unknown => None,
    }
}

/// Parses an address as MTAs write it in macros and CONNECT (see [`ip_of`]).
pub fn parse_ip_text(text: &str) -> Option<IpAddr> {
    let mut text = text.trim();
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        text = inner.trim();
    }
    if text.len() >= 5 && text.is_char_boundary(5) && text[..5].eq_ignore_ascii_case("ipv6:") {
        text = &text[5..];
    }
    if let Some((address, _zone)) = text.split_once('%') {
        text = address;
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    text.parse::<Ipv6Addr>().ok().map(|v6| IpAddr::V6(v6).to_canonical())
}

/// The client's address and port from a CONNECT, or `None` for unix sockets, unknown
/// peers and text that is no address.
pub fn socket_address_of(address: &ConnectAddress) -> Option<SocketAddr> {
    match address {
        ConnectAddress::Inet { port, .. } | ConnectAddress::Inet6 { port, .. } => {
            ip_of(address).map(|ip| SocketAddr::new(ip, *port))
        }
        ConnectAddress::Unix { .. } | ConnectAddress::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(text: &str) -> ConnectAddress {
        ConnectAddress::Inet { port: 25, address: text.as_bytes().to_vec() }
    }

    fn inet6(text: &str) -> ConnectAddress {
        ConnectAddress::Inet6 { port: 25, address: text.as_bytes().to_vec() }
    }

    #[test]
    fn ip_of_accepts_the_forms_mtas_send() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_of(&inet("192.0.2.1")), Some(v4));
        assert_eq!(ip_of(&inet("[192.0.2.1]")), Some(v4));
        assert_eq!(ip_of(&inet6("2001:db8::1")), Some(v6));
        assert_eq!(ip_of(&inet6("IPv6:2001:db8::1")), Some(v6));
        assert_eq!(ip_of(&inet6("ipv6:2001:DB8::1")), Some(v6));
        assert_eq!(ip_of(&inet6("[IPv6:2001:db8::1]")), Some(v6));
        assert_eq!(ip_of(&inet6(" 2001:db8::1 ")), Some(v6));
        assert_eq!(ip_of(&inet6("fe80::1%eth0")), Some("fe80::1".parse().unwrap()));
        assert_eq!(ip_of(&inet6("::ffff:192.0.2.1")), Some(v4));
    }

    #[test]
    fn ip_of_rejects_what_is_no_address() {
        assert_eq!(ip_of(&ConnectAddress::Unknown), None);
        let unix = ConnectAddress::Unix { port: 0, path: b"/run/smtpd.sock".to_vec() };
        assert_eq!(ip_of(&unix), None);
        assert_eq!(ip_of(&inet("")), None);
        assert_eq!(ip_of(&inet("localhost")), None);
        assert_eq!(ip_of(&inet("192.0.2.256")), None);
        assert_eq!(ip_of(&inet6("IPv6:")), None);
        assert_eq!(ip_of(&inet6("[]")), None);
        assert_eq!(ip_of(&inet6("é")), None);
        let bad_utf8 = ConnectAddress::Inet { port: 1, address: vec![0xff, 0xfe] };
        assert_eq!(ip_of(&bad_utf8), None);
    }

    #[test]
    fn socket_address_of_keeps_the_port_of_an_inet_client() {
        assert_eq!(socket_address_of(&inet("[192.0.2.1]")), Some("192.0.2.1:25".parse().unwrap()));
        assert_eq!(
            socket_address_of(&inet6("IPv6:2001:db8::1")),
            Some("[2001:db8::1]:25".parse().unwrap())
        );
        assert_eq!(socket_address_of(&inet("localhost")), None);
        let unix = ConnectAddress::Unix { port: 0, path: b"/run/smtpd.sock".to_vec() };
        assert_eq!(socket_address_of(&unix), None);
        assert_eq!(socket_address_of(&ConnectAddress::Unknown), None);
    }
}
