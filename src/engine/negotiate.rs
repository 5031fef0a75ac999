//! The option negotiation between the MTA, the manager and the children: what the children
//! are offered, which child answers are acceptable, and the merged answer for the MTA.

use std::collections::HashSet;

use crate::protocol::{Actions, MacroRequestStage, Negotiation, Steps, MAX_VERSION};

/// What every child is offered: the MTA's offer, capped at the version we speak. The
/// data-size bits stay between the MTA and us: children get chunks of at most 64 KiB.
pub fn offer_for_children(mta: &Negotiation) -> Negotiation {
    Negotiation::new(
        mta.version.min(MAX_VERSION),
        mta.actions,
        mta.steps.difference(Steps::MAX_DATA_SIZE),
    )
}

/// Checks a child's answer against what it was offered. A child may not ask for more than
/// it was offered; libmilter never does, and granting it would hand the MTA a request the
/// MTA did not offer.
pub fn check_child_answer(offer: &Negotiation, answer: &Negotiation) -> Result<(), AnswerError> {
    if !(2..=offer.version).contains(&answer.version) {
        return Err(AnswerError::Version { answered: answer.version, offered: offer.version });
    }
    let extra_actions = answer.actions.difference(offer.actions);
    if !extra_actions.is_empty() {
        return Err(AnswerError::Actions(extra_actions));
    }
    let extra_steps = answer.steps.difference(offer.steps).difference(Steps::MAX_DATA_SIZE);
    if !extra_steps.is_empty() {
        return Err(AnswerError::Steps(extra_steps));
    }
    Ok(())
}

/// Why a child's negotiation answer is refused; the child is named where it is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("answered protocol version {answered} to an offer of version {offered}")]
    Version { answered: u32, offered: u32 },
    #[error("asked for actions that were not offered: {0}")]
    Actions(Actions),
    #[error("asked for protocol steps that were not offered: {0}")]
    Steps(Steps),
}

/// Headers go unanswered to the MTA even when children answer them. The MTA then streams
/// a message's headers instead of waiting one round trip per header (two through the
/// manager), and the manager sends them on to a child ahead of its answers
/// (`session::pipeline`). A child's refusal at a header is told at end-of-header, the next
/// command with a reply (`Session::end_message_with`). No SMTP client can tell the
/// difference: SMTP answers a message only after its final `.`.
pub(super) const HEADERS_UNANSWERED: Steps = Steps::NR_HEADER;

/// The manager's answer to the MTA, from the answers of the children that negotiated.
///
/// - No "do not send" step: the manager wants every event, conditions may need any of them.
/// - SKIP, RCPT_REJ and HDR_LEADSPC: when the MTA offered them and some child asked.
/// - A "no reply" step only when the MTA offered it and every child asked for it, except
///   for headers: the manager takes NR_HDR whenever the MTA offers it (`HEADERS_UNANSWERED`).
/// - Actions: what any child asked for (the MTA offered them all, see the check above).
/// - Symbol lists: per stage, the union of the names children asked for.
pub fn merge_answers(mta: &Negotiation, answers: &[&Negotiation]) -> Negotiation {
    let version = mta.version.min(MAX_VERSION);
    let mut merged = Negotiation::new(version, Actions::empty(), Steps::empty());
    if answers.is_empty() {
        return merged;
    }
    let mut extras = Steps::empty();
    let mut no_replies = Steps::NO_REPLIES.intersection(mta.steps);
    for answer in answers {
        merged.actions = merged.actions.union(answer.actions);
        extras = extras.union(answer.steps.intersection(Steps::EXTRAS));
        no_replies = no_replies.intersection(answer.steps.union(HEADERS_UNANSWERED));
    }
    merged.actions = merged.actions.intersection(mta.actions);
    merged.steps = extras.intersection(mta.steps).union(no_replies);
    if mta.actions.contains(Actions::SET_SYMBOL_LIST) {
        merged.macro_requests = union_of_symbol_lists(answers);
        if !merged.macro_requests.is_empty() {
            merged.actions = merged.actions.union(Actions::SET_SYMBOL_LIST);
        }
    }
    merged
}

/// One stage's united names: in first-seen order, and as a set to find duplicates at once.
struct StageNames<'a> {
    stage: MacroRequestStage,
    ordered: Vec<&'a [u8]>,
    known: HashSet<&'a [u8]>,
}

