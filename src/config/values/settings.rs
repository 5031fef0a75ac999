//! The types configuration items are set with, one `Deserialize` each: every check of a
//! value lives here, whichever source the value comes from. Each reads a [`Raw`] value
//! first, so that the messages say what to write rather than what serde expected.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use toml::de::DeValue;

use super::super::error::ValueError;
use super::super::model::{
    CommandOptions, EVENT_LOOP_BACKENDS, MAX_SOCKET_MODE, MAX_TIMEOUT, PLATFORMS, SYSLOG_FACILITIES,
};
use super::raw::{Raw, Setting};
use super::{address_or_network, mode_text, name_or_pattern};
use crate::conditions::builtin::{dnsbl, restrict_accounts::AccountMatcher};
use crate::conditions::MAX_DNSBL_TIMEOUT;
use crate::logging::Levels;
use crate::spec::Spec;
use crate::status::FallbackStatus;

/// A type read from a [`Raw`] value, with the checks of its item.
pub(in crate::config) trait FromRaw: Sized {
    fn from_raw(raw: Raw) -> Result<Self, ValueError>;
}

/// `Deserialize` through [`FromRaw`]; the check's message becomes serde's custom error.
macro_rules! deserialize_from_raw {
    ($type:ty $(, const $param:ident: $kind:ty)*) => {
        impl<'de, $(const $param: $kind),*> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = Raw::deserialize(deserializer)?;
                Self::from_raw(raw).map_err(D::Error::custom)
            }
        }
    };
}

/// A type that is what its item's field holds.
macro_rules! setting_itself {
    ($type:ty) => {
        deserialize_from_raw!($type);
        impl Setting for $type {
            type Field = Self;
            fn field(self) -> Self {
                self
            }
        }
    };
}

/// `setting!(Name(Field), |raw| check)`: a newtype whose field type the item holds.
macro_rules! setting {
    ($(#[$doc:meta])* $name:ident($field:ty), |$raw:ident| $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub(in crate::config) struct $name(pub(in crate::config) $field);
        impl FromRaw for $name {
            fn from_raw($raw: Raw) -> Result<Self, ValueError> {
                $check.map(Self)
            }
        }
        deserialize_from_raw!($name);
        impl Setting for $name {
            type Field = $field;
            fn field(self) -> $field {
                self.0
            }
        }
    };
}

fn string(raw: Raw) -> Result<String, ValueError> {
    match raw {
        Raw::Str(text) => Ok(text),
        other => Err(other.wrong_type("a string in quotes")),
    }
}

fn choice(raw: Raw, choices: &'static [&'static str]) -> Result<String, ValueError> {
    let text = string(raw)?;
    if choices.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(ValueError::UnknownChoice { text, choices })
    }
}

/// An array of strings; also a single string, as a list of one.
fn strings(raw: Raw) -> Result<Vec<String>, ValueError> {
    match raw {
        Raw::Str(text) => Ok(vec![text]),
        Raw::List(items) => items
            .into_iter()
            .map(|item| match item {
                Raw::Str(text) => Ok(text),
                other => Err(ValueError::WrongItemType { found: other.found() }),
            })
            .collect(),
        other => Err(other.wrong_type("an array of strings")),
    }
}

/// A list whose every entry passes `check`.
fn checked_list<E: Into<ValueError>>(
    raw: Raw,
    check: impl Fn(&str) -> Result<(), E>,
) -> Result<Vec<String>, ValueError> {
    let entries = strings(raw)?;
    for entry in &entries {
        check(entry).map_err(Into::into)?;
    }
    Ok(entries)
}

fn whole_number(raw: Raw, min: u64, max: u64) -> Result<u64, ValueError> {
    let Raw::Int(number) = raw else {
        return Err(raw.wrong_type("a whole number"));
    };
    match u64::try_from(number) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == u64::MAX => Err(ValueError::TooSmall { min }),
        _ => Err(ValueError::OutOfRange { min, max }),
    }
}

fn seconds(raw: Raw, max: f64) -> Option<f64> {
    let seconds = match raw {
        Raw::Int(number) => number as f64,
        Raw::Float(number) => number,
        _ => return None,
    };
    (seconds.is_finite() && seconds > 0.0 && seconds <= max).then_some(seconds)
}

