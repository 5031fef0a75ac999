//! Script values to and from configuration items: a value set from a script is read by
//! the item's own `Deserialize`, as a TOML file's value is.

use rhai::{Array, Dynamic};

use super::super::schema::Item;
use super::super::values::{Input, Shown};
use super::error::ScriptError;

/// Sets one item of `target` from a script value. Unit (`()`) is "not set", as `""` is.
pub(super) fn set_item<T>(
    target: &mut T,
    item: &Item<T>,
    value: &Dynamic,
) -> Result<(), ScriptError> {
    Ok((item.set)(target, &Input::Script(value))?)
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
