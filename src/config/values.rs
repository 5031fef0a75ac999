//! Reading one TOML value into a checked Rust value, and the printable form of a value for
//! `--show-config`. Messages say what is expected, so the admin knows what to write.

use std::path::PathBuf;

use toml::de::DeValue;

use super::error::{ModeError, ValueError};
use super::model::{CommandOptions, MAX_SOCKET_MODE, MAX_TIMEOUT};
use crate::conditions::MAX_DNSBL_TIMEOUT;
use crate::spec::Spec;
use crate::status::FallbackStatus;

/// A value as `--show-config` prints it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shown {
    Bool(bool),
    Int(u64),
    /// A file mode, printed in octal.
    Mode(u32),
    Float(f64),
    Str(String),
    List(Vec<String>),
    /// An optional item that is not set.
    Unset,
}

impl Shown {
    pub(super) fn string(value: &str) -> Self {
        Self::Str(value.to_string())
    }

    pub(super) fn optional<T>(value: Option<&T>, show: impl FnOnce(&T) -> String) -> Self {
        value.map_or(Self::Unset, |v| Self::Str(show(v)))
    }

    /// The TOML text of the value; `None` when unset.
    pub(super) fn to_toml(&self) -> Option<String> {
        Some(match self {
            Self::Bool(value) => value.to_string(),
            Self::Int(value) => value.to_string(),
            Self::Mode(value) => format!("0o{value:o}"),
            // Debug prints the shortest text that reads back to the same f64, and always
            // with a dot or an exponent, so TOML reads it as a float.
            Self::Float(value) => format!("{value:?}"),
            Self::Str(value) => quote(value),
            Self::List(values) => {
                let items: Vec<String> = values.iter().map(|v| quote(v)).collect();
                format!("[{}]", items.join(", "))
            }
            Self::Unset => return None,
        })
    }
}

/// A TOML basic string (the same text is a JSON string).
pub(super) use crate::text::quote;

/// `found a string`, `found an integer`: for messages about a value of the wrong type.
pub(super) fn found(value: &DeValue<'_>) -> String {
    let kind = value.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("found {article} {kind}")
}

fn wrong_type(expected: &'static str, value: &DeValue<'_>) -> ValueError {
    ValueError::WrongType { expected, found: found(value) }
}

pub(super) fn boolean(value: &DeValue<'_>) -> Result<bool, ValueError> {
    value.as_bool().ok_or_else(|| wrong_type("true or false", value))
}

pub(super) fn string(value: &DeValue<'_>) -> Result<String, ValueError> {
    value.as_str().map(str::to_string).ok_or_else(|| wrong_type("a string in quotes", value))
}

/// An optional string: `""` leaves it unset, so a later file can undo an earlier one.
pub(super) fn optional_string(value: &DeValue<'_>) -> Result<Option<String>, ValueError> {
    let text = string(value)?;
    Ok((!text.is_empty()).then_some(text))
}

pub(super) fn optional_path(value: &DeValue<'_>) -> Result<Option<PathBuf>, ValueError> {
    let text = optional_string(value)?;
    if text.as_deref().is_some_and(|t| t.contains('\0')) {
        return Err(ValueError::NulInPath);
    }
    Ok(text.map(PathBuf::from))
}

/// One of a fixed set of words.
pub(super) fn choice(
    value: &DeValue<'_>,
    choices: &'static [&'static str],
) -> Result<String, ValueError> {
    let text = string(value)?;
    if choices.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(ValueError::UnknownChoice { text, choices })
    }
}

pub(super) fn integer(value: &DeValue<'_>, min: u64, max: u64) -> Result<u64, ValueError> {
    let number = value.as_integer().ok_or_else(|| wrong_type("a whole number", value))?;
    let parsed = i128::from_str_radix(number.as_str(), number.radix()).ok();
    match parsed {
        Some(n) if n >= i128::from(min) && n <= i128::from(max) => {
            Ok(u64::try_from(n).expect("between two u64"))
        }
        _ if max == u64::MAX => Err(ValueError::TooSmall { min }),
        _ => Err(ValueError::OutOfRange { min, max }),
    }
}

pub(super) fn integer_u32(value: &DeValue<'_>, min: u32, max: u32) -> Result<u32, ValueError> {
    let n = integer(value, u64::from(min), u64::from(max))?;
    Ok(u32::try_from(n).expect("at most a u32 maximum"))
}

/// A file mode: a TOML octal integer (`0o660`) or a string of octal digits (`"0660"`).
pub(super) fn mode(value: &DeValue<'_>) -> Result<u32, ValueError> {
    let mode = match value {
        DeValue::Integer(number) => {
            // A decimal 660 would silently be mode 0o1224: refuse anything but octal.
            if number.radix() != 8 {
                return Err(ValueError::ModeNotOctal(number.to_string()));
            }
            u32::from_str_radix(number.as_str(), 8).ok()
        }
        DeValue::String(text) => return mode_text(text).map_err(ValueError::ModeText),
        _ => return Err(ValueError::ModeWrongType { found: found(value) }),
    };
    match mode {
        Some(mode) if mode <= MAX_SOCKET_MODE => Ok(mode),
        _ => Err(ValueError::ModeTooLarge),
    }
}

