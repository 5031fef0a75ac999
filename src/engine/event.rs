//! The hook where applicable conditions decide, per child and per event, whether the child
//! still applies. The engine asks before it sends each event to each child.

use super::stage::Stage;

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
    fn stop(&mut self, child: usize, event: &Event<'_>) -> bool;

    /// Macros to send to `child` with the command of `stage`, besides the MTA's.
    fn extra_macros(&mut self, _child: usize, _stage: Stage) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
}

/// Every child applies everywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConditions;

impl Conditions for NoConditions {
    fn stop(&mut self, _child: usize, _event: &Event<'_>) -> bool {
        false
    }
}
