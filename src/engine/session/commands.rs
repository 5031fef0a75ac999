//! The command loop: MTA commands one at a time, each finished before the next starts.

use std::time::Instant;

use super::envelope::envelope_stage;
use super::message::{message_stage, ChainProgress};
use super::phase::{Mail, MessageRun, Phase};
use super::Session;
use crate::engine::child::Phase as ChildPhase;
use crate::engine::MacroList;
use crate::engine::Stage;
use crate::protocol::order::OutOfOrder;
use crate::protocol::Command;

impl Session {
    /// Works through the MTA's queued commands until one waits on children, the queue is
    /// empty, or the session is over.
    pub(super) fn drive(&mut self, now: Instant) {
        loop {
            let phase = self.take_phase();
            let (phase, more) = self.step(phase, now);
            self.phase = phase;
            if !more {
                return;
            }
        }
    }

    /// One step: completes the command under way if its answers are in, or starts the next
    /// command. The next phase, and whether another step may follow.
    fn step(&mut self, phase: Phase, now: Instant) -> (Phase, bool) {
        match phase {
            Phase::Finished => (phase, false),
            Phase::Negotiating { offer } => {
                let pending = self
                    .children
                    .iter()
                    .any(|c| matches!(c.phase, ChildPhase::Connecting | ChildPhase::Negotiating));
                if pending {
                    return (Phase::Negotiating { offer }, false);
                }
                (self.finish_negotiation(&offer), true)
            }
            Phase::Envelope { op, mail } => {
                if self.timers.any_awaited(op.eligible.iter().copied()) {
                    return (Phase::Envelope { op, mail }, false);
                }
                (self.finish_envelope(op, mail), true)
            }
            Phase::Message { stage, mut run } => {
                let progress = self.advance_chain(&mut run, now);
                if matches!(progress, ChainProgress::Waiting) && self.may_take_next(stage) {
                    return (self.take_next_message_command(run, now), true);
                }
                self.finish_message_command(stage, run, progress)
            }
            Phase::AwaitingOffer | Phase::Unfiltered | Phase::Idle(_) | Phase::ClientGone => {
                // A replaced body still going out comes before any later answer.
                if self.replacement.is_some() && !self.send_replaced_body() {
                    return (phase, false);
                }
                if self.mta_queue.is_empty() {
                    return (phase, false);
                }
                // A command may add to any peer's output: none starts while one is full.
                if self.output_full() {
                    self.output_blocked = true;
                    return (phase, false);
                }
                match self.mta_queue.pop_front() {
                    Some((command, size)) => {
                        self.mta_queue_bytes -= size;
                        (self.start_command(phase, command, now), true)
                    }
                    None => (phase, false),
                }
            }
        }
    }

    /// Whether the MTA's next message command may start while the chain waits on its
    /// head at `stage`: the MTA wants no answer there (headers, see `HEADERS_UNANSWERED`),
    /// so the head can be sent what follows ahead of its answers (`Session::may_pipeline`).
    fn may_take_next(&self, stage: Stage) -> bool {
        let no_reply = stage.no_reply_step();
        if no_reply.is_empty() || !self.mta_granted.steps.contains(no_reply) || self.output_full() {
            return false;
        }
        let mut queued = self.mta_queue.iter().map(|(command, _)| command);
        let next = match queued.next() {
            Some(Command::DefineMacros { .. }) => queued.next(),
            other => other,
        };
        matches!(
            next,
            Some(
                Command::Header { .. }
                    | Command::EndOfHeader
                    | Command::Body { .. }
                    | Command::EndOfMessage { .. }
            )
        )
    }

    /// Starts the MTA's next message command (and the macros before it) on the message
    /// under way (see `may_take_next`).
    fn take_next_message_command(&mut self, run: Box<MessageRun>, now: Instant) -> Phase {
        let mut phase = Phase::Idle(Mail::Contents(run));
        while let Some((command, size)) = self.mta_queue.pop_front() {
            self.mta_queue_bytes -= size;
            let macros = matches!(command, Command::DefineMacros { .. });
            phase = self.start_command(phase, command, now);
            if !macros || !matches!(phase, Phase::Idle(_)) {
                break;
            }
        }
        phase
    }

    fn start_command(&mut self, phase: Phase, command: Command, now: Instant) -> Phase {
        match self.mta_position.next(&command, &self.mta_granted) {
            Ok(next) => self.mta_position = next,
            Err(OutOfOrder::BeforeNegotiation) => {
                let reason =
                    format!("the MTA sent {} before the option negotiation", command.name());
                return self.mta_failure(&reason, now);
            }
            Err(OutOfOrder::NegotiatedTwice) => {
                return self.mta_failure("the MTA negotiated twice on one connection", now)
            }
            // Quit finishes the session: nothing after it is read.
            Err(OutOfOrder::AfterQuit) => return phase,
            Err(OutOfOrder::Misplaced { after, resume }) => {
                // MTAs differ here (one older than DATA goes from RCPT to the headers):
                // the command is handled as it comes.
                log::debug!(
                    "[{}] the MTA sent {} after {}, out of the protocol's order",
                    self.tag,
                    command.name(),
                    after.name()
                );
                self.mta_position = resume;
            }
        }
        match command {
            // The order above lets it through only first, while awaiting the offer.
            Command::Negotiate(offer) => self.start_negotiation(offer, now),
            Command::DefineMacros { stage, macros } => {
                // The stage updated last goes to the end: conditions look macros up
                // newest first.
                self.macros.retain(|(s, _)| *s != stage);
                self.macros.push((stage, macros));
                let stored = stored_macro_bytes(&self.macros);
                if stored > self.config.limits.macro_bytes {
                    let reason = format!(
                        "the MTA's macros hold {stored} bytes, past the limit of {} bytes \
                         per session",
                        self.config.limits.macro_bytes
                    );
                    return self.mta_failure(&reason, now);
                }
                phase
            }
            Command::Connect { .. }
            | Command::Helo { .. }
            | Command::EnvelopeFrom { .. }
            | Command::EnvelopeRecipient { .. }
            | Command::Data
            | Command::Unknown { .. } => match phase {
                Phase::Idle(mail) => self.start_envelope(mail, command, None, now),
                _ => self.answer_unfiltered(phase, envelope_stage(&command)),
            },
            Command::Header { .. }
            | Command::EndOfHeader
            | Command::Body { .. }
            | Command::EndOfMessage { .. } => match phase {
                Phase::Idle(mail) => self.start_message_command(mail, command, now),
                _ => self.answer_unfiltered(phase, message_stage(&command)),
            },
            Command::Abort => {
                self.last_stage = Stage::Abort;
                self.untold = None;
                self.end_message();
                match phase {
                    Phase::Idle(_) => Phase::Idle(Mail::Closed),
                    other => other,
                }
            }
            Command::Quit => {
                self.last_stage = Stage::Quit;
                self.finish(now)
            }
            Command::QuitNewConnection => self.restart(now),
        }
    }
}

/// The bytes of the macros a session keeps: names and values.
fn stored_macro_bytes(macros: &[(u8, MacroList)]) -> usize {
    macros
        .iter()
        .flat_map(|(_, list)| list.iter())
        .map(|(name, value)| name.len() + value.len())
        .sum()
}
