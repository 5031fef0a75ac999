//! The option negotiation: the MTA's offer to every child, the merge back to the MTA.

use std::time::Instant;

use super::phase::{Mail, Phase};
use super::{Output, Session, FRAME_HEADER};
use crate::engine::child::Phase as ChildPhase;
use crate::engine::negotiate::{check_child_answer, merge_answers, offer_for_children};
use crate::engine::timers::Timer;
use crate::engine::Stage;
use crate::protocol::{Command, Negotiation, Reply, Steps};

impl Session {
    pub(super) fn start_negotiation(&mut self, offer: Negotiation, now: Instant) -> Phase {
        if offer.version < 2 {
            return self
                .mta_failure(&format!("the MTA offered protocol version {}", offer.version), now);
        }
        self.last_stage = Stage::Negotiate;
        let child_offer = offer_for_children(&offer);
        // A kept connection was negotiated with this very offer, or it is not used.
        self.reuse_key = self.config.children.iter().any(|c| c.reuse.is_some()).then(|| {
            let mut key = Vec::new();
            Command::Negotiate(child_offer.clone()).encode(&mut key);
            key
        });
        for (i, child) in self.children.iter_mut().enumerate() {
            child.offer = child_offer.clone();
            child.phase = ChildPhase::Connecting;
            child.started = now;
            child.last_stage = Stage::Negotiate;
            let timeout = self.config.children[i].timeouts.connection;
            self.timers.set(Timer::Child(i, Stage::Negotiate), now + timeout);
            let reuse = self.config.children[i].reuse.and_then(|_| self.reuse_key.clone());
            self.actions.push_back(Output::Connect { child: i, reuse });
        }
        Phase::Negotiating { offer }
    }

    /// Every child answered or failed: the MTA gets the merge of the answers.
    pub(super) fn finish_negotiation(&mut self, offer: &Negotiation) -> Phase {
        let answers: Vec<&Negotiation> = self
            .children
            .iter()
            .filter(|c| c.phase == ChildPhase::Ready)
            .map(|c| &c.answer)
            .collect();
        let any_negotiated = !answers.is_empty();
        let merged = merge_answers(offer, &answers);
        let leadspace = merged.steps.contains(Steps::HDR_LEADSPC);
        for child in &mut self.children {
            child.leadspace_conversion =
                leadspace && !child.answer.steps.contains(Steps::HDR_LEADSPC);
        }
        if !any_negotiated && !self.children.is_empty() {
            log::warn!(
                "[{}] no child milter could be negotiated with; the manager answers by the \
                 fallback statuses (manager.fallback_status {})",
                self.tag,
                self.config.fallback_status
            );
        }
        Reply::Negotiate(merged.clone()).encode(&mut self.mta_out);
        self.mta_granted = merged;
        if any_negotiated {
            Phase::Idle(Mail::Closed)
        } else {
            Phase::Unfiltered
        }
    }

    /// Child `i` got a kept connection, negotiated as `memo` says: it is ready at once,
    /// with no negotiation round trip. A memo that does not fit the offer (it cannot,
    /// unless the runtime mixed keys up) gets the connection closed and a new one.
    pub(super) fn take_kept_connection(&mut self, i: usize, memo: &[u8]) {
        let answer = match memo.get(FRAME_HEADER..).map(|data| Reply::decode(memo[4], data)) {
            Some(Ok(Reply::Negotiate(answer)))
                if check_child_answer(&self.children[i].offer, &answer).is_ok() =>
            {
                answer
            }
            _ => {
                log::warn!(
                    "[{}] {}: a kept connection does not fit this session; connecting anew",
                    self.tag,
                    self.config.children[i].name
                );
                self.actions.push_back(Output::CloseChild { child: i });
                self.actions.push_back(Output::Connect { child: i, reuse: None });
                return;
            }
        };
        log::debug!("[{}] {}: reusing a kept connection", self.tag, self.config.children[i].name);
        let child = &mut self.children[i];
        child.answer = answer;
        child.phase = ChildPhase::Ready;
        child.first_use = Some(Vec::new());
        child.tally.reused_connections += 1;
        self.timers.clear_child(i);
    }

    /// Child `i` answered on the new connection that replaced a dead kept one: the same
    /// answer as the kept connection's lets the session go on (the commands it missed
    /// were sent after the offer); another one cannot, as the MTA was answered by it.
    pub(super) fn on_renegotiation(&mut self, i: usize, reply: Reply, now: Instant) {
        let expected = self.children[i].reconnect.take();
        match reply {
            Reply::Negotiate(answer) if Some(&answer) == expected.as_ref() => {}
            other => {
                let reason = format!(
                    "answered {} on a new connection, not the negotiation its kept \
                     connection had",
                    other.name()
                );
                self.fail_child(i, &reason, now)
            }
        }
    }

    pub(super) fn on_negotiation_answer(&mut self, i: usize, reply: Reply, now: Instant) {
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
            return self.fail_child(i, &error.to_string(), now);
        }
        let child = &mut self.children[i];
        child.answer = answer;
        child.phase = ChildPhase::Ready;
        self.child_answered(i, now);
    }
}
