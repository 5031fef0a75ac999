//! The session's state machine: what is sent at each phase, and where a verdict leads.

use std::time::Instant;

use super::phase::Phase;
use super::{split_esmtp, Decision, MessageResult, TestServerSession};
use crate::message::Message;
use crate::protocol::{Command, Reply, Steps};
use crate::status::Status;
use crate::tools::Ending;

impl TestServerSession {
    pub(super) fn after_verdict(&mut self, phase: Phase, verdict: Decision, now: Instant) {
        let pass = verdict.status == Ending::PASS;
        match phase {
            Phase::Connect | Phase::Helo => {
                if pass {
                    self.phase = if phase == Phase::Connect { Phase::Helo } else { Phase::Unknown };
                } else {
                    // Postfix drops the milter for the whole SMTP session after this.
                    self.session_verdict = Some(verdict);
                    self.finish_session();
                    return;
                }
            }
            Phase::Unknown => self.phase = Phase::Mail,
            Phase::Rcpt(i) => {
                if pass {
                    self.accepted_recipients += 1;
                } else if matches!(
                    verdict.status,
                    Ending::Status(Status::Reject | Status::TemporaryFailure)
                ) {
                    let recipient = self.script.recipients[i].clone();
                    if let Some(current) = &mut self.current {
                        // The MTA drops a recipient refused at RCPT from the envelope.
                        let (address, _) = split_esmtp(&recipient);
                        let refused = Reply::DeleteRecipient { address };
                        current
                            .message
                            .apply(&refused)
                            .expect("delete-recipient is a modification");
                        current.rejected_recipients.push((recipient, verdict));
                    }
                } else {
                    return self.end_message(verdict, now);
                }
                if i + 1 < self.script.recipients.len() {
                    self.phase = Phase::Rcpt(i + 1);
                } else if self.accepted_recipients == 0 {
                    // No recipient left: the MTA does not start DATA.
                    let last = self.current.as_ref().and_then(|c| c.rejected_recipients.last());
                    let verdict = last.map(|(_, v)| v.clone()).unwrap_or(Decision {
                        status: Status::Reject.into(),
                        stage: phase.stage_name(),
                        reply: None,
                    });
                    return self.end_message(verdict, now);
                } else {
                    self.phase = Phase::Data;
                }
            }
            Phase::Body(i) => {
                if !pass {
                    return self.end_message(verdict, now);
                }
                self.phase = Phase::Body(i + 1);
            }
            Phase::EndOfMessage => return self.end_message(verdict, now),
            _ => {
                if !pass {
                    return self.end_message(verdict, now);
                }
                self.phase = self.next_phase(phase);
            }
        }
        self.advance(now);
    }

    fn next_phase(&self, phase: Phase) -> Phase {
        match phase {
            Phase::Mail => Phase::Rcpt(0),
            Phase::Data => Phase::Header(0),
            Phase::Header(i) => Phase::Header(i + 1),
            Phase::EndOfHeader => Phase::Body(0),
            other => other,
        }
    }

    fn end_message(&mut self, verdict: Decision, now: Instant) {
        if let Some(mut current) = self.current.take() {
            current.verdict = verdict;
            self.messages.push(current);
        }
        // Postfix aborts the milter's message state after every message.
        Command::Abort.encode(&mut self.output);
        if self.messages.len() < self.script.n_messages as usize {
            self.phase = Phase::Mail;
            self.advance(now);
        } else {
            self.finish_session();
        }
    }

    fn finish_session(&mut self) {
        Command::Quit.encode(&mut self.output);
        self.phase = Phase::Done;
        self.waiting = None;
    }

    /// Sends what comes next until a reply is due or the session is over.
    pub(super) fn advance(&mut self, now: Instant) {
        while self.waiting.is_none() && self.phase != Phase::Done && self.error.is_none() {
            self.step(now);
        }
    }