/// A file mode written as octal digits, with or without `0o` (`0660`, `660`, `0o660`).
pub fn mode_text(text: &str) -> Result<u32, ModeError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(ModeError::NotOctal(text.to_string()));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= MAX_SOCKET_MODE => Ok(mode),
        _ => Err(ModeError::TooLarge),
    }
}

pub(super) fn spec(value: &DeValue<'_>) -> Result<Spec, ValueError> {
    let text = string(value)?;
    Ok(Spec::parse(&text)?)
}

/// An optional connection spec: `""` leaves it unset.
pub(super) fn optional_spec(value: &DeValue<'_>) -> Result<Option<Spec>, ValueError> {
    let text = string(value)?;
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(Spec::parse(&text)?))
}

pub(super) fn status(value: &DeValue<'_>) -> Result<FallbackStatus, ValueError> {
    Ok(string(value)?.parse()?)
}

/// A number of seconds: an integer or a float, finite, above 0.
pub(super) fn seconds(value: &DeValue<'_>) -> Result<f64, ValueError> {
    let seconds = match value {
        DeValue::Integer(number) => {
            i128::from_str_radix(number.as_str(), number.radix()).ok().map(|n| n as f64)
        }
        DeValue::Float(number) => number.as_str().parse::<f64>().ok(),
        _ => return Err(wrong_type("a number of seconds", value)),
    };
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT => Ok(s),
        _ => Err(ValueError::Seconds { max: MAX_TIMEOUT }),
    }
}

/// An array of strings; also a single string, as a list of one.
pub(super) fn strings(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    match value {
        DeValue::String(text) => Ok(vec![text.to_string()]),
        DeValue::Array(items) => items
            .iter()
            .map(|item| {
                let found = || ValueError::WrongItemType { found: found(item.get_ref()) };
                item.get_ref().as_str().map(str::to_string).ok_or_else(found)
            })
            .collect(),
        _ => Err(wrong_type("an array of strings", value)),
    }
}

/// A list of names, none of them empty.
pub(super) fn names(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let names = strings(value)?;
    if names.iter().any(String::is_empty) {
        return Err(ValueError::EmptyName);
    }
    Ok(names)
}

/// A string (one command line) or an array of strings (one argument each).
pub(super) fn command_options(value: &DeValue<'_>) -> Result<Option<CommandOptions>, ValueError> {
    match value {
        DeValue::String(text) if text.is_empty() => Ok(None),
        DeValue::String(text) => Ok(Some(CommandOptions::Line(text.to_string()))),
        DeValue::Array(_) => strings(value).map(|args| Some(CommandOptions::Arguments(args))),
        _ => Err(wrong_type("a string or an array of strings", value)),
    }
}

/// `name=value,name=value`.
pub(super) fn package_options(value: &DeValue<'_>) -> Result<Option<String>, ValueError> {
    let Some(text) = optional_string(value)? else {
        return Ok(None);
    };
    for part in text.split(',') {
        match part.split_once('=') {
            Some((name, _)) if !name.trim().is_empty() => {}
            _ => return Err(ValueError::PackageOption { part: part.to_string() }),
        }
    }
    Ok(Some(text))
}

/// `/regex/` or `/regex/i` as a pattern; anything else is a plain name.
pub(crate) fn pattern_of(text: &str) -> Option<(&str, bool)> {
    let rest = text.strip_prefix('/')?;
    if let Some(pattern) = rest.strip_suffix("/i") {
        return Some((pattern, true));
    }
    rest.strip_suffix('/').map(|pattern| (pattern, false))
}

/// One entry of a host or domain list: a name, or `/regex/` that must compile.
pub(crate) fn name_or_pattern(text: &str) -> Result<(), ValueError> {
    if text.is_empty() {
        return Err(ValueError::EmptyEntry);
    }
    if let Some((pattern, _)) = pattern_of(text) {
        regex::Regex::new(pattern)
            .map_err(|error| ValueError::Pattern { text: text.to_string(), error })?;
    }
    Ok(())
}

/// A list of names or `/regex/` patterns.
pub(super) fn names_or_patterns(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    for entry in &entries {
        name_or_pattern(entry)?;
    }
    Ok(entries)
}

/// An IP address or a network in CIDR notation.
pub(crate) fn address_or_network(text: &str) -> Result<(), ValueError> {
    if text.parse::<std::net::IpAddr>().is_ok() || text.parse::<ipnet::IpNet>().is_ok() {
        Ok(())
    } else {
        Err(ValueError::NotANetwork(text.to_string()))
    }
}

pub(super) fn addresses_or_networks(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    for entry in &entries {
        address_or_network(entry)?;
    }
    Ok(entries)
}

