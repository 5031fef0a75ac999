//! One MTA session and its children: the state machine of the proxy.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::body::Body;
use super::child::{Child, Phase, Waiting};
use super::event::{Conditions, Context, Event, MacroList};
use super::negotiate::{check_child_answer, merge_answers, offer_for_children, HEADERS_UNANSWERED};
use super::stage::Stage;
use super::statistics;
use super::status::{Fold, Status, Verdict};
use super::EngineConfig;
use crate::message::{Change, Message};
use crate::protocol::{Command, ConnectAddress, Deframer, Negotiation, Reply, Steps};

/// What the runtime must do for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the MTA (one write: a batch of packets).
    ToMta(Vec<u8>),
    /// Write these bytes to child number `child` (its index in the configuration).
    ToChild { child: usize, bytes: Vec<u8> },
    /// Open the connection to a child; report with `handle_child_connected`.
    Connect { child: usize },
    /// Close the connection to a child once what was sent to it is written.
    CloseChild { child: usize },
    /// Acknowledge at once what the child sent: it owes more of the answer awaited, and a
    /// child writing with Nagle on holds its next packet until that ACK (up to 40 ms).
    AcknowledgeChild { child: usize },
    /// Close the MTA's connection once what was sent to it is written.
    CloseMta,
}

/// The largest output buffer kept for reuse (see `Session::reclaim`): room for any batch
/// but body chunks.
const SPARE_BUFFER_MAX: usize = 4096;

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
    mta_queue: VecDeque<Command>,
    mta_deadline: Option<Instant>,
    /// The MTA's offer, once received.
    mta_offer: Option<Negotiation>,
    /// What the MTA was granted (our answer to its offer).
    mta_granted: Negotiation,
    any_negotiated: bool,
    children: Vec<Child>,
    actions: VecDeque<Output>,
    op: Option<Op>,
    /// The last macros the MTA sent, per command letter.
    macros: Vec<(u8, MacroList)>,
    message: Option<MessageState>,
    /// A refusal that ended the current message at a stage where the MTA asked for no
    /// reply: the message's next command that has a reply tells it instead.
    untold: Option<Verdict>,
    last_stage: Stage,
    last_status: Option<Status>,
    close_mta: bool,
    finished: bool,
    /// The SMTP client's address and port, from the MTA's connect command.
    client: Option<SocketAddr>,
    /// The SMTP client left while children were deciding: the children are gone and
    /// every further command gets `fallback_status_at_disconnect`.
    client_gone: bool,
    /// The time of the event being handled.
    now: Instant,
}

/// The MTA command being answered.
enum Op {
    Negotiate,
    Envelope(EnvelopeOp),
    Message { stage: Stage },
}

struct EnvelopeOp {
    stage: Stage,
    /// The children the command went to, in configuration order.
    eligible: Vec<usize>,
    verdicts: Vec<Option<Verdict>>,
    /// For an emulated DATA: the message command that is answered once DATA is through.
    parked: Option<Command>,
}

/// The current message as the children after the current one will see it.
struct MessageState {
    headers: Message,
    end_of_header: bool,
    body: Body,
    end_of_message: bool,
    data_done: bool,
    chain: Option<Chain>,
}

/// The message phase: children one after the other.
struct Chain {
    /// Children still to process the message; the first is the one being fed.
    queue: VecDeque<usize>,
    cursor: Cursor,
    /// Final verdicts of the children done with the message.
    finished: Fold,
    /// The head's verdict on the last thing it was fed.
    last: Verdict,
    /// A refusal that ends the message.
    outcome: Option<Verdict>,
    /// The head's modifications, kept until its final answer (a child that fails halfway
    /// through end-of-message must not leave half its changes behind).
    head_edits: Vec<Reply>,
    head_body: Option<Body>,
    /// Committed modifications for the MTA, in the children's order.
    mta_edits: Vec<Reply>,
    change_from: Option<Reply>,
    quarantine: Option<Reply>,
    body_replaced: bool,
}

/// What the chain's head has been fed of the stored message.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    /// Index in the message's header list (deleted ones included) of the next header to
    /// consider: headers are only appended while a chain runs, so it never moves back.
    headers: usize,
    end_of_header: bool,
    body_offset: u64,
    body_done: bool,
    end_of_message: bool,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    /// The header at this index of the message's header list.
    Header(usize),
    EndOfHeader,
    Body,
    EndOfMessage,
}