setting!(
    /// `true` or `false`.
    Flag(bool),
    |raw| match raw {
        Raw::Bool(flag) => Ok(flag),
        other => Err(other.wrong_type("true or false")),
    }
);

setting!(
    /// Any string.
    Text(String),
    |raw| string(raw)
);

setting!(
    /// A file name: a string without NUL, which no system call takes.
    FilePath(PathBuf),
    |raw| {
        let text = string(raw)?;
        if text.contains('\0') {
            return Err(ValueError::NulInPath);
        }
        Ok(PathBuf::from(text))
    }
);

/// An optional value: `""` (or a script's `()`) leaves it unset, so that a later file can
/// undo an earlier one.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::config) struct Optional<T>(pub(in crate::config) Option<T>);

impl<'de, T: FromRaw> Deserialize<'de> for Optional<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Str(text) if text.is_empty() => Ok(Self(None)),
            raw => T::from_raw(raw).map(|value| Self(Some(value))).map_err(D::Error::custom),
        }
    }
}

impl<T: FromRaw + Setting> Setting for Optional<T> {
    type Field = Option<T::Field>;
    fn field(self) -> Self::Field {
        self.0.map(Setting::field)
    }
}

setting!(
    /// `[package] platform`.
    Platform(String),
    |raw| choice(raw, &PLATFORMS)
);
setting!(
    /// `[manager] event_loop_backend`.
    EventLoopBackend(String),
    |raw| choice(raw, &EVENT_LOOP_BACKENDS)
);
setting!(
    /// `[log] syslog_facility`.
    SyslogFacility(String),
    |raw| choice(raw, &SYSLOG_FACILITIES)
);
setting!(
    /// Log levels joined by `|`, kept as written.
    LogLevels(String),
    |raw| {
        let text = string(raw)?;
        Levels::parse(&text)?;
        Ok(text)
    }
);

setting!(
    /// `name=value,name=value`.
    PackageOptions(String),
    |raw| {
        let text = string(raw)?;
        for part in text.split(',') {
            match part.split_once('=') {
                Some((name, _)) if !name.trim().is_empty() => {}
                _ => return Err(ValueError::PackageOption { part: part.to_string() }),
            }
        }
        Ok(text)
    }
);

/// A whole number from `MIN` to `MAX` (TOML integers are i64: negative values and values
/// past the bound get the same message).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::config) struct Whole<const MIN: u64, const MAX: u64>(pub(in crate::config) u64);

impl<const MIN: u64, const MAX: u64> FromRaw for Whole<MIN, MAX> {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        whole_number(raw, MIN, MAX).map(Self)
    }
}
deserialize_from_raw!(Whole<MIN, MAX>, const MIN: u64, const MAX: u64);

impl<const MIN: u64, const MAX: u64> Setting for Whole<MIN, MAX> {
    type Field = u64;
    fn field(self) -> u64 {
        self.0
    }
}

/// [`Whole`] for a `u32` field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::config) struct Whole32<const MIN: u32, const MAX: u32>(pub(in crate::config) u32);

impl<const MIN: u32, const MAX: u32> FromRaw for Whole32<MIN, MAX> {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        let n = whole_number(raw, u64::from(MIN), u64::from(MAX))?;
        Ok(Self(u32::try_from(n).expect("at most a u32 maximum")))
    }
}
deserialize_from_raw!(Whole32<MIN, MAX>, const MIN: u32, const MAX: u32);

impl<const MIN: u32, const MAX: u32> Setting for Whole32<MIN, MAX> {
    type Field = u32;
    fn field(self) -> u32 {
        self.0
    }
}

/// Any `u32`.
pub(in crate::config) type AnyU32 = Whole32<0, { u32::MAX }>;
/// Any `u64`.
pub(in crate::config) type AnyU64 = Whole<0, { u64::MAX }>;

setting!(
    /// A whole number, or `""` (a script's `()`) for the automatic value.
    Automatic(Option<u32>),
    |raw| match raw {
        Raw::Str(text) if text.is_empty() => Ok(None),
        raw => AnyU32::from_raw(raw)
            .map(|n| Some(n.0))
            .map_err(|e| ValueError::NotAutomatic(Box::new(e))),
    }
);

/// A file mode: octal digits in a string (`"0660"`), or an integer (in TOML, written in
/// octal: `0o660`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::config) struct Mode(pub(in crate::config) u32);

