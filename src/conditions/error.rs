//! What can be wrong below a condition: an entry of a built-in's lists (a zone, a name
//! server, a network, an account, a host or domain, a `/regex/`), a trusted domain list, a
//! DNS packet. Each message names the entry and says what to write instead.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Why an entry of a built-in condition's settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("invalid DNSBL zone {zone:?}: {why}")]
    DnsblZone { zone: String, why: &'static str },
    #[error(
        "invalid expected DNSBL answer {text:?} for {zone}: write an IPv4 address or network \
         such as 127.0.0.2 or 127.0.0.10/31"
    )]
    DnsblAnswer { text: String, zone: String },
    #[error(
        "invalid name server {0:?}: write an IP address such as 192.0.2.53 or 2001:db8::53, \
         optionally with a port (127.0.0.1:5353, [::1]:5353)"
    )]
    NameServer(String),
    #[error(
        "invalid network address {text:?}: {why}; write an address or CIDR such as \
         192.0.2.0/24 or 2001:db8::/32"
    )]
    Network { text: String, why: &'static str },
    #[error(
        "invalid restricted account {text:?}: {why}; write user@example.com, @example.com or \
         /regex/"
    )]
    Account { text: String, why: &'static str },
    #[error("empty S25R host name: give a host name or a /regex/")]
    EmptyHost,
    #[error("S25R host name {0:?} contains white space")]
    HostWithSpace(String),
    #[error("empty trusted domain: give a domain name or a /regex/")]
    EmptyDomain,
    #[error("trusted domain {0:?} is not a domain name (no spaces, '@' or brackets)")]
    NotADomain(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// A `/regex/` entry that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty regular expression {0}: it would match everything")]
    Empty(String),
    /// `why` is the first line of the regex crate's message (its own spans several lines).
    #[error("invalid regular expression {text}: {why}")]
    Invalid { text: String, why: String },
}

/// Why a trusted domain list was not used.
#[derive(Debug, thiserror::Error)]
pub enum DomainListError {
    #[error("line {line}: {error}")]
    Line { line: usize, error: EntryError },
    #[error("cannot read trusted domain list {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{}: {error}", path.display())]
    InFile { path: PathBuf, error: Box<Self> },
}

/// Why a DNSBL query could not be made or its answer not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("cannot query {name:?}: each label needs 1 to 63 characters")]
    LabelLength { name: String },
    #[error("cannot query {name:?}: longer than 255 bytes")]
    NameTooLong { name: String },
    #[error("DNS answer for query {got}, expected {expected}")]
    OtherQuery { got: u16, expected: u16 },
    #[error("DNS packet is a query, not an answer")]
    NotAnAnswer,
    #[error("DNS answer truncated (TC set)")]
    TruncatedFlag,
    #[error("DNS answer truncated: {len} bytes where at least {needed} are needed")]
    Short { len: usize, needed: usize },
    #[error("DNS server failure (SERVFAIL)")]
    ServerFailure,
    #[error("DNS query refused (REFUSED)")]
    Refused,
    #[error("DNS error response code {0}")]
    ResponseCode(u16),
    #[error("DNS A record of {0} bytes instead of 4")]
    ARecordLength(usize),
    #[error("DNS name with a reserved label type 0x{0:02x}")]
    ReservedLabel(u8),
    #[error("DNSBL answer {0} is outside 127.0.0.0/8: the resolver may rewrite NXDOMAIN")]
    OutsideLoopback(Ipv4Addr),
    #[error(
        "DNSBL answer {address} is an error code of the list (127.255.255.{code}), e.g. a query \
         through a public or unregistered resolver"
    )]
    ListErrorCode { address: Ipv4Addr, code: u8 },
}
