//! The verdicts an admin can configure as a fallback (`fallback_status`,
//! `fallback_status_at_disconnect`): what the MTA is told when a child milter or the
//! manager itself cannot give an answer.

use std::fmt;
use std::str::FromStr;

/// A configurable fallback verdict, named as in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackStatus {
    Accept,
    TemporaryFailure,
    Reject,
    Discard,
}

impl FallbackStatus {
    pub const ALL: [FallbackStatus; 4] = [
        FallbackStatus::Accept,
        FallbackStatus::TemporaryFailure,
        FallbackStatus::Reject,
        FallbackStatus::Discard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FallbackStatus::Accept => "accept",
            FallbackStatus::TemporaryFailure => "temporary-failure",
            FallbackStatus::Reject => "reject",
            FallbackStatus::Discard => "discard",
        }
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
        let known = FallbackStatus::ALL.into_iter().find(|s| s.name() == text);
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
            "unknown status \"continue\" (use \"accept\", \"temporary-failure\", \"reject\" or \"discard\")"
        );
    }
}
