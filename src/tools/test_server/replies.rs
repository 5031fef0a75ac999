//! What the session makes of the milter's replies: the negotiation answer, the
//! modifications, and the verdict a final reply means at each stage.

use std::time::Instant;

use super::phase::Phase;
use super::{Decision, TestServerSession};
use crate::protocol::{
    Actions, CommandKind, InvalidReplyCode, Reply, ReplyCode, Steps, SUPPORTED_VERSIONS,
};
use crate::status::Status;
use crate::tools::Ending;

impl TestServerSession {
    pub(super) fn handle_reply(&mut self, reply: Reply, now: Instant) {
        let Some((phase, _)) = self.waiting else {
            self.fail(format!("{} sent while no reply was due", reply.name()));
            return;
        };
        let described = describe_reply(&reply);
        self.log.push(if phase == Phase::Negotiate {
            described
        } else {
            format!("{}: {described}", phase.stage_name())
        });
        if phase == Phase::Negotiate {
            self.handle_negotiation(reply, now);
            return;
        }
        match reply {
            Reply::Progress => {
                self.waiting = Some((phase, now + self.timeout_for(phase)));
                return;
            }
            // Postfix takes a quarantine request at any stage and keeps reading.
            Reply::Quarantine { ref reason } => {
                if let Some(current) = &mut self.current {
                    current.message.quarantine_reason = Some(reason.clone());
                    current.modifications.push(reply);
                }
                return;
            }
            ref modification if modification.is_modification() => {
                if phase != Phase::EndOfMessage {
                    self.fail(format!(
                        "{} is allowed only at end-of-message, not at {}",
                        modification.name(),
                        phase.stage_name()
                    ));
                    return;
                }
                self.apply_modification(modification.clone());
                return;
            }
            _ => {}
        }
        self.waiting = None;
        if reply == Reply::Skip {
            self.skip_body = true;
        }
        let verdict = match self.verdict_of(&reply, phase) {
            Ok(verdict) => verdict,
            Err(error) => return self.fail(error.to_string()),
        };
        self.after_verdict(phase, verdict, now);
    }

    fn handle_negotiation(&mut self, reply: Reply, now: Instant) {
        let Reply::Negotiate(answer) = reply else {
            return self.fail(format!("expected a negotiate reply, got {}", reply.name()));
        };
        let offer = &self.script.offer;
        if !SUPPORTED_VERSIONS.contains(&answer.version) || answer.version > offer.version {
            return self.fail(format!(
                "the milter answered protocol version {} to an offer of version {}",
                answer.version, offer.version
            ));
        }
        let extra_actions = answer.actions.difference(offer.actions);
        if !extra_actions.is_empty() {
            return self.fail(format!(
                "the milter asked for actions that were not offered: {extra_actions}"
            ));
        }
        let extra_steps = answer.steps.difference(offer.steps).difference(Steps::MAX_DATA_SIZE);
        if !extra_steps.is_empty() {
            return self
                .fail(format!("the milter asked for steps that were not offered: {extra_steps}"));
        }
        if !answer.macro_requests.is_empty() && !answer.actions.contains(Actions::SET_SYMBOL_LIST) {
            return self
                .fail("the milter sent symbol lists without the set-symbol-list action".into());
        }
        self.negotiated = Some(answer);
        self.waiting = None;
        self.phase = Phase::Connect;
        self.advance(now);
    }

    fn apply_modification(&mut self, modification: Reply) {
        let Some(current) = &mut self.current else { return };
        let actions = self.negotiated.as_ref().map_or(Actions::empty(), |n| n.actions);
        let needed = modification.required_action();
        if !actions.contains(needed) {
            let error = format!("{} without the negotiated {needed} action", modification.name());
            return self.fail(error);
        }
        if let Err(error) = current.message.apply(&modification) {
            return self.fail(error.to_string());
        }
        current.modifications.push(modification);
    }

