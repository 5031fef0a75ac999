//! The chain head's replies: its verdicts, its modifications, and the final answer.

use std::time::Instant;

use super::message::{Chain, ChainProgress, Cursor};
use super::phase::{Mail, MessageRun, Phase};
use super::Session;
use crate::engine::body::Body;
use crate::engine::timers::Owner;
use crate::engine::{statistics, Stage, Status, Verdict};
use crate::protocol::{Reply, Steps};

impl Session {
    /// Child `i` replied while a message command goes through the chain.
    pub(super) fn on_message_reply(
        &mut self,
        run: &mut MessageRun,
        i: usize,
        reply: Reply,
        now: Instant,
    ) {
        let Some(awaited) = self.timers.awaited(i) else {
            let reason = format!("sent {} without being asked", reply.name());
            return self.fail_in_message(run, i, &reason, now);
        };
        if reply.is_modification() {
            if awaited != Stage::EndOfMessage {
                let reason = format!(
                    "sent {} in answer to {}; modifications belong to end-of-message",
                    reply.name(),
                    awaited.name()
                );
                return self.fail_in_message(run, i, &reason, now);
            }
            return self.take_modification(run, i, reply, now);
        }
        match self.child_verdict(i, &reply) {
            Ok(Some(verdict)) => {
                self.child_answered(i, now);
                let in_step = self.next_pipelined(i, awaited, &verdict);
                self.message_verdict(run, i, awaited, verdict);
                if !in_step && run.chain.outcome.is_none() && run.chain.queue.front() == Some(&i) {
                    // Its verdict would keep it in the message (a skip at a header), but
                    // its connection is being replaced: it leaves the message.
                    self.head_leaves(&mut run.chain, i);
                }
            }
            Ok(None) => {
                let timeout = self.config.children[i].timeouts.for_reply(awaited);
                self.timers.postpone(Owner::Child(i), now + timeout);
                let to_mta = self.mta_out.len() + self.mta_queued;
                if self.mta_granted.version >= 6
                    && awaited == Stage::EndOfMessage
                    && to_mta < self.config.limits.pending_bytes
                {
                    // Keeps the MTA's own end-of-message timer from expiring meanwhile (an
                    // MTA that does not read what it has does not need more of it).
                    Reply::Progress.encode(&mut self.mta_out);
                }
            }
            Err(()) => {
                let reason = format!("sent {} in answer to {}", reply.name(), awaited.name());
                self.fail_in_message(run, i, &reason, now)
            }
        }
    }

    /// Child `i` fails while a message command goes through the chain: as the head, its
    /// fallback is its verdict on what it was fed, and its unfinished edits are dropped.
    fn fail_in_message(&mut self, run: &mut MessageRun, i: usize, reason: &str, now: Instant) {
        if let Some(awaited) = self.drop_failed_child(i, reason, now) {
            self.head_failed(run, i, awaited);
        }
    }

    /// Child `i` failed while awaited for its reply to `awaited`: if it is the head, its
    /// fallback is its verdict, and its unfinished edits are dropped.
    pub(super) fn head_failed(&mut self, run: &mut MessageRun, i: usize, awaited: Stage) {
        if run.chain.queue.front() == Some(&i) {
            run.chain.head_edits.clear();
            run.chain.head_edit_bytes = 0;
            run.chain.head_body = None;
            let verdict = self.fallback_verdict(i);
            self.message_verdict(run, i, awaited, verdict);
        }
    }

