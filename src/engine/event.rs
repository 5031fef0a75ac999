//! The hook where applicable conditions decide, per child and per event, whether the child
//! still applies. The engine asks before it sends each event to each child.

use super::child::{Child, Phase};
use super::stage::Stage;
use super::status::Status;
use super::EngineConfig;

/// An event as a condition sees it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Connect { host: &'a [u8], address: &'a crate::protocol::ConnectAddress },
    Helo { fqdn: &'a [u8] },
    EnvelopeFrom { address: &'a [u8] },
    EnvelopeRecipient { address: &'a [u8] },
    Data,
    Header { name: &'a [u8], value: &'a [u8] },
    EndOfHeader,
    Body { chunk: &'a [u8] },
    EndOfMessage,
}

impl Event<'_> {
    pub fn stage(&self) -> Stage {
        match self {
            Event::Connect { .. } => Stage::Connect,
            Event::Helo { .. } => Stage::Helo,
            Event::EnvelopeFrom { .. } => Stage::EnvelopeFrom,
            Event::EnvelopeRecipient { .. } => Stage::EnvelopeRecipient,
            Event::Data => Stage::Data,
            Event::Header { .. } => Stage::Header,
            Event::EndOfHeader => Stage::EndOfHeader,
            Event::Body { .. } => Stage::Body,
            Event::EndOfMessage => Stage::EndOfMessage,
        }
    }
}

/// Applicable conditions of one session.
pub trait Conditions {
    /// Whether `child` (its index in the configuration) stops applying at `event`. A
    /// stopped child counts as having accepted: at connect and helo it leaves the session,
    /// at a recipient it skips that recipient, elsewhere it leaves the message.
    fn stop(&mut self, child: usize, event: &Event<'_>, context: &Context<'_>) -> bool;

    /// Macros to send to `child` with the command of `stage`, besides the MTA's.
    fn extra_macros(
        &mut self,
        _child: usize,
        _stage: Stage,
        _context: &Context<'_>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
}

/// Macro names and values, as the MTA sent them.
pub type MacroList = Vec<(Vec<u8>, Vec<u8>)>;

/// What a condition can know about the session besides the event: the MTA's macros and
/// the other children's verdicts.
pub struct Context<'a> {
    /// The MTA's macros per command letter, the stage updated last at the end.
    pub(super) macros: &'a [(u8, MacroList)],
    pub(super) children: &'a [Child],
    pub(super) config: &'a EngineConfig,
}

/// Another child as a condition sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildView {
    /// Its last verdict in this session (its own, even in evaluation mode).
    pub last_status: Option<Status>,
    /// It takes no further part in the session (done, stopped or failed).
    pub quitted: bool,
    pub evaluation_mode: bool,
}

impl Context<'_> {
    /// The value the MTA gave a macro, by name with or without braces (`{auth_type}` or
    /// `auth_type`); the most recently sent value wins.
    pub fn macro_value(&self, name: &str) -> Option<&[u8]> {
        let bare = name.strip_prefix('{').and_then(|n| n.strip_suffix('}')).unwrap_or(name);
        let matches = |candidate: &[u8]| {
            let candidate = candidate
                .strip_prefix(b"{")
                .and_then(|c| c.strip_suffix(b"}"))
                .unwrap_or(candidate);
            candidate == bare.as_bytes()
        };
        self.macros.iter().rev().find_map(|(_, list)| {
            list.iter().rev().find(|(n, _)| matches(n)).map(|(_, value)| value.as_slice())
        })
    }

    /// Every macro the MTA sent so far, oldest first, with names as sent (braces kept).
    pub fn macros(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.macros
            .iter()
            .flat_map(|(_, list)| list.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    /// Whether the MTA is Postfix (its `v` macro says so).
    pub fn is_postfix(&self) -> bool {
        self.macro_value("v").is_some_and(|v| v.windows(7).any(|w| w == b"Postfix"))
    }

    /// Whether the SMTP client authenticated (`{auth_type}` or `{auth_authen}` is set).
    pub fn is_authenticated(&self) -> bool {
        ["auth_type", "auth_authen"]
            .iter()
            .any(|name| self.macro_value(name).is_some_and(|v| !v.is_empty()))
    }

    /// The child called `name`.
    pub fn child(&self, name: &str) -> Option<ChildView> {
        let index = self.config.children.iter().position(|c| c.name == name)?;
        let child = &self.children[index];
        Some(ChildView {
            last_status: child.last_status,
            quitted: matches!(child.phase, Phase::Gone | Phase::Failed),
            evaluation_mode: self.config.children[index].evaluation_mode,
        })
    }

    /// The names of every child of the session, in configuration order.
    pub fn child_names(&self) -> impl Iterator<Item = &str> {
        self.config.children.iter().map(|c| c.name.as_str())
    }
}

/// Every child applies everywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConditions;

impl Conditions for NoConditions {
    fn stop(&mut self, _child: usize, _event: &Event<'_>, _context: &Context<'_>) -> bool {
        false
    }
}
