//! The option negotiation packet (`O`), both ways, and the macro stages.

use super::code::CommandKind;
use super::flags::{Actions, Steps};
use super::wire::{put_cstr, DecodeError, Reader};

/// Protocol versions that exist (there is no 5).
pub const SUPPORTED_VERSIONS: [u32; 4] = [2, 3, 4, 6];
/// The newest protocol version.
pub const MAX_VERSION: u32 = 6;

/// The stages a milter can ask macros for in its negotiation reply (`SMFIM_*`). The wire
/// value is an index (the discriminant), not the command letter the `D` packet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MacroStage {
    Connect = 0,
    Helo = 1,
    EnvelopeFrom = 2,
    EnvelopeRecipient = 3,
    Data = 4,
    // Not in command order: end-of-message is 5, end-of-header 6.
    EndOfMessage = 5,
    EndOfHeader = 6,
}

impl MacroStage {
    pub const ALL: [Self; 7] = [
        Self::Connect,
        Self::Helo,
        Self::EnvelopeFrom,
        Self::EnvelopeRecipient,
        Self::Data,
        Self::EndOfMessage,
        Self::EndOfHeader,
    ];

    /// The `SMFIM_*` index.
    pub fn index(self) -> u32 {
        self as u32
    }

    pub fn from_index(index: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.index() == index)
    }

    /// The command whose macros these are.
    pub fn command(self) -> CommandKind {
        match self {
            Self::Connect => CommandKind::Connect,
            Self::Helo => CommandKind::Helo,
            Self::EnvelopeFrom => CommandKind::EnvelopeFrom,
            Self::EnvelopeRecipient => CommandKind::EnvelopeRecipient,
            Self::Data => CommandKind::Data,
            Self::EndOfMessage => CommandKind::EndOfMessage,
            Self::EndOfHeader => CommandKind::EndOfHeader,
        }
    }

    /// The command letter the `D` packet carries for this stage.
    pub fn command_code(self) -> u8 {
        self.command().byte()
    }

    pub fn name(self) -> &'static str {
        self.command().name()
    }
}

/// One side's offer or answer in the option negotiation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiation {
    pub version: u32,
    pub actions: Actions,
    pub steps: Steps,
    /// Macro lists a milter asks for, per stage (only in a milter's reply, and only
    /// with the set-symbol-list action). The names are space-separated as on the wire.
    pub macro_requests: Vec<(MacroRequestStage, Vec<u8>)>,
}

/// A stage index in a symbol-list request: known stages by name, others kept as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacroRequestStage {
    Known(MacroStage),
    Other(u32),
}

impl MacroRequestStage {
    pub fn from_index(index: u32) -> Self {
        MacroStage::from_index(index).map_or(Self::Other(index), MacroRequestStage::Known)
    }

    pub fn index(self) -> u32 {
        match self {
            Self::Known(stage) => stage.index(),
            Self::Other(index) => index,
        }
    }
}

impl Negotiation {
    pub fn new(version: u32, actions: Actions, steps: Steps) -> Self {
        Self { version, actions, steps, macro_requests: Vec::new() }
    }

    /// What a protocol-6 MTA offers: every action and every step.
    pub fn mta_default() -> Self {
        Self::new(MAX_VERSION, Actions::ALL, Steps::ALL)
    }

    pub(crate) fn decode(
        reader: &mut Reader<'_>,
        allow_requests: bool,
    ) -> Result<Self, DecodeError> {
        let version = reader.u32("version")?;
        let actions = Actions::from_bits_retain(reader.u32("actions")?);
        let steps = Steps::from_bits_retain(reader.u32("protocol steps")?);
        let mut macro_requests = Vec::new();
        if allow_requests {
            while !reader.is_empty() {
                let index = reader.u32("symbol list stage")?;
                let names = reader.cstr("symbol list")?;
                macro_requests.push((MacroRequestStage::from_index(index), names.to_vec()));
            }
        }
        Ok(Self { version, actions, steps, macro_requests })
    }

    /// The three numbers every negotiation packet starts with (all an MTA's offer has).
    pub(crate) fn encode_numbers(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.actions.bits().to_be_bytes());
        out.extend_from_slice(&self.steps.bits().to_be_bytes());
    }

    /// A milter's answer: the numbers, then its symbol lists.
    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) {
        self.encode_numbers(out);
        for (stage, names) in &self.macro_requests {
            out.extend_from_slice(&stage.index().to_be_bytes());
            put_cstr(out, names);
        }
    }

    /// The macro names requested for `stage`, if the milter sent a list for it.
    pub fn requested_macros(&self, stage: MacroStage) -> Option<Vec<&[u8]>> {
        self.macro_requests
            .iter()
            .find(|(s, _)| *s == MacroRequestStage::Known(stage))
            .map(|(_, names)| names.split(|&b| b == b' ').filter(|n| !n.is_empty()).collect())
    }
}
