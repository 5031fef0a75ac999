//! Script values to and from configuration items: a value set from a script goes through
//! the very checks of a TOML file's value.

use rhai::{Array, Dynamic};
use toml::de::DeTable;

use super::super::schema::Item;
use super::super::values::{self, Shown};
use super::error::ScriptError;

/// A script value as the TOML text of the same value, so that it goes through the very
/// checks a TOML file's value does. Unit (`()`) is `""`: "not set".
pub(super) fn toml_literal(value: &Dynamic) -> Result<String, ScriptError> {
    if value.is_unit() {
        return Ok("\"\"".into());
    }
    if let Ok(flag) = value.as_bool() {
        return Ok(flag.to_string());
    }
    if let Ok(number) = value.as_int() {
        return Ok(number.to_string());
    }
    if let Ok(number) = value.as_float() {
        return Ok(format!("{number:?}"));
    }
    if value.is_string() {
        return Ok(values::quote(&value.clone().into_string().unwrap_or_default()));
    }
    if value.is_array() {
        let items = value.clone().into_array().unwrap_or_default();
        let items: Result<Vec<String>, ScriptError> = items.iter().map(toml_literal).collect();
        return Ok(format!("[{}]", items?.join(", ")));
    }
    Err(ScriptError::UnsupportedValue(value.type_name().to_string()))
}

/// Sets one item of `target` from a script value.
pub(super) fn set_item<T>(
    target: &mut T,
    item: &Item<T>,
    value: &Dynamic,
) -> Result<(), ScriptError> {
    let text = format!("value = {}", toml_literal(value)?);
    let document =
        DeTable::parse(&text).map_err(|e| ScriptError::Literal(e.message().to_string()))?;
    let no_value = || ScriptError::Literal("no value".into());
    let parsed = document.get_ref().get("value").ok_or_else(no_value)?;
    Ok((item.set)(target, parsed.get_ref())?)
}

/// An item's value for a script.
pub(super) fn shown_value(shown: Shown) -> Dynamic {
    match shown {
        Shown::Bool(flag) => flag.into(),
        Shown::Int(number) => Dynamic::from(number as i64),
        Shown::Mode(mode) => Dynamic::from(i64::from(mode)),
        Shown::Float(number) => Dynamic::from(number),
        Shown::Str(text) => text.into(),
        Shown::List(items) => {
            Dynamic::from(items.into_iter().map(Dynamic::from).collect::<Array>())
        }
        Shown::Unset => Dynamic::UNIT,
    }
}
