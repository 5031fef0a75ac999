//! The verdicts of the milter world, named once: what a milter answers to a command,
//! how those answers rank when several children disagree, and the subset an admin can
//! configure as a fallback (`fallback_status`, `fallback_status_at_disconnect`).

use std::fmt;
use std::str::FromStr;

use crate::protocol::{Reply, ReplyCode};

/// A milter's verdict on one command, in increasing precedence: when children disagree,
/// the MTA hears the most important one. The MTA hears `Accept` only when every child
/// accepted.
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
    /// Every status, in precedence order.
    pub const ALL: [Self; 6] = [
        Self::Accept,
        Self::Skip,
        Self::Continue,
        Self::TemporaryFailure,
        Self::Reject,
        Self::Discard,
    ];

    /// The name used in logs and configuration, as the original's.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Skip => "skip",
            Self::Continue => "continue",
            Self::TemporaryFailure => "temporary-failure",
            Self::Reject => "reject",
            Self::Discard => "discard",
        }
    }

    /// The name in statistics lines and the tools' reports, where "continue" is "pass".
    pub fn statistics_name(self) -> &'static str {
        match self {
            Self::Continue => "pass",
            other => other.name(),
        }
    }

    pub fn from_fallback(fallback: FallbackStatus) -> Self {
        fallback.into()
    }

    /// Whether this ends the message (or the session, at connect and helo).
    pub fn is_refusal(self) -> bool {
        matches!(self, Self::TemporaryFailure | Self::Reject | Self::Discard)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    pub const fn of(status: Status) -> Self {
        Self { status, reply_code: None }
    }

    /// The verdict a `y` packet stands for. An invalid code counts as a plain reject, the
    /// safe reading of "the milter wanted to refuse"; the reason is returned for the log.
    pub fn from_reply_code(text: &[u8]) -> (Self, Option<String>) {
        match ReplyCode::parse(text) {
            Ok(code) => {
                let status =
                    if code.is_temporary() { Status::TemporaryFailure } else { Status::Reject };
                (Self { status, reply_code: Some(text.to_vec()) }, None)
            }
            Err(error) => (Self::of(Status::Reject), Some(error.to_string())),
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

/// A configurable fallback verdict: the statuses that end a command by themselves
/// (skip and continue would leave the MTA waiting for another answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackStatus {
    Accept,
    TemporaryFailure,
    Reject,
    Discard,
}

impl FallbackStatus {
    pub const ALL: [Self; 4] = [Self::Accept, Self::TemporaryFailure, Self::Reject, Self::Discard];

    pub fn name(self) -> &'static str {
        Status::from(self).name()
    }
}

impl From<FallbackStatus> for Status {
    fn from(fallback: FallbackStatus) -> Self {
        match fallback {
            FallbackStatus::Accept => Self::Accept,
            FallbackStatus::TemporaryFailure => Self::TemporaryFailure,
            FallbackStatus::Reject => Self::Reject,
            FallbackStatus::Discard => Self::Discard,
        }
    }
}

/// The check that a status may be a fallback.
impl TryFrom<Status> for FallbackStatus {
    type Error = Status;

    fn try_from(status: Status) -> Result<Self, Status> {
        Self::ALL.into_iter().find(|f| Status::from(*f) == status).ok_or(status)
    }
}

impl fmt::Display for FallbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fallback status name that is not one of [`FallbackStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?} (use \"accept\", \"temporary-failure\", \"reject\" or \"discard\")")]
pub struct UnknownStatus(pub String);

impl FromStr for FallbackStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, UnknownStatus> {
        let known = Self::ALL.into_iter().find(|s| s.name() == text);
        known.ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in FallbackStatus::ALL {
            assert_eq!(status.name().parse::<FallbackStatus>(), Ok(status));
        }
        let error = "continue".parse::<FallbackStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown status \"continue\" (use \"accept\", \"temporary-failure\", \"reject\" or \
             \"discard\")"
        );
    }

    #[test]
    fn fallbacks_are_the_statuses_that_end_a_command() {
        let fallbacks: Vec<Status> =
            Status::ALL.into_iter().filter(|s| FallbackStatus::try_from(*s).is_ok()).collect();
        assert_eq!(
            fallbacks,
            [Status::Accept, Status::TemporaryFailure, Status::Reject, Status::Discard]
        );
        assert_eq!(FallbackStatus::try_from(Status::Skip), Err(Status::Skip));
    }
}
