//! The option negotiation: the MTA's offer to every child, the merge back to the MTA.

use super::*;

impl Session {
    pub(super) fn start_negotiation(&mut self, offer: Negotiation, now: Instant) {
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

    pub(super) fn finish_negotiation(&mut self) {
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
            return self.fail_child(i, &error, now);
        }
        let child = &mut self.children[i];
        child.answer = answer;
        child.phase = Phase::Ready;
        child.waiting = None;
    }
}
