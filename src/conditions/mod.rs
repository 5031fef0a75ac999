//! Applicable conditions: which child milters apply to which mail. The built-in ones are
//! Rust; others are Rhai functions from the configuration. A condition decides per child
//! and per event through the engine's [`crate::engine::Conditions`] hook, and may give a
//! child extra macros.
//!
//! No I/O: the conditions are built from [`ConditionInputs`] (the configuration makes them
//! from a `Config`), and the files they need (resolv.conf, Postfix's, trust lists) are read
//! through the [`FileReader`] in it.

pub mod builtin;
mod connect_gate;
mod definition;
#[cfg(test)]
mod dns_test_support;
mod dnsbl_lookup;
mod error;
mod files;
mod inputs;
pub mod script;
mod set;
mod settings;
mod shipped;

pub use connect_gate::{ConnectGate, DnsblVerdict};
pub use definition::{stopper_index, ScriptCondition, STOPPERS};
pub use dnsbl_lookup::{DnsblSetup, Lookup, LookupAction};
pub use error::{DnsError, DomainListError, EntryError, PatternError};
pub use files::{FileReader, MemoryFiles};
pub use inputs::{ConditionInputs, MilterConditions, OriginOf};
pub use script::ScriptFn;
pub use set::{ConditionError, ConditionSet, SessionCount};
pub use settings::{
    DnsblSettings, RemoteNetworkSettings, RestrictAccountsSettings, S25rSettings, StressSettings,
    TrustSettings, MAX_DNSBL_TIMEOUT,
};
pub use shipped::{builtin_name, ALIASES as BUILT_IN_ALIASES, CATALOG as BUILT_IN_CONDITIONS};
