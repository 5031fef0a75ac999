//! A session's deadlines, kept in one table: the MTA's and one per child.
//!
//! Every deadline has an owner (the MTA or a child) and an owner has at most one: what it
//! is for says which timeout ran out when it expires. The session sets and clears them;
//! the runtime only sees the earliest (`Session::poll_timeout`).

use std::time::Instant;

use super::stage::Stage;

/// What the MTA's deadline waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MtaTimer {
    /// Its first option offer (`manager.negotiation_timeout`): bytes that are not an offer
    /// do not move it.
    FirstOffer,
    /// Its next command (the idle timeout), moved by everything it sends.
    Idle,
}

/// One deadline: whose it is and what it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    Mta(MtaTimer),
    /// Child number `.0` owes its answer to `.1` (to `Negotiate` from the connection on:
    /// the connection timeout, then the reading timeout for its answer).
    Child(usize, Stage),
}

/// Whose deadline: each owner has one slot in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Mta,
    Child(usize),
}

impl Timer {
    pub(super) fn owner(self) -> Owner {
        match self {
            Self::Mta(_) => Owner::Mta,
            Self::Child(index, _) => Owner::Child(index),
        }
    }
}

/// The deadlines of one session.
#[derive(Debug)]
pub(super) struct TimerTable {
    mta: Option<(MtaTimer, Instant)>,
    children: Vec<Option<ChildDeadline>>,
}

/// What a child is awaited for, until when, and since when (for the time its answer
/// took: set by [`TimerTable::await_reply`] only).
#[derive(Debug, Clone, Copy)]
struct ChildDeadline {
    stage: Stage,
    at: Instant,
    since: Option<Instant>,
}

impl TimerTable {
    /// A table with no deadline, for `children` children.
    pub(super) fn new(children: usize) -> Self {
        Self { mta: None, children: vec![None; children] }
    }