enum ChainProgress {
    Waiting,
    CaughtUp(Verdict),
    AllAccepted,
    Ended(Verdict),
    Final,
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
    ) -> Session {
        let children =
            (0..config.children.len()).map(|i| Child::new(tag + 1 + i as u64, now)).collect();
        let mta_deadline = Some(now + config.mta_idle_timeout);
        Session {
            config,
            conditions,
            tag,
            started: now,
            mta_deframer: Deframer::default(),
            mta_out: Vec::new(),
            spare_buffers: Vec::new(),
            mta_queue: VecDeque::new(),
            mta_deadline,
            mta_offer: None,
            mta_granted: Negotiation::default(),
            any_negotiated: false,
            children,
            actions: VecDeque::new(),
            op: None,
            macros: Vec::new(),
            message: None,
            untold: None,
            last_stage: Stage::Start,
            last_status: None,
            close_mta: false,
            finished: false,
            client: None,
            client_gone: false,
            now,
        }
    }

    pub fn tag(&self) -> u64 {
        self.tag
    }

    // ----- input -------------------------------------------------------------------------

    pub fn handle_mta_data(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.finished {
            return;
        }
        self.mta_deframer.push(bytes);
        loop {
            let command = match self.mta_deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(error.to_string()),
                Some(Ok(frame)) => {
                    Command::decode(frame.code, frame.data).map_err(|e| e.to_string())
                }
            };
            match command {
                Ok(command) => self.mta_queue.push_back(command),
                Err(error) => {
                    return self.mta_failure(&format!("bad packet from the MTA: {error}"), now)
                }
            }
        }
        self.mta_deadline = Some(now + self.config.mta_idle_timeout);
        self.drive(now);
    }

    pub fn handle_mta_closed(&mut self, now: Instant) {
        self.now = now;
        if self.finished {
            return;
        }
        if !matches!(self.last_stage, Stage::Quit | Stage::Start) {
            log::info!(
                "[{}] the MTA closed the connection at {}",
                self.tag,
                self.last_stage.name()
            );
        }
        self.finish(now);
    }

    pub fn handle_child_connected(
        &mut self,
        child: usize,
        result: Result<(), String>,
        now: Instant,
    ) {
        self.now = now;
        if self.finished || self.children[child].phase != Phase::Connecting {
            return;
        }
        match result {
            Ok(()) => {
                let reading = self.config.children[child].timeouts.reading;
                let state = &mut self.children[child];
                state.phase = Phase::Negotiating;
                state.waiting = Some(Waiting { stage: Stage::Negotiate, deadline: now + reading });
                let offer = Command::Negotiate(state.offer.clone());
                state.send(&offer);
            }
            Err(error) => self.fail_child(child, &format!("cannot connect: {error}"), now),
        }
        self.drive(now);
    }

    pub fn handle_child_data(&mut self, child: usize, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.finished || !self.children[child].is_connected() {
            return;
        }
        self.children[child].deframer.push(bytes);
        loop {
            if !self.children[child].is_connected() {
                break;
            }
            let reply = match self.children[child].deframer.next_frame() {
                None => break,
                Some(Err(error)) => Err(error.to_string()),
                Some(Ok(frame)) => Reply::decode(frame.code, frame.data).map_err(|e| e.to_string()),
            };
            match reply {
                Ok(reply) => self.on_child_reply(child, reply, now),
                Err(error) => self.fail_child(child, &format!("sent a bad packet: {error}"), now),
            }
        }
        self.drive(now);
        let state = &self.children[child];
        // Still waiting on it with nothing new to send it: its answer is not complete yet (a
        // modification or progress packet, or part of a packet, came first). After a
        // complete answer no early ACK is needed: the next request carries it.
        if state.is_connected() && state.waiting.is_some() && state.out.is_empty() {
            self.actions.push_back(Output::AcknowledgeChild { child });
        }
    }

    pub fn handle_child_closed(&mut self, child: usize, error: Option<String>, now: Instant) {
        self.now = now;
        if self.finished || !self.children[child].is_connected() {
            return;
        }
        let reason = match error {
            Some(error) => format!("connection failed: {error}"),
            None => "closed the connection".to_string(),
        };
        self.fail_child(child, &reason, now);
        self.drive(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.finished {
            return;
        }
        for i in 0..self.children.len() {
            let Some(waiting) = self.children[i].waiting else { continue };
            if waiting.deadline <= now {
                let what = match (self.children[i].phase, waiting.stage) {
                    (Phase::Connecting, _) => "connecting".to_string(),
                    (_, stage) => format!("the reply to {}", stage.name()),
                };
                self.fail_child(i, &format!("timed out waiting for {what}"), now);
            }
        }
        if self.op.is_none() && self.mta_deadline.is_some_and(|d| d <= now) {
            log::warn!("[{}] the MTA sent nothing for too long; closing the session", self.tag);
            self.close_mta = true;
            self.finish(now);
            return;
        }
        self.drive(now);
    }

    /// The SMTP client's address and port as the MTA gave them at connect (none for a unix
    /// or unknown client).
    pub fn client_address(&self) -> Option<SocketAddr> {
        self.client
    }

    /// Whether an MTA command waits for children's answers: the time when a client that
    /// leaves keeps the MTA (and the children) busy for nothing.
    pub fn is_waiting_on_children(&self) -> bool {
        !self.finished
            && matches!(self.op, Some(Op::Envelope(_)) | Some(Op::Message { .. }))
            && self.children.iter().any(|c| c.waiting.is_some())
    }

    /// The SMTP client is no longer connected to the MTA. While children are deciding,
    /// the MTA is answered `fallback_status_at_disconnect` at once and the children are
    /// told to quit; later commands get the same answer. Otherwise nothing happens: the
    /// MTA will end the session itself.
    pub fn handle_client_disconnected(&mut self, now: Instant) {
        self.now = now;
        if self.client_gone || !self.is_waiting_on_children() {
            return;
        }
        let stage = match &self.op {
            Some(Op::Envelope(op)) => op.stage,
            Some(Op::Message { stage }) => *stage,
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
        self.client_gone = true;
        self.op = None;
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
            self.children[i].waiting = None;
        }
        self.any_negotiated = false;
        self.end_message_with(stage, &Verdict::of(status));
        self.drive(now);
    }

    // ----- output ------------------------------------------------------------------------

    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.actions.pop_front() {
            return Some(output);
        }
        for (i, child) in self.children.iter_mut().enumerate() {
            if !child.out.is_empty() {
                let spare = self.spare_buffers.pop().unwrap_or_default();
                return Some(Output::ToChild {
                    child: i,
                    bytes: std::mem::replace(&mut child.out, spare),
                });
            }
        }
        if !self.mta_out.is_empty() {
            let spare = self.spare_buffers.pop().unwrap_or_default();
            return Some(Output::ToMta(std::mem::replace(&mut self.mta_out, spare)));
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
        if self.finished {
            return None;
        }
        let children = self.children.iter().filter_map(|c| c.waiting.map(|w| w.deadline));
        let mta = if self.op.is_none() { self.mta_deadline } else { None };
        children.chain(mta).min()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Child `i`'s final status as its statistics line names it ("pass", "accept", ...),
    /// once that line was written; `None` before, or for a child the session never used.
    pub fn child_final_status(&self, i: usize) -> Option<&'static str> {
        let child = self.children.get(i).filter(|child| child.reported)?;
        Some(child.last_status.map_or("pass", Status::statistics_name))
    }

    // ----- the command loop ----------------------------------------------------------------

    fn drive(&mut self, now: Instant) {
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

    fn start_command(&mut self, command: Command, now: Instant) {
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

    fn try_complete(&mut self, now: Instant) -> bool {
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

    // ----- negotiation ---------------------------------------------------------------------

    fn start_negotiation(&mut self, offer: Negotiation, now: Instant) {
        if self.mta_offer.is_some() {
            return self.mta_failure("the MTA negotiated twice on one connection", now);
        }
        if offer.version < 2 {
            return self
                .mta_failure(&format!("the MTA offered protocol version {}", offer.version), now);
        }
        self.last_stage = Stage::Negotiate;
        let child_offer = offer_for_children(&offer);
        self.mta_offer = Some(offer);
        for (i, child) in self.children.iter_mut().enumerate() {
            child.offer = child_offer.clone();
            child.phase = Phase::Connecting;
            child.started = now;
            child.last_stage = Stage::Negotiate;
            let timeout = self.config.children[i].timeouts.connection;
            child.waiting = Some(Waiting { stage: Stage::Negotiate, deadline: now + timeout });
            self.actions.push_back(Output::Connect { child: i });
        }
        self.op = Some(Op::Negotiate);
    }

    fn finish_negotiation(&mut self) {
        let offer = self.mta_offer.clone().unwrap_or_default();
        let answers: Vec<&Negotiation> =
            self.children.iter().filter(|c| c.phase == Phase::Ready).map(|c| &c.answer).collect();
        self.any_negotiated = !answers.is_empty();
        let merged = merge_answers(&offer, &answers);
        let leadspace = merged.steps.contains(Steps::HDR_LEADSPC);
        for child in &mut self.children {
            child.leadspace_conversion =
                leadspace && !child.answer.steps.contains(Steps::HDR_LEADSPC);
        }
        if !self.any_negotiated && !self.children.is_empty() {
            log::warn!(
                "[{}] no child milter could be negotiated with; the manager answers by the \
                 fallback statuses (manager.fallback_status {})",
                self.tag,
                self.config.fallback_status
            );
        }
        Reply::Negotiate(merged.clone()).encode(&mut self.mta_out);
        self.mta_granted = merged;
    }

    fn on_negotiation_answer(&mut self, i: usize, reply: Reply, now: Instant) {
        let answer = match reply {
            Reply::Negotiate(answer) => answer,
            other => {
                return self.fail_child(
                    i,
                    &format!("answered the negotiation with {}", other.name()),
                    now,
                )
            }
        };
        if let Err(error) = check_child_answer(&self.children[i].offer, &answer) {
            return self.fail_child(i, &error, now);
        }
        let child = &mut self.children[i];
        child.answer = answer;
        child.phase = Phase::Ready;
        child.waiting = None;
    }

    // ----- envelope commands: all children at once -----------------------------------------

    fn start_envelope(&mut self, command: Command, parked: Option<Command>, now: Instant) {
        let stage = envelope_stage(&command);
        self.last_stage = stage;
        if let Command::Connect { address, .. } = &command {
            self.client = crate::conditions::builtin::ip_of(address)
                .zip(connect_port(address))
                .map(|(ip, port)| SocketAddr::new(ip, port));
        }
        if stage == Stage::EnvelopeFrom {
            self.end_message();
            self.untold = None;
            self.message = Some(self.new_message());
            for child in self.children.iter_mut().filter(|c| c.takes_part()) {
                child.start_message();
            }
        }
        if matches!(stage, Stage::EnvelopeRecipient | Stage::Data) && self.message.is_none() {
            // Every child already left this message (the MTA was told so), or the MTA
            // skipped MAIL: nobody to ask.
            let verdict = self.empty_verdict(stage);
            self.reply_to_mta(stage, &verdict);
            return;
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
            if child.phase == Phase::Failed {
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
            self.send_with_macros(i, stage, &command);
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
                self.children[i].waiting = Some(Waiting { stage, deadline: now + reading });
            }
        }
        self.op = Some(Op::Envelope(op));
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

    fn on_envelope_reply(&mut self, i: usize, reply: Reply, now: Instant) {
        let Some(Op::Envelope(mut op)) = self.op.take() else {
            unreachable!("an envelope reply is only taken while an envelope command waits")
        };
        match self.child_verdict(i, &reply) {
            Ok(Some(verdict)) => {
                self.children[i].waiting = None;
                self.record_envelope_verdict(&mut op, i, verdict);
                self.op = Some(Op::Envelope(op));
            }
            Ok(None) => {
                let reading = self.config.children[i].timeouts.reading;
                if let Some(waiting) = &mut self.children[i].waiting {
                    waiting.deadline = now + reading;
                }
                self.op = Some(Op::Envelope(op));
            }
            Err(()) => {
                self.op = Some(Op::Envelope(op));
                let stage = self.children[i].waiting.map_or(Stage::Start, |w| w.stage);
                self.fail_child(
                    i,
                    &format!("sent {} in answer to {}", reply.name(), stage.name()),
                    now,
                );
            }
        }
    }

    /// Takes child `i`'s verdict at an envelope stage, with its effect on the child.
    fn record_envelope_verdict(&mut self, op: &mut EnvelopeOp, i: usize, verdict: Verdict) {
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

    fn finish_envelope(&mut self, op: EnvelopeOp) {
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
                if let Some(message) = &mut self.message {
                    message.data_done = true;
                }
                self.mta_queue.push_front(parked);
            } else {
                self.end_message_with(message_stage(&parked), &verdict);
            }
            return;
        }
        let ends_message = match stage {
            Stage::EnvelopeFrom | Stage::Data => verdict.status != Status::Continue,
            Stage::EnvelopeRecipient => matches!(verdict.status, Status::Discard | Status::Accept),
            _ => false,
        };
        if ends_message {
            return self.end_message_with(stage, &verdict);
        }
        self.reply_to_mta(stage, &verdict);
        if stage == Stage::Data {
            if let Some(message) = &mut self.message {
                message.data_done = true;
            }
        }
    }

    // ----- message commands: one child after the other ---------------------------------------

    fn start_message_command(&mut self, command: Command, now: Instant) {
        let stage = message_stage(&command);
        self.last_stage = stage;
        let Some(message) = &mut self.message else {
            let verdict = self.empty_verdict(stage);
            self.reply_to_mta(stage, &verdict);
            return;
        };
        if !message.data_done {
            // The MTA went from RCPT straight to the message (an old protocol version or
            // DATA not negotiated): the children get DATA first, as they expect it.
            return self.start_envelope(Command::Data, Some(command), now);
        }
        let stored = match command {
            Command::Header { name, value } => {
                message.headers.add_original_header(&name, &value);
                Ok(())
            }
            Command::EndOfHeader => {
                message.end_of_header = true;
                Ok(())
            }
            Command::Body { chunk } => message.body.append(&chunk),
            Command::EndOfMessage { chunk } => {
                message.end_of_message = true;
                message.body.append(&chunk)
            }
            _ => Ok(()),
        };
        if let Err(error) = stored {
            log::error!("[{}] cannot store the message body: {error}", self.tag);
            let verdict = self.manager_fallback();
            return self.end_message_with(stage, &verdict);
        }
        if message.chain.is_none() {
            let queue = (0..self.children.len())
                .filter(|&i| self.children[i].takes_part() && self.children[i].in_message)
                .collect();
            message.chain = Some(Chain::new(queue));
        }
        self.op = Some(Op::Message { stage });
    }

    fn advance_chain(&mut self, now: Instant) -> ChainProgress {
        loop {
            let Some(message) = &self.message else { return ChainProgress::AllAccepted };
            let Some(chain) = &message.chain else { return ChainProgress::AllAccepted };
            if let Some(outcome) = &chain.outcome {
                return ChainProgress::Ended(outcome.clone());
            }
            let Some(&head) = chain.queue.front() else {
                return if message.end_of_message {
                    ChainProgress::Final
                } else {
                    ChainProgress::AllAccepted
                };
            };
            if self.children[head].waiting.is_some() {
                return ChainProgress::Waiting;
            }
            match next_item(message, &chain.cursor) {
                None => return ChainProgress::CaughtUp(chain.last.clone()),
                Some(item) => self.feed_head(head, item, now),
            }
        }
    }

    /// Sends the head of the chain the next part of the message, or answers for it.
    fn feed_head(&mut self, head: usize, item: Item, now: Instant) {
        let stage = item.stage();
        let chunk_size = self.config.chunk_size;
        let message = self.message.as_mut().expect("the chain lives in a message");
        let offset = message.chain.as_ref().map_or(0, |c| c.cursor.body_offset);
        // A body chunk kept in memory is borrowed where it is sent; only a chunk of a
        // spilled body is read into a buffer of its own.
        let spilled_chunk = match item {
            Item::Body if message.body.is_spilled() => {
                match message.body.chunk_at(offset, chunk_size) {
                    Ok(chunk) => Some(chunk),
                    Err(error) => {
                        log::error!("[{}] cannot read the stored message body: {error}", self.tag);
                        let verdict = self.manager_fallback();
                        self.chain_mut().outcome = Some(verdict);
                        return;
                    }
                }
            }
            _ => None,
        };
        let command = match item {
            Item::Header(index) => {
                let header = &message.headers.headers[index];
                Some(Command::Header { name: header.name.clone(), value: header.value.clone() })
            }
            Item::EndOfHeader => Some(Command::EndOfHeader),
            Item::Body => None,
            Item::EndOfMessage => Some(Command::EndOfMessage { chunk: Vec::new() }),
        };
        let body_left = message.body.len().saturating_sub(offset);
        let cursor = &mut self.chain_mut().cursor;
        match item {
            Item::Header(index) => cursor.headers = index + 1,
            Item::EndOfHeader => cursor.end_of_header = true,
            Item::Body => cursor.body_offset += body_left.min(chunk_size as u64),
            Item::EndOfMessage => cursor.end_of_message = true,
        }
        if self.children[head].phase == Phase::Failed {
            let verdict = self.fallback_verdict(head);
            return self.message_verdict(head, stage, verdict);
        }
        let message = self.message.as_ref().expect("the chain lives in a message");
        let chunk = match &spilled_chunk {
            Some(chunk) => chunk.as_slice(),
            None => message.body.memory_chunk(offset, chunk_size),
        };
        let event = match &command {
            Some(command) => message_event(command),
            None => Event::Body { chunk },
        };
        let context =
            Context { macros: &self.macros, children: &self.children, config: &self.config };
        if self.conditions.stop(head, &event, &context) {
            log::debug!(
                "[{}] {} stopped at {}",
                self.tag,
                self.config.children[head].name,
                stage.name()
            );
            return self.head_leaves(head);
        }
        let child = &self.children[head];
        if child.declines(stage) {
            self.chain_mut().last = Verdict::of(Status::Continue);
            return;
        }
        let no_reply = stage != Stage::EndOfMessage && child.does_not_reply(stage);
        let command = match command {
            Some(Command::Header { name, value }) if child.leadspace_conversion => {
                let value = value.strip_prefix(b" ").map(<[u8]>::to_vec).unwrap_or(value);
                Some(Command::Header { name, value })
            }
            other => other,
        };
        let out = stage_macros_to(
            self.conditions.as_mut(),
            &self.macros,
            &mut self.children,
            &self.config,
            head,
            stage,
        );
        match &command {
            Some(command) => command.encode(out),
            None => Command::encode_body(out, chunk),
        }
        self.children[head].last_stage = stage;
        if no_reply {
            self.children[head].unreplied.push_back(stage);
            self.chain_mut().last = Verdict::of(Status::Continue);
        } else {
            let timeouts = self.config.children[head].timeouts;
            let timeout = if stage == Stage::EndOfMessage {
                timeouts.end_of_message
            } else {
                timeouts.reading
            };
            self.children[head].waiting = Some(Waiting { stage, deadline: now + timeout });
        }
    }

    fn on_message_reply(&mut self, i: usize, reply: Reply, now: Instant) {
        let Some(waiting) = self.children[i].waiting else {
            return self.fail_child(i, &format!("sent {} without being asked", reply.name()), now);
        };
        if reply.is_modification() {
            if waiting.stage != Stage::EndOfMessage {
                return self.fail_child(
                    i,
                    &format!(
                        "sent {} in answer to {}; modifications belong to end-of-message",
                        reply.name(),
                        waiting.stage.name()
                    ),
                    now,
                );
            }
            return self.take_modification(i, reply);
        }
        match self.child_verdict(i, &reply) {
            Ok(Some(verdict)) => {
                self.children[i].waiting = None;
                self.message_verdict(i, waiting.stage, verdict);
            }
            Ok(None) => {
                let timeouts = self.config.children[i].timeouts;
                let timeout = if waiting.stage == Stage::EndOfMessage {
                    timeouts.end_of_message
                } else {
                    timeouts.reading
                };
                if let Some(waiting) = &mut self.children[i].waiting {
                    waiting.deadline = now + timeout;
                }
                if self.mta_granted.version >= 6 && waiting.stage == Stage::EndOfMessage {
                    // Keeps the MTA's own end-of-message timer from expiring meanwhile.
                    Reply::Progress.encode(&mut self.mta_out);
                }
            }
            Err(()) => self.fail_child(
                i,
                &format!("sent {} in answer to {}", reply.name(), waiting.stage.name()),
                now,
            ),
        }
    }

    fn take_modification(&mut self, i: usize, reply: Reply) {
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
        let chain = self.chain_mut();
        match reply {
            Reply::ReplaceBody { chunk } => {
                if chain.head_body.is_none() {
                    let fresh = self.message.as_ref().expect("in a message").body.empty_like();
                    self.chain_mut().head_body = Some(fresh);
                }
                let appended =
                    self.chain_mut().head_body.as_mut().expect("created above").append(&chunk);
                if let Err(error) = appended {
                    log::error!("[{tag}] cannot store the replaced body: {error}");
                    let verdict = self.manager_fallback();
                    self.chain_mut().outcome = Some(verdict);
                }
            }
            other => chain.head_edits.push(other),
        }
    }

    /// Child `i`, the head of the chain, gave `raw` for `stage`.
    fn message_verdict(&mut self, i: usize, stage: Stage, raw: Verdict) {
        self.children[i].last_status = Some(raw.status);
        let verdict = self.obeyed(i, &raw);
        match verdict.status {
            Status::Continue | Status::Skip | Status::Accept if stage == Stage::EndOfMessage => {
                if raw.status.is_refusal() {
                    // An evaluation-mode refusal still ends the message for that child, as
                    // any refusal does: it is told so, like the head of an ended message.
                    self.leave_message(i);
                }
                self.finish_head(i, verdict.status)
            }
            Status::Skip if stage == Stage::Body => {
                let last_in_chain = self.chain_mut().queue.len() == 1;
                let mta_skips = self.mta_granted.steps.contains(Steps::SKIP);
                let chain = self.chain_mut();
                chain.cursor.body_done = true;
                // The MTA may stop sending the body only when no later child needs it.
                chain.last = Verdict::of(if last_in_chain && mta_skips {
                    Status::Skip
                } else {
                    Status::Continue
                });
            }
            Status::Continue | Status::Skip => {
                self.chain_mut().last = Verdict::of(Status::Continue)
            }
            Status::Accept => self.head_leaves(i),
            Status::TemporaryFailure | Status::Reject | Status::Discard => {
                self.chain_mut().outcome = Some(verdict)
            }
        }
    }

    /// The head finished end-of-message: its modifications become part of the message the
    /// next child sees and of what the MTA will be told.
    fn finish_head(&mut self, i: usize, status: Status) {
        let message = self.message.as_mut().expect("in a message");
        let chain = message.chain.as_mut().expect("in the message phase");
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
        chain.queue.pop_front();
        chain.cursor = Cursor::default();
        chain.last = Verdict::of(Status::Continue);
        let child = &mut self.children[i];
        child.message_open = false;
        child.in_message = false;
    }

    /// The head leaves the message early (accepted, was stopped, or its evaluation-mode
    /// refusal): the next child takes over from the start of the message.
    fn head_leaves(&mut self, i: usize) {
        let chain = self.chain_mut();
        chain.head_edits.clear();
        chain.head_body = None;
        chain.finished.add(&Verdict::of(Status::Accept));
        chain.queue.pop_front();
        chain.cursor = Cursor::default();
        chain.last = Verdict::of(Status::Continue);
        self.leave_message(i);
    }

    fn finish_message_command(&mut self, stage: Stage, progress: ChainProgress) -> bool {
        match progress {
            ChainProgress::Waiting => {
                self.op = Some(Op::Message { stage });
                return false;
            }
            ChainProgress::CaughtUp(verdict) => {
                self.reply_to_mta(stage, &verdict);
            }
            ChainProgress::AllAccepted => {
                self.end_message_with(stage, &Verdict::of(Status::Accept))
            }
            ChainProgress::Ended(verdict) => self.end_message_with(stage, &verdict),
            ChainProgress::Final => {
                self.send_final_answer();
                self.end_message();
            }
        }
        true
    }

    /// After the last child: the modifications, then the verdict.
    fn send_final_answer(&mut self) {
        let chunk_size = self.config.chunk_size;
        let tag = self.tag;
        let message = self.message.as_mut().expect("in a message");
        let chain = message.chain.as_mut().expect("in the message phase");
        let mut out = Vec::new();
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
            edit.encode(&mut out);
        }
        if let Some(change_from) = &chain.change_from {
            change_from.encode(&mut out);
        }
        if chain.body_replaced {
            let mut offset = 0;
            loop {
                match message.body.chunk_at(offset, chunk_size) {
                    Ok(chunk) if chunk.is_empty() && offset > 0 => break,
                    Ok(chunk) => {
                        offset += chunk.len() as u64;
                        let last = chunk.is_empty();
                        Reply::ReplaceBody { chunk }.encode(&mut out);
                        if last {
                            break;
                        }
                    }
                    Err(error) => {
                        log::error!("[{tag}] cannot read the replaced body: {error}");
                        let verdict = self.manager_fallback();
                        self.reply_to_mta(Stage::EndOfMessage, &verdict);
                        return;
                    }
                }
            }
        }
        if let Some(quarantine) = &chain.quarantine {
            statistics::quarantine(tag);
            quarantine.encode(&mut out);
        }
        let verdict = match chain.finished.result() {
            Some(v) if v.status == Status::Accept => Verdict::of(Status::Accept),
            _ => Verdict::of(Status::Continue),
        };
        self.mta_out.extend_from_slice(&out);
        self.reply_to_mta(Stage::EndOfMessage, &verdict);
    }

    fn chain_mut(&mut self) -> &mut Chain {
        self.message
            .as_mut()
            .and_then(|m| m.chain.as_mut())
            .expect("called only in the message phase")
    }

    // ----- children ------------------------------------------------------------------------

    fn on_child_reply(&mut self, i: usize, reply: Reply, now: Instant) {
        if self.children[i].phase == Phase::Negotiating {
            return self.on_negotiation_answer(i, reply, now);
        }
        if matches!(reply_verdict(&reply), Ok(Some(_))) {
            if let Some(stage) = self.children[i].take_stray() {
                return self.drop_stray_answer(i, stage, &reply);
            }
        }
        let waiting_stage = self.children[i].waiting.map(|w| w.stage);
        match (&self.op, waiting_stage) {
            (Some(Op::Envelope(_)), Some(_)) => self.on_envelope_reply(i, reply, now),
            (Some(Op::Message { .. }), _) => self.on_message_reply(i, reply, now),
            _ => self.fail_child(i, &format!("sent {} without being asked", reply.name()), now),
        }
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

    /// Child `i` cannot go on: from now on it answers its fallback status.
    fn fail_child(&mut self, i: usize, reason: &str, now: Instant) {
        let fallback = self.config.children[i].fallback_status;
        log::warn!(
            "[{}] [children][error] {}: {reason}; counting it as {fallback} (its fallback_status)",
            self.tag,
            self.config.children[i].name
        );
        let was_connected = self.children[i].is_connected();
        let waiting = self.children[i].waiting.take();
        self.children[i].out.clear();
        self.children[i].phase = Phase::Failed;
        self.children[i].last_status = Some(Status::from_fallback(fallback));
        if was_connected {
            self.actions.push_back(Output::CloseChild { child: i });
        }
        self.report_child_end(i, now);
        let Some(waiting) = waiting else { return };
        let verdict = self.fallback_verdict(i);
        match self.op.take() {
            Some(Op::Envelope(mut op)) => {
                self.record_envelope_verdict(&mut op, i, verdict);
                self.op = Some(Op::Envelope(op));
            }
            Some(Op::Message { stage }) => {
                self.op = Some(Op::Message { stage });
                let is_head = self
                    .message
                    .as_ref()
                    .and_then(|m| m.chain.as_ref())
                    .is_some_and(|c| c.queue.front() == Some(&i));
                if is_head {
                    let chain = self.chain_mut();
                    chain.head_edits.clear();
                    chain.head_body = None;
                    self.message_verdict(i, waiting.stage, verdict);
                }
            }
            other => self.op = other,
        }
    }

    /// Child `i` is done for this session (it accepted or refused at connect or helo, was
    /// stopped there, or the session ends). A message it is in is aborted first, so it
    /// hears the same whether the MTA quits, starts over (`K`) or closes.
    fn quit_child(&mut self, i: usize) {
        let child = &mut self.children[i];
        if child.is_connected() {
            if child.message_open {
                child.send(&Command::Abort);
            }
            child.send(&Command::Quit);
            let bytes = std::mem::take(&mut child.out);
            self.actions.push_back(Output::ToChild { child: i, bytes });
            self.actions.push_back(Output::CloseChild { child: i });
        }
        self.children[i].phase = Phase::Gone;
        self.children[i].in_message = false;
        self.children[i].message_open = false;
        self.report_child_end(i, self.now);
    }

    /// Child `i` takes no further part in the current message.
    fn leave_message(&mut self, i: usize) {
        let child = &mut self.children[i];
        if child.message_open && child.phase == Phase::Ready {
            child.send(&Command::Abort);
        }
        child.message_open = false;
        child.in_message = false;
    }

    /// The message is over for everyone (refused, discarded, aborted by the MTA).
    fn end_message(&mut self) {
        for i in 0..self.children.len() {
            if self.children[i].in_message || self.children[i].message_open {
                self.leave_message(i);
            }
        }
        self.message = None;
    }

    fn new_message(&self) -> MessageState {
        MessageState {
            headers: Message::new(b""),
            end_of_header: false,
            body: Body::new(self.config.max_body_memory, Arc::clone(&self.config.spill)),
            end_of_message: false,
            data_done: false,
            chain: None,
        }
    }

    fn send_with_macros(&mut self, i: usize, stage: Stage, command: &Command) {
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

    fn recipient_rejected_by_mta(&self) -> bool {
        self.macros.iter().any(|(stage, macros)| {
            *stage == b'R'
                && macros.iter().any(|(name, value)| {
                    (name == b"{rcpt_mailer}" || name == b"rcpt_mailer") && value == b"error"
                })
        })
    }

    // ----- verdicts ------------------------------------------------------------------------

    /// Child `i`'s reply as a verdict (see [`reply_verdict`]), logging an invalid reply
    /// code, which counts as a plain reject.
    fn child_verdict(&self, i: usize, reply: &Reply) -> Result<Option<Verdict>, ()> {
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

    fn fallback_verdict(&self, i: usize) -> Verdict {
        Verdict::of(Status::from_fallback(self.config.children[i].fallback_status))
    }

    fn manager_fallback(&self) -> Verdict {
        Verdict::of(Status::from_fallback(self.config.fallback_status))
    }

    /// What the MTA may act on: an evaluation-mode child's refusal counts as accept.
    fn obeyed(&self, i: usize, verdict: &Verdict) -> Verdict {
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
    fn answer_unfiltered(&mut self, stage: Stage) {
        self.last_stage = stage;
        if self.client_gone {
            let status = Status::from_fallback(self.config.fallback_status_at_disconnect);
            self.reply_to_mta(stage, &Verdict::of(status));
            return;
        }
        let mut fold = Fold::default();
        fold.add(&self.manager_fallback());
        for i in 0..self.children.len() {
            if self.children[i].phase == Phase::Failed {
                fold.add(&self.fallback_verdict(i));
            }
        }
        let verdict = fold.result().cloned().unwrap_or_else(|| self.manager_fallback());
        self.reply_to_mta(stage, &verdict);
    }

    /// The answer when no child gave one (the session has negotiated children).
    fn empty_verdict(&self, stage: Stage) -> Verdict {
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
    fn reply_to_mta(&mut self, stage: Stage, verdict: &Verdict) -> bool {
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
    fn end_message_with(&mut self, stage: Stage, verdict: &Verdict) {
        if !self.reply_to_mta(stage, verdict) && verdict.status.is_refusal() {
            self.untold = Some(verdict.clone());
        }
        self.end_message();
    }

    // ----- the end -------------------------------------------------------------------------

    fn mta_failure(&mut self, reason: &str, now: Instant) {
        log::error!("[{}] {reason}; closing the session", self.tag);
        self.close_mta = true;
        self.finish(now);
    }

    /// `K`: the MTA starts over on this connection; so do we, with new child connections.
    fn restart(&mut self, now: Instant) {
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
            self.report_child_end(i, now);
            let tag = self.children[i].tag;
            self.children[i] = Child::new(tag, now);
        }
        self.mta_offer = None;
        self.mta_granted = Negotiation::default();
        self.any_negotiated = false;
        self.macros.clear();
        self.message = None;
        self.untold = None;
        self.last_stage = Stage::Start;
    }

    fn finish(&mut self, now: Instant) {
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
            self.children[i].waiting = None;
            self.report_child_end(i, now);
        }
        let status = self.last_status.map_or("pass", Status::statistics_name);
        statistics::session_end(self.tag, self.last_stage.name(), status, now - self.started);
        self.op = None;
        self.finished = true;
    }

    fn report_child_end(&mut self, i: usize, now: Instant) {
        let child = &mut self.children[i];
        if child.reported || child.phase == Phase::Idle {
            return;
        }
        child.reported = true;
        let status = child.last_status.map_or("pass", Status::statistics_name);
        let elapsed = now.saturating_duration_since(child.started);
        statistics::milter_end(
            child.tag,
            child.last_stage.name(),
            status,
            elapsed,
            &self.config.children[i].name,
        );
    }
}

impl Chain {
    fn new(queue: VecDeque<usize>) -> Chain {
        Chain {
            queue,
            cursor: Cursor::default(),
            finished: Fold::default(),
            last: Verdict::of(Status::Continue),
            outcome: None,
            head_edits: Vec::new(),
            head_body: None,
            mta_edits: Vec::new(),
            change_from: None,
            quarantine: None,
            body_replaced: false,
        }
    }
}

impl Item {
    fn stage(self) -> Stage {
        match self {
            Item::Header(_) => Stage::Header,
            Item::EndOfHeader => Stage::EndOfHeader,
            Item::Body => Stage::Body,
            Item::EndOfMessage => Stage::EndOfMessage,
        }
    }
}

/// What the head of the chain needs next to catch up with what the MTA has sent.
fn next_item(message: &MessageState, cursor: &Cursor) -> Option<Item> {
    let next_header = message.headers.headers[cursor.headers.min(message.headers.headers.len())..]
        .iter()
        .position(|header| header.change != Change::Deleted)
        .map(|offset| cursor.headers + offset);
    if let Some(index) = next_header {
        Some(Item::Header(index))
    } else if message.end_of_header && !cursor.end_of_header {
        Some(Item::EndOfHeader)
    } else if !cursor.body_done && cursor.body_offset < message.body.len() {
        Some(Item::Body)
    } else if message.end_of_message && !cursor.end_of_message {
        Some(Item::EndOfMessage)
    } else {
        None
    }
}

/// A reply as a verdict: `Ok(None)` for progress, `Err` for what is no verdict at all.
#[allow(clippy::type_complexity)]
fn reply_verdict(reply: &Reply) -> Result<Option<(Verdict, Option<String>)>, ()> {
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

fn envelope_stage(command: &Command) -> Stage {
    match command {
        Command::Connect { .. } => Stage::Connect,
        Command::Helo { .. } => Stage::Helo,
        Command::EnvelopeFrom { .. } => Stage::EnvelopeFrom,
        Command::EnvelopeRecipient { .. } => Stage::EnvelopeRecipient,
        Command::Data => Stage::Data,
        _ => Stage::Unknown,
    }
}

fn message_stage(command: &Command) -> Stage {
    match command {
        Command::Header { .. } => Stage::Header,
        Command::EndOfHeader => Stage::EndOfHeader,
        Command::Body { .. } => Stage::Body,
        _ => Stage::EndOfMessage,
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

fn connect_port(address: &ConnectAddress) -> Option<u16> {
    match address {
        ConnectAddress::Inet { port, .. } | ConnectAddress::Inet6 { port, .. } => Some(*port),
        ConnectAddress::Unix { .. } | ConnectAddress::Unknown => None,
    }
}

/// Appends to child `i`'s output the macros of `stage` (the MTA's, and any a condition
/// adds for this child) as one `D` frame, and returns that output for the command that
/// follows them. It takes the session's parts, not the session, so that a body chunk
/// borrowed from the stored message can be written after it.
fn stage_macros_to<'a>(
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

fn message_event(command: &Command) -> Event<'_> {
    match command {
        Command::Header { name, value } => Event::Header { name, value },
        Command::EndOfHeader => Event::EndOfHeader,
        Command::Body { chunk } => Event::Body { chunk },
        _ => Event::EndOfMessage,
    }
}
