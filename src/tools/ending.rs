//! How a message or a session ended, as the MTA (or the SMTP client) saw it.

use std::cmp::Ordering;

use crate::status::Status;

/// A milter's status, or one of the two endings that are no status of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// As the milter answered; `Continue` up to the end is "pass" (so is an SMTP 2xx).
    Status(Status),
    /// Accepted, but the milter asked to quarantine the message.
    Quarantine,
    /// The milter asked the MTA to drop the connection (421).
    Shutdown,
}

impl Ending {
    pub const PASS: Self = Self::Status(Status::Continue);

    /// The name in the tools' output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Status(status) => status.statistics_name(),
            Self::Quarantine => "quarantine",
            Self::Shutdown => "shutdown",
        }
    }

    /// Where the performance report lists it: from "mail went through" to "mail refused".
    fn rank(self) -> u8 {
        match self {
            Self::Status(Status::Continue) => 0,
            Self::Status(Status::Skip) => 1,
            Self::Status(Status::Accept) => 2,
            Self::Quarantine => 3,
            Self::Status(Status::Discard) => 4,
            Self::Status(Status::TemporaryFailure) => 5,
            Self::Status(Status::Reject) => 6,
            Self::Shutdown => 7,
        }
    }
}

impl From<Status> for Ending {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl Ord for Ending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Ending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_are_ordered_and_named_as_reported() {
        let mut endings: Vec<Ending> = Status::ALL.into_iter().map(Ending::from).collect();
        endings.extend([Ending::Quarantine, Ending::Shutdown]);
        endings.sort();
        let names: Vec<&str> = endings.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "pass",
                "skip",
                "accept",
                "quarantine",
                "discard",
                "temporary-failure",
                "reject",
                "shutdown"
            ]
        );
    }
}