    /// Sets `timer` to expire at `at`, in place of its owner's previous deadline.
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        match timer {
            Timer::Mta(kind) => self.mta = Some((kind, at)),
            Timer::Child(index, stage) => {
                self.children[index] = Some(ChildDeadline { stage, at, since: None })
            }
        }
    }

    /// Child `index` was sent a command of `stage` at `now` and owes its answer by `at`.
    pub(super) fn await_reply(&mut self, index: usize, stage: Stage, now: Instant, at: Instant) {
        self.children[index] = Some(ChildDeadline { stage, at, since: Some(now) });
    }

    /// Child `index` answered at `now`: removes its deadline; what it was awaited for and,
    /// if it was set by [`TimerTable::await_reply`], how long the answer took.
    pub(super) fn answered(
        &mut self,
        index: usize,
        now: Instant,
    ) -> Option<(Stage, Option<std::time::Duration>)> {
        let deadline = self.children[index].take()?;
        Some((deadline.stage, deadline.since.map(|since| now.saturating_duration_since(since))))
    }

    /// Moves `owner`'s deadline to `at`, keeping what it waits for; nothing if it has none.
    pub(super) fn postpone(&mut self, owner: Owner, at: Instant) {
        match owner {
            Owner::Mta => {
                if let Some((_, deadline)) = &mut self.mta {
                    *deadline = at;
                }
            }
            Owner::Child(index) => {
                if let Some(deadline) = &mut self.children[index] {
                    deadline.at = at;
                }
            }
        }
    }

    /// Removes child `index`'s deadline and returns the reply it was awaited for.
    pub(super) fn clear_child(&mut self, index: usize) -> Option<Stage> {
        self.children[index].take().map(|deadline| deadline.stage)
    }

    /// Clears every child's deadline (the MTA's stays).
    pub(super) fn clear_children(&mut self) {
        self.children.iter_mut().for_each(|slot| *slot = None);
    }

    /// `owner`'s deadline, if it has one: what it waits for.
    pub(super) fn get(&self, owner: Owner) -> Option<Timer> {
        self.deadline(owner).map(|(timer, _)| timer)
    }

    /// What child `index` is awaited for.
    pub(super) fn awaited(&self, index: usize) -> Option<Stage> {
        self.children[index].map(|deadline| deadline.stage)
    }

    /// Whether any of `indexes` is awaited.
    pub(super) fn any_awaited(&self, mut indexes: impl Iterator<Item = usize>) -> bool {
        indexes.any(|index| self.children[index].is_some())
    }

    /// The earliest deadline; the MTA's counts only if `mta_runs` (it runs between the
    /// MTA's commands, not while children decide one).
    pub(super) fn next(&self, mta_runs: bool) -> Option<Instant> {
        self.all(mta_runs).map(|(_, at)| at).min()
    }

    /// The deadlines that have passed at `now`, children by index first, then the MTA's
    /// (counted only if `mta_runs`): the order in which they are handled.
    pub(super) fn expired(&self, now: Instant, mta_runs: bool) -> Vec<Timer> {
        self.all(mta_runs).filter(|&(_, at)| at <= now).map(|(timer, _)| timer).collect()
    }

    /// Whether `timer` is still set, as it was, and has passed at `now`: a deadline from
    /// `expired` may have been cleared or moved by handling an earlier one.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadline(timer.owner()).is_some_and(|(set, at)| set == timer && at <= now)
    }

    fn deadline(&self, owner: Owner) -> Option<(Timer, Instant)> {
        match owner {
            Owner::Mta => self.mta.map(|(kind, at)| (Timer::Mta(kind), at)),
            Owner::Child(index) => {
                self.children[index].map(|d| (Timer::Child(index, d.stage), d.at))
            }
        }
    }

    fn all(&self, mta_runs: bool) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        let children = (0..self.children.len()).filter_map(|i| self.deadline(Owner::Child(i)));
        let mta = self.deadline(Owner::Mta).filter(|_| mta_runs);
        children.chain(mta)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn an_empty_table_has_no_deadline() {
        let table = TimerTable::new(2);
        assert_eq!(table.next(true), None);
        assert_eq!(table.expired(Instant::now(), true), []);
        assert_eq!(table.awaited(0), None);
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_all_owners() {
        let start = Instant::now();
        let mut table = TimerTable::new(2);
        table.set(Timer::Mta(MtaTimer::Idle), at(start, 30));
        table.set(Timer::Child(1, Stage::Helo), at(start, 10));
        table.set(Timer::Child(0, Stage::Helo), at(start, 20));
        assert_eq!(table.next(true), Some(at(start, 10)));
        table.clear_child(1);
        assert_eq!(table.next(true), Some(at(start, 20)));
    }

    #[test]
    fn the_mta_deadline_counts_only_while_it_runs() {
        let start = Instant::now();
        let mut table = TimerTable::new(1);
        table.set(Timer::Mta(MtaTimer::FirstOffer), at(start, 5));
        table.set(Timer::Child(0, Stage::Connect), at(start, 10));
        assert_eq!(table.next(false), Some(at(start, 10)));
        assert_eq!(table.expired(at(start, 10), false), [Timer::Child(0, Stage::Connect)]);
        assert_eq!(table.next(true), Some(at(start, 5)));
    }

    #[test]
    fn setting_a_timer_replaces_its_owners_deadline() {
        let start = Instant::now();
        let mut table = TimerTable::new(1);
        table.set(Timer::Mta(MtaTimer::FirstOffer), at(start, 5));
        table.set(Timer::Mta(MtaTimer::Idle), at(start, 50));
        assert_eq!(table.get(Owner::Mta), Some(Timer::Mta(MtaTimer::Idle)));
        table.set(Timer::Child(0, Stage::Header), at(start, 1));
        table.set(Timer::Child(0, Stage::EndOfMessage), at(start, 2));
        assert_eq!(table.awaited(0), Some(Stage::EndOfMessage));
        assert_eq!(table.next(true), Some(at(start, 2)));
    }

    #[test]
    fn postponing_keeps_what_the_deadline_waits_for() {
        let start = Instant::now();
        let mut table = TimerTable::new(2);
        table.set(Timer::Child(0, Stage::Body), at(start, 1));
        table.postpone(Owner::Child(0), at(start, 9));
        table.postpone(Owner::Child(1), at(start, 3));
        assert_eq!(table.awaited(0), Some(Stage::Body));
        assert_eq!(table.awaited(1), None, "no deadline to move");
        assert_eq!(table.next(true), Some(at(start, 9)));
    }

    #[test]
    fn expired_timers_come_children_by_index_then_the_mta() {
        let start = Instant::now();
        let mut table = TimerTable::new(3);
        table.set(Timer::Mta(MtaTimer::Idle), at(start, 1));
        table.set(Timer::Child(2, Stage::Data), at(start, 2));
        table.set(Timer::Child(0, Stage::Data), at(start, 3));
        table.set(Timer::Child(1, Stage::Data), at(start, 9));
        assert_eq!(
            table.expired(at(start, 3), true),
            [
                Timer::Child(0, Stage::Data),
                Timer::Child(2, Stage::Data),
                Timer::Mta(MtaTimer::Idle)
            ]
        );
    }

    #[test]
    fn a_timer_cleared_or_moved_since_it_expired_is_no_longer_expired() {
        let start = Instant::now();
        let mut table = TimerTable::new(2);
        table.set(Timer::Child(0, Stage::EnvelopeRecipient), at(start, 1));
        table.set(Timer::Child(1, Stage::EnvelopeRecipient), at(start, 1));
        let expired = table.expired(at(start, 1), true);
        assert_eq!(expired.len(), 2);
        assert_eq!(table.clear_child(0), Some(Stage::EnvelopeRecipient));
        assert_eq!(table.clear_child(0), None);
        table.set(Timer::Child(1, Stage::Data), at(start, 1));
        assert!(!table.is_expired(expired[0], at(start, 1)), "cleared");
        assert!(!table.is_expired(expired[1], at(start, 1)), "now awaits another reply");
        assert!(table.is_expired(Timer::Child(1, Stage::Data), at(start, 1)));
        assert!(!table.is_expired(Timer::Child(1, Stage::Data), start), "not yet");
    }

    #[test]
    fn an_answer_says_how_long_it_took_despite_postponing() {
        let start = Instant::now();
        let mut table = TimerTable::new(2);
        table.await_reply(0, Stage::EndOfMessage, at(start, 1), at(start, 10));
        table.postpone(Owner::Child(0), at(start, 20));
        table.set(Timer::Child(1, Stage::Helo), at(start, 5));
        assert_eq!(
            table.answered(0, at(start, 4)),
            Some((Stage::EndOfMessage, Some(Duration::from_secs(3))))
        );
        assert_eq!(table.answered(0, at(start, 4)), None, "answered once");
        assert_eq!(table.answered(1, at(start, 4)), Some((Stage::Helo, None)), "no start known");
    }

    #[test]
    fn clearing_the_children_keeps_the_mta_deadline() {
        let start = Instant::now();
        let mut table = TimerTable::new(2);
        table.set(Timer::Mta(MtaTimer::Idle), at(start, 7));
        table.set(Timer::Child(0, Stage::Helo), at(start, 1));
        table.set(Timer::Child(1, Stage::Helo), at(start, 2));
        assert!(table.any_awaited(0..2));
        table.clear_children();
        assert!(!table.any_awaited(0..2));
        assert_eq!(table.next(true), Some(at(start, 7)));
    }
}
