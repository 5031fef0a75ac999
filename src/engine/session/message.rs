//! Message commands: stored, then fed to the children one after the other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::children::stage_macros_to;
use super::phase::{Mail, MessageRun, Phase};
use super::Session;
use crate::engine::body::Body;
use crate::engine::child::Phase as ChildPhase;
use crate::engine::event::{Context, Event};
use crate::engine::{Fold, Stage, Status, Verdict};
use crate::message::{Change, Message};
use crate::protocol::{Command, Reply};

/// The current message as the children after the current one will see it.
pub(super) struct MessageState {
    pub(super) headers: Message,
    pub(super) end_of_header: bool,
    pub(super) body: Body,
    pub(super) end_of_message: bool,
}

/// The children a message goes through, one after the other.
pub(super) struct Chain {
    /// Children still to process the message; the first is the one being fed.
    pub(super) queue: VecDeque<usize>,
    pub(super) cursor: Cursor,
    /// Final verdicts of the children done with the message.
    pub(super) finished: Fold,
    /// The head's verdict on the last thing it was fed.
    pub(super) last: Verdict,
    /// A refusal that ends the message.
    pub(super) outcome: Option<Verdict>,
    /// The head's modifications, kept until its final answer (a child that fails halfway
    /// through end-of-message must not leave half its changes behind).
    pub(super) head_edits: Vec<Reply>,
    /// The bytes `head_edits` hold, against `Limits::modification_bytes`.
    pub(super) head_edit_bytes: usize,
    pub(super) head_body: Option<Body>,
    /// Committed modifications for the MTA, in the children's order.
    pub(super) mta_edits: Vec<Reply>,
    pub(super) change_from: Option<Reply>,
    pub(super) quarantine: Option<Reply>,
    pub(super) body_replaced: bool,
    /// A condition stopped the head while it owed answers to headers sent ahead: it
    /// leaves the message once they came.
    pub(super) head_stopped: bool,
}

/// What the chain's head has been fed of the stored message.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Cursor {
    /// Index in the message's header list (deleted ones included) of the next header to
    /// consider: headers are only appended while a chain runs, so it never moves back.
    pub(super) headers: usize,
    pub(super) end_of_header: bool,
    pub(super) body_offset: u64,
    pub(super) body_done: bool,
    pub(super) end_of_message: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Item {
    /// The header at this index of the message's header list.
    Header(usize),
    EndOfHeader,
    Body,
    EndOfMessage,
}

pub(super) enum ChainProgress {
    Waiting,
    CaughtUp(Verdict),
    AllAccepted,
    Ended(Verdict),
    Final,
}