    fn take_modification(&mut self, run: &mut MessageRun, i: usize, reply: Reply, now: Instant) {
        let needed = reply.required_action();
        if !self.children[i].answer.actions.contains(needed) {
            // Only this edit goes: the MTA may not have granted its action (it would then
            // fail the session), and the child's other edits and verdict are sound.
            log::warn!(
                "[{}] {} sent {} without having negotiated the {needed} action; that \
                 modification is dropped, its others and its verdict stand",
                self.tag,
                self.config.children[i].name,
                reply.name()
            );
            return;
        }
        let reply =
            if self.children[i].leadspace_conversion { with_leading_space(reply) } else { reply };
        let name = self.config.children[i].name.clone();
        let tag = self.children[i].tag;
        match &reply {
            Reply::AddHeader { name: header, value } => {
                statistics::milter_header(tag, "add", header, value, &name)
            }
            Reply::InsertHeader { name: header, value, .. } => {
                statistics::milter_header(tag, "insert", header, value, &name)
            }
            Reply::ChangeHeader { name: header, value, .. } if !value.is_empty() => {
                statistics::milter_header(tag, "change", header, value, &name)
            }
            _ => {}
        }
        if self.config.children[i].evaluation_mode {
            log::info!("[{tag}] {name} (evaluation mode) would have sent {}", reply.name());
            return;
        }
        let MessageRun { message, chain } = run;
        match reply {
            Reply::ReplaceBody { chunk } => {
                let body = chain.head_body.get_or_insert_with(|| message.body.empty_like());
                if let Err(error) = body.append(&chunk) {
                    self.log_store_failure("the replaced body", &error);
                    chain.outcome = Some(self.manager_fallback());
                }
            }
            other => {
                let limits = self.config.limits;
                let bytes = chain.head_edit_bytes + modification_bytes(&other);
                let reason = if chain.head_edits.len() >= limits.modifications {
                    format!(
                        "sent more than {} modifications at end-of-message, the limit",
                        limits.modifications
                    )
                } else if bytes > limits.modification_bytes {
                    format!(
                        "sent more than {} bytes of modifications at end-of-message, the limit",
                        limits.modification_bytes
                    )
                } else {
                    chain.head_edit_bytes = bytes;
                    chain.head_edits.push(other);
                    return;
                };
                self.fail_in_message(run, i, &reason, now);
            }
        }
    }

    /// Child `i`, the head of the chain, gave `raw` for `stage`.
    pub(super) fn message_verdict(
        &mut self,
        run: &mut MessageRun,
        i: usize,
        stage: Stage,
        raw: Verdict,
    ) {
        self.children[i].last_status = Some(raw.status);
        // Where libmilter takes a quit-new-connection (see `Child::quit_nc_ready`).
        self.children[i].quit_nc_ready =
            stage == Stage::EndOfMessage && raw.status == Status::Continue;
        let verdict = self.obeyed(i, &raw);
        match verdict.status {
            Status::Continue | Status::Skip | Status::Accept if stage == Stage::EndOfMessage => {
                if raw.status.is_refusal() {
                    // An evaluation-mode refusal still ends the message for that child, as
                    // any refusal does: it is told so, like the head of an ended message.
                    self.leave_message(i);
                }
                self.finish_head(run, i, verdict.status)
            }
            Status::Skip if stage == Stage::Body => {
                let chain = &mut run.chain;
                let last_in_chain = chain.queue.len() == 1;
                let mta_skips = self.mta_granted.steps.contains(Steps::SKIP);
                chain.cursor.body_done = true;
                // The MTA may stop sending the body only when no later child needs it.
                chain.last = Verdict::of(if last_in_chain && mta_skips {
                    Status::Skip
                } else {
                    Status::Continue
                });
            }
            Status::Continue | Status::Skip => run.chain.last = Verdict::of(Status::Continue),
            Status::Accept => self.head_leaves(&mut run.chain, i),
            Status::TemporaryFailure | Status::Reject | Status::Discard => {
                run.chain.outcome = Some(verdict)
            }
        }
    }

