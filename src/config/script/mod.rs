//! Rhai configuration files (`*.rhai` in an include list): the programmable part of the
//! configuration. A file runs once, when the configuration loads, and may
//!
//! - define and change child milters: `define_milter("name", |milter| { ... })`,
//!   `defined_milters()`, `remove_milter("name")`;
//! - define applicable conditions with their stoppers:
//!   `define_applicable_condition("name", |condition| { condition.define_connect_stopper(
//!   |context, host, address| host == "unknown") })`;
//! - change the built-in conditions' settings: `s25r.add_whitelist(...)`,
//!   `remote_network.add_local_address(...)`, `trust.add_envelope_from_domain(...)`,
//!   `stress.threshold_n_connections = 75`, `dnsbl.add_service("bl.example", "127.0.0.2")`,
//!   `dnsbl.name_servers = ["192.0.2.53"]`.
//!
//! Every value goes through the same checks as in TOML, and records the file and line it
//! was set at. Stoppers are kept compiled and run later, in the workers.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, Scope, AST};
use toml::de::DeTable;

use super::error::{ConfigError, MilterNameError, ValueError};
use super::model::Milter;
use super::origin::Origin;
use super::schema::{self, Item};
use super::values::{self, Shown};
use super::Config;
use crate::conditions::builtin::dnsbl;
use crate::conditions::script::{line_and_message, new_engine, ScriptFn};
use crate::conditions::{ScriptCondition, STOPPERS};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Why a configuration function refused; Rhai reports it with the line of the call.
#[derive(Debug, thiserror::Error)]
enum ScriptError {
    #[error("this function works only while the configuration loads")]
    NotLoading,
    #[error("milter {0:?} was removed")]
    MilterRemoved(String),
    #[error("applicable condition {0:?} is not defined")]
    ConditionUndefined(String),
    #[error("an applicable condition needs a name")]
    NoConditionName,
    #[error("a description is a string, found {0}")]
    DescriptionType(String),
    #[error("s25r.{method}: expected a host name, \"/regex/\" or a function, found {kind}")]
    MatcherType { method: &'static str, kind: String },
    #[error("trust.load_envelope_from_domains: an empty file name")]
    EmptyFileName,
    #[error("expected a string, a number, true or false, or an array, found {0}")]
    UnsupportedValue(String),
    /// The TOML text made of a script value did not read back (the toml crate's words).
    #[error("{0}")]
    Literal(String),
    /// `key` names the item, e.g. `milter.clamav.reading_timeout`.
    #[error("{key}: {error}")]
    Item { key: String, error: Box<ScriptError> },
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    MilterName(#[from] MilterNameError),
}

impl From<ScriptError> for Box<EvalAltResult> {
    fn from(error: ScriptError) -> Self {
        error.to_string().into()
    }
}

impl ScriptError {
    fn at_item(key: String) -> impl FnOnce(ScriptError) -> ScriptError {
        move |error| ScriptError::Item { key, error: Box::new(error) }
    }
}

/// What the script functions work on while a file runs.
struct LoadState {
    config: Config,
    path: PathBuf,
    ast: Rc<AST>,
    engine: Rc<Engine>,
}

type SharedState = Rc<RefCell<Option<LoadState>>>;

/// Runs Rhai configuration files; one per configuration load, so every file of it shares
/// one engine.
pub(super) struct ScriptLoader {
    engine: Rc<Engine>,
    state: SharedState,
}

/// `milter` in `define_milter("name", |milter| ...)`.
#[derive(Clone)]
struct MilterHandle {
    name: String,
}

/// `condition` in `define_applicable_condition("name", |condition| ...)`.
#[derive(Clone)]
struct ConditionHandle {
    name: String,
}

/// `s25r`, `remote_network`, `trust`, `stress`, `dnsbl`.
#[derive(Clone, Copy)]
struct S25rHandle;
#[derive(Clone, Copy)]
struct RemoteNetworkHandle;
#[derive(Clone, Copy)]
struct TrustHandle;
#[derive(Clone, Copy)]
struct StressHandle;
#[derive(Clone, Copy)]
struct DnsblHandle;

impl ScriptLoader {
    pub fn new() -> ScriptLoader {
        let state: SharedState = Rc::default();
        let mut engine = new_engine();
        register_milters(&mut engine, &state);
        register_conditions(&mut engine, &state);
        register_settings(&mut engine, &state);
        register_dnsbl(&mut engine, &state);
        ScriptLoader { engine: Rc::new(engine), state }
    }

    /// Runs the file at `path` on `config`.
    pub fn load(&self, config: &mut Config, path: &Path) -> Result<(), ConfigError> {
        let text = fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        let ast = self.engine.compile(&text).map_err(|e| {
            let (line, message) = line_and_message(&e.into());
            ConfigError::at(path, line, None, format!("invalid Rhai: {message}"))
        })?;
        let ast = Rc::new(ast);
        *self.state.borrow_mut() = Some(LoadState {
            config: std::mem::take(config),
            path: path.to_path_buf(),
            ast: Rc::clone(&ast),
            engine: Rc::clone(&self.engine),
        });
        let mut scope = Scope::new();
        // Variables rather than constants: Rhai refuses setting a property of a constant,
        // and `stress.threshold_n_connections = 75` is what the manual writes.
        scope
            .push("s25r", S25rHandle)
            .push("remote_network", RemoteNetworkHandle)
            .push("trust", TrustHandle)
            .push("stress", StressHandle)
            .push("dnsbl", DnsblHandle);
        let result = self.engine.run_ast_with_scope(&mut scope, &ast);
        let state = self.state.borrow_mut().take().expect("the state set above");
        *config = state.config;
        result.map_err(|e| {
            let (line, message) = line_and_message(&e);
            ConfigError::at(path, line, None, message)
        })
    }
}

/// Runs `work` on the state of the file being loaded; outside loading (a stopper calling
/// `define_milter`) it is an error.
fn with_state<T>(
    state: &SharedState,
    work: impl FnOnce(&mut LoadState) -> Result<T, ScriptError>,
) -> Fallible<T> {
    let mut guard = state.borrow_mut();
    let Some(state) = guard.as_mut() else {
        return Err(ScriptError::NotLoading.into());
    };
    work(state).map_err(Into::into)
}

impl LoadState {
    fn origin(&self, context: &NativeCallContext) -> Origin {
        Origin::File { path: self.path.clone(), line: context.call_position().line().unwrap_or(0) }
    }

    fn script_fn(&self, context: &NativeCallContext, function: FnPtr) -> ScriptFn {
        ScriptFn::new(
            Rc::clone(&self.engine),
            Rc::clone(&self.ast),
            function,
            self.origin(context).to_string(),
        )
    }

    fn milter(&mut self, name: &str) -> Result<&mut Milter, ScriptError> {
        self.config
            .milters
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| ScriptError::MilterRemoved(name.to_string()))
    }

    fn condition(&mut self, name: &str) -> Result<&mut ScriptCondition, ScriptError> {
        self.config
            .conditions
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| ScriptError::ConditionUndefined(name.to_string()))
    }
}

