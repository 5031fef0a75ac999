//! Where a session is with the MTA, as one value: what each phase needs lives in it, so a
//! handler is handed exactly the state its phase has.

use super::envelope::EnvelopeOp;
use super::message::{Chain, MessageState};
use crate::engine::Stage;
use crate::protocol::Negotiation;

/// The session's phase. Handlers take it and return the next one; while one runs, the
/// session holds [`Phase::Finished`] in its place (see `Session::take_phase`).
pub(super) enum Phase {
    /// Connected; the MTA's option offer has not come yet.
    AwaitingOffer,
    /// The children are being connected and offered the MTA's options.
    Negotiating { offer: Negotiation },
    /// No child could be negotiated with: the manager answers every command itself.
    Unfiltered,
    /// Negotiated, between commands.
    Idle(Mail),
    /// An envelope command is with the children.
    Envelope { op: EnvelopeOp, mail: Mail },
    /// A message command goes through the children one after the other.
    Message { stage: Stage, run: Box<MessageRun> },
    /// The SMTP client left while children were deciding: they are gone, and every
    /// further command gets `fallback_status_at_disconnect`.
    ClientGone,
    /// The session is over; nothing more is read.
    Finished,
}

impl Phase {
    /// Between MTA commands: the next one may start, and the MTA's idle timeout runs.
    pub(super) fn awaits_mta(&self) -> bool {
        matches!(self, Self::AwaitingOffer | Self::Unfiltered | Self::Idle(_) | Self::ClientGone)
    }
}

/// Where the MTA's current message is.
pub(super) enum Mail {
    /// None open: before MAIL, or the message ended (every child left it, the MTA was
    /// told, or it aborted).
    Closed,
    /// After MAIL: recipients, until DATA is through.
    Envelope,
    /// DATA is through; nothing of the message has come yet.
    Data,
    /// The message is coming, through the chain of children.
    Contents(Box<MessageRun>),
}

impl Mail {
    /// DATA was answered continue (or an emulated DATA was): the message may come.
    pub(super) fn data_through(self) -> Self {
        match self {
            Self::Envelope => Self::Data,
            other => other,
        }
    }
}

/// A message being filtered: what the MTA sent (as changed so far) and the chain of
/// children it goes through.
pub(super) struct MessageRun {
    pub(super) message: MessageState,
    pub(super) chain: Chain,
}
