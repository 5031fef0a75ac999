//! Admission across processes: before each accept the loop takes a place from the
//! [`Admission`] (e.g. a limit counted over every worker in shared memory); the place is
//! held by the session and given back when it finishes. Taking the place before accepting
//! means two workers racing for the last place cannot both accept: the loser leaves the
//! client in the kernel backlog instead of accepting and then having to hang up on it.

use std::time::Instant;

use crate::event_loop::EventLoop;
use crate::SessionFactory;

/// Decides whether one more session may start now.
pub trait Admission {
    /// Takes a place for one session; false: none is free, do not accept now.
    fn try_reserve(&mut self) -> bool;
    /// Gives a place back: its session finished, or nothing was accepted with it.
    fn release(&mut self);
}

impl<F: SessionFactory> EventLoop<F> {
    /// True when there is no admission or it granted a place. A refusal pauses accepting for
    /// the accept pause, or until a session of this process finishes, whichever is first.
    pub(crate) fn reserve_place(&mut self, now: Instant) -> bool {
        let Some(admission) = self.admission.as_mut() else {
            return true;
        };
        if admission.try_reserve() {
            return true;
        }
        log::debug!(
            "the session limit across workers is reached; not accepting for {:?} or until a \
             session here finishes",
            self.limits.accept_pause
        );
        self.paused_for_admission = true;
        self.pause_accepting(now);
        false
    }

    pub(crate) fn release_place(&mut self) {
        if let Some(admission) = self.admission.as_mut() {
            admission.release();
        }
    }

    /// A session of this process finished: its place is free for the next client here.
    pub(crate) fn place_freed(&mut self, now: Instant) {
        self.release_place();
        if self.paused_for_admission {
            self.paused_for_admission = false;
            self.accept_paused_until = None;
            self.sync_listener(now);
        }
    }
}
