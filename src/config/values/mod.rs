//! Configuration values: the types items are set with (one serde `Deserialize` each, for
//! files, scripts and the command line alike), the checks of single list entries, and the
//! printable form of a value for `--show-config`. Messages say what is expected, so the
//! admin knows what to write.

use super::error::{ModeError, ValueError};
use super::model::MAX_SOCKET_MODE;

mod raw;
mod settings;

pub(super) use raw::{decode, decode_plain, found_kind, Input, Setting};
pub(super) use settings::*;

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

/// An IP address or a network in CIDR notation.
pub(crate) fn address_or_network(text: &str) -> Result<(), ValueError> {
    if text.parse::<std::net::IpAddr>().is_ok() || text.parse::<ipnet::IpNet>().is_ok() {
        Ok(())
    } else {
        Err(ValueError::NotANetwork(text.to_string()))
    }
}

#[cfg(test)]
mod tests;
