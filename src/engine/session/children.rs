//! The children's connections: their replies, failures, and leaving a message or the session.

use std::time::Instant;

use super::phase::Phase;
use super::verdicts::reply_verdict;
use super::{Output, Session};
use crate::engine::child::{Child, Phase as ChildPhase};
use crate::engine::event::{Conditions, Context, MacroList};
use crate::engine::{EngineConfig, Stage};
use crate::protocol::{Command, Reply, Steps};

/// The protocol version that brought quit-new-connection (Sendmail 8.14's libmilter).
const QUIT_NC_VERSION: u32 = 6;

impl Session {
    /// A reply from child `i`, given to the command it answers.
    pub(super) fn on_child_reply(&mut self, i: usize, reply: Reply, now: Instant) {
        if self.children[i].reconnect.is_some() {
            return self.on_renegotiation(i, reply, now);
        }
        if self.children[i].swallow > 0 {
            return self.swallow_replayed_answer(i, &reply);
        }
        if self.children[i].phase == ChildPhase::Negotiating {
            return self.on_negotiation_answer(i, reply, now);
        }
        if matches!(reply_verdict(&reply), Ok(Some(_))) {
            let awaited = self.timers.awaited(i).is_some();
            if let Some(stage) = self.children[i].take_stray(awaited) {
                return self.drop_stray_answer(i, stage, &reply);
            }
        }
        let awaited = self.timers.awaited(i).is_some();
        let mut phase = self.take_phase();
        match &mut phase {
            Phase::Envelope { op, .. } if awaited => self.on_envelope_reply(op, i, reply, now),
            Phase::Message { run, .. } => self.on_message_reply(run, i, reply, now),
            _ => {
                self.phase = phase;
                return self.fail_child(
                    i,
                    &format!("sent {} without being asked", reply.name()),
                    now,
                );
            }
        }
        self.phase = phase;
    }

    /// Child `i` answered a command it negotiated no reply for. libmilter drops such an
    /// answer on the milter's side; other implementations send it. It is read and dropped:
    /// the step counts as continue, as negotiated. Said once per session and child.
    fn drop_stray_answer(&mut self, i: usize, stage: Stage, reply: &Reply) {
        let name = &self.config.children[i].name;
        let child = &mut self.children[i];
        if child.stray_logged {
            log::debug!("[{}] {name} answered {} anyway; dropped", self.tag, stage.name());
            return;
        }
        child.stray_logged = true;
        log::warn!(
            "[{}] {name} answered {} ({}) although it negotiated {}; such answers are \
             dropped",
            self.tag,
            stage.name(),
            reply.name(),
            stage.no_reply_step()
        );
    }

    /// Child `i` cannot go on: from now on it answers its fallback status, also to the
    /// command under way if it was awaited there.
    pub(super) fn fail_child(&mut self, i: usize, reason: &str, now: Instant) {
        let Some(awaited) = self.drop_failed_child(i, reason, now) else { return };
        let mut phase = self.take_phase();
        match &mut phase {
            Phase::Envelope { op, .. } => {
                let verdict = self.fallback_verdict(i);
                self.record_envelope_verdict(op, i, verdict);
            }
            Phase::Message { run, .. } => self.head_failed(run, i, awaited),
            _ => {}
        }
        self.phase = phase;
    }

    /// Child `i` gave the answer it was awaited for: its deadline goes, and the time the
    /// answer took is tallied.
    pub(super) fn child_answered(&mut self, i: usize, now: Instant) {
        if let Some((stage, Some(took))) = self.timers.answered(i, now) {
            self.children[i].tally.record_answer(stage, took);
        }
    }

    /// Marks child `i` failed and closes its connection; the reply it was awaited for, if
    /// any, for the caller to answer with its fallback.
    pub(super) fn drop_failed_child(
        &mut self,
        i: usize,
        reason: &str,
        now: Instant,
    ) -> Option<Stage> {
        let status = self.failed_status(i);
        let why = if self.children[i].failed_by_manager {
            "the manager is out of file descriptors; the stricter of its fallback_status and \
             manager.fallback_status"
        } else {
            "its fallback_status"
        };
        log::warn!(
            "[{}] [children][error] {}: {reason}; counting it as {} ({why})",
            self.tag,
            self.config.children[i].name,
            status.name()
        );
        let was_connected = self.children[i].is_connected();
        self.children[i].tally.fallbacks += 1;
        let awaited = self.timers.clear_child(i);
        self.children[i].pipelined.clear();
        self.children[i].swallow = 0;
        self.children[i].out.clear();
        self.children[i].queued = 0;
        self.children[i].phase = ChildPhase::Failed;
        self.children[i].last_status = Some(status);
        if was_connected {
            self.actions.push_back(Output::CloseChild { child: i });
        }
        self.report_child_end(i, now);
        awaited
    }

    /// Child `i`'s kept connection died before its first answer: a new connection takes
    /// over, is offered the same negotiation, and is sent everything the kept one was; the
    /// MTA notices nothing. With `bad_packet` the kept connection is still open and is
    /// closed (otherwise the runtime reported it closed). False when this is not such a
    /// connection (or too much was sent to it to send again).
    pub(super) fn connect_anew(&mut self, i: usize, reason: &str, bad_packet: bool) -> bool {
        let child = &mut self.children[i];
        let Some(sent) = child.first_use.take() else { return false };
        log::info!(
            "[{}] {}: a kept connection {reason} before its first answer; connecting anew",
            self.tag,
            self.config.children[i].name
        );
        self.replace_connection(i, &sent, bad_packet);
        true
    }

