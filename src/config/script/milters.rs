//! `define_milter`, `defined_milters`, `remove_milter` and a milter's items.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, NativeCallContext};

use super::super::schema;
use super::error::ScriptError;
use super::item_values::{set_item, shown_value};
use super::{register_definer, with_state, Fallible, SharedState};

/// `milter` in `define_milter("name", |milter| ...)`.
#[derive(Clone)]
struct MilterHandle {
    name: String,
}

pub(super) fn register_milters(engine: &mut Engine, state: &SharedState) {
    register_definer(engine, "define_milter", state, |s, origin, name| {
        s.config.define_milter(name, origin)?;
        Ok(MilterHandle { name: name.to_string() })
    });
    engine
        .register_type_with_name::<MilterHandle>("Milter")
        .register_get("name", |m: &mut MilterHandle| m.name.clone());
    let listed = Rc::clone(state);
    engine.register_fn("defined_milters", move || -> Fallible<Array> {
        with_state(&listed, |s| {
            Ok(s.config.milters.iter().map(|m| Dynamic::from(m.name.clone())).collect())
        })
    });
    let removing = Rc::clone(state);
    engine.register_fn("remove_milter", move |name: &str| -> Fallible<()> {
        with_state(&removing, |s| Ok(s.config.remove_milter(name)?))
    });
    for item in schema::MILTER {
        let setting = Rc::clone(state);
        engine.register_fn(
            format!("set${}", item.key),
            move |context: NativeCallContext, handle: &mut MilterHandle, value: Dynamic| {
                with_state(&setting, |s| {
                    let origin = s.origin(&context);
                    let milter = s.milter(&handle.name)?;
                    let key = format!("milter.{}.{}", handle.name, item.key);
                    set_item(milter, item, &value).map_err(ScriptError::at_item(key))?;
                    s.config.origins.set_milter(&handle.name, item.key, origin);
                    Ok(())
                })
            },
        );
        let getting = Rc::clone(state);
        engine.register_fn(format!("get${}", item.key), move |handle: &mut MilterHandle| {
            with_state(&getting, |s| Ok(shown_value((item.show)(s.milter(&handle.name)?))))
        });
    }
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_applicable_condition",
        move |context: NativeCallContext, handle: &mut MilterHandle, name: &str| {
            with_state(&adding, |s| {
                if name.is_empty() {
                    return Err(ScriptError::NoConditionName);
                }
                let origin = s.origin(&context);
                s.milter(&handle.name)?.applicable_conditions.push(name.to_string());
                s.config.origins.set_milter(&handle.name, "applicable_conditions", origin);
                Ok(())
            })
        },
    );
}
