//! The manager's own script hooks: `manager.maintained(|| ...)`, run at each maintenance,
//! and `manager.define_connection_checker(name, |context| ...)`, asked whether the SMTP
//! client is still connected. Both run on the stoppers' engine, with its limits; an error
//! is the caller's to log, never fatal.

use std::fmt;

use rhai::Engine;

use super::{ScriptAddress, ScriptError, ScriptFn};

/// What the Rhai files asked of the manager itself.
#[derive(Clone, Default, Debug)]
pub struct ManagerScripts {
    /// `manager.maintained(...)` callbacks, in the order given.
    pub maintained: Vec<ScriptFn>,
    /// `manager.define_connection_checker(...)`, in the order defined.
    pub connection_checkers: Vec<ConnectionChecker>,
    /// `manager.use_netstat_connection_checker` was called: the built-in check runs
    /// beside scripted checkers too.
    pub builtin_checker_requested: bool,
}

impl ManagerScripts {
    /// The built-in check (the kernel's socket tables) is the default: it runs unless
    /// scripted checkers replace it, or when asked for by name.
    pub fn uses_builtin_checker(&self) -> bool {
        self.builtin_checker_requested || self.connection_checkers.is_empty()
    }

    /// Runs every `maintained` callback; one line per failure, for the log.
    pub fn run_maintained(&self) -> Vec<String> {
        self.maintained
            .iter()
            .filter_map(|callback| callback.call_located(()).err())
            .map(|error| format!("manager.maintained: {error}"))
            .collect()
    }
}

/// Equal when they do the same: the built-in check counts by whether it runs.
impl PartialEq for ManagerScripts {
    fn eq(&self, other: &Self) -> bool {
        self.maintained == other.maintained
            && self.connection_checkers == other.connection_checkers
            && self.uses_builtin_checker() == other.uses_builtin_checker()
    }
}

/// `manager.define_connection_checker("name", |context| ...)`.
#[derive(Clone, PartialEq)]
pub struct ConnectionChecker {
    pub name: String,
    pub function: ScriptFn,
}

impl fmt::Debug for ConnectionChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionChecker({:?}, {})", self.name, self.function.origin())
    }
}

impl ConnectionChecker {
    /// Whether the checker says the client is still connected. An answer that is not
    /// true or false, a failure or a runaway is an error: the caller counts the client as
    /// connected, as when no checker ran.
    pub fn is_connected(
        &self,
        client: ScriptAddress,
        server: ScriptAddress,
    ) -> Result<bool, ScriptError> {
        let context = CheckerContext { client, server };
        let answer = self.function.call_located((context,))?;
        answer.as_bool().map_err(|kind| {
            ScriptError(format!(
                "{}: returned {kind} where true (connected) or false was expected",
                self.function.origin()
            ))
        })
    }
}

/// `context` of a connection checker.
#[derive(Clone)]
pub(super) struct CheckerContext {
    client: ScriptAddress,
    server: ScriptAddress,
}

pub(super) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<CheckerContext>("ConnectionContext")
        .register_get("smtp_client_address", |c: &mut CheckerContext| c.client.clone())
        .register_get("smtp_server_address", |c: &mut CheckerContext| c.server.clone());
}
