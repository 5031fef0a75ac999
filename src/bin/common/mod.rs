//! What the binaries share: turning connection specs into sockets and addresses, and the
//! logger. This is the I/O edge; the library stays free of it.

#![allow(dead_code)] // Each binary uses a different part.

pub mod logger;

use std::net::{SocketAddr, ToSocketAddrs};

use milter_manager::spec::{Family, Host, Spec};

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

/// Parses a number with an optional K/M suffix (`--packet-buffer-size=64K`).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.trim().to_ascii_uppercase() {
        t if t.ends_with("KB") || t.ends_with('K') => {
            (t.trim_end_matches('B').trim_end_matches('K').to_string(), 1024)
        }
        t if t.ends_with("MB") || t.ends_with('M') => {
            (t.trim_end_matches('B').trim_end_matches('M').to_string(), 1024 * 1024)
        }
        t => (t.trim_end_matches('B').to_string(), 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a size (a number, optionally with K or M)"))
}
