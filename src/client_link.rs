//! Whether an SMTP client is still connected to the MTA, read from the kernel's socket
//! tables (`/proc/net/tcp` and `/proc/net/tcp6` on Linux) instead of a `netstat`
//! subprocess. The caller reads the files; this module only reads their text.
//! Hand-written: procfs would parse them too, but it reads /proc itself and is large.
//!
//! The MTA's side of an SMTP connection is the socket whose remote end is the client's
//! address and port (the ones the MTA sent at connect). While the client is there it is
//! ESTABLISHED; once the client has closed, it is CLOSE_WAIT until the MTA closes it too,
//! and then it is gone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The MTA's socket towards one client, as the tables show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLink {
    /// Connected (ESTABLISHED, or a state where the client has not closed).
    Connected,
    /// The client closed its side (CLOSE_WAIT), or the connection is shutting down.
    Closed,
    /// No socket with that remote end: the MTA is on another host, or the connection
    /// ended. Only a connection seen before can be judged gone by its absence.
    Absent,
}

/// TCP states of `include/net/tcp_states.h`, as the tables print them (hex).
const ESTABLISHED: u8 = 0x01;
const SYN_SENT: u8 = 0x02;
const SYN_RECV: u8 = 0x03;
const LISTEN: u8 = 0x0A;

/// Looks `client` up among the remote ends of the sockets in `tables` (the text of
/// `/proc/net/tcp` and `/proc/net/tcp6`, in any order; header lines and lines that do not
/// parse are skipped). An IPv4 client also matches its IPv4-mapped IPv6 form, which is
/// how a dual-stack listener records it.
pub fn client_link<'a>(
    tables: impl IntoIterator<Item = &'a str>,
    client: SocketAddr,
) -> ClientLink {
    let wanted = canonical(client);
    let mut found = ClientLink::Absent;
    for line in tables.into_iter().flat_map(str::lines) {
        let Some((remote, state)) = remote_and_state(line) else { continue };
        if canonical(remote) != wanted || state == LISTEN {
            continue;
        }
        match state {
            ESTABLISHED | SYN_SENT | SYN_RECV => return ClientLink::Connected,
            _ => found = ClientLink::Closed,
        }
    }
    found
}

fn canonical(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

/// `sl local_address rem_address st ...`: the remote end and the state of one line.
fn remote_and_state(line: &str) -> Option<(SocketAddr, u8)> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None; // the header line
    }
    let _local = fields.next()?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    Some((remote, state))
}

/// `0100007F:0019` (IPv4) or 32 hex digits and a port (IPv6). Addresses are printed as
/// the kernel stores them: 32-bit words in host byte order.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = address
        .as_bytes()
        .chunks(8)
        .map(|word| {
            let word = std::str::from_utf8(word).ok()?;
            Some(u32::from_str_radix(word, 16).ok()?.to_ne_bytes())
        })
        .collect::<Option<Vec<[u8; 4]>>>()?;
    let ip = match words.as_slice() {
        [word] if address.len() == 8 => IpAddr::V4(Ipv4Addr::from(*word)),
        [a, b, c, d] if address.len() == 32 => {
            let mut octets = [0u8; 16];
            for (i, word) in [a, b, c, d].into_iter().enumerate() {
                octets[i * 4..i * 4 + 4].copy_from_slice(word);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as a little-endian Linux prints them: the MTA listening on 127.0.0.1:25, its
    // socket to a client at 127.0.0.1:40000 (ESTABLISHED), and one to 127.0.0.1:40001
    // the client has closed (CLOSE_WAIT).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0019 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0019 0100007F:9C41 08 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
";
    // A dual-stack listener's socket to ::ffff:192.0.2.7 port 50443, and one to
    // 2001:db8::1 port 50444.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0019 0000000000000000FFFF0000070200C0:C50B 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   1: 00000000000000000000000000000000:0019 B80D0120000000000000000001000000:C50C 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
";

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_established_client_is_connected() {
        assert_eq!(client_link([TCP], at("127.0.0.1:40000")), ClientLink::Connected);
    }

    #[test]
    fn a_client_that_closed_its_side_is_closed() {
        assert_eq!(client_link([TCP], at("127.0.0.1:40001")), ClientLink::Closed);
    }

    #[test]
    fn an_unknown_client_is_absent_and_listeners_do_not_count() {
        assert_eq!(client_link([TCP], at("127.0.0.1:40002")), ClientLink::Absent);
        assert_eq!(client_link([TCP], at("0.0.0.0:0")), ClientLink::Absent);
    }

    #[test]
    fn ipv6_tables_hold_mapped_ipv4_and_ipv6_clients() {
        if cfg!(target_endian = "big") {
            return; // the fixtures above are little-endian
        }
        assert_eq!(client_link([TCP, TCP6], at("192.0.2.7:50443")), ClientLink::Connected);
        assert_eq!(client_link([TCP, TCP6], at("[2001:db8::1]:50444")), ClientLink::Connected);
    }

    #[test]
    fn garbled_lines_are_skipped() {
        let text = "  sl local\n   9: nonsense\n   3: 0100007F:0019 ZZ:1 01\n";
        assert_eq!(client_link([text, TCP], at("127.0.0.1:40000")), ClientLink::Connected);
    }
}
