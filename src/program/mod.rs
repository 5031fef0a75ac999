//! What the binaries share: turning connection specs into sockets and addresses, and the
//! logger. This is the I/O edge; the domain modules of the library never use it.

pub mod logger;
pub mod milter_connection;
pub mod stdout;

use std::net::{SocketAddr, ToSocketAddrs};

use crate::spec::{Family, Host, Spec};

/// The socket addresses a TCP spec stands for (host names are looked up here).
pub fn resolve_inet(spec: &Spec, for_listening: bool) -> Result<Vec<SocketAddr>, String> {
    let Spec::Inet { family, port, host } = spec else {
        return Err(format!("{spec} is not an inet spec"));
    };
    if let Some(address) = spec.literal_address(for_listening) {
        return Ok(vec![SocketAddr::new(address, *port)]);
    }
    let Host::Name(name) = host else { unreachable!("literal_address covers the other hosts") };
    let addresses: Vec<SocketAddr> = (name.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {name:?} of {spec}: {e}"))?
        .filter(|a| match family {
            Family::Inet => a.is_ipv4(),
            Family::Inet6 => a.is_ipv6(),
        })
        .collect();
    if addresses.is_empty() {
        let kind = if *family == Family::Inet { "IPv4" } else { "IPv6" };
        return Err(format!("host {name:?} of {spec} has no {kind} address"));
    }
    Ok(addresses)
}

/// Where to connect for `spec`.
pub fn endpoints(spec: &Spec) -> Result<Vec<workers::Endpoint>, String> {
    match spec {
        Spec::Unix { path, .. } => Ok(vec![workers::Endpoint::Unix(path.clone())]),
        Spec::Inet { .. } => {
            Ok(resolve_inet(spec, false)?.into_iter().map(workers::Endpoint::Tcp).collect())
        }
    }
}

/// Where to listen for `spec`.
pub fn bind_target(spec: &Spec) -> Result<supervisor::BindTarget, String> {
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
pub fn parse_size(text: &str) -> Result<usize, String> {
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
        .ok_or_else(|| format!("{text:?} is not a size (a number, optionally with K or M)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("0"), Ok(0));
        assert_eq!(super::parse_size("64K"), Ok(65536));
        assert_eq!(super::parse_size("64kb"), Ok(65536));
        assert_eq!(super::parse_size("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(super::parse_size("100B"), Ok(100));
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("K").is_err());
    }
}