    /// The MTA's reading of a final reply at `phase`.
    fn verdict_of(&self, reply: &Reply, phase: Phase) -> Result<Decision, BadAnswer> {
        let stage = phase.stage_name();
        let verdict = |status| Ok(Decision { status, stage, reply: None });
        match reply {
            Reply::Continue => verdict(Ending::PASS),
            Reply::Accept => verdict(Status::Accept.into()),
            Reply::Reject => verdict(Status::Reject.into()),
            Reply::TemporaryFailure => verdict(Status::TemporaryFailure.into()),
            Reply::Discard => verdict(Status::Discard.into()),
            Reply::Shutdown => verdict(Ending::Shutdown),
            Reply::Skip
                if matches!(phase, Phase::Body(_)) && self.steps().contains(Steps::SKIP) =>
            {
                verdict(Ending::PASS)
            }
            Reply::ReplyCode { text } => {
                let code = ReplyCode::parse(text).map_err(BadAnswer::ReplyCode)?;
                let status =
                    if code.is_temporary() { Status::TemporaryFailure } else { Status::Reject };
                Ok(Decision {
                    status: status.into(),
                    stage,
                    reply: Some(String::from_utf8_lossy(text).into_owned()),
                })
            }
            other => Err(BadAnswer::NotAnAnswer { reply: other.name(), stage }),
        }
    }
}

/// A final reply the MTA cannot take as the answer to a command.
#[derive(Debug, thiserror::Error)]
enum BadAnswer {
    #[error(transparent)]
    ReplyCode(InvalidReplyCode),
    #[error("{reply} is not a valid answer to {stage}")]
    NotAnAnswer { reply: &'static str, stage: &'static str },
}

/// One readable line for a reply, named as the protocol names it.
pub fn describe_reply(reply: &Reply) -> String {
    use crate::text::escape;
    let name = reply.name();
    match reply {
        // Named after the stage, as the lines of the other stages are.
        Reply::Negotiate(n) => format!(
            "{}: version={} actions={} steps={}",
            CommandKind::Negotiate.name(),
            n.version,
            n.actions,
            n.steps
        ),
        Reply::ReplyCode { text } => format!("{name}: <{}>", escape(text)),
        Reply::AddHeader { name: header, value } => {
            format!("{name}: <{}>=<{}>", escape(header), escape(value))
        }
        Reply::InsertHeader { index, name: header, value }
        | Reply::ChangeHeader { index, name: header, value } => {
            format!("{name}: index={index} <{}>=<{}>", escape(header), escape(value))
        }
        Reply::ChangeFrom { address, parameters }
        | Reply::AddRecipientWithParameters { address, parameters } => format!(
            "{name}: <{}> parameters=<{}>",
            escape(address),
            escape(parameters.as_deref().unwrap_or_default())
        ),
        Reply::AddRecipient { address } | Reply::DeleteRecipient { address } => {
            format!("{name}: <{}>", escape(address))
        }
        Reply::ReplaceBody { chunk } => format!("{name}: size={}", chunk.len()),
        Reply::Quarantine { reason } => format!("{name}: <{}>", escape(reason)),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe_reply;
    use crate::protocol::{Actions, Negotiation, Reply, Steps};

    #[test]
    fn describe_reply_names_each_reply_as_the_verbose_output_shows_it() {
        let b = |s: &str| s.as_bytes().to_vec();
        let cases = [
            (
                Reply::Negotiate(Negotiation::new(6, Actions::ADD_HEADERS, Steps::SKIP)),
                "negotiate: version=6 actions=add-headers steps=skip",
            ),
            (Reply::ReplyCode { text: b("550 5.7.1 no") }, "reply-code: <550 5.7.1 no>"),
            (Reply::AddHeader { name: b("X-A"), value: b("1") }, "add-header: <X-A>=<1>"),
            (
                Reply::InsertHeader { index: 2, name: b("X-B"), value: b("2") },
                "insert-header: index=2 <X-B>=<2>",
            ),
            (
                Reply::ChangeHeader { index: 1, name: b("X-C"), value: b("") },
                "change-header: index=1 <X-C>=<>",
            ),
            (
                Reply::ChangeFrom { address: b("<a@b>"), parameters: Some(b("SIZE=1")) },
                "change-from: <<a@b>> parameters=<SIZE=1>",
            ),
            (
                Reply::AddRecipientWithParameters { address: b("<c@d>"), parameters: None },
                "add-recipient-with-parameters: <<c@d>> parameters=<>",
            ),
            (Reply::AddRecipient { address: b("<e@f>") }, "add-recipient: <<e@f>>"),
            (Reply::DeleteRecipient { address: b("<g@h>") }, "delete-recipient: <<g@h>>"),
            (Reply::ReplaceBody { chunk: b("12345") }, "replace-body: size=5"),
            (Reply::Quarantine { reason: b("spam") }, "quarantine: <spam>"),
            (Reply::TemporaryFailure, "temporary-failure"),
            (Reply::Continue, "continue"),
        ];
        for (reply, expected) in cases {
            assert_eq!(describe_reply(&reply), expected);
        }
    }
}
