//! Remote Network: apply a child milter only to clients outside the local network.
//!
//! Local means, in this order: not an explicitly added remote network; then a private
//! range or an explicitly added local network. Unix-socket clients are local; a client
//! whose address the MTA does not know is not treated as remote, as in the original.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ip_of;
use crate::conditions::EntryError;
use crate::protocol::ConnectAddress;

/// The Remote Network condition's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteNetwork {
    local: Vec<IpNet>,
    remote: Vec<IpNet>,
}

impl RemoteNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Treats `address` (`160.29.167.10`, `160.29.167.0/24`, `2001:db8::/64`, or an IPv4
    /// network with a dotted mask, `192.0.2.0/255.255.255.0`) as local.
    pub fn add_local_address(&mut self, address: &str) -> Result<(), EntryError> {
        self.local.push(parse_network(address)?);
        Ok(())
    }

    /// Treats `address` as remote even inside a private range (e.g. a DMZ).
    pub fn add_remote_address(&mut self, address: &str) -> Result<(), EntryError> {
        self.remote.push(parse_network(address)?);
        Ok(())
    }

    /// Drops the added networks; the private ranges stay local.
    pub fn clear(&mut self) {
        self.local.clear();
        self.remote.clear();
    }

    pub fn local_addresses(&self) -> &[IpNet] {
        &self.local
    }

    pub fn remote_addresses(&self) -> &[IpNet] {
        &self.remote
    }

    /// The built-in notion of local: loopback and private ranges.
    ///
    /// The original takes IPv4 loopback and RFC 1918, IPv6 loopback and link-local. This
    /// adds the counterparts it lacked: IPv4 link-local (169.254/16, as fe80::/10 is in),
    /// IPv6 unique-local (fc00::/7, the IPv6 RFC 1918), and v4-mapped IPv6 judged as the
    /// IPv4 address inside.
    pub fn is_local(ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || first & 0xffc0 == 0xfe80 // link-local
                    || first & 0xfe00 == 0xfc00 // unique-local
            }
        }
    }

    /// Whether a client at `ip` is remote under these settings.
    pub fn is_remote(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.remote.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        !(Self::is_local(ip) || self.local.iter().any(|net| net.contains(&ip)))
    }

    /// True when the child milter applies to this client (it is remote); the condition's
    /// connect stopper stops the child when this is false.
    pub fn applies(&self, address: &ConnectAddress) -> bool {
        match ip_of(address) {
            Some(ip) => self.is_remote(ip),
            // Unix sockets are local; an unknown or unreadable address is not known to be
            // remote.
            None => false,
        }
    }
}

