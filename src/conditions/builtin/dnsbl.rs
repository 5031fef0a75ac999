//! DNSBL Listed / Not DNSBL Listed: the DNS part without the network. The lookup
//! (`conditions::dnsbl_lookup`) sends [`encode_query`] to a name server (from
//! [`parse_resolv_conf`] or the configuration), reads the answer with [`parse_response`]
//! and asks [`Listing::is_listed_for`] with the service's expected answers. A client is
//! listed when any service lists it. Errors and timeouts count as not listed, as in the
//! original.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use super::ip_of;
use crate::conditions::{DnsError, EntryError};
use crate::protocol::ConnectAddress;

/// The original's services and the answers that count as listed there: Spamhaus ZEN's PBL
/// range (end-user addresses), SORBS's dynamic-address list, SpamCop and Barracuda.
/// Note: SORBS closed in 2024; its zone no longer answers usefully.
pub const DEFAULT_SERVICES: [(&str, Option<&str>); 4] = [
    ("zen.spamhaus.org", Some("127.0.0.10/31")),
    ("dnsbl.sorbs.net", Some("127.0.0.10")),
    ("bl.spamcop.net", Some("127.0.0.2")),
    ("b.barracudacentral.org", Some("127.0.0.2")),
];

/// One DNSBL zone and the answers that mean "listed" (any answer when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblService {
    pub zone: String,
    pub expected: Option<Ipv4Net>,
}

impl DnsblService {
    /// `expected` is an address or a network such as `127.0.0.10/31`.
    pub fn parse(zone: &str, expected: Option<&str>) -> Result<Self, EntryError> {
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        validate_zone(&zone)?;
        let expected = match expected.map(str::trim) {
            None => None,
            Some(text) => Some(parse_expected(text).ok_or_else(|| EntryError::DnsblAnswer {
                text: text.to_string(),
                zone: zone.clone(),
            })?),
        };
        Ok(Self { zone, expected })
    }
}

fn parse_expected(text: &str) -> Option<Ipv4Net> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(Ipv4Net::from(ip));
    }
    text.parse::<Ipv4Net>().ok().map(|net| net.trunc())
}

/// A service as the configuration writes it: `zone` (any answer lists) or `zone=answer`.
pub fn parse_service_entry(text: &str) -> Result<DnsblService, EntryError> {
    match text.split_once('=') {
        Some((zone, expected)) => DnsblService::parse(zone, Some(expected)),
        None => DnsblService::parse(text, None),
    }
}

/// The port of DNS.
pub const DNS_PORT: u16 = 53;

/// A name server as the configuration writes it: an IP address (port 53), or one with a
/// port (`127.0.0.1:5353`, `[::1]:5353`).
pub fn parse_name_server(text: &str) -> Result<SocketAddr, EntryError> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DNS_PORT));
    }
    text.parse::<SocketAddr>().map_err(|_| EntryError::NameServer(text.to_string()))
}

/// [`DEFAULT_SERVICES`] parsed.
pub fn default_services() -> Vec<DnsblService> {
    DEFAULT_SERVICES
        .iter()
        .filter_map(|(zone, expected)| DnsblService::parse(zone, *expected).ok())
        .collect()
}

/// The address to look up for a client: its IPv4 address, or `None`. The original queried
/// IPv4 clients only; most of these lists carry no IPv6 data.
pub fn lookup_address(address: &ConnectAddress) -> Option<Ipv4Addr> {
    match ip_of(address)? {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

/// Whether `zone` can be queried: labels of 1 to 63 characters, at most 253 in all (the
/// reversed address takes up to 72 more for IPv6, checked when encoding).
pub fn validate_zone(zone: &str) -> Result<(), EntryError> {
    let zone = zone.trim_end_matches('.');
    let invalid = |why| EntryError::DnsblZone { zone: zone.to_string(), why };
    if zone.is_empty() {
        return Err(invalid("empty"));
    }
    if zone.len() > 253 {
        return Err(invalid("longer than 253 characters"));
    }
    for label in zone.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("each label needs 1 to 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid("only letters, digits, '-' and '_' are allowed"));
        }
    }
    Ok(())
}

/// The name to look up: the address reversed below `zone`, by octets for IPv4
/// (`2.0.0.127.zen.spamhaus.org`), by nibbles for IPv6.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    let mut name = String::new();
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                name.push_str(&format!("{octet}."));
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
        }
    }
    name.push_str(zone);
    name
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;

