//! What the binaries share: turning connection specs into sockets and addresses, and the
//! logger. This is the I/O edge; the domain modules of the library never use it.

pub mod logger;
pub mod milter_connection;
pub mod stdout;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::spec::{Family, Host, Spec};

/// Why a connection spec gives no socket address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0} is not an inet spec")]
    NotInet(Spec),
    #[error("cannot resolve host {name:?} of {spec}: {error}")]
    Lookup { name: String, spec: Spec, error: io::Error },
    /// `family`: "IPv4" or "IPv6", what the spec asks for.
    #[error("host {name:?} of {spec} has no {family} address")]
    NoAddress { name: String, spec: Spec, family: &'static str },
}

/// The socket addresses a TCP spec stands for (host names are looked up here).
pub fn resolve_inet(spec: &Spec, for_listening: bool) -> Result<Vec<SocketAddr>, ResolveError> {
    let Spec::Inet { family, port, host } = spec else {
        return Err(ResolveError::NotInet(spec.clone()));
    };
    if let Some(address) = spec.literal_address(for_listening) {
        return Ok(vec![SocketAddr::new(address, *port)]);
    }
    let Host::Name(name) = host else { unreachable!("literal_address covers the other hosts") };
    let addresses: Vec<SocketAddr> = (name.as_str(), *port)
        .to_socket_addrs()
        .map_err(|error| ResolveError::Lookup { name: name.clone(), spec: spec.clone(), error })?
        .filter(|a| match family {
            Family::Inet => a.is_ipv4(),
            Family::Inet6 => a.is_ipv6(),
        })
        .collect();
    if addresses.is_empty() {
        let family = if *family == Family::Inet { "IPv4" } else { "IPv6" };
        return Err(ResolveError::NoAddress { name: name.clone(), spec: spec.clone(), family });
    }
    Ok(addresses)
}

/// Where to connect for `spec`.
pub fn endpoints(spec: &Spec) -> Result<Vec<workers::Endpoint>, ResolveError> {
    match spec {
        Spec::Unix { path, .. } => Ok(vec![workers::Endpoint::Unix(path.clone())]),
        Spec::Inet { .. } => {
            Ok(resolve_inet(spec, false)?.into_iter().map(workers::Endpoint::Tcp).collect())
        }
    }
}

/// Where to listen for `spec`.
pub fn bind_target(spec: &Spec) -> Result<supervisor::BindTarget, ResolveError> {
    match spec {
        Spec::Unix { path, .. } => Ok(supervisor::BindTarget::Unix(path.clone())),
        Spec::Inet { .. } => Ok(supervisor::BindTarget::Tcp(resolve_inet(spec, true)?)),
    }
}

/// This machine's host name (the MTA's `j` macro), or `localhost`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Parses a number with an optional K/M suffix (`--packet-buffer-size=64K`).
pub fn parse_size(text: &str) -> Result<usize, SizeError> {
    let upper = text.trim().to_ascii_uppercase();
    let number = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, unit) = match number.strip_suffix('K') {
        Some(digits) => (digits, 1024),
        None => match number.strip_suffix('M') {
            Some(digits) => (digits, 1024 * 1024),
            None => (number, 1),
        },
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| SizeError(text.to_string()))
}

/// A text that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size (a number, optionally with K or M)")]
pub struct SizeError(pub String);

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("0"), Ok(0));
        assert_eq!(super::parse_size("64K"), Ok(65536));
        assert_eq!(super::parse_size("64kb"), Ok(65536));
        assert_eq!(super::parse_size("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(super::parse_size("100B"), Ok(100));
        let error = super::parse_size("lots").unwrap_err().to_string();
        assert_eq!(error, "\"lots\" is not a size (a number, optionally with K or M)");
        assert!(super::parse_size("K").is_err());
    }
}
