//! The built-in conditions by name, made from the configuration's settings, and what each
//! does at each event.

use super::set::{ConditionError, SessionCount};
use crate::config::Config;
use crate::engine::{Context, Event, MacroList};

/// Every built-in condition: its name and what it does.
pub const CATALOG: [(&str, &str); 8] = [
    ("S25R", "Selective SMTP Rejection: only clients whose host name looks dynamic"),
    ("Remote Network", "Only clients outside the local network"),
    ("Authentication", "Only senders who authenticated (SMTP AUTH)"),
    ("Unauthentication", "Only senders who did not authenticate"),
    ("Sendmail Compatible", "Gives Postfix sessions the macros Sendmail-only milters need"),
    ("Stress Notify", "Sets {stress}=yes when the manager is stressed"),
    ("No Stress", "Only when the manager is not stressed"),
    ("Trust", "Sets {trusted_domain}=yes for senders of trusted domains"),
];

/// A built-in condition with its settings.
pub enum Shipped {
    /// Applies only when the client authenticated (`{auth_type}` or `{auth_authen}`).
    Authentication,
    /// Applies only when the client did not authenticate.
    Unauthentication,
}

/// Per child and session: what a built-in must remember between events.
#[derive(Debug, Clone, Default)]
pub struct ShippedState {}

impl Shipped {
    /// Every built-in condition, set up from `config`.
    pub fn all(config: &Config) -> Result<Vec<Shipped>, ConditionError> {
        let _ = config;
        Ok(vec![Shipped::Authentication, Shipped::Unauthentication])
    }

    pub fn name(&self) -> &'static str {
        match self {
            Shipped::Authentication => "Authentication",
            Shipped::Unauthentication => "Unauthentication",
        }
    }

    /// Whether the child stops applying at `event`; macros to give it go to `macros`.
    pub fn stop(
        &self,
        _state: &mut ShippedState,
        event: &Event<'_>,
        context: &Context<'_>,
        _sessions: &dyn SessionCount,
        _macros: &mut MacroList,
    ) -> bool {
        match (self, event) {
            (Shipped::Authentication, Event::EnvelopeFrom { .. }) => !context.is_authenticated(),
            (Shipped::Unauthentication, Event::EnvelopeFrom { .. }) => context.is_authenticated(),
            _ => false,
        }
    }
}
