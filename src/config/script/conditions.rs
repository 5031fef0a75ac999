//! `define_applicable_condition`: a condition's description and its stoppers.

use std::rc::Rc;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};

use super::error::ScriptError;
use super::{register_definer, with_state, Fallible, SharedState};
use crate::conditions::{ScriptCondition, STOPPERS};

/// `condition` in `define_applicable_condition("name", |condition| ...)`.
#[derive(Clone)]
struct ConditionHandle {
    name: String,
}

pub(super) fn register_conditions(engine: &mut Engine, state: &SharedState) {
    register_definer(engine, "define_applicable_condition", state, |s, origin, name| {
        if name.is_empty() {
            return Err(ScriptError::NoConditionName);
        }
        if !s.config.conditions.iter().any(|c| c.name == name) {
            s.config.conditions.push(ScriptCondition::new(name, origin.to_string()));
        }
        Ok(ConditionHandle { name: name.to_string() })
    });
    engine
        .register_type_with_name::<ConditionHandle>("Condition")
        .register_get("name", |c: &mut ConditionHandle| c.name.clone());
    let describing = Rc::clone(state);
    engine.register_fn(
        "set$description",
        move |handle: &mut ConditionHandle, description: Dynamic| -> Fallible<()> {
            with_state(&describing, |s| {
                let description = if description.is_unit() {
                    None
                } else {
                    Some(
                        description
                            .into_string()
                            .map_err(|kind| ScriptError::DescriptionType(kind.to_string()))?,
                    )
                };
                s.condition(&handle.name)?.description = description;
                Ok(())
            })
        },
    );
    let reading = Rc::clone(state);
    engine.register_fn("get$description", move |handle: &mut ConditionHandle| {
        with_state(&reading, |s| {
            Ok(s.condition(&handle.name)?.description.clone().map_or(Dynamic::UNIT, Dynamic::from))
        })
    });
    for (index, stopper) in STOPPERS.iter().enumerate() {
        let defining = Rc::clone(state);
        engine.register_fn(
            format!("define_{stopper}_stopper"),
            move |context: NativeCallContext, handle: &mut ConditionHandle, function: FnPtr| {
                with_state(&defining, |s| {
                    let function = s.script_fn(&context, function);
                    s.condition(&handle.name)?.stoppers[index] = Some(function);
                    Ok(())
                })
            },
        );
    }
}
