//! S25R (Selective SMTP Rejection): apply a child milter only to clients whose host name
//! looks like an end-user machine rather than a mail server.
//!
//! The decision, in order: a client that is not IPv4 is left alone while
//! `check_only_ipv4` holds (the S25R rules were written for IPv4 reverse names); a
//! whitelisted host is left alone; a blacklisted or generic-looking host gets the milter;
//! anything else is left alone. The whitelist wins over the blacklist.

use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::{ip_of, pattern};
use crate::conditions::EntryError;
use crate::protocol::ConnectAddress;

/// One entry of a white- or blacklist.
#[derive(Clone)]
pub enum HostMatcher {
    /// A whole host name, compared without regard to ASCII case (DNS names are
    /// case-insensitive).
    Exact(String),
    /// A regular expression searched in the host name as the MTA sent it.
    Pattern(Regex),
    /// Any test the embedding code wants (the original allowed a Ruby block).
    Custom(Rc<dyn Fn(&str) -> bool>),
}

impl HostMatcher {
    /// `/regex/` or `/regex/i` is a pattern (Rust regex syntax, `\A` and `\z` included);
    /// anything else is an exact host name.
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        if let Some(compiled) = pattern::parse_slashed(text, false) {
            return Ok(Self::Pattern(compiled?));
        }
        let host = text.trim();
        if host.is_empty() {
            return Err(EntryError::EmptyHost);
        }
        if host.contains(char::is_whitespace) {
            return Err(EntryError::HostWithSpace(host.to_string()));
        }
        Ok(Self::Exact(host.to_string()))
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name.eq_ignore_ascii_case(host),
            Self::Pattern(regex) => regex.is_match(host),
            Self::Custom(test) => test(host),
        }
    }
}

impl fmt::Debug for HostMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.debug_tuple("Exact").field(name).finish(),
            Self::Pattern(regex) => write!(f, "Pattern(/{}/)", regex.as_str()),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Big senders whose outgoing hosts have generic-looking names; the original's defaults.
/// Case-insensitive on purpose: a PTR record may be written in capitals.
const DEFAULT_WHITELIST: [&str; 6] = [
    r"\.google\.com\z",
    r"\.obsmtp\.com\z",
    r"\.smtp-out\.amazonses\.com\z",
    r"\.slack\.com\z",
    r"\.mg\.gitlab\.com\z",
    r"\.sendgrid\.net\z",
];

/// The S25R generic rules, besides the literal name `unknown`. `[0-9]` stands for the
/// original's `\d`, which is ASCII-only there but would take any Unicode digit here.
const GENERIC_RULES: [&str; 7] = [
    // No reverse name: Postfix and Sendmail send the address in brackets.
    r"\A\[.+\]\z",
    // A digit, something else, a digit again in the first label: p1234-ipbf56.
    r"\A[^.]*[0-9][^0-9.]+[0-9].*\.",
    // Five digits in a row in the first label.
    r"\A[^.]*[0-9]{5}",
    // The first or second label starts with a digit and at least three labels follow.
    r"(?i)\A(?:[^.]+\.)?[0-9][^.]*\.[^.]+\..+\.[a-z]",
    // The first label ends with a digit and the second one has digit-dash-digit.
    r"\A[^.]*[0-9]\.[^.]*[0-9]-[0-9]",
    // The first two labels end with a digit and at least two more labels follow.
    r"\A[^.]*[0-9]\.[^.]*[0-9]\.[^.]+\..+\.",
    // Dial-up and DSL pools.
    r"(?i)\A(?:dhcp|dialup|ppp|[achrsvx]?dsl)[^.]*[0-9]",
];

fn generic_rules() -> &'static RegexSet {
    static RULES: OnceLock<RegexSet> = OnceLock::new();
    // Constant patterns, compiled and exercised by the tests: this cannot fail at run time.
    RULES.get_or_init(|| {
        RegexSetBuilder::new(GENERIC_RULES).build().expect("the S25R generic rules compile")
    })
}

