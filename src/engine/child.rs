//! One child milter's connection within a session.

use std::time::Instant;

use super::stage::Stage;
use super::status::Status;
use crate::protocol::{Command, Deframer, Negotiation, MAX_DATA_SIZE};

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

/// A reply the engine waits for from a child.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiting {
    pub stage: Stage,
    pub deadline: Instant,
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
    pub waiting: Option<Waiting>,
    /// Takes part in the current message.
    pub in_message: bool,
    /// Has been sent MAIL and not yet an abort or a finished end-of-message.
    pub message_open: bool,
    pub accepted_recipients: u32,
    pub rejected_recipients: u32,
    pub started: Instant,
    pub last_stage: Stage,
    pub last_status: Option<Status>,
    /// The MTA keeps the leading space of header values but this child did not ask to.
    pub leadspace_conversion: bool,
    /// Its statistics line was written.
    pub reported: bool,
}

impl Child {
    pub fn new(tag: u64, now: Instant) -> Child {
        Child {
            tag,
            phase: Phase::Idle,
            // A child may send a body chunk of 65535 bytes; anything bigger is refused
            // before it is buffered (and could never be passed on to the MTA anyway).
            deframer: Deframer::new(MAX_DATA_SIZE),
            offer: Negotiation::default(),
            answer: Negotiation::default(),
            out: Vec::new(),
            waiting: None,
            in_message: false,
            message_open: false,
            accepted_recipients: 0,
            rejected_recipients: 0,
            started: now,
            last_stage: Stage::Start,
            last_status: None,
            leadspace_conversion: false,
            reported: false,
        }
    }

    /// Answers for the current session: negotiated, or failed (then by its fallback).
    pub fn takes_part(&self) -> bool {
        matches!(self.phase, Phase::Ready | Phase::Failed)
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Negotiating | Phase::Ready)
    }

    /// It asked not to get this event.
    pub fn declines(&self, stage: Stage) -> bool {
        let step = stage.no_event_step();
        !step.is_empty() && self.answer.steps.contains(step)
    }

    /// It asked not to answer this event.
    pub fn does_not_reply(&self, stage: Stage) -> bool {
        let step = stage.no_reply_step();
        !step.is_empty() && self.answer.steps.contains(step)
    }

    pub fn send(&mut self, command: &Command) {
        command.encode(&mut self.out);
    }

    pub fn start_message(&mut self) {
        self.in_message = true;
        self.message_open = false;
        self.accepted_recipients = 0;
        self.rejected_recipients = 0;
    }
}
