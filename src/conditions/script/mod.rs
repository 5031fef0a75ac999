//! Rhai, the language of the programmable parts of the configuration: the engine with its
//! limits, the functions a script gets, and calling a script function later (a stopper,
//! an S25R matcher) safely: an error or a runaway loop is logged and gives a default.

mod context;
mod hooks;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, FuncArgs, Position, AST};

pub use context::{ScriptAddress, ScriptContext, ScriptIp};
pub use hooks::{ConnectionChecker, ManagerScripts};

/// Operations a single call may take before it is cut off: plenty for any sensible
/// stopper, and a few milliseconds of a runaway loop at most.
pub const MAX_OPERATIONS: u64 = 200_000;

/// The engine every script of one configuration runs on, with the runtime types
/// registered. The configuration loader adds its own functions before wrapping it in an
/// `Rc`.
pub fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(1 << 20)
        .set_max_array_size(100_000)
        .set_max_map_size(100_000);
    // print() and debug() go to the log rather than to a daemon's closed standard output.
    engine.on_print(|text| log::info!("script: {text}"));
    engine.on_debug(|text, source, position| {
        log::debug!("script {}{}: {text}", source.unwrap_or(""), line_suffix(position))
    });
    context::register(&mut engine);
    hooks::register(&mut engine);
    register_regex(&mut engine);
    engine
}

fn line_suffix(position: Position) -> String {
    position.line().map(|line| format!(":{line}")).unwrap_or_default()
}

/// `text.regex_match(pattern)`: Rhai has no regular expressions of its own. Compiled
/// patterns are kept, so a stopper does not recompile its pattern on every call.
fn register_regex(engine: &mut Engine) {
    let cache: Rc<RefCell<HashMap<String, Rc<regex::Regex>>>> = Rc::default();
    engine.register_fn(
        "regex_match",
        move |text: &str, pattern: &str| -> Result<bool, Box<EvalAltResult>> {
            let compiled = {
                let mut cache = cache.borrow_mut();
                match cache.get(pattern) {
                    Some(compiled) => Rc::clone(compiled),
                    None => {
                        let compiled = Rc::new(
                            regex::Regex::new(pattern)
                                .map_err(|e| format!("invalid regular expression: {e}"))?,
                        );
                        // A script building patterns from data must not grow this forever.
                        if cache.len() >= 1000 {
                            cache.clear();
                        }
                        cache.insert(pattern.to_string(), Rc::clone(&compiled));
                        compiled
                    }
                }
            };
            Ok(compiled.is_match(text))
        },
    );
}

/// A script function kept for later: a stopper or a matcher, with the script it came from.
#[derive(Clone)]
pub struct ScriptFn {
    engine: Rc<Engine>,
    ast: Rc<AST>,
    function: FnPtr,
    /// `FILE:LINE` where it was given, for messages.
    origin: String,
}

impl fmt::Debug for ScriptFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptFn({})", self.origin)
    }
}

/// Two functions are the same when they were given at the same place.
impl PartialEq for ScriptFn {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
    }
}

/// A script's answer that is not what was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError(pub String);

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ScriptFn {
    pub fn new(engine: Rc<Engine>, ast: Rc<AST>, function: FnPtr, origin: String) -> Self {
        Self { engine, ast, function, origin }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Calls the function and wants `true` or `false` (unit counts as false).
    pub fn call_bool(&self, args: impl FuncArgs) -> Result<bool, ScriptError> {
        let result = self
            .function
            .call::<Dynamic>(&self.engine, &self.ast, args)
            .map_err(|e| ScriptError(describe_error(&e)))?;
        if result.is_unit() {
            return Ok(false);
        }
        result.as_bool().map_err(|kind| {
            ScriptError(format!("returned {kind} where true or false was expected"))
        })
    }
}

impl ScriptFn {
    /// Calls the function for its answer; an error names the file and line where it
    /// happened (`FILE:LINE: message`), for callers that log it without other context.
    pub fn call_located(&self, args: impl FuncArgs) -> Result<Dynamic, ScriptError> {
        self.function.call::<Dynamic>(&self.engine, &self.ast, args).map_err(|error| {
            let (line, message) = line_and_message(&error);
            // A closure is in the file it was given in.
            let file = self.origin.rsplit_once(':').map_or(self.origin.as_str(), |(f, _)| f);
            match line {
                0 => ScriptError(format!("{}: {message}", self.origin)),
                line => ScriptError(format!("{file}:{line}: {message}")),
            }
        })
    }
}

/// The error inside calls of functions and closures: the one that says what went wrong,
/// at the line where it did.
fn innermost(error: &EvalAltResult) -> &EvalAltResult {
    match error {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => innermost(inner),
        other => other,
    }
}

/// What went wrong, without where.
fn message_of(error: &EvalAltResult) -> String {
    match innermost(error) {
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("stopped after {MAX_OPERATIONS} operations (an endless loop?)")
        }
        // Errors raised by our own functions: their text is the message.
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => {
            // The error's own text ends with its position, which is given separately.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(at) => text[..at].to_string(),
                None => text,
            }
        }
    }
}

/// A script error's line (0 when unknown) and message.
pub fn line_and_message(error: &EvalAltResult) -> (usize, String) {
    (innermost(error).position().line().unwrap_or(0), message_of(error))
}

/// One line for a script error, with the line of the script where it happened.
pub fn describe_error(error: &EvalAltResult) -> String {
    match line_and_message(error) {
        (0, message) => message,
        (line, message) => format!("line {line}: {message}"),
    }
}

#[cfg(test)]
mod engine_tests {
    #[test]
    fn scripts_have_no_import_and_no_clock() {
        let engine = super::new_engine();
        let import = engine.compile("import \"x\" as x;").unwrap_err().to_string();
        assert!(import.contains("import"), "{import}");
        let clock = engine.eval::<rhai::Dynamic>("timestamp()").unwrap_err().to_string();
        assert!(clock.contains("timestamp"), "{clock}");
    }
}
