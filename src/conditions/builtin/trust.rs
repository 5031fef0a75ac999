//! Trust: mark a transaction whose envelope sender's domain is trusted, so that a child
//! milter can relax (e.g. milter-greylist: `sm_macro "trusted_domain" "{trusted_domain}"
//! "yes"`). The condition never stops a milter; at MAIL it sets
//! [`TRUSTED_DOMAIN_MACRO`] to [`TRUSTED_VALUE`] when [`Trust::is_trusted`] holds.

use std::path::Path;

use regex::Regex;

use super::pattern;
use crate::conditions::FileReader;
use crate::conditions::{DomainListError, EntryError};

/// The macro the condition sets for the child milters.
pub const TRUSTED_DOMAIN_MACRO: &str = "{trusted_domain}";
/// Its value when the domain is trusted (it stays unset otherwise).
pub const TRUSTED_VALUE: &str = "yes";

/// The original's default list: big freemail and Japanese mobile carriers, whose senders'
/// domains are hard to forge past SPF.
pub const DEFAULT_DOMAINS: [&str; 8] = [
    "gmail.com",
    "hotmail.com",
    "msn.com",
    "yahoo.co.jp",
    "softbank.ne.jp",
    "ezweb.ne.jp",
    "docomo.ne.jp",
    "clear-code.com",
];

/// One trusted domain: a whole domain (stored in lower case) or a pattern, which is always
/// case-insensitive.
#[derive(Debug, Clone)]
pub enum DomainMatcher {
    Exact(String),
    Pattern(Regex),
}

impl DomainMatcher {
    /// `/regex/` is a pattern; anything else is a whole domain name.
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        if let Some(compiled) = pattern::parse_slashed(text, true) {
            return Ok(Self::Pattern(compiled?));
        }
        let domain = normalize_domain(text.trim());
        if domain.is_empty() {
            return Err(EntryError::EmptyDomain);
        }
        if domain.contains(|c: char| c.is_whitespace() || c == '@' || c == '<' || c == '>') {
            return Err(EntryError::NotADomain(text.trim().to_string()));
        }
        Ok(Self::Exact(domain))
    }

    /// `domain` is already in lower case.
    fn matches(&self, domain: &str) -> bool {
        match self {
            Self::Exact(name) => name == domain,
            Self::Pattern(regex) => regex.is_match(domain),
        }
    }
}

/// The Trust condition's settings.
#[derive(Debug, Clone)]
pub struct Trust {
    domains: Vec<DomainMatcher>,
}

impl Default for Trust {
    fn default() -> Self {
        Self::new()
    }
}

impl Trust {
    /// With the original's default domains.
    pub fn new() -> Self {
        Self {
            domains: DEFAULT_DOMAINS.iter().map(|d| DomainMatcher::Exact(d.to_string())).collect(),
        }
    }

    pub fn domains(&self) -> &[DomainMatcher] {
        &self.domains
    }

    /// Adds a domain name or `/regex/`.
    pub fn add_envelope_from_domain(&mut self, domain: &str) -> Result<(), EntryError> {
        self.domains.push(DomainMatcher::parse(domain)?);
        Ok(())
    }

    /// Drops every domain, defaults included.
    pub fn clear(&mut self) {
        self.domains.clear();
    }

