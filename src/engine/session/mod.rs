//! One MTA session and its children: the state machine of the proxy.
//!
//! Here the struct and what the runtime calls; the session's [`Phase`] in `phase`; the
//! command loop in `commands`; one file each for the negotiation, envelope commands
//! (`envelope`), message commands through the chain (`message`, and `message_replies`
//! for the head's answers), the children's connections (`children`), verdicts, and the
//! end (`finishing`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::child::{Child, Phase as ChildPhase};
use super::event::{Conditions, Context, MacroList};
use super::stage::Stage;
use super::statistics;
use super::status::{Status, Verdict};
use super::timers::{MtaTimer, Owner, Timer, TimerTable};
use super::EngineConfig;
use crate::protocol::order::Position;
use crate::protocol::{Command, Deframer, Negotiation, PacketError, Reply};

mod children;
mod commands;
mod envelope;
mod finishing;
mod message;
mod message_replies;
mod negotiation;
mod phase;
mod pipeline;
mod verdicts;

use message_replies::Replacement;
use phase::Phase;

/// What the runtime must do for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the MTA (one write: a batch of packets).
    ToMta(Vec<u8>),
    /// Write these bytes to child number `child` (its index in the configuration).
    ToChild { child: usize, bytes: Vec<u8> },
    /// Open the connection to a child; report with `handle_child_connected`. With
    /// `reuse`, a connection to the same child address kept under that key
    /// ([`Output::KeepChild`]) may be given instead: report it with `handle_child_reused`.
    Connect { child: usize, reuse: Option<Vec<u8>> },
    /// Keep the connection to a child for a later session's `Connect` with the same
    /// `key`, with `memo` for `handle_child_reused`; its last bytes are sent first. A
    /// runtime that cannot keep it closes it, which the child takes well too.
    KeepChild { child: usize, key: Vec<u8>, memo: Vec<u8> },
    /// Close the connection to a child once what was sent to it is written.
    CloseChild { child: usize },
    /// Acknowledge at once what the child sent: it owes more of the answer awaited, and a
    /// child writing with Nagle on holds its next packet until that ACK (up to 40 ms).
    AcknowledgeChild { child: usize },
    /// Close the MTA's connection once what was sent to it is written.
    CloseMta,
}

/// What a session holds waiting, in bytes (see [`Session::pending_bytes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingBytes {
    /// Received from the MTA and not yet handled: a partial frame, and whole commands
    /// waiting for the one under way.
    pub mta_input: usize,
    /// For the MTA: not yet handed out, plus what the runtime reported it still holds.
    pub to_mta: usize,
    /// For the children, all together, counted the same way.
    pub to_children: usize,
}

/// The largest output buffer kept for reuse (see `Session::reclaim`): room for any batch
/// but body chunks.
const SPARE_BUFFER_MAX: usize = 4096;

/// A frame's length field and command code.
const FRAME_HEADER: usize = 5;

/// Why a child's connection could not be opened, as the runtime tells it.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The child could not be reached: refused, no socket, no permission...
    Unreachable(io::Error),
    /// The manager had no file descriptor left for the socket: its failure, not the
    /// child's (it counts as `manager.fallback_status` too).
    OutOfDescriptors(io::Error),
}