/// A standard query for the A records of `name`, recursion desired. Fails on a name DNS
/// cannot carry (empty or over-long labels, over 255 bytes on the wire).
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.trim_end_matches('.');
    let mut packet = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    packet.extend_from_slice(&1u16.to_be_bytes()); // one question
    packet.extend_from_slice(&[0; 6]); // no answer, authority or additional records
    for label in name.split('.') {
        let length = u8::try_from(label.len()).unwrap_or(u8::MAX);
        if length == 0 || length > 63 {
            return Err(DnsError::LabelLength { name: name.to_string() });
        }
        packet.push(length);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    if packet.len() - HEADER_LEN > 255 {
        return Err(DnsError::NameTooLong { name: name.to_string() });
    }
    packet.extend_from_slice(&TYPE_A.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(packet)
}

/// What a DNSBL said about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The A records of the answer, all in 127.0.0.0/8.
    Listed(Vec<Ipv4Addr>),
    /// NXDOMAIN, or a name without A records.
    NotListed,
}

impl Listing {
    /// Listed with one of the `expected` answers (any answer when `None`).
    pub fn is_listed_for(&self, expected: Option<Ipv4Net>) -> bool {
        match (self, expected) {
            (Self::NotListed, _) => false,
            (Self::Listed(answers), None) => !answers.is_empty(),
            (Self::Listed(answers), Some(net)) => answers.iter().any(|a| net.contains(a)),
        }
    }
}

