//! What the session reports: the verdicts, each message's result, and why a session
//! could not complete.

use std::fmt;
use std::time::Duration;

use crate::message::Message;
use crate::protocol::Reply;
use crate::tools::Ending;

/// A decision with the stage it was made at and the SMTP reply, if the milter gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: Ending,
    pub stage: &'static str,
    pub reply: Option<String>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.name())?;
        if let Some(reply) = &self.reply {
            write!(f, " [{}]", reply.replace("\r\n", " "))?;
        }
        if self.status != Ending::PASS {
            write!(f, " at {}", self.stage)?;
        }
        Ok(())
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResult {
    pub verdict: Decision,
    /// Recipients the milter refused, with the verdict for each.
    pub rejected_recipients: Vec<(Vec<u8>, Decision)>,
    /// The message after the milter's modifications.
    pub message: Message,
    /// Every modification packet, in order.
    pub modifications: Vec<Reply>,
}

/// Why the session could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The milter broke the protocol.
    Protocol(String),
    /// The milter did not answer in time.
    Timeout { waiting_for: &'static str, after: Duration },
    /// The milter closed the connection while a reply was due.
    Closed { waiting_for: &'static str },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(detail) => write!(f, "the milter broke the protocol: {detail}"),
            Self::Timeout { waiting_for, after } => write!(
                f,
                "the milter did not answer {waiting_for} within {} seconds",
                after.as_secs_f64()
            ),
            Self::Closed { waiting_for } => {
                write!(f, "the milter closed the connection while {waiting_for} was unanswered")
            }
        }
    }
}

impl std::error::Error for SessionError {}