/// The S25R condition's settings.
#[derive(Debug, Clone)]
pub struct S25r {
    whitelist: Vec<HostMatcher>,
    blacklist: Vec<HostMatcher>,
    check_only_ipv4: bool,
}

impl Default for S25r {
    fn default() -> Self {
        Self::new()
    }
}

impl S25r {
    /// The original's defaults: the big senders whitelisted, no extra blacklist entries,
    /// IPv4 clients only.
    pub fn new() -> Self {
        let whitelist = DEFAULT_WHITELIST
            .iter()
            .filter_map(|p| RegexBuilder::new(p).case_insensitive(true).build().ok())
            .map(HostMatcher::Pattern)
            .collect();
        Self { whitelist, blacklist: Vec::new(), check_only_ipv4: true }
    }

    pub fn add_whitelist(&mut self, matcher: HostMatcher) {
        self.whitelist.push(matcher);
    }

    pub fn add_blacklist(&mut self, matcher: HostMatcher) {
        self.blacklist.push(matcher);
    }

    /// Drops the whitelist, defaults included.
    pub fn clear_whitelist(&mut self) {
        self.whitelist.clear();
    }

    /// Drops the added blacklist entries. The generic rules stay: they define S25R.
    pub fn clear_blacklist(&mut self) {
        self.blacklist.clear();
    }

    pub fn set_check_only_ipv4(&mut self, only_ipv4: bool) {
        self.check_only_ipv4 = only_ipv4;
    }

    pub fn check_only_ipv4(&self) -> bool {
        self.check_only_ipv4
    }

    pub fn whitelist(&self) -> &[HostMatcher] {
        &self.whitelist
    }

    pub fn blacklist(&self) -> &[HostMatcher] {
        &self.blacklist
    }

    /// Whether `host` (the client's name as the MTA sent it in CONNECT) looks like an
    /// end-user machine by the S25R generic rules.
    pub fn is_generic(host: &str) -> bool {
        host.eq_ignore_ascii_case("unknown") || generic_rules().is_match(host)
    }

    pub fn is_whitelisted(&self, host: &str) -> bool {
        self.whitelist.iter().any(|m| m.matches(host))
    }

    pub fn is_blacklisted(&self, host: &str) -> bool {
        self.blacklist.iter().any(|m| m.matches(host))
    }