    /// The head finished end-of-message: its modifications become part of the message the
    /// next child sees and of what the MTA will be told.
    fn finish_head(&mut self, run: &mut MessageRun, i: usize, status: Status) {
        let MessageRun { message, chain } = run;
        chain.head_edit_bytes = 0;
        for edit in std::mem::take(&mut chain.head_edits) {
            match edit {
                Reply::ChangeFrom { .. } => chain.change_from = Some(edit),
                Reply::Quarantine { .. } => chain.quarantine = Some(edit),
                // Deleting a header the message does not have is no change: the MTA is
                // not told (Sendmail would log a no-op delete for it).
                Reply::ChangeHeader { index, ref name, ref value }
                    if value.is_empty() && !message.headers.has_header(index, name) =>
                {
                    log::debug!(
                        "[{}] {} deleted {}[{index}], which the message does not have",
                        self.tag,
                        self.config.children[i].name,
                        String::from_utf8_lossy(name)
                    );
                }
                _ => {
                    if matches!(
                        edit,
                        Reply::AddHeader { .. }
                            | Reply::InsertHeader { .. }
                            | Reply::ChangeHeader { .. }
                    ) {
                        let _ = message.headers.apply(&edit);
                    }
                    chain.mta_edits.push(edit);
                }
            }
        }
        if let Some(body) = chain.head_body.take() {
            message.body = body;
            chain.body_replaced = true;
        }
        chain.finished.add(&Verdict::of(status));
        chain.head_stopped = false;
        chain.queue.pop_front();
        chain.cursor = Cursor::default();
        chain.last = Verdict::of(Status::Continue);
        let child = &mut self.children[i];
        child.message_open = false;
        child.in_message = false;
    }

    /// The head leaves the message early (accepted, was stopped, or its evaluation-mode
    /// refusal): the next child takes over from the start of the message.
    pub(super) fn head_leaves(&mut self, chain: &mut Chain, i: usize) {
        chain.head_stopped = false;
        chain.head_edits.clear();
        chain.head_edit_bytes = 0;
        chain.head_body = None;
        chain.finished.add(&Verdict::of(Status::Accept));
        chain.queue.pop_front();
        chain.cursor = Cursor::default();
        chain.last = Verdict::of(Status::Continue);
        self.leave_message(i);
    }

    /// Answers the MTA's message command once the chain allows: the next phase, and
    /// whether the next command may start.
    pub(super) fn finish_message_command(
        &mut self,
        stage: Stage,
        mut run: Box<MessageRun>,
        progress: ChainProgress,
    ) -> (Phase, bool) {
        match progress {
            ChainProgress::Waiting => return (Phase::Message { stage, run }, false),
            ChainProgress::CaughtUp(verdict) => {
                self.reply_to_mta(stage, &verdict);
                return (Phase::Idle(Mail::Contents(run)), true);
            }
            ChainProgress::AllAccepted => {
                self.end_message_with(stage, &Verdict::of(Status::Accept))
            }
            ChainProgress::Ended(verdict) => self.end_message_with(stage, &verdict),
            ChainProgress::Final => {
                self.send_final_answer(&mut run);
                self.end_message();
            }
        }
        (Phase::Idle(Mail::Closed), true)
    }

    /// After the last child: the modifications, then the verdict. A replaced body goes
    /// between them a batch at a time (`send_replaced_body`), not encoded whole.
    fn send_final_answer(&mut self, run: &mut MessageRun) {
        let tag = self.tag;
        let MessageRun { message, chain } = run;
        for edit in &chain.mta_edits {
            match edit {
                Reply::AddHeader { name, value } => {
                    statistics::session_header(tag, "add", name, value)
                }
                Reply::InsertHeader { name, value, .. } => {
                    statistics::session_header(tag, "insert", name, value)
                }
                Reply::ChangeHeader { name, value, .. } if !value.is_empty() => {
                    statistics::session_header(tag, "change", name, value)
                }
                _ => {}
            }
            edit.encode(&mut self.mta_out);
        }
        if let Some(change_from) = &chain.change_from {
            change_from.encode(&mut self.mta_out);
        }
        let verdict = match chain.finished.result() {
            Some(v) if v.status == Status::Accept => Verdict::of(Status::Accept),
            _ => Verdict::of(Status::Continue),
        };
        let body = chain.body_replaced.then(|| {
            let empty = message.body.empty_like();
            std::mem::replace(&mut message.body, empty)
        });
        self.replacement = Some(Box::new(Replacement {
            body,
            offset: 0,
            quarantine: chain.quarantine.take(),
            verdict,
        }));
        self.send_replaced_body();
    }