impl FromRaw for Mode {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        match raw {
            Raw::Str(text) => mode_text(&text).map(Self).map_err(ValueError::ModeText),
            Raw::Int(mode) => match u32::try_from(mode) {
                Ok(mode) if mode <= MAX_SOCKET_MODE => Ok(Self(mode)),
                _ => Err(ValueError::ModeTooLarge),
            },
            other => Err(ValueError::ModeWrongType { found: other.found() }),
        }
    }
}
deserialize_from_raw!(Mode);

impl Setting for Mode {
    type Field = u32;
    fn field(self) -> u32 {
        self.0
    }

    /// A decimal 660 would silently be mode 0o1224: refuse anything but octal.
    fn check_toml(value: &DeValue<'_>) -> Result<(), ValueError> {
        match value {
            DeValue::Integer(number) if number.radix() != 8 => {
                Err(ValueError::ModeNotOctal(number.to_string()))
            }
            _ => Ok(()),
        }
    }
}

setting!(
    /// A number of seconds: an integer or a float, above 0, at most a day.
    Seconds(f64),
    |raw| match raw {
        Raw::Int(_) | Raw::Float(_) => {
            seconds(raw, MAX_TIMEOUT).ok_or(ValueError::Seconds { max: MAX_TIMEOUT })
        }
        other => Err(other.wrong_type("a number of seconds")),
    }
);

setting!(
    /// The DNSBL lookups' timeout: seconds above 0, at most [`MAX_DNSBL_TIMEOUT`].
    DnsblTimeout(f64),
    |raw| seconds(raw, MAX_DNSBL_TIMEOUT).ok_or(ValueError::DnsblTimeout { max: MAX_DNSBL_TIMEOUT })
);

impl FromRaw for Spec {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        Ok(Self::parse(&string(raw)?)?)
    }
}
setting_itself!(Spec);

setting!(
    /// A spec to serve HTTP on: `inet:` or `inet6:` only.
    InetSpec(Spec),
    |raw| match Spec::from_raw(raw)? {
        spec @ Spec::Unix { .. } => Err(ValueError::NotInet { spec: spec.to_string() }),
        spec => Ok(spec),
    }
);

impl FromRaw for FallbackStatus {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        Ok(string(raw)?.parse()?)
    }
}
setting_itself!(FallbackStatus);

/// A string (one command line) or an array of strings (one argument each).
impl FromRaw for CommandOptions {
    fn from_raw(raw: Raw) -> Result<Self, ValueError> {
        match raw {
            Raw::Str(text) => Ok(Self::Line(text)),
            Raw::List(_) => strings(raw).map(Self::Arguments),
            other => Err(other.wrong_type("a string or an array of strings")),
        }
    }
}
setting_itself!(CommandOptions);

setting!(
    /// A list of names, none of them empty.
    Names(Vec<String>),
    |raw| {
        let names = strings(raw)?;
        if names.iter().any(String::is_empty) {
            return Err(ValueError::EmptyName);
        }
        Ok(names)
    }
);
setting!(
    /// Host names or domains, or `/regex/` patterns that compile.
    NamesOrPatterns(Vec<String>),
    |raw| checked_list(raw, name_or_pattern)
);
setting!(
    /// IP addresses or networks in CIDR notation.
    Networks(Vec<String>),
    |raw| checked_list(raw, address_or_network)
);
setting!(
    /// File names, none empty or with a NUL.
    FileNames(Vec<String>),
    |raw| {
        let entries = strings(raw)?;
        if entries.iter().any(|e| e.is_empty() || e.contains('\0')) {
            return Err(ValueError::BadFileName);
        }
        Ok(entries)
    }
);
setting!(
    /// DNSBL services: `zone` or `zone=answer`.
    DnsblServices(Vec<String>),
    |raw| checked_list(raw, |entry| dnsbl::parse_service_entry(entry).map(drop))
);
setting!(
    /// Name servers: IP addresses, optionally with a port.
    NameServers(Vec<String>),
    |raw| checked_list(raw, |entry| dnsbl::parse_name_server(entry).map(drop))
);
setting!(
    /// Recipients: addresses, `@domain` or `/regex/`.
    Accounts(Vec<String>),
    |raw| checked_list(raw, |entry| AccountMatcher::parse(entry).map(drop))
);