/// A list of file names.
pub(super) fn paths(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    if entries.iter().any(|e| e.is_empty() || e.contains('\0')) {
        return Err(ValueError::BadFileName);
    }
    Ok(entries)
}

/// A whole number, or `""` for "not set".
pub(super) fn optional_u32(value: &DeValue<'_>) -> Result<Option<u32>, ValueError> {
    if value.as_str() == Some("") {
        return Ok(None);
    }
    integer_u32(value, 0, u32::MAX).map(Some).map_err(|e| ValueError::NotAutomatic(Box::new(e)))
}

/// DNSBL services: `zone` or `zone=answer`.
pub(super) fn dnsbl_services(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    for entry in &entries {
        crate::conditions::builtin::dnsbl::parse_service_entry(entry)?;
    }
    Ok(entries)
}

/// Name servers: IP addresses, optionally with a port.
pub(super) fn name_servers(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    for entry in &entries {
        crate::conditions::builtin::dnsbl::parse_name_server(entry)?;
    }
    Ok(entries)
}

/// The DNSBL lookups' timeout: seconds above 0, at most [`MAX_DNSBL_TIMEOUT`].
pub(super) fn dnsbl_timeout(value: &DeValue<'_>) -> Result<f64, ValueError> {
    match seconds(value) {
        Ok(seconds) if seconds <= MAX_DNSBL_TIMEOUT => Ok(seconds),
        _ => Err(ValueError::DnsblTimeout { max: MAX_DNSBL_TIMEOUT }),
    }
}

/// Recipients: addresses, `@domain` or `/regex/`.
pub(super) fn accounts(value: &DeValue<'_>) -> Result<Vec<String>, ValueError> {
    let entries = strings(value)?;
    for entry in &entries {
        crate::conditions::builtin::restrict_accounts::AccountMatcher::parse(entry)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> DeValue<'_> {
        DeValue::parse(text).unwrap().into_inner()
    }

    #[test]
    fn modes_are_octal_in_both_forms() {
        assert_eq!(mode(&value("0o660")), Ok(0o660));
        assert_eq!(mode(&value("\"0660\"")), Ok(0o660));
        assert_eq!(mode(&value("\"660\"")), Ok(0o660));
        assert_eq!(mode(&value("\"0o600\"")), Ok(0o600));
        assert!(mode(&value("660")).unwrap_err().to_string().contains("not an octal number"));
        assert!(mode(&value("\"0668\"")).unwrap_err().to_string().contains("not an octal number"));
        assert!(mode(&value("0o17777")).unwrap_err().to_string().contains("at most 0o7777"));
        assert!(mode(&value("true")).unwrap_err().to_string().contains("found a boolean"));
    }

    #[test]
    fn seconds_take_integers_and_floats() {
        assert_eq!(seconds(&value("60")), Ok(60.0));
        assert_eq!(seconds(&value("7.5")), Ok(7.5));
        for bad in ["0", "-1", "0.0", "inf", "nan", "100000", "\"7\""] {
            assert!(seconds(&value(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(integer(&value("1_000"), 0, 1000), Ok(1000));
        assert_eq!(integer(&value("0x10"), 0, 1000), Ok(16));
        assert!(integer(&value("1001"), 0, 1000)
            .unwrap_err()
            .to_string()
            .contains("from 0 to 1000"));
        assert!(integer(&value("-1"), 0, u64::MAX).unwrap_err().to_string().contains("at least 0"));
        assert!(integer(&value("1.5"), 0, 10).unwrap_err().to_string().contains("found a float"));
    }

    #[test]
    fn command_options_are_a_line_or_arguments() {
        assert_eq!(
            command_options(&value("\"start\"")),
            Ok(Some(CommandOptions::Line("start".into())))
        );
        assert_eq!(
            command_options(&value("[\"--a\", \"b c\"]")),
            Ok(Some(CommandOptions::Arguments(vec!["--a".into(), "b c".into()])))
        );
        assert_eq!(command_options(&value("\"\"")), Ok(None));
        assert!(command_options(&value("[1]")).is_err());
    }

    #[test]
    fn quoted_strings_read_back() {
        for text in ["plain", "a \"b\" \\c", "tab\tnew\nline", "\u{1}\u{7f}é", ""] {
            let quoted = quote(text);
            assert_eq!(value(&quoted).as_str(), Some(text), "{quoted}");
        }
    }

    #[test]
    fn shown_floats_read_back_as_floats() {
        for number in [297.0, 7.0, 0.1, 1e-7, 86400.0] {
            let text = Shown::Float(number).to_toml().unwrap();
            assert_eq!(
                value(&text).as_float().map(|f| f.as_str().parse::<f64>().unwrap()),
                Some(number)
            );
        }
    }

    #[test]
    fn package_options_are_name_value_pairs() {
        assert_eq!(
            package_options(&value("\"prefix=/etc,name=value\"")),
            Ok(Some("prefix=/etc,name=value".into()))
        );
        assert!(package_options(&value("\"prefix\"")).is_err());
        assert_eq!(package_options(&value("\"\"")), Ok(None));
    }
}