    /// Adds the next chunks of the replaced body to the MTA's output, as long as that is
    /// under `Limits::pending_bytes`, then the rest of the final answer. Whether it is all
    /// out (false: it goes on as the output drains).
    pub(super) fn send_replaced_body(&mut self) -> bool {
        let Some(mut replacement) = self.replacement.take() else { return true };
        let (tag, chunk_size, limit) =
            (self.tag, self.config.chunk_size, self.config.limits.pending_bytes);
        if let Some(body) = &mut replacement.body {
            loop {
                if self.mta_out.len() + self.mta_queued >= limit {
                    self.output_blocked = true;
                    self.replacement = Some(replacement);
                    return false;
                }
                let offset = replacement.offset;
                match body.chunk_at(offset, chunk_size) {
                    Ok(chunk) => {
                        replacement.offset += chunk.len() as u64;
                        Reply::ReplaceBody { chunk }.encode(&mut self.mta_out);
                        // An empty body is one empty chunk.
                        if replacement.offset >= body.len() {
                            break;
                        }
                    }
                    Err(error) => {
                        // Part of the new body may be out already: only a refusal keeps a
                        // cut body from being delivered.
                        let status = Status::from_fallback(self.config.fallback_status)
                            .max(Status::TemporaryFailure);
                        log::error!(
                            "[{tag}] cannot read the replaced body at byte {offset}: {error}; \
                             answering {}",
                            status.name()
                        );
                        self.reply_to_mta(Stage::EndOfMessage, &Verdict::of(status));
                        return true;
                    }
                }
            }
        }
        if let Some(quarantine) = &replacement.quarantine {
            statistics::quarantine(tag);
            quarantine.encode(&mut self.mta_out);
        }
        self.reply_to_mta(Stage::EndOfMessage, &replacement.verdict);
        true
    }
}

/// The end of a final answer still to go to the MTA: the replaced body from `offset`,
/// then the quarantine and the verdict.
pub(super) struct Replacement {
    body: Option<Body>,
    offset: u64,
    quarantine: Option<Reply>,
    verdict: Verdict,
}

/// A header edit from a child that gets values without their leading space, made to fit
/// the MTA's form (which keeps it).
fn with_leading_space(reply: Reply) -> Reply {
    let add = |value: Vec<u8>| {
        let mut spaced = Vec::with_capacity(value.len() + 1);
        spaced.push(b' ');
        spaced.extend(value);
        spaced
    };
    match reply {
        Reply::AddHeader { name, value } => Reply::AddHeader { name, value: add(value) },
        Reply::InsertHeader { index, name, value } => {
            Reply::InsertHeader { index, name, value: add(value) }
        }
        Reply::ChangeHeader { index, name, value } if !value.is_empty() => {
            Reply::ChangeHeader { index, name, value: add(value) }
        }
        other => other,
    }
}

/// What a header or envelope modification holds, as counted against
/// `Limits::modification_bytes`.
fn modification_bytes(reply: &Reply) -> usize {
    match reply {
        Reply::AddHeader { name, value }
        | Reply::InsertHeader { name, value, .. }
        | Reply::ChangeHeader { name, value, .. } => name.len() + value.len(),
        Reply::ChangeFrom { address, parameters }
        | Reply::AddRecipientWithParameters { address, parameters } => {
            address.len() + parameters.as_ref().map_or(0, Vec::len)
        }
        Reply::AddRecipient { address } | Reply::DeleteRecipient { address } => address.len(),
        Reply::Quarantine { reason } => reason.len(),
        _ => 0,
    }
}