/// Linear in the total number of names: each stage keeps a set of the names it holds, so
/// children with thousands of names do not cost a quadratic scan per session.
fn union_of_symbol_lists(answers: &[&Negotiation]) -> Vec<(MacroRequestStage, Vec<u8>)> {
    let mut lists: Vec<StageNames<'_>> = Vec::new();
    for answer in answers {
        for (stage, names) in &answer.macro_requests {
            let index = match lists.iter().position(|list| list.stage == *stage) {
                Some(i) => i,
                None => {
                    let list =
                        StageNames { stage: *stage, ordered: Vec::new(), known: HashSet::new() };
                    lists.push(list);
                    lists.len() - 1
                }
            };
            let list = &mut lists[index];
            for name in names.split(|&b| b == b' ').filter(|n| !n.is_empty()) {
                if list.known.insert(name) {
                    list.ordered.push(name);
                }
            }
        }
    }
    lists.sort_by_key(|list| list.stage.index());
    lists.into_iter().map(|list| (list.stage, list.ordered.join(&b' '))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MacroStage;

    fn answer(actions: Actions, steps: Steps) -> Negotiation {
        Negotiation::new(6, actions, steps)
    }

    #[test]
    fn the_original_example_skip_is_kept_and_no_events_removed() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        let child = answer(Actions::ALL, Steps::NO_CONNECT | Steps::NO_HELO | Steps::SKIP);
        let merged = merge_answers(&mta, &[&child]);
        assert_eq!(merged.version, 6);
        assert_eq!(merged.actions, Actions::ALL);
        assert_eq!(merged.steps, Steps::SKIP | Steps::NR_HEADER);
    }

    #[test]
    fn no_reply_needs_every_child() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        let a = answer(Actions::empty(), Steps::NR_CONNECT | Steps::NR_HELO);
        let b = answer(Actions::empty(), Steps::NR_CONNECT);
        let steps = Steps::NR_CONNECT | Steps::NR_HEADER;
        assert_eq!(merge_answers(&mta, &[&a, &b]).steps, steps);
        let mta_without =
            Negotiation::new(6, Actions::ALL, Steps::ALL.difference(Steps::NR_CONNECT));
        assert_eq!(merge_answers(&mta_without, &[&a, &b]).steps, Steps::NR_HEADER);
    }

    #[test]
    fn headers_go_unanswered_whenever_the_mta_offers_it() {
        let child = answer(Actions::empty(), Steps::empty());
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        assert_eq!(merge_answers(&mta, &[&child]).steps, Steps::NR_HEADER);
        let mta_without =
            Negotiation::new(6, Actions::ALL, Steps::ALL.difference(Steps::NR_HEADER));
        assert_eq!(merge_answers(&mta_without, &[&child]).steps, Steps::empty());
    }

    #[test]
    fn extras_need_the_mta_offer_and_actions_are_united() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL.difference(Steps::HDR_LEADSPC));
        let a = answer(Actions::ADD_HEADERS, Steps::HDR_LEADSPC);
        let b = answer(Actions::CHANGE_BODY, Steps::RCPT_REJ);
        let merged = merge_answers(&mta, &[&a, &b]);
        assert_eq!(merged.steps, Steps::RCPT_REJ | Steps::NR_HEADER);
        assert_eq!(merged.actions, Actions::ADD_HEADERS | Actions::CHANGE_BODY);
    }

    #[test]
    fn no_children_ask_for_nothing() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        let merged = merge_answers(&mta, &[]);
        assert_eq!((merged.actions, merged.steps), (Actions::empty(), Steps::empty()));
    }

    #[test]
    fn symbol_lists_are_united_per_stage() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        let mut a = answer(Actions::SET_SYMBOL_LIST, Steps::empty());
        a.macro_requests =
            vec![(MacroRequestStage::Known(MacroStage::EnvelopeFrom), b"{auth_type} i".to_vec())];
        let mut b = answer(Actions::SET_SYMBOL_LIST, Steps::empty());
        b.macro_requests = vec![
            (MacroRequestStage::Known(MacroStage::Connect), b"j".to_vec()),
            (MacroRequestStage::Known(MacroStage::EnvelopeFrom), b"i {mail_addr}".to_vec()),
        ];
        let merged = merge_answers(&mta, &[&a, &b]);
        assert_eq!(
            merged.macro_requests,
            vec![
                (MacroRequestStage::Known(MacroStage::Connect), b"j".to_vec()),
                (
                    MacroRequestStage::Known(MacroStage::EnvelopeFrom),
                    b"{auth_type} i {mail_addr}".to_vec()
                ),
            ]
        );
    }

    /// Three children of 9,000 names each, overlapping by a third: the union keeps the
    /// first-seen order and each name once. (Quadratic merging took 0.2 s CPU here.)
    #[test]
    fn large_symbol_lists_are_united_in_order_without_duplicates() {
        let mta = Negotiation::new(6, Actions::ALL, Steps::ALL);
        let stage = MacroRequestStage::Known(MacroStage::EnvelopeFrom);
        let children: Vec<Negotiation> = (0..3)
            .map(|child| {
                let names: Vec<String> =
                    (child * 6_000..child * 6_000 + 9_000).map(|n| format!("{{m{n}}}")).collect();
                let mut answer = answer(Actions::SET_SYMBOL_LIST, Steps::empty());
                answer.macro_requests = vec![(stage, names.join(" ").into_bytes())];
                answer
            })
            .collect();
        let answers: Vec<&Negotiation> = children.iter().collect();
        let merged = merge_answers(&mta, &answers);
        let expected: Vec<String> = (0..21_000).map(|n| format!("{{m{n}}}")).collect();
        assert_eq!(merged.macro_requests, vec![(stage, expected.join(" ").into_bytes())]);
    }

    #[test]
    fn answers_beyond_the_offer_are_refused() {
        let offer = offer_for_children(&Negotiation::new(6, Actions::ADD_HEADERS, Steps::V1));
        assert!(check_child_answer(&offer, &answer(Actions::ADD_HEADERS, Steps::NO_BODY)).is_ok());
        assert!(check_child_answer(&offer, &answer(Actions::CHANGE_BODY, Steps::empty())).is_err());
        assert!(check_child_answer(&offer, &answer(Actions::empty(), Steps::SKIP)).is_err());
        let v7 = Negotiation::new(7, Actions::empty(), Steps::empty());
        let refused = check_child_answer(&offer, &v7).unwrap_err().to_string();
        assert_eq!(refused, "answered protocol version 7 to an offer of version 6");
        let refused = check_child_answer(&offer, &answer(Actions::QUARANTINE, Steps::empty()));
        let refused = refused.unwrap_err().to_string();
        assert_eq!(refused, "asked for actions that were not offered: quarantine");
    }
}