/// Reads the answer to the query `id`. Errors (one line each) for anything that is neither
/// a clear listing nor a clear absence: a short or foreign packet, a server failure or
/// refusal, a DNSBL's own error codes (127.255.255.0/24, e.g. Spamhaus's 127.255.255.254
/// for queries through public resolvers), answers outside 127.0.0.0/8 (a resolver that
/// rewrites NXDOMAIN).
pub fn parse_response(id: u16, bytes: &[u8]) -> Result<Listing, DnsError> {
    let mut reader = Reader { bytes, at: 0 };
    let got_id = reader.u16()?;
    if got_id != id {
        return Err(DnsError::OtherQuery { got: got_id, expected: id });
    }
    let flags = reader.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::NotAnAnswer);
    }
    if flags & 0x0200 != 0 {
        return Err(DnsError::TruncatedFlag);
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Listing::NotListed),
        2 => return Err(DnsError::ServerFailure),
        5 => return Err(DnsError::Refused),
        rcode => return Err(DnsError::ResponseCode(rcode)),
    }
    let questions = reader.u16()?;
    let answers = reader.u16()?;
    reader.skip(4)?; // authority and additional counts: not needed
    for _ in 0..questions {
        reader.skip_name()?;
        reader.skip(4)?;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        reader.skip_name()?;
        let kind = reader.u16()?;
        let class = reader.u16()?;
        reader.skip(4)?; // TTL
        let length = usize::from(reader.u16()?);
        let data = reader.take(length)?;
        // CNAMEs and other records on the way are the resolver's business.
        if kind == TYPE_A && class == CLASS_IN {
            let octets: [u8; 4] = data.try_into().map_err(|_| DnsError::ARecordLength(length))?;
            addresses.push(Ipv4Addr::from(octets));
        }
    }
    if addresses.is_empty() {
        return Ok(Listing::NotListed);
    }
    for address in &addresses {
        let [first, second, third, fourth] = address.octets();
        if first != 127 {
            return Err(DnsError::OutsideLoopback(*address));
        }
        if (second, third) == (255, 255) {
            return Err(DnsError::ListErrorCode { address: *address, code: fourth });
        }
    }
    Ok(Listing::Listed(addresses))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end =
            self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
                DnsError::Short { len: self.bytes.len(), needed: self.at.saturating_add(n) }
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn skip(&mut self, n: usize) -> Result<(), DnsError> {
        self.take(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Steps over a name: labels up to the root, or up to a compression pointer, which ends
    /// the name where it stands (the target is not needed, so pointers are never followed).
    fn skip_name(&mut self) -> Result<(), DnsError> {
        loop {
            let length = self.take(1)?[0];
            match length & 0xc0 {
                0x00 if length == 0 => return Ok(()),
                0x00 => self.skip(usize::from(length))?,
                0xc0 => return self.skip(1),
                _ => return Err(DnsError::ReservedLabel(length)),
            }
        }
    }
}

/// The name servers of a `resolv.conf` text, at most three as the C resolver uses. Scoped
/// IPv6 addresses (`fe80::1%eth0`) are left out: a socket cannot reach them from the
/// address alone.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u16, flags: u16, questions: u16, answers: u16) -> Vec<u8> {
        let mut p = Vec::new();
        for v in [id, flags, questions, answers, 0, 0] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p
    }

    fn qname(name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for label in name.split('.') {
            p.push(u8::try_from(label.len()).unwrap());
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p
    }

    /// An answer to `name` with A records, the answers' owner a pointer to the question.
    fn response(id: u16, rcode: u16, name: &str, addresses: &[[u8; 4]]) -> Vec<u8> {
        let mut p = header(id, 0x8180 | rcode, 1, u16::try_from(addresses.len()).unwrap());
        p.extend(qname(name));
        p.extend_from_slice(&[0, 1, 0, 1]);
        for a in addresses {
            p.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
            p.extend_from_slice(a);
        }
        p
    }

    #[test]
    fn query_names() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(query_name(v4, "zen.spamhaus.org"), "1.2.0.192.zen.spamhaus.org");
        assert_eq!(query_name(v4, "zen.spamhaus.org."), "1.2.0.192.zen.spamhaus.org");
        let v6: IpAddr = "2001:db8::567:89ab".parse().unwrap();
        assert_eq!(
            query_name(v6, "zen.spamhaus.org"),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"
        );
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(query_name(mapped, "bl.example"), "1.2.0.192.bl.example");
    }

    #[test]
    fn query_packet() {
        let packet = encode_query(0xbeef, "2.0.0.127.bl.example").unwrap();
        let mut expected = header(0xbeef, 0x0100, 1, 0);
        expected.extend(qname("2.0.0.127.bl.example"));
        expected.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(packet, expected);
        assert_eq!(encode_query(1, "a.example.").unwrap(), encode_query(1, "a.example").unwrap());
        assert!(encode_query(1, "a..example").is_err());
        assert!(encode_query(1, "").is_err());
        assert!(encode_query(1, &format!("{}.example", "x".repeat(64))).is_err());
        let long = vec!["x".repeat(60); 5].join(".");
        assert!(encode_query(1, &long).unwrap_err().to_string().contains("255"));
    }

    #[test]
    fn listed_and_not_listed() {
        let name = "2.0.0.127.zen.spamhaus.org";
        let listed = parse_response(7, &response(7, 0, name, &[[127, 0, 0, 2], [127, 0, 0, 10]]));
        assert_eq!(
            listed,
            Ok(Listing::Listed(vec![[127, 0, 0, 2].into(), [127, 0, 0, 10].into()]))
        );
        assert_eq!(parse_response(7, &response(7, 3, name, &[])), Ok(Listing::NotListed));
        // NOERROR without A records (e.g. only TXT) is no listing.
        assert_eq!(parse_response(7, &response(7, 0, name, &[])), Ok(Listing::NotListed));
    }

    #[test]
    fn expected_answers() {
        let services = default_services();
        assert_eq!(services.len(), 4);
        let zen = services[0].expected;
        assert_eq!(zen, Some("127.0.0.10/31".parse().unwrap()));
        let pbl = Listing::Listed(vec![[127, 0, 0, 11].into()]);
        let sbl = Listing::Listed(vec![[127, 0, 0, 2].into()]);
        assert!(pbl.is_listed_for(zen));
        assert!(!sbl.is_listed_for(zen));
        assert!(sbl.is_listed_for(None));
        assert!(sbl.is_listed_for(services[2].expected));
        assert!(!Listing::NotListed.is_listed_for(None));
        let both = Listing::Listed(vec![[127, 0, 0, 2].into(), [127, 0, 0, 10].into()]);
        assert!(both.is_listed_for(zen));
    }

    #[test]
    fn error_answers() {
        let name = "2.0.0.127.zen.spamhaus.org";
        let refused = parse_response(1, &response(1, 0, name, &[[127, 255, 255, 254]]));
        assert!(refused.unwrap_err().to_string().contains("127.255.255.254"));
        let hijack = parse_response(1, &response(1, 0, name, &[[198, 51, 100, 1]]));
        assert!(hijack.unwrap_err().to_string().contains("outside 127.0.0.0/8"));
        assert!(parse_response(1, &response(1, 2, name, &[]))
            .unwrap_err()
            .to_string()
            .contains("SERVFAIL"));
        assert!(parse_response(1, &response(1, 5, name, &[]))
            .unwrap_err()
            .to_string()
            .contains("REFUSED"));
        assert!(parse_response(1, &response(1, 4, name, &[]))
            .unwrap_err()
            .to_string()
            .contains("code 4"));
    }

    #[test]
    fn wrong_or_broken_packets() {
        let name = "2.0.0.127.bl.example";
        let good = response(9, 0, name, &[[127, 0, 0, 2]]);
        assert!(parse_response(8, &good).unwrap_err().to_string().contains("expected 8"));
        let query = encode_query(9, name).unwrap();
        assert!(parse_response(9, &query).unwrap_err().to_string().contains("query"));
        let mut truncated_flag = good.clone();
        truncated_flag[2] |= 0x02;
        assert!(parse_response(9, &truncated_flag).unwrap_err().to_string().contains("TC"));
        for cut in 0..good.len() {
            let error = parse_response(9, &good[..cut]).unwrap_err();
            assert!(error.to_string().contains("truncated"), "cut at {cut}: {error}");
        }
        let mut bad_label = response(9, 0, name, &[]);
        bad_label[HEADER_LEN] = 0x40;
        assert!(parse_response(9, &bad_label).unwrap_err().to_string().contains("reserved"));
        let mut short_a = header(9, 0x8180, 0, 1);
        short_a.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 2, 127, 0]);
        assert!(parse_response(9, &short_a).unwrap_err().to_string().contains("2 bytes"));
        assert!(parse_response(9, &[]).is_err());
    }

    #[test]
    fn answers_with_cname_and_full_names() {
        let name = "2.0.0.127.bl.example";
        let mut p = header(3, 0x8180, 1, 2);
        p.extend(qname(name));
        p.extend_from_slice(&[0, 1, 0, 1]);
        // CNAME: owner a pointer to the question, target a new name ending in a pointer.
        let target = [&[5u8][..], b"alias", &[0xc0, 0x0c]].concat();
        p.extend_from_slice(&[0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60]);
        p.extend_from_slice(&u16::try_from(target.len()).unwrap().to_be_bytes());
        p.extend(target);
        // A: owner written out in full.
        p.extend(qname("alias.2.0.0.127.bl.example"));
        p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 4]);
        assert_eq!(parse_response(3, &p), Ok(Listing::Listed(vec![[127, 0, 0, 4].into()])));
        // A pointer loop is harmless: pointers are not followed.
        let mut looped = header(4, 0x8180, 1, 0);
        looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(parse_response(4, &looped), Ok(Listing::NotListed));
    }

    #[test]
    fn services_and_zones() {
        let service = DnsblService::parse(" Bl.Example. ", Some("127.0.0.2")).unwrap();
        assert_eq!(service.zone, "bl.example");
        assert_eq!(service.expected, Some("127.0.0.2/32".parse().unwrap()));
        assert_eq!(DnsblService::parse("bl.example", None).unwrap().expected, None);
        assert!(DnsblService::parse("", None).unwrap_err().to_string().contains("empty"));
        assert!(DnsblService::parse("bl..example", None).is_err());
        assert!(DnsblService::parse("bl example", None)
            .unwrap_err()
            .to_string()
            .contains("\"bl example\""));
        let error = DnsblService::parse("bl.example", Some("yes")).unwrap_err();
        assert!(error.to_string().contains("\"yes\""), "{error}");
        assert!(validate_zone(&"a.".repeat(130)).is_err());
    }

    #[test]
    fn service_entries_and_name_servers() {
        let service = parse_service_entry("bl.example=127.0.0.2").unwrap();
        assert_eq!(service.zone, "bl.example");
        assert_eq!(service.expected, Some("127.0.0.2/32".parse().unwrap()));
        assert_eq!(parse_service_entry("Any.Example").unwrap().expected, None);
        let network = parse_service_entry("zen.spamhaus.org = 127.0.0.10/31").unwrap();
        assert_eq!(network.expected, Some("127.0.0.10/31".parse().unwrap()));
        assert!(parse_service_entry("bl.example=").unwrap_err().to_string().contains("expected"));
        assert!(parse_service_entry("=127.0.0.2").unwrap_err().to_string().contains("empty"));
        assert_eq!(parse_name_server("192.0.2.53"), Ok("192.0.2.53:53".parse().unwrap()));
        assert_eq!(parse_name_server("2001:db8::53"), Ok("[2001:db8::53]:53".parse().unwrap()));
        assert_eq!(parse_name_server("127.0.0.1:5353"), Ok("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(parse_name_server("[::1]:5353"), Ok("[::1]:5353".parse().unwrap()));
        let error = parse_name_server("ns.example").unwrap_err();
        assert!(error.to_string().contains("\"ns.example\""), "{error}");
        assert!(parse_name_server("127.0.0.1:99999").is_err());
    }

    #[test]
    fn lookup_addresses() {
        let v4 = ConnectAddress::Inet { port: 1, address: b"192.0.2.1".to_vec() };
        assert_eq!(lookup_address(&v4), Some([192, 0, 2, 1].into()));
        let v6 = ConnectAddress::Inet6 { port: 1, address: b"2001:db8::1".to_vec() };
        assert_eq!(lookup_address(&v6), None);
        assert_eq!(lookup_address(&ConnectAddress::Unknown), None);
    }

    #[test]
    fn resolv_conf() {
        let text = "\
# Generated by NetworkManager
search example.com
nameserver 192.0.2.53
nameserver\t2001:db8::53
;nameserver 192.0.2.99
nameserver fe80::1%eth0
nameserver bogus
options edns0 trust-ad
nameserver 198.51.100.53
nameserver 203.0.113.53
";
        let servers: Vec<IpAddr> = ["192.0.2.53", "2001:db8::53", "198.51.100.53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(parse_resolv_conf(text), servers);
        assert!(parse_resolv_conf("").is_empty());
    }
}