impl Session {
    /// Stores a message command and starts it through the chain. The message's first
    /// command starts the chain; one that comes before DATA is through first has DATA
    /// sent for it.
    pub(super) fn start_message_command(
        &mut self,
        mail: Mail,
        command: Command,
        now: Instant,
    ) -> Phase {
        let stage = message_stage(&command);
        self.last_stage = stage;
        let mut run = match mail {
            Mail::Closed => {
                let verdict = self.empty_verdict(stage);
                self.reply_to_mta(stage, &verdict);
                return Phase::Idle(Mail::Closed);
            }
            // The MTA went from RCPT straight to the message (an old protocol version or
            // DATA not negotiated): the children get DATA first, as they expect it.
            Mail::Envelope => return self.start_envelope(mail, Command::Data, Some(command), now),
            Mail::Data => {
                let queue = (0..self.children.len())
                    .filter(|&i| self.children[i].takes_part() && self.children[i].in_message)
                    .collect();
                Box::new(MessageRun { message: self.new_message(), chain: Chain::new(queue) })
            }
            Mail::Contents(run) => run,
        };
        let message = &mut run.message;
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
            self.log_store_failure("the message body", &error);
            let verdict = self.manager_fallback();
            self.end_message_with(stage, &verdict);
            return Phase::Idle(Mail::Closed);
        }
        Phase::Message { stage, run }
    }

    fn new_message(&self) -> MessageState {
        MessageState {
            headers: Message::new(b""),
            end_of_header: false,
            body: Body::new(self.config.max_body_memory, Arc::clone(&self.config.spill)),
            end_of_message: false,
        }
    }

    /// Feeds the chain until it waits on its head, has caught up with the MTA, or is done.
    pub(super) fn advance_chain(&mut self, run: &mut MessageRun, now: Instant) -> ChainProgress {
        loop {
            let MessageRun { message, chain } = &*run;
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
            let awaited = self.timers.awaited(head);
            if chain.head_stopped && awaited.is_none() {
                // A condition stopped it while it owed answers, which have come.
                self.head_leaves(&mut run.chain, head);
                continue;
            }
            let item = next_item(message, &chain.cursor);
            if let Some(awaited) = awaited {
                if chain.head_stopped || !self.may_pipeline(head, awaited, item) {
                    return ChainProgress::Waiting;
                }
            }
            let Some(item) = item else {
                return ChainProgress::CaughtUp(chain.last.clone());
            };
            // A head that answers no body chunk would otherwise get the whole stored body
            // at once; it gets more as its output drains.
            let head_out = &self.children[head];
            if head_out.out.len() + head_out.queued >= self.config.limits.pending_bytes {
                self.output_blocked = true;
                return ChainProgress::Waiting;
            }
            self.feed_head(run, head, item, now);
        }
    }

    /// Sends the head of the chain the next part of the message, or answers for it.
    fn feed_head(&mut self, run: &mut MessageRun, head: usize, item: Item, now: Instant) {
        let stage = item.stage();
        let chunk_size = self.config.chunk_size;
        let MessageRun { message, chain } = run;
        let offset = chain.cursor.body_offset;
        // A body chunk kept in memory is borrowed where it is sent; only a chunk of a
        // spilled body is read into a buffer of its own.
        let spilled_chunk = match item {
            Item::Body if message.body.is_spilled() => {
                match message.body.chunk_at(offset, chunk_size) {
                    Ok(chunk) => Some(chunk),
                    Err(error) => {
                        log::error!("[{}] cannot read the stored message body: {error}", self.tag);
                        chain.outcome = Some(self.manager_fallback());
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
        let cursor = &mut chain.cursor;
        match item {
            Item::Header(index) => cursor.headers = index + 1,
            Item::EndOfHeader => cursor.end_of_header = true,
            Item::Body => cursor.body_offset += body_left.min(chunk_size as u64),
            Item::EndOfMessage => cursor.end_of_message = true,
        }
        if self.children[head].phase == ChildPhase::Failed {
            let verdict = self.fallback_verdict(head);
            return self.message_verdict(run, head, stage, verdict);
        }
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
            if self.timers.awaited(head).is_some() {
                // It still owes answers to headers sent ahead: it leaves once they came.
                chain.head_stopped = true;
                return;
            }
            return self.head_leaves(chain, head);
        }
        let child = &self.children[head];
        if child.declines(stage) {
            chain.last = Verdict::of(Status::Continue);
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
            chain.last = Verdict::of(Status::Continue);
        } else if self.timers.awaited(head).is_some() {
            // Sent ahead (`may_pipeline`): awaited once the answers before it came.
            self.children[head].pipelined.push_back(stage);
        } else {
            let timeout = self.config.children[head].timeouts.for_reply(stage);
            self.timers.await_reply(head, stage, now, now + timeout);
        }
    }
}

impl Chain {
    pub(super) fn new(queue: VecDeque<usize>) -> Self {
        Self {
            queue,
            cursor: Cursor::default(),
            finished: Fold::default(),
            last: Verdict::of(Status::Continue),
            outcome: None,
            head_edits: Vec::new(),
            head_edit_bytes: 0,
            head_body: None,
            mta_edits: Vec::new(),
            change_from: None,
            quarantine: None,
            body_replaced: false,
            head_stopped: false,
        }
    }
}

impl Item {
    pub(super) fn stage(self) -> Stage {
        match self {
            Self::Header(_) => Stage::Header,
            Self::EndOfHeader => Stage::EndOfHeader,
            Self::Body => Stage::Body,
            Self::EndOfMessage => Stage::EndOfMessage,
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

pub(super) fn message_stage(command: &Command) -> Stage {
    match command {
        Command::Header { .. } => Stage::Header,
        Command::EndOfHeader => Stage::EndOfHeader,
        Command::Body { .. } => Stage::Body,
        _ => Stage::EndOfMessage,
    }
}

fn message_event(command: &Command) -> Event<'_> {
    match command {
        Command::Header { name, value } => Event::Header { name, value },
        Command::EndOfHeader => Event::EndOfHeader,
        Command::Body { chunk } => Event::Body { chunk },
        _ => Event::EndOfMessage,
    }
}
