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
//!   `dnsbl.name_servers = ["192.0.2.53"]`;
//! - set `[manager]` items (`manager.connection_check_interval = 5`), and give the manager
//!   script hooks: `manager.use_netstat_connection_checker(5)`, `manager.maintained(|| ...)`,
//!   `manager.define_connection_checker("name", |context| ...)`.
//!
//! Every value goes through the same checks as in TOML, and records the file and line it
//! was set at. Stoppers are kept compiled and run later, in the workers.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, Scope, AST};

use super::error::ConfigError;
use super::model::Milter;
use super::origin::Origin;
use super::Config;
use crate::conditions::script::{line_and_message, new_engine, ScriptFn};
use crate::conditions::ScriptCondition;
use builtin_settings::{
    register_dnsbl, register_settings, DnsblHandle, RemoteNetworkHandle, S25rHandle, StressHandle,
    TrustHandle,
};
use conditions::register_conditions;
use error::ScriptError;
use manager::{register_manager, ManagerHandle};
use milters::register_milters;

mod builtin_settings;
mod conditions;
mod error;
mod item_values;
mod manager;
mod milters;
#[cfg(test)]
mod tests;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

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

impl ScriptLoader {
    pub(super) fn new() -> Self {
        let state: SharedState = Rc::default();
        let mut engine = new_engine();
        register_milters(&mut engine, &state);
        register_conditions(&mut engine, &state);
        register_settings(&mut engine, &state);
        register_dnsbl(&mut engine, &state);
        register_manager(&mut engine, &state);
        Self { engine: Rc::new(engine), state }
    }

    /// Runs the file at `path` on `config`.
    pub(super) fn load(&self, config: &mut Config, path: &Path) -> Result<(), ConfigError> {
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
            .push("dnsbl", DnsblHandle)
            .push("manager", ManagerHandle);
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
