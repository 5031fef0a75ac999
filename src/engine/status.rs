//! Folding many children's verdicts into the one the MTA hears.

// The verdict vocabulary is the crate's; the engine names it from here.
pub use crate::status::{Status, Verdict};

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

    const ORDER: [Status; 6] = Status::ALL;

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