/// A script value as the TOML text of the same value, so that it goes through the very
/// checks a TOML file's value does. Unit (`()`) is `""`: "not set".
fn toml_literal(value: &Dynamic) -> Result<String, ScriptError> {
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
fn set_item<T>(target: &mut T, item: &Item<T>, value: &Dynamic) -> Result<(), ScriptError> {
    let text = format!("value = {}", toml_literal(value)?);
    let document =
        DeTable::parse(&text).map_err(|e| ScriptError::Literal(e.message().to_string()))?;
    let no_value = || ScriptError::Literal("no value".into());
    let parsed = document.get_ref().get("value").ok_or_else(no_value)?;
    Ok((item.set)(target, parsed.get_ref())?)
}

/// An item's value for a script.
fn shown_value(shown: Shown) -> Dynamic {
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

/// Registers `function(name)` and `function(name, |handle| ...)`: both find or make what
/// `name` names with `define`; the second then runs the closure on it.
fn register_definer<H: Clone + 'static>(
    engine: &mut Engine,
    function: &str,
    state: &SharedState,
    define: fn(&mut LoadState, Origin, &str) -> Result<H, ScriptError>,
) {
    let plain = Rc::clone(state);
    engine.register_fn(function, move |context: NativeCallContext, name: &str| -> Fallible<H> {
        with_state(&plain, |s| define(s, s.origin(&context), name))
    });
    let with_body = Rc::clone(state);
    engine.register_fn(
        function,
        move |context: NativeCallContext, name: &str, body: FnPtr| -> Fallible<H> {
            let handle = with_state(&with_body, |s| define(s, s.origin(&context), name))?;
            let _ = body.call_within_context::<Dynamic>(&context, (handle.clone(),))?;
            Ok(handle)
        },
    );
}

fn register_milters(engine: &mut Engine, state: &SharedState) {
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

fn register_conditions(engine: &mut Engine, state: &SharedState) {
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

/// A list entry of a built-in's settings: checked, then added, with its origin.
fn add_entry(
    state: &SharedState,
    context: &NativeCallContext,
    section: &'static str,
    key: &'static str,
    check: fn(&str) -> Result<(), ValueError>,
    list: fn(&mut Config) -> &mut Vec<String>,
    entry: &str,
) -> Fallible<()> {
    with_state(state, |s| {
        check(entry).map_err(|e| ScriptError::at_item(format!("{section}.{key}"))(e.into()))?;
        let origin = s.origin(context);
        list(&mut s.config).push(entry.to_string());
        s.config.origins.set(section, key, origin);
        Ok(())
    })
}

fn register_settings(engine: &mut Engine, state: &SharedState) {
    engine.register_type_with_name::<S25rHandle>("S25R");
    for (method, key) in [("add_whitelist", "whitelist"), ("add_blacklist", "blacklist")] {
        let adding = Rc::clone(state);
        engine.register_fn(
            method,
            move |context: NativeCallContext, _: &mut S25rHandle, matcher: Dynamic| {
                if let Some(function) = matcher.clone().try_cast::<FnPtr>() {
                    return with_state(&adding, |s| {
                        let function = s.script_fn(&context, function);
                        let origin = s.origin(&context);
                        let s25r = &mut s.config.s25r;
                        match key {
                            "whitelist" => s25r.whitelist_functions.push(function),
                            _ => s25r.blacklist_functions.push(function),
                        }
                        s.config.origins.set("s25r", key, origin);
                        Ok(())
                    });
                }
                let text = matcher
                    .into_string()
                    .map_err(|kind| ScriptError::MatcherType { method, kind: kind.to_string() })?;
                let list: fn(&mut Config) -> &mut Vec<String> = match key {
                    "whitelist" => |c| &mut c.s25r.whitelist,
                    _ => |c| &mut c.s25r.blacklist,
                };
                add_entry(&adding, &context, "s25r", key, values::name_or_pattern, list, &text)
            },
        );
    }
    let flag = Rc::clone(state);
    engine.register_fn(
        "set$check_only_ipv4",
        move |context: NativeCallContext, _: &mut S25rHandle, value: bool| {
            with_state(&flag, |s| {
                s.config.s25r.check_only_ipv4 = value;
                let origin = s.origin(&context);
                s.config.origins.set("s25r", "check_only_ipv4", origin);
                Ok(())
            })
        },
    );
    let flag = Rc::clone(state);
    engine.register_fn("get$check_only_ipv4", move |_: &mut S25rHandle| {
        with_state(&flag, |s| Ok(s.config.s25r.check_only_ipv4))
    });

    engine.register_type_with_name::<RemoteNetworkHandle>("RemoteNetwork");
    for (method, key) in
        [("add_local_address", "local_addresses"), ("add_remote_address", "remote_addresses")]
    {
        let adding = Rc::clone(state);
        engine.register_fn(
            method,
            move |context: NativeCallContext, _: &mut RemoteNetworkHandle, address: &str| {
                let list: fn(&mut Config) -> &mut Vec<String> = match key {
                    "local_addresses" => |c| &mut c.remote_network.local_addresses,
                    _ => |c| &mut c.remote_network.remote_addresses,
                };
                let check = values::address_or_network;
                add_entry(&adding, &context, "remote_network", key, check, list, address)
            },
        );
    }

    engine.register_type_with_name::<TrustHandle>("Trust");
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_envelope_from_domain",
        move |context: NativeCallContext, _: &mut TrustHandle, domain: &str| {
            let list: fn(&mut Config) -> &mut Vec<String> = |c| &mut c.trust.envelope_from_domains;
            let key = "envelope_from_domains";
            add_entry(&adding, &context, "trust", key, values::name_or_pattern, list, domain)
        },
    );
    let clearing = Rc::clone(state);
    engine.register_fn("clear", move |context: NativeCallContext, _: &mut TrustHandle| {
        with_state(&clearing, |s| {
            let origin = s.origin(&context);
            let trust = &mut s.config.trust;
            trust.envelope_from_domains.clear();
            trust.envelope_from_domain_files.clear();
            trust.default_envelope_from_domains = false;
            for key in [
                "envelope_from_domains",
                "envelope_from_domain_files",
                "default_envelope_from_domains",
            ] {
                s.config.origins.set("trust", key, origin.clone());
            }
            Ok(())
        })
    });
    let loading = Rc::clone(state);
    engine.register_fn(
        "load_envelope_from_domains",
        move |context: NativeCallContext, _: &mut TrustHandle, file: &str| {
            with_state(&loading, |s| {
                if file.is_empty() {
                    return Err(ScriptError::EmptyFileName);
                }
                // Relative to the script, as include patterns are.
                let base = s.path.parent().unwrap_or(Path::new(""));
                let path = base.join(file).display().to_string();
                let origin = s.origin(&context);
                s.config.trust.envelope_from_domain_files.push(path);
                s.config.origins.set("trust", "envelope_from_domain_files", origin);
                Ok(())
            })
        },
    );

    engine.register_type_with_name::<StressHandle>("Stress");
    let setting = Rc::clone(state);
    engine.register_fn(
        "set$threshold_n_connections",
        move |context: NativeCallContext, _: &mut StressHandle, value: Dynamic| {
            with_state(&setting, |s| {
                let item = &schema::STRESS[0];
                let key = "stress.threshold_n_connections".to_string();
                set_item(&mut s.config.stress, item, &value).map_err(ScriptError::at_item(key))?;
                let origin = s.origin(&context);
                s.config.origins.set("stress", "threshold_n_connections", origin);
                Ok(())
            })
        },
    );
    let getting = Rc::clone(state);
    engine.register_fn("get$threshold_n_connections", move |_: &mut StressHandle| {
        with_state(&getting, |s| {
            Ok(s.config
                .stress
                .threshold_n_connections
                .map_or(Dynamic::UNIT, |n| Dynamic::from(i64::from(n))))
        })
    });
}

/// `dnsbl.add_service(zone)`, `dnsbl.add_service(zone, answer)`, `dnsbl.clear()` and the
/// items as properties (`dnsbl.name_servers = [...]`, `dnsbl.timeout = 3`).
fn register_dnsbl(engine: &mut Engine, state: &SharedState) {
    engine.register_type_with_name::<DnsblHandle>("Dnsbl");
    let add = |state: &SharedState, context: &NativeCallContext, entry: String| {
        let list: fn(&mut Config) -> &mut Vec<String> = |c| &mut c.dnsbl.services;
        let check = |entry: &str| dnsbl::parse_service_entry(entry).map(|_| ()).map_err(Into::into);
        add_entry(state, context, "dnsbl", "services", check, list, &entry)
    };
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_service",
        move |context: NativeCallContext, _: &mut DnsblHandle, zone: &str| {
            add(&adding, &context, zone.to_string())
        },
    );
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_service",
        move |context: NativeCallContext, _: &mut DnsblHandle, zone: &str, answer: &str| {
            add(&adding, &context, format!("{zone}={answer}"))
        },
    );
    let clearing = Rc::clone(state);
    engine.register_fn("clear", move |context: NativeCallContext, _: &mut DnsblHandle| {
        with_state(&clearing, |s| {
            let origin = s.origin(&context);
            s.config.dnsbl.services.clear();
            s.config.dnsbl.default_services = false;
            for key in ["services", "default_services"] {
                s.config.origins.set("dnsbl", key, origin.clone());
            }
            Ok(())
        })
    });
    for item in schema::DNSBL.iter().filter(|item| item.key != "services") {
        let key = item.key;
        let setting = Rc::clone(state);
        engine.register_fn(
            format!("set${key}"),
            move |context: NativeCallContext, _: &mut DnsblHandle, value: Dynamic| {
                with_state(&setting, |s| {
                    let item = schema::DNSBL.iter().find(|i| i.key == key).expect("listed");
                    let item_key = format!("dnsbl.{key}");
                    set_item(&mut s.config.dnsbl, item, &value)
                        .map_err(ScriptError::at_item(item_key))?;
                    let origin = s.origin(&context);
                    s.config.origins.set("dnsbl", key, origin);
                    Ok(())
                })
            },
        );
        let getting = Rc::clone(state);
        engine.register_fn(format!("get${key}"), move |_: &mut DnsblHandle| {
            with_state(&getting, |s| {
                let item = schema::DNSBL.iter().find(|i| i.key == key).expect("listed");
                Ok(shown_value((item.show)(&s.config.dnsbl)))
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TestDir;
    use super::super::{Config, MAIN_FILE};
    use super::*;

    fn load(dir: &TestDir, script: &str) -> Result<Config, ConfigError> {
        dir.write(MAIN_FILE, "include = [\"x.rhai\"]\n");
        dir.write("x.rhai", script);
        dir.load()
    }

    #[test]
    fn the_settings_of_the_built_ins_from_a_script() {
        let dir = TestDir::new("script-settings");
        let config = load(
            &dir,
            "s25r.add_whitelist(\"mx.example.com\");\n\
             s25r.add_blacklist(\"/^dyn-/\");\n\
             s25r.add_whitelist(|host| host == \"x\");\n\
             s25r.check_only_ipv4 = false;\n\
             remote_network.add_local_address(\"160.29.167.0/24\");\n\
             remote_network.add_remote_address(\"2001:db8::1\");\n\
             trust.clear();\n\
             trust.add_envelope_from_domain(\"example.com\");\n\
             trust.load_envelope_from_domains(\"trusted.txt\");\n\
             stress.threshold_n_connections = 40;\n\
             if stress.threshold_n_connections != 40 { throw \"not read back\"; }\n\
             dnsbl.clear();\n\
             dnsbl.add_service(\"bl.example\");\n\
             dnsbl.add_service(\"zen.example\", \"127.0.0.10/31\");\n\
             dnsbl.name_servers = [\"192.0.2.53\", \"127.0.0.1:5353\"];\n\
             dnsbl.timeout = 2;\n\
             let servers = dnsbl.name_servers;\n\
             if dnsbl.timeout != 2.0 || servers.len() != 2 { throw \"dnsbl\"; }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.s25r.whitelist, ["mx.example.com"]);
        assert_eq!(config.s25r.blacklist, ["/^dyn-/"]);
        assert_eq!(config.s25r.whitelist_functions.len(), 1);
        assert!(!config.s25r.check_only_ipv4);
        assert_eq!(config.remote_network.local_addresses, ["160.29.167.0/24"]);
        assert_eq!(config.remote_network.remote_addresses, ["2001:db8::1"]);
        assert!(!config.trust.default_envelope_from_domains);
        assert_eq!(config.trust.envelope_from_domains, ["example.com"]);
        let file = dir.path().join("trusted.txt").display().to_string();
        assert_eq!(config.trust.envelope_from_domain_files, [file]);
        assert_eq!(config.stress.threshold_n_connections, Some(40));
        assert!(!config.dnsbl.default_services);
        assert_eq!(config.dnsbl.services, ["bl.example", "zen.example=127.0.0.10/31"]);
        assert_eq!(config.dnsbl.name_servers, ["192.0.2.53", "127.0.0.1:5353"]);
        assert_eq!(config.dnsbl.timeout, 2.0);
        let script = dir.path().join("x.rhai");
        assert_eq!(
            config.origin("dnsbl.name_servers"),
            Origin::File { path: script.clone(), line: 15 }
        );
        assert_eq!(
            config.origin("stress.threshold_n_connections"),
            Origin::File { path: script.clone(), line: 10 }
        );
        assert_eq!(
            config.origin("remote_network.local_addresses"),
            Origin::File { path: script, line: 5 }
        );
    }

    #[test]
    fn bad_values_in_a_script_name_the_line_and_the_item() {
        let dir = TestDir::new("script-errors");
        let cases = [
            (
                "\nremote_network.add_local_address(\"192.0.2.0/33\");",
                "2: remote_network.local_addresses: ",
            ),
            ("s25r.add_whitelist(\"/[/\");", "1: s25r.whitelist: "),
            ("s25r.add_whitelist(42);", "1: s25r.add_whitelist: expected a host name"),
            ("stress.threshold_n_connections = -1;", "1: stress.threshold_n_connections: "),
            ("\ndnsbl.add_service(\"bl..example\");", "2: dnsbl.services: invalid DNSBL zone"),
            ("dnsbl.add_service(\"bl.example\", \"yes\");", "1: dnsbl.services: invalid expected"),
            (
                "dnsbl.name_servers = [\"ns.example\"];",
                "1: dnsbl.name_servers: invalid name server",
            ),
            ("dnsbl.timeout = 600;", "1: dnsbl.timeout: must be a number of seconds"),
            ("define_milter(\"\");", "1: a milter needs a name"),
            ("remove_milter(\"nope\");", "1: no milter named \"nope\" to remove"),
            (
                "let m = define_milter(\"a\");\nm.reading_timeout = \"soon\";",
                "2: milter.a.reading_timeout: ",
            ),
            (
                "let c = define_applicable_condition(\"c\");\nc.description = 1;",
                "2: a description is a string",
            ),
            ("loop { }", "1: stopped after"),
        ];
        for (script, wanted) in cases {
            let error = load(&dir, script).unwrap_err().to_string();
            let prefix = format!("{}:", dir.path().join("x.rhai").display());
            assert!(error.starts_with(&prefix), "{script}: {error}");
            assert!(error[prefix.len()..].starts_with(wanted), "{script}: {error}");
        }
    }

    #[test]
    fn milters_from_a_script_have_every_item() {
        let dir = TestDir::new("script-milter");
        let config = load(
            &dir,
            "define_milter(\"clamav\", |milter| {\n\
             \x20 milter.connection_spec = \"unix:/run/clamav.sock\";\n\
             \x20 milter.description = \"virus scan\";\n\
             \x20 milter.fallback_status = \"temporary-failure\";\n\
             \x20 milter.evaluation_mode = true;\n\
             \x20 milter.applicable_conditions = [\"S25R\"];\n\
             \x20 milter.add_applicable_condition(\"Remote Network\");\n\
             \x20 milter.command = \"/usr/sbin/service\";\n\
             \x20 milter.command_options = [\"clamav-milter\", \"start\"];\n\
             \x20 milter.user_name = \"clamav\";\n\
             \x20 milter.connection_timeout = 10;\n\
             \x20 milter.writing_timeout = 1.5;\n\
             \x20 if milter.name != \"clamav\" || milter.writing_timeout != 1.5 { throw \"read back\"; }\n\
             });\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let milter = config.milter("clamav").unwrap();
        assert_eq!(milter.connection_spec.as_ref().unwrap().to_string(), "unix:/run/clamav.sock");
        assert_eq!(milter.applicable_conditions, ["S25R", "Remote Network"]);
        assert!(milter.evaluation_mode);
        assert_eq!(
            milter.command_options,
            Some(super::super::CommandOptions::Arguments(vec![
                "clamav-milter".into(),
                "start".into()
            ]))
        );
        assert_eq!((milter.connection_timeout, milter.writing_timeout), (10.0, 1.5));
    }

    #[test]
    fn the_shipped_examples_load() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples/conditions.rhai");
        let dir = TestDir::new("script-examples");
        let config =
            load(&dir, &fs::read_to_string(examples).unwrap()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = config.conditions.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["Unresolved Client", "No Mailing Lists", "Unsigned", "Suspicious", "Submission Flag"]
        );
    }
}
