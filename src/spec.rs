//! Connection specs: where a milter listens or is reached.
//!
//! `unix:PATH` (or `local:PATH`), `inet:PORT`, `inet:PORT@HOST`, `inet:PORT@[ADDRESS]`,
//! and the same three with `inet6:`. A spec prints back exactly as it was written, so
//! configuration dumps and logs show what the admin typed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// The address family of an `inet`/`inet6` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    fn scheme(self) -> &'static str {
        match self {
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
        }
    }
}

/// The host part of an `inet`/`inet6` spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// No host: every address of the family (when listening) or the loopback address
    /// (when connecting).
    Any,
    /// `@name`: a host name or an address written without brackets; resolved when used.
    Name(String),
    /// `@[address]`: a literal address.
    Address(IpAddr),
}

/// A parsed connection spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Spec {
    Unix {
        path: PathBuf,
        /// Written as `local:` rather than `unix:`.
        local_alias: bool,
    },
    Inet {
        family: Family,
        port: u16,
        host: Host,
    },
}

/// What is wrong with a connection spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection spec {spec:?}: {reason}")]
pub struct SpecError {
    pub spec: String,
    pub reason: SpecProblem,
}

/// The part of a connection spec that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// No `TYPE:` prefix.
    #[error("{FORMS}")]
    NoType,
    #[error("unknown type {0:?}; {FORMS}")]
    UnknownType(String),
    #[error("the socket path is empty")]
    EmptyPath,
    #[error("the socket path contains a NUL byte")]
    NulInPath,
    #[error("the port is missing")]
    MissingPort,
    #[error("port {0:?} is not a number")]
    PortNotANumber(String),
    #[error("port {0} is out of range (0-65535)")]
    PortOutOfRange(String),
    /// A port problem where the text looks like Postfix's `inet:HOST:PORT`.
    #[error("{problem} (this looks like Postfix's inet:HOST:PORT form; write {scheme}:PORT@HOST)")]
    PostfixForm { problem: Box<Self>, scheme: String },
    #[error("the host after '@' is empty")]
    EmptyHost,
    #[error("{0:?} lacks the closing ']'")]
    UnclosedBracket(String),
    #[error("{0:?} is not an IPv4 address")]
    NotIpv4(String),
    #[error("{0:?} is not an IPv6 address")]
    NotIpv6(String),
    #[error("{0:?} is not a host name")]
    NotAHostName(String),
    #[error("{address} is not an address of the {scheme} family")]
    WrongFamily { address: String, scheme: &'static str },
}

const FORMS: &str =
    "expected unix:PATH, local:PATH, inet:PORT[@HOST|@[ADDRESS]] or inet6:PORT[@HOST|@[ADDRESS]]";

impl FromStr for Spec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let error = |reason: SpecProblem| SpecError { spec: text.to_string(), reason };
        let (scheme, rest) = text.split_once(':').ok_or_else(|| error(SpecProblem::NoType))?;
        match scheme {
            "unix" | "local" => {
                if rest.is_empty() {
                    return Err(error(SpecProblem::EmptyPath));
                }
                if rest.contains('\0') {
                    return Err(error(SpecProblem::NulInPath));
                }
                Ok(Self::Unix { path: PathBuf::from(rest), local_alias: scheme == "local" })
            }
            "inet" | "inet6" => {
                let family = if scheme == "inet" { Family::Inet } else { Family::Inet6 };
                let (port_text, host_text) = match rest.split_once('@') {
                    Some((port, host)) => (port, Some(host)),
                    None => (rest, None),
                };
                let port = parse_port(port_text).map_err(|problem| {
                    if port_text.contains(':') || port_text.contains('.') {
                        error(SpecProblem::PostfixForm {
                            problem: Box::new(problem),
                            scheme: scheme.to_string(),
                        })
                    } else {
                        error(problem)
                    }
                })?;
                let host = match host_text {
                    None => Host::Any,
                    Some(host) => parse_host(family, host).map_err(error)?,
                };
                Ok(Self::Inet { family, port, host })
            }
            _ => Err(error(SpecProblem::UnknownType(scheme.to_string()))),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, SpecProblem> {
    if text.is_empty() {
        return Err(SpecProblem::MissingPort);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SpecProblem::PortNotANumber(text.to_string()));
    }
    text.parse::<u16>().map_err(|_| SpecProblem::PortOutOfRange(text.to_string()))
}

