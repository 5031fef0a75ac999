//! Restrict Accounts: apply a child milter only to mail for listed recipients.
//!
//! As in the original: a recipient that is not listed stops the milter for that recipient
//! (the child never sees it), and at DATA the milter stops for the whole message if any
//! recipient of the message was not listed. Message-level actions (reject, discard, header
//! and body edits) would reach every recipient, so a milter restricted to some accounts
//! must not act on a message that also goes elsewhere.

use regex::Regex;

use super::pattern;
use crate::conditions::EntryError;

/// One listed account.
#[derive(Debug, Clone)]
pub enum AccountMatcher {
    /// A whole address, `user@example.com`, compared without regard to ASCII case.
    Address(String),
    /// Every address of a domain, written `@example.com` (not its subdomains).
    Domain(String),
    /// `/regex/`, searched in the address without its angle brackets.
    Pattern(Regex),
}

impl AccountMatcher {
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        if let Some(compiled) = pattern::parse_slashed(text, false) {
            return Ok(Self::Pattern(compiled?));
        }
        let account = text.trim();
        let account =
            account.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(account);
        let invalid = |why| EntryError::Account { text: text.to_string(), why };
        if account.is_empty() || account.contains(char::is_whitespace) {
            return Err(invalid("empty or contains white space"));
        }
        match account.rsplit_once('@') {
            Some(("", domain)) if !domain.is_empty() => {
                Ok(Self::Domain(domain.to_ascii_lowercase()))
            }
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                Ok(Self::Address(account.to_string()))
            }
            _ => Err(invalid("not an address")),
        }
    }

    /// `address` is without angle brackets.
    fn matches(&self, address: &str) -> bool {
        match self {
            Self::Address(account) => account.eq_ignore_ascii_case(address),
            Self::Domain(domain) => address.rsplit_once('@').is_some_and(|(_, d)| {
                d.strip_suffix('.').unwrap_or(d).eq_ignore_ascii_case(domain)
            }),
            Self::Pattern(regex) => regex.is_match(address),
        }
    }
}

/// The listed accounts of one Restrict Accounts condition.
#[derive(Debug, Clone, Default)]
pub struct RestrictAccounts {
    accounts: Vec<AccountMatcher>,
}

impl RestrictAccounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// A list of accounts; the first wrong entry is the error.
    pub fn parse<'a>(accounts: impl IntoIterator<Item = &'a str>) -> Result<Self, EntryError> {
        let accounts = accounts.into_iter().map(AccountMatcher::parse).collect::<Result<_, _>>()?;
        Ok(Self { accounts })
    }

    pub fn add(&mut self, account: &str) -> Result<(), EntryError> {
        self.accounts.push(AccountMatcher::parse(account)?);
        Ok(())
    }

    pub fn accounts(&self) -> &[AccountMatcher] {
        &self.accounts
    }

    /// Whether `recipient`, as the MTA sends it at RCPT (`<user@example.com>`, also
    /// accepted bare), is listed.
    pub fn matches(&self, recipient: &str) -> bool {
        let recipient = recipient.trim();
        let address =
            recipient.strip_prefix('<').and_then(|r| r.strip_suffix('>')).unwrap_or(recipient);
        self.accounts.iter().any(|account| account.matches(address))
    }
}

/// What one child remembers of one message for a Restrict Accounts condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestrictState {
    any_unlisted: bool,
}

impl RestrictState {
    pub fn new() -> Self {
        Self::default()
    }

    /// At RCPT: true when the milter stops for this recipient.
    pub fn on_recipient(&mut self, accounts: &RestrictAccounts, recipient: &str) -> bool {
        let stop = !accounts.matches(recipient);
        self.any_unlisted |= stop;
        stop
    }

    /// At DATA: true when the milter stops for the message.
    pub fn on_data(&self) -> bool {
        self.any_unlisted
    }

    /// At a new message (MAIL), or after an abort.
    pub fn reset(&mut self) {
        self.any_unlisted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> RestrictAccounts {
        RestrictAccounts::parse([
            "alice@example.com",
            "<Bob@Example.com>",
            "@sales.example.net",
            r"/\Aops-[a-z]+@example\.org\z/",
        ])
        .unwrap()
    }

    #[test]
    fn matching_recipients() {
        let list = accounts();
        for rcpt in [
            "<alice@example.com>",
            "<ALICE@EXAMPLE.COM>",
            "alice@example.com",
            "<bob@example.com>",
            "<anyone@sales.example.net>",
            "<anyone@SALES.example.net.>",
            "<ops-db@example.org>",
        ] {
            assert!(list.matches(rcpt), "{rcpt}");
        }
        for rcpt in [
            "<carol@example.com>",
            "<alice@example.com.evil>",
            "<x@eu.sales.example.net>",
            "<sales.example.net>",
            "<ops-DB@example.org>",
            "<ops-db@example.org.x>",
            "<>",
            "",
        ] {
            assert!(!list.matches(rcpt), "{rcpt}");
        }
        assert!(!RestrictAccounts::new().matches("<alice@example.com>"));
    }

    #[test]
    fn all_listed_recipients_keep_the_milter() {
        let list = accounts();
        let mut state = RestrictState::new();
        assert!(!state.on_recipient(&list, "<alice@example.com>"));
        assert!(!state.on_recipient(&list, "<bob@example.com>"));
        assert!(!state.on_data());
    }

    #[test]
    fn an_unlisted_recipient_stops_it_there_and_at_data() {
        let list = accounts();
        let mut state = RestrictState::new();
        assert!(!state.on_recipient(&list, "<alice@example.com>"));
        assert!(state.on_recipient(&list, "<carol@example.com>"));
        assert!(!state.on_recipient(&list, "<bob@example.com>"));
        assert!(state.on_data());

        let mut only_unlisted = RestrictState::new();
        assert!(only_unlisted.on_recipient(&list, "<carol@example.com>"));
        assert!(only_unlisted.on_data());
    }

    #[test]
    fn reset_starts_a_new_message() {
        let list = accounts();
        let mut state = RestrictState::new();
        state.on_recipient(&list, "<carol@example.com>");
        state.reset();
        assert!(!state.on_recipient(&list, "<alice@example.com>"));
        assert!(!state.on_data());
    }

    #[test]
    fn parse_errors_name_the_entry() {
        for bad in ["", "alice", "alice@", "@", "a b@example.com", "/(/"] {
            let error = AccountMatcher::parse(bad).unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
            assert!(!error.to_string().contains('\n'));
        }
        let error = RestrictAccounts::parse(["ok@example.com", "nope"]).unwrap_err();
        assert!(error.to_string().contains("\"nope\""), "{error}");
        let mut list = RestrictAccounts::new();
        list.add("x@example.com").unwrap();
        assert!(list.add("x").is_err());
        assert_eq!(list.accounts().len(), 1);
    }
}
