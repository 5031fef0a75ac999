//! The end of a session, or of one MTA conversation within it (`K`).

use std::time::Instant;

use super::phase::Phase;
use super::Session;
use crate::engine::child::{Child, Phase as ChildPhase};
use crate::engine::{statistics, Stage, Status};
use crate::protocol::Negotiation;

impl Session {
    /// The MTA broke the protocol: the session ends, and so does its connection.
    pub(super) fn mta_failure(&mut self, reason: &str, now: Instant) -> Phase {
        log::error!("[{}] {reason}; closing the session", self.tag);
        self.close_mta = true;
        self.finish(now)
    }

    /// `K`: the MTA starts over on this connection; so do we, with new child connections.
    pub(super) fn restart(&mut self, now: Instant) -> Phase {
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
            self.report_child_end(i, now);
            let tag = self.children[i].tag;
            let tally = std::mem::take(&mut self.children[i].tally);
            self.children[i] = Child::new(tag, now);
            self.children[i].tally = tally;
        }
        self.timers.clear_children();
        self.mta_granted = Negotiation::default();
        self.macros.clear();
        self.untold = None;
        self.last_stage = Stage::Start;
        Phase::AwaitingOffer
    }

    /// Quits the children and writes the session's statistics line.
    pub(super) fn finish(&mut self, now: Instant) -> Phase {
        for i in 0..self.children.len() {
            if self.children[i].is_connected() {
                self.quit_child(i);
            }
            self.report_child_end(i, now);
        }
        self.timers.clear_children();
        let status = self.last_status.map_or("pass", Status::statistics_name);
        statistics::session_end(self.tag, self.last_stage.name(), status, now - self.started);
        Phase::Finished
    }

    pub(super) fn report_child_end(&mut self, i: usize, now: Instant) {
        let child = &mut self.children[i];
        if child.reported || child.phase == ChildPhase::Idle {
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
