//! Verdicts: from child replies, fallbacks, and what the MTA is told.

use super::phase::Phase;
use super::Session;
use crate::engine::child::Phase as ChildPhase;
use crate::engine::negotiate::HEADERS_UNANSWERED;
use crate::engine::{Fold, Stage, Status, Verdict};
use crate::protocol::Reply;

impl Session {
    /// Child `i`'s reply as a verdict (see [`reply_verdict`]), logging an invalid reply
    /// code, which counts as a plain reject.
    pub(super) fn child_verdict(&self, i: usize, reply: &Reply) -> Result<Option<Verdict>, ()> {
        Ok(reply_verdict(reply)?.map(|(verdict, problem)| {
            if let Some(problem) = problem {
                log::warn!(
                    "[{}] {} sent {problem}; taken as a plain reject",
                    self.tag,
                    self.config.children[i].name
                );
            }
            verdict
        }))
    }

    pub(super) fn fallback_verdict(&self, i: usize) -> Verdict {
        Verdict::of(self.failed_status(i))
    }

    /// What failed child `i` counts as: its `fallback_status`; when the manager failed it
    /// (out of file descriptors), the stricter of that and `manager.fallback_status`, as
    /// the manager cannot filter the session as configured, and a child meant to fail
    /// safe still does.
    pub(super) fn failed_status(&self, i: usize) -> Status {
        let own = Status::from_fallback(self.config.children[i].fallback_status);
        if self.children[i].failed_by_manager {
            own.max(Status::from_fallback(self.config.fallback_status))
        } else {
            own
        }
    }

    pub(super) fn manager_fallback(&self) -> Verdict {
        Verdict::of(Status::from_fallback(self.config.fallback_status))
    }

    /// The manager cannot store `what` (a body, a replaced body) and answers its fallback:
    /// an error the first time for each cause, a debug line for each message after.
    pub(super) fn log_store_failure(&self, what: &str, error: &std::io::Error) {
        let (tag, fallback) = (self.tag, self.config.fallback_status);
        let cause = error.to_string();
        if self.config.store_failures.first_time(&cause) {
            log::error!(
                "[{tag}] cannot store {what}: {cause}; every message this happens to gets \
                 manager.fallback_status ({fallback}) (logged once per cause)"
            );
        } else {
            log::debug!(
                "[{tag}] cannot store {what}: {cause} (logged before); answering {fallback}"
            );
        }
    }

    /// What the MTA may act on: an evaluation-mode child's refusal counts as accept.
    pub(super) fn obeyed(&self, i: usize, verdict: &Verdict) -> Verdict {
        if self.config.children[i].evaluation_mode && verdict.status.is_refusal() {
            Verdict::of(Status::Accept)
        } else {
            verdict.clone()
        }
    }

    /// No child could be negotiated with (or none is configured): the manager answers
    /// every command itself: with `manager.fallback_status`, or with the fallback of a
    /// failed child where that is stricter, so an unreachable child meant to fail safe
    /// (fallback reject or temporary-failure) never lets mail through unfiltered.
    /// After the client left (`Phase::ClientGone`), every command gets
    /// `fallback_status_at_disconnect`. The phase stays as it is.
    pub(super) fn answer_unfiltered(&mut self, phase: Phase, stage: Stage) -> Phase {
        self.last_stage = stage;
        if matches!(phase, Phase::ClientGone) {
            let status = Status::from_fallback(self.config.fallback_status_at_disconnect);
            self.reply_to_mta(stage, &Verdict::of(status));
            return phase;
        }
        let mut fold = Fold::default();
        fold.add(&self.manager_fallback());
        for i in 0..self.children.len() {
            if self.children[i].phase == ChildPhase::Failed {
                fold.add(&self.fallback_verdict(i));
            }
        }
        let verdict = fold.result().cloned().unwrap_or_else(|| self.manager_fallback());
        self.reply_to_mta(stage, &verdict);
        phase
    }

    /// The answer when no child gave one (the session has negotiated children).
    pub(super) fn empty_verdict(&self, stage: Stage) -> Verdict {
        if let Some(untold) = &self.untold {
            // The message ended with a refusal the MTA has not heard yet.
            return untold.clone();
        }
        match stage {
            // Children skipped this recipient or unknown command; the message goes on.
            Stage::EnvelopeRecipient | Stage::Unknown => Verdict::of(Status::Continue),
            _ => Verdict::of(Status::Accept),
        }
    }

    /// Writes the verdict for the MTA, unless it asked for no reply at this stage; whether
    /// it was written.
    pub(super) fn reply_to_mta(&mut self, stage: Stage, verdict: &Verdict) -> bool {
        self.last_status = Some(verdict.status);
        let no_reply = stage.no_reply_step();
        if !no_reply.is_empty() && self.mta_granted.steps.contains(no_reply) {
            // Where the manager chose to go unanswered (engine::negotiate), a refusal told
            // at the next reply is the plan; elsewhere the MTA hears it later than it asked.
            if verdict.status.is_refusal() && !HEADERS_UNANSWERED.contains(no_reply) {
                log::warn!(
                    "[{}] {} at {} cannot be told now: the MTA asked for no reply there",
                    self.tag,
                    verdict.status.name(),
                    stage.name()
                );
            }
            return false;
        }
        verdict.to_reply().encode(&mut self.mta_out);
        true
    }

    /// Tells the MTA the verdict that ends the message, and ends it. A refusal at a stage
    /// where the MTA asked for no reply is told at the message's next command that has a
    /// reply: answering that one accept would let a refused message through.
    pub(super) fn end_message_with(&mut self, stage: Stage, verdict: &Verdict) {
        if !self.reply_to_mta(stage, verdict) && verdict.status.is_refusal() {
            self.untold = Some(verdict.clone());
        }
        self.end_message();
    }
}

/// A reply as a verdict: `Ok(None)` for progress, `Err` for what is no verdict at all.
#[allow(clippy::type_complexity)]
pub(super) fn reply_verdict(reply: &Reply) -> Result<Option<(Verdict, Option<String>)>, ()> {
    let verdict = match reply {
        Reply::Progress => return Ok(None),
        Reply::Continue => Verdict::of(Status::Continue),
        Reply::Skip => Verdict::of(Status::Skip),
        Reply::Accept => Verdict::of(Status::Accept),
        Reply::Reject => Verdict::of(Status::Reject),
        Reply::TemporaryFailure | Reply::Shutdown | Reply::ConnectionFailure => {
            Verdict::of(Status::TemporaryFailure)
        }
        Reply::Discard => Verdict::of(Status::Discard),
        Reply::ReplyCode { text } => {
            let (verdict, problem) = Verdict::from_reply_code(text);
            return Ok(Some((verdict, problem)));
        }
        _ => return Err(()),
    };
    Ok(Some((verdict, None)))
}
