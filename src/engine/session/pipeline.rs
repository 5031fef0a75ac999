//! Commands sent ahead: a chain head is sent the headers and end-of-header the manager
//! holds, and end-of-message behind the last body chunk, without waiting for its answer to
//! each; the answers are read in order.
//!
//! Through the manager, the MTA streams a message's headers (`HEADERS_UNANSWERED`) and
//! every child after the first gets the whole stored message at once, so waiting one round
//! trip per command and child costs a write, a wakeup and a read each, for answers that
//! are nearly always continue. What makes sending ahead safe is what follows a command
//! answered otherwise (accept, reject, ...): libmilter then drops the commands sent behind
//! it without answering them, other implementations answer them, so nobody can tell where
//! the next answer on that connection belongs. That connection is closed, and a new one is
//! made at once, negotiated the same, and sent the session's connect and helo again (their
//! answers dropped) so that the child is ready for the session's next message.

use super::message::Item;
use super::Session;
use crate::engine::child::Phase as ChildPhase;
use crate::engine::{Stage, Status, Verdict};
use crate::protocol::Reply;

/// At most this many commands are sent ahead of the awaited one (a message may have
/// thousands of headers; the child answers them one by one anyway).
const PIPELINE_DEPTH: usize = 64;

impl Session {
    /// Whether chain head `head`, awaited for `awaited`, may be sent `item` now: headers
    /// and then end-of-header behind a header, and end-of-message behind the last body
    /// chunk. Nothing goes behind end-of-header: an early accept is common there (a milter
    /// with nothing to do for the message), and would cost the connection. The child must
    /// answer every header and end-of-header (no "no reply" step), so that each answer is
    /// known to belong to the oldest command sent, and connect and helo, so that a new
    /// connection's answers to them sent again are known (`resync_child`).
    pub(super) fn may_pipeline(&self, head: usize, awaited: Stage, item: Option<Item>) -> bool {
        let child = &self.children[head];
        let last_sent = child.pipelined.back().copied().unwrap_or(awaited);
        let ahead = match item {
            Some(Item::Header(_) | Item::EndOfHeader) => last_sent == Stage::Header,
            Some(Item::EndOfMessage) => last_sent == Stage::Body,
            _ => false,
        };
        ahead
            && child.phase == ChildPhase::Ready
            && child.pipelined.len() < PIPELINE_DEPTH
            && child.unreplied.is_empty()
            && [Stage::Connect, Stage::Helo, Stage::Header, Stage::EndOfHeader]
                .iter()
                .all(|&stage| !child.does_not_reply(stage))
    }

    /// Child `i` answered `verdict` to `answered`, the oldest command it owed an answer:
    /// the next one sent ahead is awaited now. False when the answer was neither continue
    /// nor a skip of the body (after which end-of-message comes as usual) while commands
    /// were sent behind it: then the child's connection is being replaced, and the caller
    /// must take the child out of the message whatever its verdict.
    pub(super) fn next_pipelined(&mut self, i: usize, answered: Stage, verdict: &Verdict) -> bool {
        if self.children[i].pipelined.is_empty() {
            return true;
        }
        let in_step = match verdict.status {
            Status::Continue => true,
            Status::Skip => answered == Stage::Body,
            _ => false,
        };
        if in_step {
            if let Some(stage) = self.children[i].pipelined.pop_front() {
                let timeout = self.config.children[i].timeouts.for_reply(stage);
                self.timers.await_reply(i, stage, self.now, self.now + timeout);
            }
            return true;
        }
        let reason = format!("answered {} with commands sent behind it", verdict.status.name());
        self.resync_child(i, &reason);
        false
    }

    /// Child `i`'s connection cannot be trusted any more (answers may or may not come for
    /// commands it was sent ahead): it is closed, and a new one takes over, offered the
    /// same negotiation and sent the session's connect and helo again.
    pub(super) fn resync_child(&mut self, i: usize, reason: &str) {
        log::info!(
            "[{}] {} {reason}; its connection is replaced by a new one for the rest of the \
             session",
            self.tag,
            self.config.children[i].name
        );
        let child = &mut self.children[i];
        let replay = [child.replay_connect.as_slice(), child.replay_helo.as_slice()].concat();
        child.swallow = usize::from(!child.replay_connect.is_empty())
            + usize::from(!child.replay_helo.is_empty());
        // What is still to be sent belongs to the message the new connection never sees.
        child.out.clear();
        child.pipelined.clear();
        child.first_use = None;
        child.quit_nc_ready = false;
        child.message_open = false;
        child.in_message = false;
        self.replace_connection(i, &replay, true);
    }

    /// A reply on a replacing connection to a connect or helo sent again: continue is
    /// what the child answered the first time; anything else and it cannot go on.
    pub(super) fn swallow_replayed_answer(&mut self, i: usize, reply: &Reply) {
        if matches!(reply, Reply::Progress) {
            return;
        }
        self.children[i].swallow -= 1;
        if !matches!(reply, Reply::Continue) {
            let reason = format!(
                "answered {} to the connect or helo sent again on a new connection",
                reply.name()
            );
            self.fail_child(i, &reason, self.now);
        }
    }

    /// Keeps what child `i` was just sent for `stage` from `start` in its output, if it is
    /// a connect or a helo (see `Child::replay_connect`).
    pub(super) fn record_replay(&mut self, i: usize, stage: Stage, start: usize) {
        let child = &mut self.children[i];
        let buffer = match stage {
            Stage::Connect => {
                child.replay_helo.clear();
                &mut child.replay_connect
            }
            Stage::Helo => &mut child.replay_helo,
            _ => return,
        };
        buffer.clear();
        buffer.extend_from_slice(&child.out[start..]);
    }
}
