//! `/proc/net/tcp` parsing: the first 18 bytes are the client looked up (16 address
//! bytes, IPv4-mapped or not, and a port), the rest the table text.
#![no_main]

use std::net::{Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use milter_manager::client_link::client_link;

fuzz_target!(|data: &[u8]| {
    if data.len() < 18 {
        return;
    }
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&data[..16]);
    let ip = Ipv6Addr::from(octets);
    let ip = ip.to_ipv4_mapped().map_or(ip.into(), Into::into);
    let client = SocketAddr::new(ip, u16::from_be_bytes([data[16], data[17]]));
    let text = String::from_utf8_lossy(&data[18..]);
    let _ = client_link([text.as_ref()], client);
});
