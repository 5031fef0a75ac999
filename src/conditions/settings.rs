//! The settings of the built-in conditions, with the defaults of the configuration manual.
//! The configuration fills them in (`[s25r]`, `[trust]`, ... and the Rhai handles of the
//! same names); the conditions are built from them.

use super::script::ScriptFn;

/// `[s25r]`: the S25R condition's lists (entries are host names or `/regex/`).
#[derive(Debug, Clone, PartialEq)]
pub struct S25rSettings {
    /// Hosts never treated as dynamic, besides the default whitelist.
    pub whitelist: Vec<String>,
    /// Hosts always treated as dynamic unless whitelisted.
    pub blacklist: Vec<String>,
    /// Whether the big senders of the default whitelist are whitelisted.
    pub default_whitelist: bool,
    /// Only IPv4 clients are judged; others count as whitelisted.
    pub check_only_ipv4: bool,
    /// Matchers given as Rhai functions (`s25r.add_whitelist(|host| ...)`).
    pub whitelist_functions: Vec<ScriptFn>,
    pub blacklist_functions: Vec<ScriptFn>,
}

impl Default for S25rSettings {
    fn default() -> Self {
        Self {
            whitelist: Vec::new(),
            blacklist: Vec::new(),
            default_whitelist: true,
            check_only_ipv4: true,
            whitelist_functions: Vec::new(),
            blacklist_functions: Vec::new(),
        }
    }
}

/// `[remote_network]`: addresses or networks (CIDR) to count as local or remote besides
/// the private ranges.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteNetworkSettings {
    pub local_addresses: Vec<String>,
    pub remote_addresses: Vec<String>,
}

/// `[trust]`: envelope-from domains that get `{trusted_domain}=yes` (names or `/regex/`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustSettings {
    pub envelope_from_domains: Vec<String>,
    /// Whether the default list of big mail providers is trusted.
    pub default_envelope_from_domains: bool,
    /// Files with one domain per line; read when the configuration loads.
    pub envelope_from_domain_files: Vec<String>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        Self {
            envelope_from_domains: Vec::new(),
            default_envelope_from_domains: true,
            envelope_from_domain_files: Vec::new(),
        }
    }
}

/// `[stress]`: when the manager counts as stressed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StressSettings {
    /// Sessions at once from which the manager is stressed; 0: never. `None`: 3/4 of
    /// Postfix's smtpd process limit, when Postfix is found.
    pub threshold_n_connections: Option<u32>,
}

/// `[dnsbl]`: the DNS blocklists "DNSBL Listed" and "Not DNSBL Listed" ask about IPv4
/// clients, and the name servers asked.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblSettings {
    /// Zones, each alone (any answer lists) or with the answer that lists:
    /// `"bl.example"`, `"bl.example=127.0.0.2"`, `"zen.spamhaus.org=127.0.0.10/31"`.
    pub services: Vec<String>,
    /// Whether the original's four zones are asked too.
    pub default_services: bool,
    /// IP addresses, optionally with a port (`"127.0.0.1:5353"`, `"[::1]:53"`); empty:
    /// the `nameserver` lines of `/etc/resolv.conf`.
    pub name_servers: Vec<String>,
    /// Seconds to wait for the answers before the client counts as not listed.
    pub timeout: f64,
}

/// The original's lookup timeout.
pub(super) const DEFAULT_DNSBL_TIMEOUT: f64 = 5.0;
/// A longer wait would outlast the MTAs' own milter timeouts (Sendmail's is 10 s).
pub const MAX_DNSBL_TIMEOUT: f64 = 60.0;

impl Default for DnsblSettings {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            default_services: true,
            name_servers: Vec::new(),
            timeout: DEFAULT_DNSBL_TIMEOUT,
        }
    }
}

/// `[restrict_accounts]`: the recipients the "Restrict Accounts" condition lets through
/// (addresses, `@domain` or `/regex/`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestrictAccountsSettings {
    pub accounts: Vec<String>,
}