/// An address (a host network) or a network in CIDR notation; host bits are cleared.
fn parse_network(text: &str) -> Result<IpNet, EntryError> {
    let text = text.trim();
    let invalid = |why| EntryError::Network { text: text.to_string(), why };
    let Some((address, prefix)) = text.split_once('/') else {
        let ip: IpAddr = text.parse().map_err(|_| invalid("not an IP address"))?;
        return Ok(IpNet::from(ip));
    };
    let ip: IpAddr = address.parse().map_err(|_| invalid("not an IP address before '/'"))?;
    let prefix_len = match (ip, prefix.parse::<u8>(), prefix.parse::<Ipv4Addr>()) {
        (_, Ok(len), _) => len,
        (IpAddr::V4(_), _, Ok(mask)) => {
            ipnet::ipv4_mask_to_prefix(mask).map_err(|_| invalid("the mask is not contiguous"))?
        }
        _ => return Err(invalid("the prefix length is not a number")),
    };
    let net = match ip {
        IpAddr::V4(v4) => Ipv4Net::new(v4, prefix_len).map(IpNet::V4),
        IpAddr::V6(v6) => Ipv6Net::new(v6, prefix_len).map(IpNet::V6),
    };
    net.map(|net| net.trunc()).map_err(|_| invalid("the prefix length is too long"))
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_ranges_are_local() {
        for text in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "::ffff:192.168.1.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(RemoteNetwork::is_local(ip(text)), "{text}");
        }
        for text in [
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "11.0.0.1",
            "160.29.167.10",
            "192.0.2.1",
            "fec0::1",
            "fe00::1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "::",
        ] {
            assert!(!RemoteNetwork::is_local(ip(text)), "{text}");
        }
    }

    #[test]
    fn applies_only_to_remote_clients() {
        let rn = RemoteNetwork::new();
        assert!(rn.applies(&inet("160.29.167.10")));
        assert!(rn.applies(&inet6("2001:2f8:c2:201::fff0")));
        assert!(rn.applies(&inet6("IPv6:2001:2f8:c2:201::fff0")));
        assert!(!rn.applies(&inet("192.168.1.10")));
        assert!(!rn.applies(&inet("127.0.0.1")));
        assert!(!rn.applies(&inet6("::1")));
        assert!(!rn.applies(&ConnectAddress::Unknown));
        assert!(!rn.applies(&ConnectAddress::Unix { port: 0, path: b"/tmp/s".to_vec() }));
        assert!(!rn.applies(&inet("not an address")));
    }

    #[test]
    fn seed_examples_of_local_addresses() {
        let mut rn = RemoteNetwork::new();
        rn.add_local_address("160.29.167.10").unwrap();
        assert!(!rn.applies(&inet("160.29.167.10")));
        assert!(rn.applies(&inet("160.29.167.11")));

        rn.add_local_address("160.29.167.0/24").unwrap();
        assert!(!rn.applies(&inet("160.29.167.0")));
        assert!(!rn.applies(&inet("160.29.167.255")));
        assert!(rn.applies(&inet("160.29.168.0")));
        assert!(rn.applies(&inet("160.29.166.255")));

        rn.add_local_address("2001:2f8:c2:201::fff0").unwrap();
        assert!(!rn.applies(&inet6("2001:2f8:c2:201::fff0")));
        assert!(rn.applies(&inet6("2001:2f8:c2:201::fff1")));

        rn.add_local_address("2001:2f8:c2:201::/64").unwrap();
        assert!(!rn.applies(&inet6("2001:2f8:c2:201:ffff:ffff:ffff:ffff")));
        assert!(rn.applies(&inet6("2001:2f8:c2:202::1")));
        assert!(rn.applies(&inet6("2001:2f8:c2:200:ffff:ffff:ffff:ffff")));
    }

    #[test]
    fn cidr_edges() {
        let mut rn = RemoteNetwork::new();
        rn.add_local_address("198.51.100.64/26").unwrap();
        assert!(rn.applies(&inet("198.51.100.63")));
        assert!(!rn.applies(&inet("198.51.100.64")));
        assert!(!rn.applies(&inet("198.51.100.127")));
        assert!(rn.applies(&inet("198.51.100.128")));
        // Host bits are cleared, as IPAddr did.
        rn.add_local_address("203.0.113.77/24").unwrap();
        assert_eq!(rn.local_addresses()[1].to_string(), "203.0.113.0/24");
        assert!(!rn.applies(&inet("203.0.113.1")));
        // A dotted mask.
        rn.add_local_address("192.0.2.0/255.255.255.128").unwrap();
        assert_eq!(rn.local_addresses()[2].to_string(), "192.0.2.0/25");
        // /0 takes everything of its family only.
        rn.add_local_address("0.0.0.0/0").unwrap();
        assert!(!rn.applies(&inet("8.8.8.8")));
        assert!(rn.applies(&inet6("2001:db8::1")));
        // A v4-mapped client falls in the IPv4 network.
        assert!(!rn.applies(&inet6("::ffff:8.8.8.8")));
    }

    #[test]
    fn remote_addresses_win() {
        let mut rn = RemoteNetwork::new();
        rn.add_remote_address("192.168.100.0/24").unwrap();
        rn.add_local_address("192.168.100.5").unwrap();
        assert!(rn.applies(&inet("192.168.100.5")));
        assert!(!rn.applies(&inet("192.168.101.5")));
        rn.add_remote_address("::1").unwrap();
        assert!(rn.applies(&inet6("::1")));
        rn.clear();
        assert!(!rn.applies(&inet("192.168.100.5")));
        assert!(rn.remote_addresses().is_empty());
    }

    #[test]
    fn errors_name_the_value() {
        let mut rn = RemoteNetwork::new();
        for bad in [
            "",
            "example.com",
            "192.0.2.0/33",
            "2001:db8::/129",
            "192.0.2.0/abc",
            "192.0.2.0/255.0.255.0",
            "2001:db8::/ffff::",
            "192.0.2/24",
            "/24",
        ] {
            let error = rn.add_local_address(bad).unwrap_err();
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
            assert!(!error.to_string().contains('\n'));
            assert!(rn.add_remote_address(bad).is_err());
        }
        assert!(rn.local_addresses().is_empty());
    }
}