    /// Sends the packets of the current phase (or moves past it).
    fn step(&mut self, now: Instant) {
        let steps = self.steps();
        let version = self.negotiated.as_ref().map_or(2, |n| n.version);
        let phase = self.phase;
        let (command, skipped, no_reply) = match phase {
            Phase::Connect => (
                Command::Connect {
                    hostname: self.script.connect_host.clone(),
                    address: self.script.connect_address.clone(),
                },
                steps.contains(Steps::NO_CONNECT),
                steps.contains(Steps::NR_CONNECT),
            ),
            Phase::Helo => match self.script.helo_fqdn.clone() {
                Some(fqdn) => (
                    Command::Helo { fqdn },
                    steps.contains(Steps::NO_HELO),
                    steps.contains(Steps::NR_HELO),
                ),
                None => {
                    self.phase = Phase::Unknown;
                    return;
                }
            },
            Phase::Unknown => match self.script.unknown_command.clone() {
                Some(command) if version >= 3 => (
                    Command::Unknown { command },
                    steps.contains(Steps::NO_UNKNOWN),
                    steps.contains(Steps::NR_UNKNOWN),
                ),
                _ => {
                    self.phase = Phase::Mail;
                    return;
                }
            },
            Phase::Mail => {
                self.start_message();
                let (address, parameters) = split_esmtp(&self.script.envelope_from);
                (
                    Command::EnvelopeFrom { address, parameters },
                    steps.contains(Steps::NO_MAIL),
                    steps.contains(Steps::NR_MAIL),
                )
            }
            Phase::Rcpt(i) => {
                if i >= self.script.recipients.len() {
                    // No recipients at all: nothing to deliver.
                    let verdict = Decision {
                        status: Status::Reject.into(),
                        stage: phase.stage_name(),
                        reply: None,
                    };
                    return self.end_message(verdict, now);
                }
                let (address, parameters) = split_esmtp(&self.script.recipients[i]);
                (
                    Command::EnvelopeRecipient { address, parameters },
                    steps.contains(Steps::NO_RCPT),
                    steps.contains(Steps::NR_RCPT),
                )
            }
            Phase::Data => {
                if version < 4 {
                    self.phase = Phase::Header(0);
                    return;
                }
                (Command::Data, steps.contains(Steps::NO_DATA), steps.contains(Steps::NR_DATA))
            }
            Phase::Header(i) => {
                let Some((name, value)) = self.script.headers.get(i).cloned() else {
                    self.phase = Phase::EndOfHeader;
                    return;
                };
                let value = if steps.contains(Steps::HDR_LEADSPC)
                    && !value.starts_with(b"\t")
                    && !value.is_empty()
                {
                    [b" ".as_slice(), &value].concat()
                } else {
                    value
                };
                (
                    Command::Header { name, value },
                    steps.contains(Steps::NO_HEADERS),
                    steps.contains(Steps::NR_HEADER),
                )
            }
            Phase::EndOfHeader => {
                (Command::EndOfHeader, steps.contains(Steps::NO_EOH), steps.contains(Steps::NR_EOH))
            }
            Phase::Body(i) => {
                if self.skip_body || i >= self.body_chunks.len() {
                    self.phase = Phase::EndOfMessage;
                    return;
                }
                let chunk = self.body_chunks[i].clone();
                (
                    Command::Body { chunk },
                    steps.contains(Steps::NO_BODY),
                    steps.contains(Steps::NR_BODY),
                )
            }
            Phase::EndOfMessage => {
                if let Some(current) = &mut self.current {
                    current.message.begin_modifications();
                }
                (Command::EndOfMessage { chunk: Vec::new() }, false, false)
            }
            Phase::Negotiate | Phase::Done => return,
        };
        self.send_macros(&command);
        if skipped {
            self.phase = self.phase_after_silent(phase);
            return;
        }
        command.encode(&mut self.output);
        if no_reply {
            self.log.push(format!("{}: (no reply negotiated)", phase.stage_name()));
            let verdict = Decision { status: Ending::PASS, stage: phase.stage_name(), reply: None };
            self.after_verdict(phase, verdict, now);
            // after_verdict advanced already; stop this step.
            return;
        }
        self.waiting = Some((phase, now + self.timeout_for(phase)));
    }

    /// Where the session goes when the milter does not receive the event at all.
    fn phase_after_silent(&mut self, phase: Phase) -> Phase {
        match phase {
            Phase::Connect => Phase::Helo,
            Phase::Helo => Phase::Unknown,
            Phase::Unknown => Phase::Mail,
            Phase::Rcpt(i) => {
                self.accepted_recipients += 1;
                if i + 1 < self.script.recipients.len() {
                    Phase::Rcpt(i + 1)
                } else {
                    Phase::Data
                }
            }
            Phase::Body(_) => Phase::EndOfMessage,
            other => self.next_phase(other),
        }
    }

    fn start_message(&mut self) {
        let mut message = Message::new(&self.script.envelope_from);
        for recipient in &self.script.recipients {
            let (address, parameters) = split_esmtp(recipient);
            message.add_original_recipient(&address, parameters);
        }
        for (name, value) in &self.script.headers {
            message.add_original_header(name, value);
        }
        let body: Vec<u8> = if self.script.body_chunks.is_empty() {
            self.script.body.clone()
        } else {
            self.script.body_chunks.concat()
        };
        let max = self.steps().max_data_size();
        self.body_chunks = if self.script.body_chunks.is_empty() {
            body.chunks(max).map(<[u8]>::to_vec).collect()
        } else {
            self.script.body_chunks.iter().flat_map(|c| c.chunks(max).map(<[u8]>::to_vec)).collect()
        };
        message.body = body;
        self.current = Some(MessageResult {
            verdict: Decision {
                status: Ending::PASS,
                stage: Phase::EndOfMessage.stage_name(),
                reply: None,
            },
            rejected_recipients: Vec::new(),
            message,
            modifications: Vec::new(),
        });
        self.accepted_recipients = 0;
        self.skip_body = false;
    }
}