    /// Child `i` goes on over a new connection: offered the negotiation it was made (the
    /// answer must be the one the session was built on, `Child::reconnect`), then sent
    /// `replay` and what was still to be sent. With `close_old` the old connection is
    /// closed (otherwise the runtime reported it closed).
    pub(super) fn replace_connection(&mut self, i: usize, replay: &[u8], close_old: bool) {
        let child = &mut self.children[i];
        let mut out = Vec::with_capacity(replay.len() + child.out.len() + 32);
        Command::Negotiate(child.offer.clone()).encode(&mut out);
        out.extend_from_slice(replay);
        out.extend_from_slice(&child.out);
        child.out = out;
        child.deframer = Child::new_deframer();
        child.queued = 0;
        child.reconnect = Some(child.answer.clone());
        child.tally.reconnections += 1;
        if close_old {
            self.actions.push_back(Output::CloseChild { child: i });
        }
        self.actions.push_back(Output::Connect { child: i, reuse: None });
    }

    /// Whether child `i`'s connection may be kept for another session: reuse is on for
    /// it, and it is in the one state where it takes `K`: it answered an end-of-message
    /// with continue, has been sent nothing since, and owes nothing. And it asked for
    /// CONNECT: a milter drops its per-connection state at `K` and builds it again at the
    /// next CONNECT (pymilter does so only there), which a child that declined CONNECT
    /// would never get. And it speaks protocol 6, which brought `K`.
    fn may_keep(&self, i: usize) -> bool {
        let child = &self.children[i];
        self.config.children[i].reuse.is_some()
            && child.phase == ChildPhase::Ready
            && child.answer.version >= QUIT_NC_VERSION
            && !child.answer.steps.contains(Steps::NO_CONNECT)
            && child.quit_nc_ready
            && child.reconnect.is_none()
            && child.swallow == 0
            && child.pipelined.is_empty()
            && child.out.is_empty()
            && !child.message_open
            && child.unreplied.is_empty()
            && child.deframer.buffered() == 0
            && self.timers.awaited(i).is_none()
    }

    /// Child `i` is done for this session (it accepted or refused at connect or helo, was
    /// stopped there, or the session ends). A message it is in is aborted first, so it
    /// hears the same whether the MTA quits, starts over (`K`) or closes. A connection fit
    /// for another session is ended with `K` and kept.
    pub(super) fn quit_child(&mut self, i: usize) {
        // Kept under the encoded offer it was made (see `Session::reuse_key`).
        let kept_under = self.may_keep(i).then(|| self.reuse_key.clone()).flatten();
        let child = &mut self.children[i];
        if let Some(key) = kept_under {
            child.send(&Command::QuitNewConnection);
            let bytes = std::mem::take(&mut child.out);
            self.actions.push_back(Output::ToChild { child: i, bytes });
            let mut memo = Vec::new();
            Reply::Negotiate(child.answer.clone()).encode(&mut memo);
            self.actions.push_back(Output::KeepChild { child: i, key, memo });
        } else if child.is_connected() {
            if child.message_open {
                child.send(&Command::Abort);
            }
            child.send(&Command::Quit);
            let bytes = std::mem::take(&mut child.out);
            self.actions.push_back(Output::ToChild { child: i, bytes });
            self.actions.push_back(Output::CloseChild { child: i });
        }
        // What the runtime still holds for it is flushed without the session.
        self.children[i].queued = 0;
        self.children[i].phase = ChildPhase::Gone;
        self.children[i].in_message = false;
        self.children[i].message_open = false;
        self.report_child_end(i, self.now);
    }

    /// Child `i` takes no further part in the current message.
    pub(super) fn leave_message(&mut self, i: usize) {
        let child = &mut self.children[i];
        if child.message_open && child.phase == ChildPhase::Ready {
            child.send(&Command::Abort);
        }
        child.message_open = false;
        child.in_message = false;
    }

    /// The message is over for everyone (refused, discarded, aborted by the MTA).
    pub(super) fn end_message(&mut self) {
        for i in 0..self.children.len() {
            if self.children[i].in_message || self.children[i].message_open {
                self.leave_message(i);
            }
        }
    }

    pub(super) fn send_with_macros(&mut self, i: usize, stage: Stage, command: &Command) {
        let out = stage_macros_to(
            self.conditions.as_mut(),
            &self.macros,
            &mut self.children,
            &self.config,
            i,
            stage,
        );
        command.encode(out);
    }

    pub(super) fn recipient_rejected_by_mta(&self) -> bool {
        self.macros.iter().any(|(stage, macros)| {
            *stage == b'R'
                && macros.iter().any(|(name, value)| {
                    (name == b"{rcpt_mailer}" || name == b"rcpt_mailer") && value == b"error"
                })
        })
    }
}

/// Appends to child `i`'s output the macros of `stage` (the MTA's, and any a condition
/// adds for this child) as one `D` frame, and returns that output for the command that
/// follows them. It takes the session's parts, not the session, so that a body chunk
/// borrowed from the stored message can be written after it.
pub(super) fn stage_macros_to<'a>(
    conditions: &mut dyn Conditions,
    macros: &[(u8, MacroList)],
    children: &'a mut [Child],
    config: &EngineConfig,
    i: usize,
    stage: Stage,
) -> &'a mut Vec<u8> {
    let extra = conditions.extra_macros(i, stage, &Context { macros, children, config });
    let out = &mut children[i].out;
    let Some(code) = stage.command_code() else { return out };
    let from_mta = macros.iter().find(|(s, _)| *s == code).map(|(_, m)| m);
    if from_mta.is_some() || !extra.is_empty() {
        let pairs = from_mta
            .into_iter()
            .flatten()
            .chain(&extra)
            .map(|(name, value)| (name.as_slice(), value.as_slice()));
        Command::encode_define_macros(out, code, pairs);
    }
    out
}