    /// Adds the domains of a list: one domain or `/regex/` per line, blank lines and lines
    /// starting with `#` ignored. Nothing is added when a line is wrong; the error names
    /// its number.
    pub fn load_envelope_from_domains(&mut self, text: &str) -> Result<(), DomainListError> {
        let mut parsed = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line_error = |error| DomainListError::Line { line: index + 1, error };
            parsed.push(DomainMatcher::parse(line).map_err(line_error)?);
        }
        self.domains.extend(parsed);
        Ok(())
    }

    /// [`Trust::load_envelope_from_domains`] on the contents of `path`, read with `files`;
    /// errors name the path.
    pub fn load_envelope_from_domains_file(
        &mut self,
        files: &dyn FileReader,
        path: &Path,
    ) -> Result<(), DomainListError> {
        let text = files
            .read_to_string(path)
            .map_err(|error| DomainListError::Read { path: path.to_path_buf(), error })?;
        self.load_envelope_from_domains(&text).map_err(|error| DomainListError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// Whether the domain of `envelope_from` (as the MTA sends it at MAIL: `<user@Gmail.com>`,
    /// also accepted bare) is trusted. The null sender `<>` and addresses without a domain
    /// never are.
    pub fn is_trusted(&self, envelope_from: &str) -> bool {
        match domain_of(envelope_from) {
            Some(domain) => self.domains.iter().any(|m| m.matches(&domain)),
            None => false,
        }
    }
}

/// The domain after the last `@` (a quoted local part may hold `@` too), lower-cased,
/// without a final dot.
fn domain_of(envelope_from: &str) -> Option<String> {
    let address = envelope_from.trim();
    let address =
        address.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(address).trim();
    let (_, domain) = address.rsplit_once('@')?;
    let domain = normalize_domain(domain);
    (!domain.is_empty()).then_some(domain)
}

fn normalize_domain(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::MemoryFiles;

    #[test]
    fn default_domains() {
        let trust = Trust::new();
        for from in [
            "<user@gmail.com>",
            "<User@Gmail.COM>",
            "<user@hotmail.com>",
            "<user@msn.com>",
            "<user@yahoo.co.jp>",
            "<user@softbank.ne.jp>",
            "<user@ezweb.ne.jp>",
            "<user@docomo.ne.jp>",
            "<user@clear-code.com>",
            "user@gmail.com",
            " <user@gmail.com> ",
            "<user@gmail.com.>",
            "<\"a@b\"@gmail.com>",
            "<@relay.example:user@gmail.com>",
        ] {
            assert!(trust.is_trusted(from), "{from}");
        }
        for from in [
            "<>",
            "",
            "<user>",
            "<user@>",
            "<user@example.com>",
            "<user@mail.gmail.com>",
            "<user@gmail.com.evil.example>",
            "<user@notgmail.com>",
            "<gmail.com@example.com>",
        ] {
            assert!(!trust.is_trusted(from), "{from}");
        }
    }

    #[test]
    fn adding_and_clearing() {
        let mut trust = Trust::new();
        trust.add_envelope_from_domain("Example.COM").unwrap();
        assert!(trust.is_trusted("<info@example.com>"));
        trust.add_envelope_from_domain(r"/(\A|\.)example\.org\z/").unwrap();
        assert!(trust.is_trusted("<info@example.org>"));
        assert!(trust.is_trusted("<info@lists.EXAMPLE.org>"));
        assert!(!trust.is_trusted("<info@badexample.org>"));
        trust.clear();
        assert!(!trust.is_trusted("<user@gmail.com>"));
        assert!(trust.domains().is_empty());
        assert!(trust.add_envelope_from_domain("").is_err());
        assert!(trust
            .add_envelope_from_domain("user@example.com")
            .unwrap_err()
            .to_string()
            .contains("user@"));
        assert!(trust.add_envelope_from_domain("/[/").unwrap_err().to_string().contains("/[/"));
    }

    #[test]
    fn loading_a_list() {
        let mut trust = Trust::new();
        trust.clear();
        let text = "# trusted senders\n\nexample.com\n  Example.NET  \n   # indented comment\n\
                    /\\.example\\.org\\z/\n";
        trust.load_envelope_from_domains(text).unwrap();
        assert_eq!(trust.domains().len(), 3);
        assert!(trust.is_trusted("<a@example.com>"));
        assert!(trust.is_trusted("<a@example.net>"));
        assert!(trust.is_trusted("<a@mail.EXAMPLE.org>"));
        assert!(!trust.is_trusted("<a@example.org>"));
    }

    #[test]
    fn list_errors_name_the_line_and_add_nothing() {
        let mut trust = Trust::new();
        let error = trust.load_envelope_from_domains("ok.example\n\n/(/\n").unwrap_err();
        assert!(error.to_string().starts_with("line 3: "), "{error}");
        assert!(!error.to_string().contains('\n'));
        let error = trust.load_envelope_from_domains("a.example\nb.example # x\n").unwrap_err();
        assert!(error.to_string().starts_with("line 2: "), "{error}");
        assert_eq!(trust.domains().len(), DEFAULT_DOMAINS.len());
    }

    #[test]
    fn loading_a_file() {
        let path = Path::new("/lists/trusted-domains.list");
        let files = MemoryFiles::new().with(path, "example.jp\n/bad(/\n");
        let mut trust = Trust::new();
        let error = trust.load_envelope_from_domains_file(&files, path).unwrap_err();
        assert!(error.to_string().starts_with("/lists/trusted-domains.list: line 2: "), "{error}");
        let files = MemoryFiles::new().with(path, "example.jp\n");
        trust.load_envelope_from_domains_file(&files, path).unwrap();
        assert!(trust.is_trusted("<a@example.jp>"));
        let missing = Path::new("/lists/missing.list");
        let error = trust.load_envelope_from_domains_file(&files, missing).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read trusted domain list /lists/missing.list: entity not found"
        );
    }
}