/// One MTA connection and the connections to its children.
pub struct Session {
    config: Arc<EngineConfig>,
    conditions: Box<dyn Conditions>,
    tag: u64,
    started: Instant,
    mta_deframer: Deframer,
    mta_out: Vec<u8>,
    /// Output buffers given back by the runtime (`reclaim`), reused for the next batches.
    spare_buffers: Vec<Vec<u8>>,
    /// The MTA's commands decoded and waiting, with the bytes each took on the wire.
    mta_queue: VecDeque<(Command, usize)>,
    /// The sum of those sizes.
    mta_queue_bytes: usize,
    /// Bytes the runtime still holds for the MTA, as it last reported (`handle_mta_queued`).
    mta_queued: usize,
    /// Output stopped because a peer's output was full: it resumes once every output is
    /// below half of `Limits::pending_bytes`.
    output_blocked: bool,
    /// A replaced body going to the MTA a batch at a time, with the rest of its answer.
    replacement: Option<Box<Replacement>>,
    /// Where the MTA's commands are in the protocol's order.
    mta_position: Position,
    /// Every deadline: the MTA's (its first offer, then its silence between commands)
    /// and each child's (the reply it is awaited for).
    timers: TimerTable,
    /// What the MTA was granted (our answer to its offer).
    mta_granted: Negotiation,
    /// The children's offer, encoded: the key their connections are asked for and kept
    /// under (`None` when no child reuses connections).
    reuse_key: Option<Vec<u8>>,
    /// Where the session is with the MTA, with what that phase needs.
    phase: Phase,
    children: Vec<Child>,
    actions: VecDeque<Output>,
    /// The last macros the MTA sent, per command letter.
    macros: Vec<(u8, MacroList)>,
    /// A refusal that ended the current message at a stage where the MTA asked for no
    /// reply: the message's next command that has a reply tells it instead.
    untold: Option<Verdict>,
    last_stage: Stage,
    last_status: Option<Status>,
    /// `CloseMta` is due once what the MTA is owed has been handed out.
    close_mta: bool,
    /// The SMTP client's address and port, from the MTA's connect command.
    client: Option<SocketAddr>,
    /// The time of the event being handled.
    now: Instant,
}

impl Session {
    /// A session for a newly accepted MTA connection. `tag` numbers it in logs; its
    /// children get `tag + 1 + index`, so the caller advances its counter by
    /// `1 + config.children.len()`.
    pub fn new(
        config: Arc<EngineConfig>,
        conditions: Box<dyn Conditions>,
        tag: u64,
        now: Instant,
    ) -> Self {
        let children =
            (0..config.children.len()).map(|i| Child::new(tag + 1 + i as u64, now)).collect();
        let mut timers = TimerTable::new(config.children.len());
        timers.set(Timer::Mta(MtaTimer::FirstOffer), now + config.mta_negotiation_timeout);
        Self {
            config,
            conditions,
            tag,
            started: now,
            mta_deframer: Deframer::default(),
            mta_out: Vec::new(),
            spare_buffers: Vec::new(),
            mta_queue: VecDeque::new(),
            mta_queue_bytes: 0,
            mta_queued: 0,
            output_blocked: false,
            replacement: None,
            mta_position: Position::Start,
            timers,
            mta_granted: Negotiation::default(),
            reuse_key: None,
            phase: Phase::AwaitingOffer,
            children,
            actions: VecDeque::new(),
            macros: Vec::new(),
            untold: None,
            last_stage: Stage::Start,
            last_status: None,
            close_mta: false,
            client: None,
            now,
        }
    }

    pub fn tag(&self) -> u64 {
        self.tag
    }

    // ----- input -------------------------------------------------------------------------

