//! DNS messages for the unit tests of the DNSBL lookups: the name a query asks about and
//! the name server's answer, framed as over TCP.

/// The address a listing DNSBL answers.
pub(super) const LISTED: [u8; 4] = [127, 0, 0, 2];

/// The DNS messages in `bytes` (each after its two-byte length).
pub(super) fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 2 {
        let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        out.push(rest[2..2 + length].to_vec());
        rest = &rest[2 + length..];
    }
    assert!(rest.is_empty(), "a partial message");
    out
}

/// The question name of a query.
pub(super) fn question(query: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut at = 12;
    while query[at] != 0 {
        let length = usize::from(query[at]);
        labels.push(String::from_utf8(query[at + 1..at + 1 + length].to_vec()).unwrap());
        at += 1 + length;
    }
    labels.join(".")
}

/// The framed answer to `query`: NXDOMAIN without addresses, else the A records.
pub(super) fn answer(query: &[u8], addresses: &[[u8; 4]]) -> Vec<u8> {
    let rcode = if addresses.is_empty() { 3 } else { 0 };
    let mut message = query[..2].to_vec();
    message.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
    message.extend_from_slice(&[0, 1]);
    message.extend_from_slice(&u16::try_from(addresses.len()).unwrap().to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 0]);
    message.extend_from_slice(&query[12..]);
    for address in addresses {
        message.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        message.extend_from_slice(address);
    }
    let mut framed = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    framed.extend(message);
    framed
}
