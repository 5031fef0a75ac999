//! The statuses children answer with, their precedence, and folding many answers into one.

use crate::protocol::{Reply, ReplyCode};
use crate::status::FallbackStatus;

/// A child's verdict on one command, in increasing precedence: when children disagree, the
/// MTA hears the most important one. The MTA hears `Accept` only when every child accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Accept,
    Skip,
    Continue,
    TemporaryFailure,
    Reject,
    Discard,
}

impl Status {
    /// The name used in logs, as the original's.
    pub fn name(self) -> &'static str {
        match self {
            Status::Accept => "accept",
            Status::Skip => "skip",
            Status::Continue => "continue",
            Status::TemporaryFailure => "temporary-failure",
            Status::Reject => "reject",
            Status::Discard => "discard",
        }
    }

    /// The name in statistics lines, where "continue" is "pass".
    pub fn statistics_name(self) -> &'static str {
        match self {
            Status::Continue => "pass",
            other => other.name(),
        }
    }

    pub fn from_fallback(fallback: FallbackStatus) -> Status {
        match fallback {
            FallbackStatus::Accept => Status::Accept,
            FallbackStatus::TemporaryFailure => Status::TemporaryFailure,
            FallbackStatus::Reject => Status::Reject,
            FallbackStatus::Discard => Status::Discard,
        }
    }

    /// Whether this ends the message (or the session, at connect and helo).
    pub fn is_refusal(self) -> bool {
        matches!(self, Status::TemporaryFailure | Status::Reject | Status::Discard)
    }
}

/// A status with the SMTP reply text that goes with it (`y` packets), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// A validated reply code of the status's class (4xx for temporary failure, 5xx for
    /// reject).
    pub reply_code: Option<Vec<u8>>,
}

impl Verdict {
    pub const fn of(status: Status) -> Verdict {
        Verdict { status, reply_code: None }
    }

    /// The verdict a `y` packet stands for. An invalid code counts as a plain reject, the
    /// safe reading of "the milter wanted to refuse"; the reason is returned for the log.
    pub fn from_reply_code(text: &[u8]) -> (Verdict, Option<String>) {
        match ReplyCode::parse(text) {
            Ok(code) => {
                let status =
                    if code.code / 100 == 4 { Status::TemporaryFailure } else { Status::Reject };
                (Verdict { status, reply_code: Some(text.to_vec()) }, None)
            }
            Err(error) => (Verdict::of(Status::Reject), Some(error.to_string())),
        }
    }

    /// The packet that tells the MTA this verdict.
    pub fn to_reply(&self) -> Reply {
        if let Some(text) = &self.reply_code {
            return Reply::ReplyCode { text: text.clone() };
        }
        match self.status {
            Status::Accept => Reply::Accept,
            Status::Skip => Reply::Skip,
            Status::Continue => Reply::Continue,
            Status::TemporaryFailure => Reply::TemporaryFailure,
            Status::Reject => Reply::Reject,
            Status::Discard => Reply::Discard,
        }
    }
}

/// Folds verdicts given in configuration order: the most important status wins; between
/// equal statuses the first child's reply code wins, so the outcome never depends on which
/// child happened to answer first.
#[derive(Debug, Default, Clone)]
pub struct Fold {
    best: Option<Verdict>,
}

impl Fold {
    pub fn add(&mut self, verdict: &Verdict) {
        match &mut self.best {
            None => self.best = Some(verdict.clone()),
            Some(best) if verdict.status > best.status => *best = verdict.clone(),
            Some(best) if verdict.status == best.status && best.reply_code.is_none() => {
                best.reply_code.clone_from(&verdict.reply_code)
            }
            Some(_) => {}
        }
    }

    pub fn result(&self) -> Option<&Verdict> {
        self.best.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: [Status; 6] = [
        Status::Accept,
        Status::Skip,
        Status::Continue,
        Status::TemporaryFailure,
        Status::Reject,
        Status::Discard,
    ];

    #[test]
    fn every_pair_folds_to_the_more_important() {
        for (i, a) in ORDER.iter().enumerate() {
            for (j, b) in ORDER.iter().enumerate() {
                let mut fold = Fold::default();
                fold.add(&Verdict::of(*a));
                fold.add(&Verdict::of(*b));
                assert_eq!(fold.result().unwrap().status, ORDER[i.max(j)], "{a:?} + {b:?}");
            }
        }
    }

    #[test]
    fn the_first_reply_code_of_the_winning_status_is_kept() {
        let mut fold = Fold::default();
        fold.add(&Verdict::of(Status::Reject));
        fold.add(&Verdict::from_reply_code(b"550 5.7.1 first").0);
        fold.add(&Verdict::from_reply_code(b"550 5.7.1 second").0);
        fold.add(&Verdict::from_reply_code(b"451 4.7.1 later").0);
        let best = fold.result().unwrap();
        assert_eq!(best.status, Status::Reject);
        assert_eq!(best.reply_code.as_deref(), Some(&b"550 5.7.1 first"[..]));
    }

    #[test]
    fn reply_codes_map_to_their_class() {
        assert_eq!(Verdict::from_reply_code(b"451 4.3.0 busy").0.status, Status::TemporaryFailure);
        let (verdict, error) = Verdict::from_reply_code(b"554 3.7.1 mismatched");
        assert_eq!(verdict, Verdict::of(Status::Reject));
        assert!(error.is_some());
    }
}
