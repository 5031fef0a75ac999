//! Applicable conditions: which child milters apply to which mail. The built-in ones are
//! Rust; others are Rhai functions from the configuration. A condition decides per child
//! and per event through the engine's [`crate::engine::Conditions`] hook, and may give a
//! child extra macros.

pub mod builtin;
mod definition;
pub mod script;
mod set;
mod shipped;

pub use definition::{stopper_index, ScriptCondition, STOPPERS};
pub use script::ScriptFn;
pub use set::{ConditionError, ConditionSet, SessionCount};
pub use shipped::CATALOG as BUILT_IN_CONDITIONS;
