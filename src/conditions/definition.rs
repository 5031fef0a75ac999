//! An applicable condition defined by a Rhai file: its name, description and stoppers.

use std::fmt;

use super::script::ScriptFn;
use crate::engine::Event;

/// The nine points where a stopper can stop a child, as the configuration names them
/// (`define_connect_stopper`, ...), in the order of a session.
pub const STOPPERS: [&str; 9] = [
    "connect",
    "helo",
    "envelope_from",
    "envelope_recipient",
    "data",
    "header",
    "end_of_header",
    "body",
    "end_of_message",
];

/// The index in [`STOPPERS`] of the stopper that decides at `event`.
pub fn stopper_index(event: &Event<'_>) -> usize {
    match event {
        Event::Connect { .. } => 0,
        Event::Helo { .. } => 1,
        Event::EnvelopeFrom { .. } => 2,
        Event::EnvelopeRecipient { .. } => 3,
        Event::Data => 4,
        Event::Header { .. } => 5,
        Event::EndOfHeader => 6,
        Event::Body { .. } => 7,
        Event::EndOfMessage => 8,
    }
}

/// `define_applicable_condition("NAME", |condition| ...)`.
#[derive(Clone, PartialEq)]
pub struct ScriptCondition {
    pub name: String,
    pub description: Option<String>,
    /// Where it was first defined (`FILE:LINE`).
    pub origin: String,
    /// One optional stopper per entry of [`STOPPERS`].
    pub stoppers: [Option<ScriptFn>; 9],
}

impl ScriptCondition {
    pub fn new(name: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            origin: origin.into(),
            stoppers: Default::default(),
        }
    }
}

impl fmt::Debug for ScriptCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let defined: Vec<&str> = STOPPERS
            .iter()
            .zip(&self.stoppers)
            .filter(|(_, stopper)| stopper.is_some())
            .map(|(name, _)| *name)
            .collect();
        f.debug_struct("ScriptCondition")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("origin", &self.origin)
            .field("stoppers", &defined)
            .finish()
    }
}
