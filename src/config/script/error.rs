//! Why a configuration function refused.

use rhai::EvalAltResult;

use super::super::error::{MilterNameError, ValueError};

/// Why a configuration function refused; Rhai reports it with the line of the call.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScriptError {
    #[error("this function works only while the configuration loads")]
    NotLoading,
    #[error("milter {0:?} was removed")]
    MilterRemoved(String),
    #[error("applicable condition {0:?} is not defined")]
    ConditionUndefined(String),
    #[error("an applicable condition needs a name")]
    NoConditionName,
    #[error("a description is a string, found {0}")]
    DescriptionType(String),
    #[error("s25r.{method}: expected a host name, \"/regex/\" or a function, found {kind}")]
    MatcherType { method: &'static str, kind: String },
    #[error("manager.define_connection_checker: a checker needs a name")]
    NoCheckerName,
    #[error(
        "manager.use_netstat_connection_checker: the interval is a number of seconds above 0, \
         found {0}"
    )]
    CheckInterval(i64),
    #[error("trust.load_envelope_from_domains: an empty file name")]
    EmptyFileName,
    /// `key` names the item, e.g. `milter.clamav.reading_timeout`.
    #[error("{key}: {error}")]
    Item { key: String, error: Box<Self> },
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    MilterName(#[from] MilterNameError),
}

impl From<ScriptError> for Box<EvalAltResult> {
    fn from(error: ScriptError) -> Self {
        error.to_string().into()
    }
}

impl ScriptError {
    pub(super) fn at_item(key: String) -> impl FnOnce(Self) -> Self {
        move |error| Self::Item { key, error: Box::new(error) }
    }
}
