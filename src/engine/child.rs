//! One child milter's connection within a session.

use std::collections::VecDeque;
use std::time::Instant;

use super::stage::Stage;
use super::status::Status;
use super::tally::ChildTally;
use crate::protocol::{Command, Deframer, Negotiation, Steps, MAX_DATA_SIZE};

/// Where a child's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not asked for yet (before the MTA's negotiation).
    Idle,
    Connecting,
    /// Connected; the negotiation was sent and its answer is awaited.
    Negotiating,
    /// Negotiated and talking.
    Ready,
    /// Refused, timed out, closed or broke the protocol: it answers its fallback status
    /// to everything from now on, without a connection.
    Failed,
    /// Done for this session (it accepted at connect, was stopped, or the session ended).
    Gone,
}

#[derive(Debug)]
pub(super) struct Child {
    pub tag: u64,
    pub phase: Phase,
    pub deframer: Deframer,
    /// What it was offered and what it answered.
    pub offer: Negotiation,
    pub answer: Negotiation,
    /// Bytes to send, written in one go when the session is polled.
    pub out: Vec<u8>,
    /// Bytes the runtime still holds for it, as it last reported (`handle_child_queued`).
    pub queued: usize,
    /// Takes part in the current message.
    pub in_message: bool,
    /// Has been sent MAIL and not yet an abort or a finished end-of-message.
    pub message_open: bool,
    pub accepted_recipients: u32,
    pub rejected_recipients: u32,
    pub started: Instant,
    pub last_stage: Stage,
    pub last_status: Option<Status>,
    /// It failed through the manager's fault (no file descriptor left to connect to it),
    /// so manager.fallback_status counts too (see `Session::failed_status`).
    pub failed_by_manager: bool,
    /// The MTA keeps the leading space of header values but this child did not ask to.
    pub leadspace_conversion: bool,
    /// Commands it was sent at stages it negotiated no reply for, oldest first, that it
    /// might still answer anyway (see `take_stray`).
    pub unreplied: VecDeque<Stage>,
    /// The no-reply steps it was seen answering anyway: from then on those answers are
    /// expected, in order, and dropped.
    pub answers_anyway: Steps,
    /// Its first stray answer was logged (once per session).
    pub stray_logged: bool,
    /// Its statistics line was written.
    pub reported: bool,
    /// Its events for the metrics; kept across `K`.
    pub tally: ChildTally,
    /// Its last command was an end-of-message it answered with continue, so it would take
    /// a quit-new-connection (`K`): libmilter takes one only there (or after an unknown
    /// command) and silently drops it anywhere else, after which the connection is no use.
    pub quit_nc_ready: bool,
    /// On a kept connection, until its first answer: every byte sent to it, to be sent
    /// again on a new connection if the kept one turns out dead (`None` once it answered,
    /// or past [`REPLAY_LIMIT`]).
    pub first_use: Option<Vec<u8>>,
    /// A new connection replaces a kept one that failed; its negotiation answer must be
    /// this one, the answer the session was built on.
    pub reconnect: Option<Negotiation>,
    /// Commands sent behind the awaited one, whose answers are owed in order (see
    /// `Session::may_pipeline`).
    pub pipelined: VecDeque<Stage>,
    /// The last connect and helo it was sent, macros included: what a new connection is
    /// sent again when this one can no longer be trusted (`Session::resync_child`).
    pub replay_connect: Vec<u8>,
    pub replay_helo: Vec<u8>,
    /// Answers still to come on a new connection to commands sent again, dropped.
    pub swallow: usize,
}

/// The most bytes kept for sending again on a new connection (see `Child::first_use`):
/// a kept connection's first answer comes long before that (after connect).
pub(super) const REPLAY_LIMIT: usize = 256 * 1024;

impl Child {
    pub(super) fn new(tag: u64, now: Instant) -> Self {
        Self {
            tag,
            phase: Phase::Idle,
            deframer: Self::new_deframer(),
            offer: Negotiation::default(),
            answer: Negotiation::default(),
            out: Vec::new(),
            queued: 0,
            in_message: false,
            message_open: false,
            accepted_recipients: 0,
            rejected_recipients: 0,
            started: now,
            last_stage: Stage::Start,
            last_status: None,
            failed_by_manager: false,
            leadspace_conversion: false,
            unreplied: VecDeque::new(),
            answers_anyway: Steps::empty(),
            stray_logged: false,
            reported: false,
            tally: ChildTally::default(),
            quit_nc_ready: false,
            first_use: None,
            reconnect: None,
            pipelined: VecDeque::new(),
            replay_connect: Vec::new(),
            replay_helo: Vec::new(),
            swallow: 0,
        }
    }

