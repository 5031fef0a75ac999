//! `manager`: the `[manager]` items as properties (`manager.connection_check_interval = 5`),
//! and what only a script can give: `manager.use_netstat_connection_checker(n)`,
//! `manager.maintained(|| ...)` and `manager.define_connection_checker(name, |context| ...)`.

use std::rc::Rc;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};

use super::super::schema;
use super::error::ScriptError;
use super::item_values::{set_item, shown_value};
use super::{with_state, Fallible, LoadState, SharedState};
use crate::conditions::script::ConnectionChecker;

/// `manager` in a script.
#[derive(Clone, Copy)]
pub(super) struct ManagerHandle;

/// The interval of `use_netstat_connection_checker` without one, as the manual says.
const NETSTAT_DEFAULT_INTERVAL: i64 = 5;

pub(super) fn register_manager(engine: &mut Engine, state: &SharedState) {
    engine.register_type_with_name::<ManagerHandle>("Manager");
    for item in schema::MANAGER {
        let key = item.key;
        let setting = Rc::clone(state);
        engine.register_fn(
            format!("set${key}"),
            move |context: NativeCallContext, _: &mut ManagerHandle, value: Dynamic| {
                with_state(&setting, |s| set_manager_item(s, &context, key, &value))
            },
        );
        let getting = Rc::clone(state);
        engine.register_fn(format!("get${key}"), move |_: &mut ManagerHandle| {
            with_state(&getting, |s| {
                let item = schema::MANAGER.iter().find(|i| i.key == key).expect("listed");
                Ok(shown_value((item.show)(&s.config.manager)))
            })
        });
    }

    // The manual writes it bare (`manager.use_netstat_connection_checker`), which Rhai
    // reads as a property, and with the interval as a call.
    let bare = Rc::clone(state);
    engine.register_fn(
        "get$use_netstat_connection_checker",
        move |context: NativeCallContext, _: &mut ManagerHandle| -> Fallible<()> {
            with_state(&bare, |s| use_builtin_checker(s, &context, NETSTAT_DEFAULT_INTERVAL))
        },
    );
    let plain = Rc::clone(state);
    engine.register_fn(
        "use_netstat_connection_checker",
        move |context: NativeCallContext, _: &mut ManagerHandle| -> Fallible<()> {
            with_state(&plain, |s| use_builtin_checker(s, &context, NETSTAT_DEFAULT_INTERVAL))
        },
    );
    let with_interval = Rc::clone(state);
    engine.register_fn(
        "use_netstat_connection_checker",
        move |context: NativeCallContext, _: &mut ManagerHandle, interval: i64| -> Fallible<()> {
            with_state(&with_interval, |s| use_builtin_checker(s, &context, interval))
        },
    );

    let maintained = Rc::clone(state);
    engine.register_fn(
        "maintained",
        move |context: NativeCallContext, _: &mut ManagerHandle, callback: FnPtr| {
            with_state(&maintained, |s| {
                let callback = s.script_fn(&context, callback);
                s.config.manager_scripts.maintained.push(callback);
                Ok(())
            })
        },
    );

    let defining = Rc::clone(state);
    engine.register_fn(
        "define_connection_checker",
        move |context: NativeCallContext, _: &mut ManagerHandle, name: &str, checker: FnPtr| {
            with_state(&defining, |s| {
                if name.is_empty() {
                    return Err(ScriptError::NoCheckerName);
                }
                let function = s.script_fn(&context, checker);
                let checkers = &mut s.config.manager_scripts.connection_checkers;
                // Defined again under the same name: the later one replaces it.
                checkers.retain(|c| c.name != name);
                checkers.push(ConnectionChecker { name: name.to_string(), function });
                Ok(())
            })
        },
    );
}

fn set_manager_item(
    s: &mut LoadState,
    context: &NativeCallContext,
    key: &'static str,
    value: &Dynamic,
) -> Result<(), ScriptError> {
    let item = schema::MANAGER.iter().find(|i| i.key == key).expect("listed");
    set_item(&mut s.config.manager, item, value)
        .map_err(ScriptError::at_item(format!("manager.{key}")))?;
    let origin = s.origin(context);
    s.config.origins.set("manager", key, origin);
    Ok(())
}

/// `use_netstat_connection_checker(interval)`: checks every `interval` seconds, with the
/// built-in check (the kernel's socket tables, which is what netstat reads).
fn use_builtin_checker(
    s: &mut LoadState,
    context: &NativeCallContext,
    interval: i64,
) -> Result<(), ScriptError> {
    if interval <= 0 {
        return Err(ScriptError::CheckInterval(interval));
    }
    set_manager_item(s, context, "connection_check_interval", &Dynamic::from(interval))?;
    s.config.manager_scripts.builtin_checker_requested = true;
    Ok(())
}
