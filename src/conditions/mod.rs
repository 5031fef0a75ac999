//! Applicable conditions: which child milters apply to which mail. The built-in ones are
//! Rust; others are Rhai functions from the configuration. A condition decides per child
//! and per event through the engine's [`crate::engine::Conditions`] hook, and may give a
//! child extra macros.

pub mod builtin;
mod connect_gate;
mod definition;
mod dnsbl_lookup;
pub mod script;
mod set;
mod shipped;

pub use connect_gate::{ConnectGate, DnsblVerdict};
pub use definition::{stopper_index, ScriptCondition, STOPPERS};
pub use dnsbl_lookup::{DnsblSetup, Lookup, LookupAction};
pub use script::ScriptFn;
pub use set::{ConditionError, ConditionSet, SessionCount};
pub use shipped::{builtin_name, ALIASES as BUILT_IN_ALIASES, CATALOG as BUILT_IN_CONDITIONS};