fn parse_host(family: Family, text: &str) -> Result<Host, SpecProblem> {
    if text.is_empty() {
        return Err(SpecProblem::EmptyHost);
    }
    if let Some(inner) = text.strip_prefix('[') {
        let inner =
            inner.strip_suffix(']').ok_or_else(|| SpecProblem::UnclosedBracket(text.into()))?;
        let address = match family {
            Family::Inet => inner
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| SpecProblem::NotIpv4(inner.into()))?,
            Family::Inet6 => inner
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| SpecProblem::NotIpv6(inner.into()))?,
        };
        return Ok(Host::Address(address));
    }
    let valid_name = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !valid_name {
        return Err(SpecProblem::NotAHostName(text.into()));
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        let matches = matches!(
            (family, address),
            (Family::Inet, IpAddr::V4(_)) | (Family::Inet6, IpAddr::V6(_))
        );
        if !matches {
            let scheme = family.scheme();
            return Err(SpecProblem::WrongFamily { address: text.into(), scheme });
        }
    } else if text.contains(':') {
        return Err(SpecProblem::NotAHostName(text.into()));
    }
    Ok(Host::Name(text.to_string()))
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix { path, local_alias } => {
                let scheme = if *local_alias { "local" } else { "unix" };
                write!(f, "{scheme}:{}", path.display())
            }
            Self::Inet { family, port, host } => {
                write!(f, "{}:{port}", family.scheme())?;
                match host {
                    Host::Any => Ok(()),
                    Host::Name(name) => write!(f, "@{name}"),
                    Host::Address(address) => write!(f, "@[{address}]"),
                }
            }
        }
    }
}

impl Spec {
    /// Parses a spec; the same as `text.parse()`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        text.parse()
    }

    /// The literal address to use when the host is given as an address (with or without
    /// brackets), or when it is absent: the unspecified address for listening, the
    /// loopback address otherwise. `None` for unix specs and host names, which need a
    /// lookup.
    pub fn literal_address(&self, for_listening: bool) -> Option<IpAddr> {
        match self {
            Self::Unix { .. } => None,
            Self::Inet { family, host, .. } => match host {
                Host::Address(address) => Some(*address),
                Host::Name(name) => name.parse().ok(),
                Host::Any => Some(match (family, for_listening) {
                    (Family::Inet, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    (Family::Inet, false) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    (Family::Inet6, true) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    (Family::Inet6, false) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_prints_back_as_written() {
        for text in [
            "unix:/tmp/milter-test-client.sock",
            "local:/var/run/milter.sock",
            "unix:relative/path.sock",
            "inet:10025",
            "inet:10025@localhost",
            "inet:10025@[127.0.0.1]",
            "inet:10025@127.0.0.1",
            "inet6:10025",
            "inet6:10025@localhost",
            "inet6:10025@[::1]",
            "inet:0@[127.0.0.1]",
        ] {
            let spec: Spec = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spec.to_string(), text);
        }
    }

    #[test]
    fn parts_are_understood() {
        assert_eq!(
            Spec::parse("inet6:25@[::1]").unwrap(),
            Spec::Inet {
                family: Family::Inet6,
                port: 25,
                host: Host::Address("::1".parse().unwrap())
            }
        );
        assert_eq!(
            Spec::parse("inet:10025").unwrap().literal_address(true),
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
        assert_eq!(Spec::parse("inet:10025@localhost").unwrap().literal_address(false), None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("/tmp/x.sock", "expected unix:PATH"),
            ("tcp:25", "unknown type \"tcp\""),
            ("unix:", "path is empty"),
            ("inet:", "port is missing"),
            ("inet:abc", "\"abc\" is not a number"),
            ("inet:70000", "out of range"),
            ("inet:127.0.0.1:10025", "Postfix's inet:HOST:PORT form"),
            ("inet:25@", "host after '@' is empty"),
            ("inet:25@[::1]", "not an IPv4 address"),
            ("inet6:25@[127.0.0.1]", "not an IPv6 address"),
            ("inet:25@[127.0.0.1", "closing ']'"),
            ("inet:25@bad host", "not a host name"),
            ("inet:25@::1", "not an address of the inet family"),
        ];
        for (text, reason) in cases {
            let err = Spec::parse(text).unwrap_err();
            assert!(err.to_string().contains(reason), "{text}: {err}");
            assert!(err.to_string().contains(text), "{text}: {err}");
        }
    }
}