    /// A child may send a body chunk of 65535 bytes; anything bigger is refused before it
    /// is buffered (and could never be passed on to the MTA anyway).
    pub(super) fn new_deframer() -> Deframer {
        Deframer::new(MAX_DATA_SIZE)
    }

    /// Answers for the current session: negotiated, or failed (then by its fallback).
    pub(super) fn takes_part(&self) -> bool {
        matches!(self.phase, Phase::Ready | Phase::Failed)
    }

    pub(super) fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Negotiating | Phase::Ready)
    }

    /// It asked not to get this event, or its protocol version has no such command (no
    /// DATA before version 4, no unknown command before 3), as Postfix treats it.
    pub(super) fn declines(&self, stage: Stage) -> bool {
        let step = stage.no_event_step();
        !step.is_empty()
            && (self.answer.steps.contains(step)
                || !Steps::for_version(self.answer.version).contains(step))
    }

    /// It asked not to answer this event.
    pub(super) fn does_not_reply(&self, stage: Stage) -> bool {
        let step = stage.no_reply_step();
        !step.is_empty() && self.answer.steps.contains(step)
    }

    /// A verdict that arrived answers one of the `unreplied` commands rather than the
    /// command awaited (if `awaited`, one is): returns that command's stage, or `None` for
    /// a regular answer.
    ///
    /// Replies come in order, and a command is only sent when no answer is awaited, so
    /// unreplied commands all precede the awaited one. With nothing awaited the verdict can
    /// only be a stray one. While a later command is awaited, an unreplied command of a
    /// step it was already seen answering owes its stray first; any other is taken as
    /// unanswered, as agreed (the well-behaved case, which nothing else tells apart).
    pub(super) fn take_stray(&mut self, awaited: bool) -> Option<Stage> {
        while let Some(stage) = self.unreplied.pop_front() {
            let step = stage.no_reply_step();
            if !awaited || self.answers_anyway.contains(step) {
                self.answers_anyway = self.answers_anyway.union(step);
                return Some(stage);
            }
        }
        None
    }

    /// `bytes` go out to it now.
    pub(super) fn note_sent(&mut self, bytes: &[u8]) {
        self.quit_nc_ready = false;
        if let Some(sent) = &mut self.first_use {
            if sent.len() + bytes.len() > REPLAY_LIMIT {
                self.first_use = None;
            } else {
                sent.extend_from_slice(bytes);
            }
        }
    }

    pub(super) fn send(&mut self, command: &Command) {
        command.encode(&mut self.out);
    }

    pub(super) fn start_message(&mut self) {
        self.in_message = true;
        self.message_open = false;
        self.accepted_recipients = 0;
        self.rejected_recipients = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child_with_no_reply_headers() -> Child {
        let mut child = Child::new(1, Instant::now());
        child.phase = Phase::Ready;
        child.answer = Negotiation::new(6, Default::default(), Steps::NR_HEADER);
        child
    }

    // Whether an answer is awaited is the session's timer table's to say.
    const NOTHING_AWAITED: bool = false;
    const AN_ANSWER_AWAITED: bool = true;

    #[test]
    fn a_verdict_with_nothing_awaited_is_a_stray_and_teaches_the_step() {
        let mut child = child_with_no_reply_headers();
        child.unreplied.extend([Stage::Header, Stage::Header]);
        assert_eq!(child.take_stray(NOTHING_AWAITED), Some(Stage::Header));
        assert_eq!(child.answers_anyway, Steps::NR_HEADER);
        // Known now: the second header's answer comes before end-of-header's.
        assert_eq!(child.take_stray(AN_ANSWER_AWAITED), Some(Stage::Header));
        assert_eq!(child.take_stray(AN_ANSWER_AWAITED), None, "then the awaited answer");
    }

    #[test]
    fn a_child_not_seen_answering_keeps_its_word_while_an_answer_is_awaited() {
        let mut child = child_with_no_reply_headers();
        child.unreplied.extend([Stage::Header, Stage::Header]);
        assert_eq!(child.take_stray(AN_ANSWER_AWAITED), None);
        assert!(child.unreplied.is_empty());
        assert_eq!(child.answers_anyway, Steps::empty());
    }
}
