//! Envelope commands (connect, helo, MAIL, RCPT, DATA, unknown): all children at once.

use std::time::Instant;

use super::message::message_stage;
use super::phase::{Mail, Phase};
use super::Session;
use crate::engine::child::Phase as ChildPhase;
use crate::engine::event::{Context, Event};
use crate::engine::timers::Owner;
use crate::engine::{Fold, Stage, Status, Verdict};
use crate::protocol::{socket_address_of, Command, Reply, Steps};

pub(super) struct EnvelopeOp {
    pub(super) stage: Stage,
    /// The children the command went to, in configuration order.
    pub(super) eligible: Vec<usize>,
    pub(super) verdicts: Vec<Option<Verdict>>,
    /// For an emulated DATA: the message command that is answered once DATA is through.
    pub(super) parked: Option<Command>,
}

impl Session {
    /// Sends an envelope command to every child that takes part; `parked` is the message
    /// command an emulated DATA is for.
    pub(super) fn start_envelope(
        &mut self,
        mut mail: Mail,
        command: Command,
        parked: Option<Command>,
        now: Instant,
    ) -> Phase {
        let stage = envelope_stage(&command);
        self.last_stage = stage;
        if let Command::Connect { address, .. } = &command {
            self.client = socket_address_of(address);
        }
        if stage == Stage::EnvelopeFrom {
            self.end_message();
            self.untold = None;
            mail = Mail::Envelope;
            for child in self.children.iter_mut().filter(|c| c.takes_part()) {
                child.start_message();
            }
        }
        if matches!(stage, Stage::EnvelopeRecipient | Stage::Data) && matches!(mail, Mail::Closed) {
            // Every child already left this message (the MTA was told so), or the MTA
            // skipped MAIL: nobody to ask.
            let verdict = self.empty_verdict(stage);
            self.reply_to_mta(stage, &verdict);
            return Phase::Idle(mail);
        }
        if stage == Stage::Data {
            // A child that refused every recipient it saw has nothing to filter.
            for i in 0..self.children.len() {
                let child = &self.children[i];
                if child.takes_part() && child.in_message && child.accepted_recipients == 0 {
                    self.leave_message(i);
                }
            }
        }
        let rejected_by_mta = stage == Stage::EnvelopeRecipient && self.recipient_rejected_by_mta();
        let eligible: Vec<usize> = (0..self.children.len())
            .filter(|&i| {
                let child = &self.children[i];
                child.takes_part()
                    && match stage {
                        Stage::EnvelopeRecipient | Stage::Data => child.in_message,
                        _ => true,
                    }
                    && (!rejected_by_mta || child.answer.steps.contains(Steps::RCPT_REJ))
            })
            .collect();
        let mut op = EnvelopeOp {
            stage,
            eligible: eligible.clone(),
            verdicts: vec![None; self.children.len()],
            parked,
        };
        for i in eligible {
            let child = &self.children[i];
            if child.phase == ChildPhase::Failed {
                let verdict = self.fallback_verdict(i);
                self.record_envelope_verdict(&mut op, i, verdict);
                continue;
            }
            let context =
                Context { macros: &self.macros, children: &self.children, config: &self.config };
            if stage != Stage::Unknown
                && self.conditions.stop(i, &envelope_event(&command), &context)
            {
                self.stop_at_envelope(&mut op, i);
                continue;
            }
            if child.declines(stage) {
                self.record_envelope_verdict(&mut op, i, Verdict::of(Status::Continue));
                continue;
            }
            let start = self.children[i].out.len();
            self.send_with_macros(i, stage, &command);
            self.record_replay(i, stage, start);
            let child = &mut self.children[i];
            child.last_stage = stage;
            if stage == Stage::EnvelopeFrom {
                child.message_open = true;
            }
            if child.does_not_reply(stage) {
                child.unreplied.push_back(stage);
                self.record_envelope_verdict(&mut op, i, Verdict::of(Status::Continue));
            } else {
                let reading = self.config.children[i].timeouts.reading;
                self.timers.await_reply(i, stage, now, now + reading);
            }
        }
        Phase::Envelope { op, mail }
    }

    /// A condition stopped child `i`: it counts as having accepted, except at a recipient,
    /// where only that recipient is skipped for it.
    fn stop_at_envelope(&mut self, op: &mut EnvelopeOp, i: usize) {
        log::debug!(
            "[{}] {} stopped at {}",
            self.tag,
            self.config.children[i].name,
            op.stage.name()
        );
        match op.stage {
            Stage::Connect | Stage::Helo => {
                op.verdicts[i] = Some(Verdict::of(Status::Accept));
                self.children[i].last_status = Some(Status::Accept);
                self.quit_child(i);
            }
            Stage::EnvelopeFrom | Stage::Data => {
                op.verdicts[i] = Some(Verdict::of(Status::Accept));
                self.leave_message(i);
            }
            _ => {}
        }
    }

