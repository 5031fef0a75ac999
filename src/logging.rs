//! Log levels as milter-manager's tools name them, combinable with `|`
//! (`--log-level=error|warning|statistics`), and how `log` records map onto them.
//!
//! `log`'s five levels carry the usual ones; three more travel as the record's target:
//! `critical`, `statistics` and `profile`.

use std::fmt;

/// One named level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Critical,
    Error,
    Warning,
    Message,
    Info,
    Debug,
    Statistics,
    Profile,
}

impl Level {
    pub const ALL: [Self; 8] = [
        Self::Critical,
        Self::Error,
        Self::Warning,
        Self::Message,
        Self::Info,
        Self::Debug,
        Self::Statistics,
        Self::Profile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Message => "message",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Statistics => "statistics",
            Self::Profile => "profile",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The level of a `log` record.
    pub fn of_record(level: log::Level, target: &str) -> Self {
        match target {
            "critical" => Self::Critical,
            "statistics" => Self::Statistics,
            "profile" => Self::Profile,
            _ => match level {
                log::Level::Error => Self::Error,
                log::Level::Warn => Self::Warning,
                log::Level::Info => Self::Message,
                log::Level::Debug => Self::Info,
                log::Level::Trace => Self::Debug,
            },
        }
    }
}

/// A set of levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels(u8);

impl Levels {
    pub const NONE: Self = Self(0);
    pub const ALL: Self = Self(0xff);
    /// What is logged when nothing is said: critical, error, warning, message, statistics.
    pub const DEFAULT: Self = Self(1 | 2 | 4 | 8 | 64);

    pub fn contains(self, level: Level) -> bool {
        self.0 & level.bit() != 0
    }

    /// Parses `level|level|...`; `all`, `default` and `none` are allowed as parts.
    pub fn parse(text: &str) -> Result<Self, UnknownLevel> {
        let mut bits = 0;
        for part in text.split('|').map(str::trim) {
            bits |= match part {
                "all" => Self::ALL.0,
                "default" => Self::DEFAULT.0,
                "none" => 0,
                _ => match Level::ALL.iter().find(|l| l.name() == part) {
                    Some(level) => level.bit(),
                    None => return Err(UnknownLevel(part.to_string())),
                },
            };
        }
        Ok(Self(bits))
    }

    /// The most verbose `log` filter that can pass anything in the set.
    pub fn max_log_filter(self) -> log::LevelFilter {
        if self.contains(Level::Debug) {
            log::LevelFilter::Trace
        } else if self.contains(Level::Info) {
            log::LevelFilter::Debug
        } else if self.0 != 0 {
            log::LevelFilter::Info
        } else {
            log::LevelFilter::Off
        }
    }
}

/// A part of a level list that names no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (use all, default, none or {names})", names = level_names())]
pub struct UnknownLevel(pub String);

fn level_names() -> String {
    Level::ALL.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Levels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> =
            Level::ALL.iter().filter(|l| self.contains(**l)).map(|l| l.name()).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join("|"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_combine_with_bars() {
        let levels = Levels::parse("error|warning|statistics").unwrap();
        assert!(levels.contains(Level::Error));
        assert!(!levels.contains(Level::Message));
        assert_eq!(levels.to_string(), "error|warning|statistics");
        assert_eq!(Levels::parse("default").unwrap(), Levels::DEFAULT);
        assert_eq!(Levels::parse("all").unwrap().to_string().split('|').count(), 8);
        assert_eq!(
            Levels::parse("error|loud").unwrap_err().to_string(),
            "unknown log level \"loud\" (use all, default, none or critical, error, warning, \
             message, info, debug, statistics, profile)"
        );
    }

    #[test]
    fn records_map_to_levels() {
        assert_eq!(Level::of_record(log::Level::Info, "statistics"), Level::Statistics);
        assert_eq!(Level::of_record(log::Level::Info, "milter_manager"), Level::Message);
        assert_eq!(Level::of_record(log::Level::Trace, "x"), Level::Debug);
    }
}
