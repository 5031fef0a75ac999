//! What the session makes of the milter's replies: the negotiation answer, the
//! modifications, and the verdict a final reply means at each stage.

use std::time::Instant;

use super::phase::Phase;
use super::{Decision, TestServerSession};
use crate::protocol::{Actions, Reply, ReplyCode, Steps, SUPPORTED_VERSIONS};
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
            Err(error) => return self.fail(error),
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
    fn verdict_of(&self, reply: &Reply, phase: Phase) -> Result<Decision, String> {
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
                let code = ReplyCode::parse(text).map_err(|e| e.to_string())?;
                let status =
                    if code.is_temporary() { Status::TemporaryFailure } else { Status::Reject };
                Ok(Decision {
                    status: status.into(),
                    stage,
                    reply: Some(String::from_utf8_lossy(text).into_owned()),
                })
            }
            other => Err(format!("{} is not a valid answer to {stage}", other.name())),
        }
    }
}

/// One readable line for a reply.
pub fn describe_reply(reply: &Reply) -> String {
    use crate::text::escape;
    match reply {
        Reply::Negotiate(n) => {
            format!("negotiate: version={} actions={} steps={}", n.version, n.actions, n.steps)
        }
        Reply::ReplyCode { text } => format!("reply-code: <{}>", escape(text)),
        Reply::AddHeader { name, value } => {
            format!("add-header: <{}>=<{}>", escape(name), escape(value))
        }
        Reply::InsertHeader { index, name, value } => {
            format!("insert-header: index={index} <{}>=<{}>", escape(name), escape(value))
        }
        Reply::ChangeHeader { index, name, value } => {
            format!("change-header: index={index} <{}>=<{}>", escape(name), escape(value))
        }
        Reply::ChangeFrom { address, parameters }
        | Reply::AddRecipientWithParameters { address, parameters } => {
            format!(
                "{}: <{}> parameters=<{}>",
                reply.name(),
                escape(address),
                escape(parameters.as_deref().unwrap_or_default())
            )
        }
        Reply::AddRecipient { address } | Reply::DeleteRecipient { address } => {
            format!("{}: <{}>", reply.name(), escape(address))
        }
        Reply::ReplaceBody { chunk } => format!("replace-body: size={}", chunk.len()),
        Reply::Quarantine { reason } => format!("quarantine: <{}>", escape(reason)),
        other => other.name().to_string(),
    }
}