    /// Child `i`, awaited for the envelope command `op`, replied.
    pub(super) fn on_envelope_reply(
        &mut self,
        op: &mut EnvelopeOp,
        i: usize,
        reply: Reply,
        now: Instant,
    ) {
        match self.child_verdict(i, &reply) {
            Ok(Some(verdict)) => {
                self.child_answered(i, now);
                self.record_envelope_verdict(op, i, verdict);
            }
            Ok(None) => {
                let reading = self.config.children[i].timeouts.reading;
                self.timers.postpone(Owner::Child(i), now + reading);
            }
            Err(()) => {
                let stage = self.timers.awaited(i).unwrap_or(Stage::Start);
                let reason = format!("sent {} in answer to {}", reply.name(), stage.name());
                if self.drop_failed_child(i, &reason, now).is_some() {
                    let verdict = self.fallback_verdict(i);
                    self.record_envelope_verdict(op, i, verdict);
                }
            }
        }
    }

    /// Takes child `i`'s verdict at an envelope stage, with its effect on the child.
    pub(super) fn record_envelope_verdict(
        &mut self,
        op: &mut EnvelopeOp,
        i: usize,
        verdict: Verdict,
    ) {
        let status = verdict.status;
        self.children[i].last_status = Some(status);
        let done = status == Status::Accept || status.is_refusal();
        match op.stage {
            Stage::Connect | Stage::Helo if done => self.quit_child(i),
            Stage::EnvelopeFrom | Stage::Data if done => self.leave_message(i),
            Stage::EnvelopeRecipient => match status {
                Status::Accept | Status::Discard => self.leave_message(i),
                Status::Reject | Status::TemporaryFailure => {
                    self.children[i].rejected_recipients += 1
                }
                Status::Continue | Status::Skip => self.children[i].accepted_recipients += 1,
            },
            _ => {}
        }
        op.verdicts[i] = Some(verdict);
    }

    /// Every answer is in: the MTA gets their fold.
    pub(super) fn finish_envelope(&mut self, op: EnvelopeOp, mail: Mail) -> Phase {
        let stage = op.stage;
        let mut fold = Fold::default();
        for &i in &op.eligible {
            if let Some(verdict) = &op.verdicts[i] {
                fold.add(&self.obeyed(i, verdict));
            }
        }
        let mut verdict = fold.result().cloned().unwrap_or_else(|| self.empty_verdict(stage));
        if verdict.status == Status::Skip {
            verdict = Verdict::of(Status::Continue);
        }
        if let Some(parked) = op.parked {
            if verdict.status == Status::Continue {
                self.mta_queue.push_front((parked, 0));
                return Phase::Idle(mail.data_through());
            }
            self.end_message_with(message_stage(&parked), &verdict);
            return Phase::Idle(Mail::Closed);
        }
        let ends_message = match stage {
            Stage::EnvelopeFrom | Stage::Data => verdict.status != Status::Continue,
            Stage::EnvelopeRecipient => matches!(verdict.status, Status::Discard | Status::Accept),
            _ => false,
        };
        if ends_message {
            self.end_message_with(stage, &verdict);
            return Phase::Idle(Mail::Closed);
        }
        self.reply_to_mta(stage, &verdict);
        if stage == Stage::Data {
            return Phase::Idle(mail.data_through());
        }
        Phase::Idle(mail)
    }
}

pub(super) fn envelope_stage(command: &Command) -> Stage {
    match command {
        Command::Connect { .. } => Stage::Connect,
        Command::Helo { .. } => Stage::Helo,
        Command::EnvelopeFrom { .. } => Stage::EnvelopeFrom,
        Command::EnvelopeRecipient { .. } => Stage::EnvelopeRecipient,
        Command::Data => Stage::Data,
        _ => Stage::Unknown,
    }
}

fn envelope_event(command: &Command) -> Event<'_> {
    match command {
        Command::Connect { hostname, address } => Event::Connect { host: hostname, address },
        Command::Helo { fqdn } => Event::Helo { fqdn },
        Command::EnvelopeFrom { address, .. } => Event::EnvelopeFrom { address },
        Command::EnvelopeRecipient { address, .. } => Event::EnvelopeRecipient { address },
        _ => Event::Data,
    }
}