    pub fn handle_mta_data(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        self.mta_deframer.push(bytes);
        loop {
            let command = match self.mta_deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(PacketError::from(error)),
                Some(Ok(frame)) => Command::decode(frame.code, frame.data)
                    .map(|command| (command, FRAME_HEADER + frame.data.len()))
                    .map_err(PacketError::from),
            };
            match command {
                Ok((command, size)) => {
                    self.mta_queue.push_back((command, size));
                    self.mta_queue_bytes += size;
                }
                Err(error) => {
                    self.phase =
                        self.mta_failure(&format!("bad packet from the MTA: {error}"), now);
                    return;
                }
            }
        }
        self.drive(now);
        // Bytes that are not yet an offer do not extend the negotiation timeout.
        let offer_awaited = self.mta_position == Position::Start
            && self.timers.get(Owner::Mta) == Some(Timer::Mta(MtaTimer::FirstOffer));
        if !offer_awaited {
            self.timers.set(Timer::Mta(MtaTimer::Idle), now + self.config.mta_idle_timeout);
        }
    }

    pub fn handle_mta_closed(&mut self, now: Instant) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        if !matches!(self.last_stage, Stage::Quit | Stage::Start) {
            log::info!(
                "[{}] the MTA closed the connection at {}",
                self.tag,
                self.last_stage.name()
            );
        }
        self.phase = self.finish(now);
    }

    pub fn handle_child_connected(
        &mut self,
        child: usize,
        result: Result<(), ConnectFailure>,
        now: Instant,
    ) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        let replacing = self.children[child].reconnect.is_some();
        if replacing {
            // The new connection for a dead kept one: its bytes are queued already.
            if result.is_ok() {
                return;
            }
            self.children[child].reconnect = None;
        } else if self.children[child].phase != ChildPhase::Connecting {
            return;
        }
        match result {
            Ok(()) => {
                let reading = self.config.children[child].timeouts.reading;
                let state = &mut self.children[child];
                state.phase = ChildPhase::Negotiating;
                self.timers.await_reply(child, Stage::Negotiate, now, now + reading);
                let offer = Command::Negotiate(state.offer.clone());
                state.send(&offer);
            }
            Err(failure) => {
                let (error, by_manager) = match failure {
                    ConnectFailure::Unreachable(error) => (error, false),
                    ConnectFailure::OutOfDescriptors(error) => (error, true),
                };
                self.children[child].failed_by_manager = by_manager;
                self.children[child].tally.connect_failures += 1;
                self.fail_child(child, &format!("cannot connect: {error}"), now);
            }
        }
        self.drive(now);
    }

    /// The runtime gave child `child` a kept connection for its `Connect`, with the memo
    /// of the `KeepChild` that kept it.
    pub fn handle_child_reused(&mut self, child: usize, memo: &[u8], now: Instant) {
        self.now = now;
        if self.is_finished() || self.children[child].phase != ChildPhase::Connecting {
            // Not wanted (any more): it goes, closed.
            self.actions.push_back(Output::CloseChild { child });
            return;
        }
        self.take_kept_connection(child, memo);
        self.drive(now);
    }

    pub fn handle_child_data(&mut self, child: usize, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.is_finished() || !self.children[child].is_connected() {
            return;
        }
        self.children[child].deframer.push(bytes);
        loop {
            if !self.children[child].is_connected() {
                break;
            }
            let reply = match self.children[child].deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(PacketError::from(error)),
                Some(Ok(frame)) => Reply::decode(frame.code, frame.data).map_err(PacketError::from),
            };
            match reply {
                Ok(reply) => {
                    self.children[child].first_use = None;
                    self.on_child_reply(child, reply, now)
                }
                Err(error) => {
                    let reason = format!("sent a bad packet: {error}");
                    if !self.connect_anew(child, &reason, true) {
                        self.fail_child(child, &reason, now)
                    }
                }
            }
        }
        self.drive(now);
        let state = &self.children[child];
        // Still waiting on it with nothing new to send it: its answer is not complete yet (a
        // modification or progress packet, or part of a packet, came first). After a
        // complete answer no early ACK is needed: the next request carries it.
        let awaited = self.timers.awaited(child).is_some();
        if state.is_connected() && awaited && state.out.is_empty() {
            self.actions.push_back(Output::AcknowledgeChild { child });
        }
    }

    pub fn handle_child_closed(&mut self, child: usize, error: Option<io::Error>, now: Instant) {
        self.now = now;
        if self.is_finished() || !self.children[child].is_connected() {
            return;
        }
        let reason = match error {
            Some(error) => format!("connection failed: {error}"),
            None => "closed the connection".to_string(),
        };
        if !self.connect_anew(child, &reason, false) {
            self.fail_child(child, &reason, now);
        }
        self.drive(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        // Children first; the MTA's deadline counts only in a phase that awaits it.
        for timer in self.timers.expired(now, true) {
            // Handling an earlier one may have cleared or moved it.
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            match timer {
                Timer::Child(i, stage) => {
                    let what = match self.children[i].phase {
                        ChildPhase::Connecting => "connecting".to_string(),
                        _ => format!("the reply to {}", stage.name()),
                    };
                    self.children[i].tally.timeouts += 1;
                    self.fail_child(i, &format!("timed out waiting for {what}"), now);
                }
                Timer::Mta(_) if !self.phase.awaits_mta() => {}
                Timer::Mta(kind) => {
                    match kind {
                        MtaTimer::FirstOffer => log::warn!(
                            "[{}] the MTA made no option offer within {:?} \
                             (manager.negotiation_timeout); closing the connection",
                            self.tag,
                            self.config.mta_negotiation_timeout
                        ),
                        MtaTimer::Idle => log::warn!(
                            "[{}] the MTA sent nothing for too long; closing the session",
                            self.tag
                        ),
                    }
                    self.close_mta = true;
                    self.phase = self.finish(now);
                    return;
                }
            }
        }
        self.drive(now);
    }

    /// The SMTP client's address and port as the MTA gave them at connect (none for a unix
    /// or unknown client).
    pub fn client_address(&self) -> Option<SocketAddr> {
        self.client
    }

    /// The value the MTA last gave a macro (`{daemon_addr}` or `daemon_addr`), for the
    /// connection checkers, which run outside any event.
    pub fn macro_value(&self, name: &str) -> Option<Vec<u8>> {
        let context =
            Context { macros: &self.macros, children: &self.children, config: &self.config };
        context.macro_value(name).map(<[u8]>::to_vec)
    }

    /// Whether an MTA command waits for children's answers: the time when a client that
    /// leaves keeps the MTA (and the children) busy for nothing.
    pub fn is_waiting_on_children(&self) -> bool {
        matches!(self.phase, Phase::Envelope { .. } | Phase::Message { .. })
            && self.timers.any_awaited(0..self.children.len())
    }

    /// The SMTP client is no longer connected to the MTA. While children are deciding,
    /// the MTA is answered `fallback_status_at_disconnect` at once and the children are
    /// told to quit; later commands get the same answer. Otherwise nothing happens: the
    /// MTA will end the session itself.
    pub fn handle_client_disconnected(&mut self, now: Instant) {
        self.now = now;
        if !self.is_waiting_on_children() {
            return;
        }
        let stage = match &self.phase {
            Phase::Envelope { op, .. } => op.stage,
            Phase::Message { stage, .. } => *stage,
            _ => return,
        };
        let status = Status::from_fallback(self.config.fallback_status_at_disconnect);
        log::info!(
            "[{}] the SMTP client disconnected while the children decided {}; answering {}",
            self.tag,
            stage.name(),
            status.name()
        );
        statistics::session_disconnected(self.tag, now - self.started);
        // The command's children and message are dropped with its phase.
        self.phase = Phase::ClientGone;
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
        }
        self.timers.clear_children();
        self.end_message_with(stage, &Verdict::of(status));
        self.drive(now);
    }

    /// The runtime holds `queued` bytes for the MTA, not yet written. The runtime reports
    /// it when it changed, right after a write (before the next `poll_output`), so the
    /// session knows the runtime's queues whenever it is polled; a runtime that never
    /// reports is taken to write everything at once.
    pub fn handle_mta_queued(&mut self, queued: usize, now: Instant) {
        self.mta_queued = queued;
        self.resume_output(now);
    }

    /// The runtime holds `queued` bytes for child `child`, not yet written.
    pub fn handle_child_queued(&mut self, child: usize, queued: usize, now: Instant) {
        if self.children[child].is_connected() {
            self.children[child].queued = queued;
        }
        self.resume_output(now);
    }

    /// Output stopped on a full peer starts again once every output is down to half the
    /// limit: the next batches are then large ones, not one chunk per write.
    fn resume_output(&mut self, now: Instant) {
        if self.output_blocked && !self.is_finished() && !self.output_above(self.half_limit()) {
            self.output_blocked = false;
            self.now = now;
            self.drive(now);
        }
    }

    /// What the session holds waiting: the runtime should keep each under
    /// `Limits::pending_bytes` (plus one read, or one command's output).
    pub fn pending_bytes(&self) -> PendingBytes {
        PendingBytes {
            mta_input: self.mta_input_pending(),
            to_mta: self.mta_out.len() + self.mta_queued,
            to_children: self.children.iter().map(|c| c.out.len() + c.queued).sum(),
        }
    }

    /// Whether the runtime should read the MTA's connection: false while the MTA's input
    /// waiting has reached `Limits::pending_bytes`. The runtime leaves further bytes in the
    /// socket (TCP slows the MTA down) and asks again after each event.
    pub fn wants_mta_data(&self) -> bool {
        self.mta_input_pending() < self.config.limits.pending_bytes
    }

    fn mta_input_pending(&self) -> usize {
        self.mta_deframer.buffered() + self.mta_queue_bytes
    }

    /// Some peer's output has reached the limit: no more is produced for now.
    fn output_full(&self) -> bool {
        self.output_above(self.config.limits.pending_bytes.saturating_sub(1))
    }

    fn output_above(&self, level: usize) -> bool {
        self.mta_out.len() + self.mta_queued > level
            || self.children.iter().any(|c| c.out.len() + c.queued > level)
    }

    fn half_limit(&self) -> usize {
        self.config.limits.pending_bytes / 2
    }

    // ----- output ------------------------------------------------------------------------

    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.actions.pop_front() {
            return Some(output);
        }
        for (i, child) in self.children.iter_mut().enumerate() {
            if !child.out.is_empty() {
                let spare = self.spare_buffers.pop().unwrap_or_default();
                let bytes = std::mem::replace(&mut child.out, spare);
                child.note_sent(&bytes);
                return Some(Output::ToChild { child: i, bytes });
            }
        }
        if !self.mta_out.is_empty() {
            let spare = self.spare_buffers.pop().unwrap_or_default();
            return Some(Output::ToMta(std::mem::replace(&mut self.mta_out, spare)));
        }
        if self.output_blocked && !self.is_finished() && !self.output_above(self.half_limit()) {
            // Everything is handed out, and the runtime wrote enough of it (it reports what
            // it could not write before the next poll): the next batch.
            self.output_blocked = false;
            self.drive(self.now);
            if !self.actions.is_empty()
                || !self.mta_out.is_empty()
                || self.children.iter().any(|c| !c.out.is_empty())
            {
                return self.poll_output();
            }
        }
        if self.close_mta {
            self.close_mta = false;
            return Some(Output::CloseMta);
        }
        None
    }

    /// A buffer of an earlier `ToMta` or `ToChild`, written and given back empty: the next
    /// batches are encoded into it instead of a new allocation. A few are kept, one per
    /// peer at most, and only small ones: a buffer that carried body chunks would hold
    /// their size for the rest of the session.
    pub fn reclaim(&mut self, mut spent: Vec<u8>) {
        if self.spare_buffers.len() <= self.children.len() && spent.capacity() <= SPARE_BUFFER_MAX {
            spent.clear();
            self.spare_buffers.push(spent);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        self.timers.next(self.phase.awaits_mta())
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// Child `i`'s final status as its statistics line names it ("pass", "accept", ...),
    /// once that line was written; `None` before, or for a child the session never used.
    pub fn child_final_status(&self, i: usize) -> Option<&'static str> {
        let child = self.children.get(i).filter(|child| child.reported)?;
        Some(child.last_status.map_or("pass", Status::statistics_name))
    }

    /// Child `i`'s events in this session, for the metrics.
    pub fn child_tally(&self, i: usize) -> Option<&super::ChildTally> {
        self.children.get(i).map(|child| &child.tally)
    }

    /// The stage the session is at (ended at, once finished) and its status as the
    /// statistics line names it ("pass" when no child decided anything).
    pub fn end_state(&self) -> (Stage, &'static str) {
        (self.last_stage, self.last_status.map_or("pass", Status::statistics_name))
    }

    /// The phase, for a handler that returns the next one; `Finished` stands in
    /// meanwhile, so the handler (and what it calls) must not look at `self.phase`.
    fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Finished)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pressure;
#[cfg(test)]
mod tests_reuse;