    /// True when the child milter applies to this client; the condition's connect stopper
    /// stops the child when this is false.
    pub fn applies(&self, host: &str, address: &ConnectAddress) -> bool {
        if self.check_only_ipv4 && !matches!(ip_of(address), Some(IpAddr::V4(_))) {
            return false;
        }
        if self.is_whitelisted(host) {
            return false;
        }
        self.is_blacklisted(host) || Self::is_generic(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4() -> ConnectAddress {
        ConnectAddress::Inet { port: 49152, address: b"192.0.2.1".to_vec() }
    }

    fn v6() -> ConnectAddress {
        ConnectAddress::Inet6 { port: 49152, address: b"2001:db8::25".to_vec() }
    }

    /// (host, generic by the S25R rules)
    const HOSTS: &[(&str, bool)] = &[
        // End-user machines and pools.
        ("unknown", true),
        ("[192.0.2.1]", true),
        ("[IPv6:2001:db8::1]", true),
        ("p1234-ipbf56.tokyo.ocn.ne.jp", true),
        ("softbank220012345678.bbtec.net", true),
        ("dhcp-192-0-2-1.example.net", true),
        ("ppp123.example.jp", true),
        ("PPP123.example.jp", true),
        ("dialup-7.example.net", true),
        ("adsl99.example.net", true),
        ("vdsl-203-0-113-5.example.net", true),
        ("dsl1.example.org", true),
        ("ZG056033.ppp.dion.ne.jp", true),
        ("FLH1Aab123.tky.mesh.ad.jp", true),
        ("KD027082123045.ppp-bb.dion.ne.jp", true),
        ("i220-221-222-223.s41.a013.ap.plala.or.jp", true),
        ("c-98-76-54-32.hsd1.ca.comcast.net", true),
        ("cpe-192-0-2-1.nyc.res.rr.com", true),
        ("203-0-113-5.static.example.net", true),
        ("123.45.67.89.example.net", true),
        ("host.3com.example.co.jp", true),
        ("a1.b2-3.example.com", true),
        ("x1.y2.mail.example.com", true),
        // Generic-looking but whitelisted by default.
        ("mail-wr1-f41.google.com", true),
        ("a27-10.smtp-out.amazonses.com", true),
        // Mail servers.
        ("mail.example.com", false),
        ("mx1.example.org", false),
        ("mx01.example.org", false),
        ("smtp2.example.co.jp", false),
        ("host123.example.com", false),
        ("pc1.example.ne.jp", false),
        ("ns1.example.jp", false),
        ("mta-v1.mail.vip.tok.yahoo.co.jp", false),
        ("x1.y2.example.com", false),
        ("localhost", false),
        ("mail.google.com", false),
        ("", false),
    ];

    #[test]
    fn generic_rules_on_real_looking_names() {
        for &(host, generic) in HOSTS {
            assert_eq!(S25r::is_generic(host), generic, "{host}");
        }
    }

    #[test]
    fn default_applies_to_generic_names_except_whitelisted() {
        let s25r = S25r::new();
        for &(host, generic) in HOSTS {
            let whitelisted = host.ends_with(".google.com") || host.ends_with(".amazonses.com");
            assert_eq!(s25r.applies(host, &v4()), generic && !whitelisted, "{host}");
        }
    }

    #[test]
    fn default_whitelist_is_the_originals() {
        let s25r = S25r::new();
        for host in [
            "mail-yw1-f170.google.com",
            "mail-yw1-f170.GOOGLE.COM",
            "exprod5og123.obsmtp.com",
            "a8-12.smtp-out.amazonses.com",
            "mail-a123.slack.com",
            "mail-12-34.mg.gitlab.com",
            "o1.ptr1234.sendgrid.net",
        ] {
            assert!(s25r.is_whitelisted(host), "{host}");
        }
        assert!(!s25r.is_whitelisted("google.com.evil.example"));
        assert!(!s25r.is_whitelisted("notgoogle.com"));
        assert!(!s25r.is_whitelisted("a8-12.amazonses.com"));
        assert_eq!(s25r.whitelist().len(), 6);
        assert!(s25r.blacklist().is_empty());
    }

    #[test]
    fn lists_take_strings_and_patterns() {
        let mut s25r = S25r::new();
        s25r.add_whitelist(HostMatcher::parse("p1234-ipbf56.tokyo.ocn.ne.jp").unwrap());
        s25r.add_whitelist(HostMatcher::parse(r"/\.friendly\.example\z/").unwrap());
        s25r.add_blacklist(HostMatcher::parse("black.example.com").unwrap());
        s25r.add_blacklist(HostMatcher::parse(r"/\.evil\.example\.com\z/").unwrap());

        assert!(!s25r.applies("p1234-ipbf56.tokyo.ocn.ne.jp", &v4()));
        assert!(!s25r.applies("P1234-IPBF56.tokyo.ocn.ne.jp", &v4()));
        assert!(s25r.applies("p1235-ipbf56.tokyo.ocn.ne.jp", &v4()));
        assert!(!s25r.applies("dhcp-1-2.pool.friendly.example", &v4()));
        assert!(s25r.applies("black.example.com", &v4()));
        assert!(s25r.applies("Black.Example.COM", &v4()));
        assert!(s25r.applies("mx.evil.example.com", &v4()));
        assert!(!s25r.applies("mx.evil.example.com.ok", &v4()));
        assert!(!s25r.applies("white.example.com", &v4()));
    }

    #[test]
    fn whitelist_wins_over_blacklist() {
        let mut s25r = S25r::new();
        s25r.add_blacklist(HostMatcher::parse("mx.example.com").unwrap());
        s25r.add_blacklist(HostMatcher::parse(r"/\.google\.com\z/").unwrap());
        assert!(s25r.applies("mx.example.com", &v4()));
        s25r.add_whitelist(HostMatcher::parse("/^mx\\./").unwrap());
        assert!(!s25r.applies("mx.example.com", &v4()));
        assert!(!s25r.applies("mail-wr1-f41.google.com", &v4()));
    }

    #[test]
    fn custom_matchers() {
        let mut s25r = S25r::new();
        s25r.add_whitelist(HostMatcher::Custom(Rc::new(|host: &str| host.ends_with(".jp"))));
        assert!(!s25r.applies("ppp123.example.jp", &v4()));
        assert!(s25r.applies("ppp123.example.net", &v4()));
        assert_eq!(format!("{:?}", s25r.whitelist()[6]), "Custom(..)");
    }

    #[test]
    fn clearing_lists() {
        let mut s25r = S25r::new();
        s25r.add_blacklist(HostMatcher::parse("mx.example.com").unwrap());
        s25r.clear_whitelist();
        s25r.clear_blacklist();
        assert!(s25r.applies("mail-wr1-f41.google.com", &v4()));
        assert!(!s25r.applies("mx.example.com", &v4()));
        // The generic rules are the condition itself and survive.
        assert!(s25r.applies("ppp123.example.jp", &v4()));
    }

    #[test]
    fn only_ipv4_clients_by_default() {
        let mut s25r = S25r::new();
        assert!(s25r.check_only_ipv4());
        assert!(!s25r.applies("ppp123.example.jp", &v6()));
        assert!(!s25r.applies("unknown", &ConnectAddress::Unknown));
        let unix = ConnectAddress::Unix { port: 0, path: b"/tmp/s".to_vec() };
        assert!(!s25r.applies("unknown", &unix));
        let mapped = ConnectAddress::Inet6 { port: 1, address: b"::ffff:192.0.2.1".to_vec() };
        assert!(s25r.applies("ppp123.example.jp", &mapped));

        s25r.set_check_only_ipv4(false);
        assert!(s25r.applies("ppp123.example.jp", &v6()));
        assert!(!s25r.applies("mail.example.com", &v6()));
        assert!(!s25r.applies("mail-wr1-f41.google.com", &v6()));
        assert!(s25r.applies("unknown", &ConnectAddress::Unknown));
    }

    #[test]
    fn parse_matchers() {
        assert!(matches!(HostMatcher::parse("mx.example.com"), Ok(HostMatcher::Exact(_))));
        assert!(matches!(HostMatcher::parse("/mx/"), Ok(HostMatcher::Pattern(_))));
        let m = HostMatcher::parse("/^MX\\./i").unwrap();
        assert!(m.matches("mx.example.com"));
        assert_eq!(format!("{m:?}"), "Pattern(/^MX\\./)");
        assert!(HostMatcher::parse("").unwrap_err().to_string().contains("empty"));
        assert!(HostMatcher::parse("mx example")
            .unwrap_err()
            .to_string()
            .contains("\"mx example\""));
        assert!(HostMatcher::parse("/(/").unwrap_err().to_string().contains("/(/"));
    }

    #[test]
    fn regex_crate_anchors_like_ruby() {
        // `\A` and `\z` are what the original's patterns use; the regex crate has both.
        let m = HostMatcher::parse(r"/\Amx\.example\.com\z/").unwrap();
        assert!(m.matches("mx.example.com"));
        assert!(!m.matches("mx.example.com\n"));
        assert!(!m.matches("a.mx.example.com"));
    }
}
