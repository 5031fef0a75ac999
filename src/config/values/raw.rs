//! A value as serde hands it over, before the checks of the item it sets, and the one way
//! every source (a TOML file, a script, the command line) turns a value into an item's
//! type: that type's `Deserialize`.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, LexError, ParseErrorType};
use serde::de::{self, DeserializeOwned, IgnoredAny, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};
use toml::de::DeValue;
use toml::Spanned;

use super::super::error::ValueError;

/// A configuration value of any type: what each item's `Deserialize` reads first, so that
/// a value of the wrong type gets the same "expected X, found Y" message from every source.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::config) enum Raw {
    Bool(bool),
    /// Every integer serde can hand over, so that no range is lost before the item's own
    /// bounds are checked (negative values, values past `u32`).
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Self>),
    Datetime,
    Table,
}

impl Raw {
    /// `found a string`, `found an integer`: for messages about a value of the wrong type.
    pub(in crate::config) fn found(&self) -> String {
        found_kind(match self {
            Self::Bool(_) => "boolean",
            Self::Int(_) => "integer",
            Self::Float(_) => "float",
            Self::Str(_) => "string",
            Self::List(_) => "array",
            Self::Datetime => "datetime",
            Self::Table => "table",
        })
    }

    /// An error saying what was `expected` instead of this value.
    pub(in crate::config) fn wrong_type(&self, expected: &'static str) -> ValueError {
        ValueError::WrongType { expected, found: self.found() }
    }
}

/// `found a string` for a TOML type name.
pub(in crate::config) fn found_kind(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("found {article} {kind}")
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

/// toml hands a datetime over as a map with this one key.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Raw, E> {
        Ok(Raw::Int(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Raw, E> {
        Ok(Raw::Int(value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Raw, E> {
        Ok(Raw::Int(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Raw, E> {
        // Past every bound an item has: as good as the largest i128.
        Ok(Raw::Int(i128::try_from(value).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Raw, E> {
        Ok(Raw::Float(value))
    }

    fn visit_char<E: de::Error>(self, value: char) -> Result<Raw, E> {
        Ok(Raw::Str(value.to_string()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Raw, E> {
        Ok(Raw::Str(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Raw, E> {
        Ok(Raw::Str(value))
    }

    /// A script's `()` means "not set", as `""` does in a file.
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Str(String::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Str(String::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::List(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut raw = Raw::Table;
        while let Some(key) = map.next_key::<String>()? {
            if key == TOML_DATETIME_KEY {
                raw = Raw::Datetime;
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(raw)
    }
}

/// A value of one of the configuration's sources.
pub(in crate::config) enum Input<'a> {
    /// A value of a TOML file.
    Toml(&'a Spanned<DeValue<'a>>),
    /// A value a Rhai script assigned.
    Script(&'a Dynamic),
}

/// A type an item is set with: its `Deserialize` checks the value, `field` gives what the
/// item's field holds.
pub(in crate::config) trait Setting: DeserializeOwned {
    type Field;

    fn field(self) -> Self::Field;

    /// What only a TOML value can be refused for, before it is deserialized: serde hands
    /// integers over without the radix they were written in.
    fn check_toml(_value: &DeValue<'_>) -> Result<(), ValueError> {
        Ok(())
    }
}

/// Reads `input` as an `S`, with the message of `S`'s checks.
pub(in crate::config) fn decode<S: Setting>(input: &Input<'_>) -> Result<S::Field, ValueError> {
    let setting = match input {
        Input::Toml(value) => {
            S::check_toml(value.get_ref())?;
            let value: Spanned<DeValue<'_>> = (*value).clone();
            S::deserialize(value.into_deserializer()).map_err(|e| message(e.message()))?
        }
        Input::Script(value) => {
            if let Some(kind) = not_plain(value) {
                return Err(ValueError::ScriptType(kind));
            }
            rhai::serde::from_dynamic::<S>(value).map_err(|e| script_message(*e))?
        }
    };
    Ok(setting.field())
}

/// Reads a value given as a plain Rust value (a command-line option) as an `S`.
pub(in crate::config) fn decode_plain<'de, S, V>(value: V) -> Result<S::Field, ValueError>
where
    S: Setting,
    V: IntoDeserializer<'de, de::value::Error>,
{
    let setting = S::deserialize(value.into_deserializer()).map_err(message)?;
    Ok(setting.field())
}

fn message(text: impl fmt::Display) -> ValueError {
    ValueError::Decoded(text.to_string())
}

/// The type of the part of a script value that is not plain data (a function, a map, a
/// handle), which Rhai's deserializer would refuse naming Rust types.
fn not_plain(value: &Dynamic) -> Option<String> {
    if value.is_array() {
        let items = value.as_array_ref().ok()?;
        return items.iter().find_map(not_plain);
    }
    let plain = value.is_unit()
        || value.is_bool()
        || value.is_int()
        || value.is_float()
        || value.is_char()
        || value.is_string();
    (!plain).then(|| value.type_name().to_string())
}

/// The message of a script value's checks: Rhai carries serde's custom errors in a lexer
/// error, whose own text would add "Improper symbol".
fn script_message(error: EvalAltResult) -> ValueError {
    match error {
        EvalAltResult::ErrorParsing(
            ParseErrorType::BadInput(LexError::ImproperSymbol(_, m)),
            _,
        ) => message(m),
        other => message(other),
    }
}
