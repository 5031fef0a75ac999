//! The command loop: MTA commands one at a time, each finished before the next starts.

use super::*;

impl Session {
    pub(super) fn drive(&mut self, now: Instant) {
        while !self.finished {
            if self.op.is_some() {
                if !self.try_complete(now) {
                    return;
                }
                continue;
            }
            let Some(command) = self.mta_queue.pop_front() else { return };
            self.start_command(command, now);
        }
    }

    pub(super) fn start_command(&mut self, command: Command, now: Instant) {
        if self.mta_offer.is_none() && !matches!(command, Command::Negotiate(_)) {
            return self.mta_failure(
                &format!("the MTA sent {} before the option negotiation", command.name()),
                now,
            );
        }
        match command {
            Command::Negotiate(offer) => self.start_negotiation(offer, now),
            Command::DefineMacros { stage, macros } => {
                // The stage updated last goes to the end: conditions look macros up
                // newest first.
                self.macros.retain(|(s, _)| *s != stage);
                self.macros.push((stage, macros));
            }
            Command::Connect { .. }
            | Command::Helo { .. }
            | Command::EnvelopeFrom { .. }
            | Command::EnvelopeRecipient { .. }
            | Command::Data
            | Command::Unknown { .. } => {
                if self.any_negotiated {
                    self.start_envelope(command, None, now)
                } else {
                    self.answer_unfiltered(envelope_stage(&command))
                }
            }
            Command::Header { .. }
            | Command::EndOfHeader
            | Command::Body { .. }
            | Command::EndOfMessage { .. } => {
                if self.any_negotiated {
                    self.start_message_command(command, now)
                } else {
                    self.answer_unfiltered(message_stage(&command))
                }
            }
            Command::Abort => {
                self.last_stage = Stage::Abort;
                self.untold = None;
                self.end_message();
            }
            Command::Quit => {
                self.last_stage = Stage::Quit;
                self.finish(now);
            }
            Command::QuitNewConnection => self.restart(now),
        }
    }

    pub(super) fn try_complete(&mut self, now: Instant) -> bool {
        match self.op.take() {
            None => true,
            Some(Op::Negotiate) => {
                if self
                    .children
                    .iter()
                    .any(|c| matches!(c.phase, Phase::Connecting | Phase::Negotiating))
                {
                    self.op = Some(Op::Negotiate);
                    return false;
                }
                self.finish_negotiation();
                true
            }
            Some(Op::Envelope(op)) => {
                if op.eligible.iter().any(|&i| self.children[i].waiting.is_some()) {
                    self.op = Some(Op::Envelope(op));
                    return false;
                }
                self.finish_envelope(op);
                true
            }
            Some(Op::Message { stage }) => {
                let progress = self.advance_chain(now);
                self.finish_message_command(stage, progress)
            }
        }
    }
}
