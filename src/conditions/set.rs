//! The conditions of one configuration, and their answers within one session.

use std::fmt;
use std::rc::Rc;

use rhai::Dynamic;

use super::connect_gate::DnsblVerdict;
use super::definition::{stopper_index, ScriptCondition, STOPPERS};
use super::dnsbl_lookup::DnsblSetup;
use super::inputs::ConditionInputs;
use super::script::{ScriptAddress, ScriptContext};
use super::shipped::{builtin_name, dnsbl_setup, Shipped, ShippedState};
use crate::engine::{Conditions, Context, Event, MacroList, Stage};

/// How many sessions the manager has at this moment, over all its workers.
pub trait SessionCount {
    fn n_sessions(&self) -> usize;
}

/// A configuration whose conditions cannot work.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    /// Where the key's value was set (`FILE:LINE`); `None` for a default.
    pub origin: Option<String>,
    pub key: String,
    pub message: String,
}

impl std::error::Error for ConditionError {}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            None => write!(f, "{}: {}", self.key, self.message),
            Some(origin) => write!(f, "{origin}: {}: {}", self.key, self.message),
        }
    }
}

enum Condition {
    Shipped(Shipped),
    Script(Box<ScriptCondition>),
}

impl Condition {
    fn name(&self) -> &str {
        match self {
            Self::Shipped(shipped) => shipped.name(),
            Self::Script(script) => &script.name,
        }
    }
}

/// Every condition a configuration can use, and which ones each child milter has.
pub struct ConditionSet {
    conditions: Vec<Condition>,
    /// Per child of the engine (the enabled milters in order): indexes into `conditions`.
    per_child: Vec<Vec<usize>>,
    sessions: Rc<dyn SessionCount>,
    /// Set when an enabled milter uses a DNSBL condition: what to look up at connect.
    dnsbl: Option<Rc<DnsblSetup>>,
}

impl ConditionSet {
    /// The conditions of a configuration (`&Config` will do) for its enabled milters, in
    /// the engine's order. Fails on a condition name that is not defined, or a built-in
    /// whose settings cannot work.
    pub fn new<'a>(
        inputs: impl Into<ConditionInputs<'a>>,
        sessions: Rc<dyn SessionCount>,
    ) -> Result<Self, ConditionError> {
        let inputs = inputs.into();
        let mut conditions = Vec::new();
        // Every name a milter may use; built-ins no milter uses are not set up.
        let mut known: Vec<String> = Vec::new();
        for (name, shipped) in Shipped::used(&inputs)? {
            known.push(name.to_string());
            conditions.extend(shipped.map(Condition::Shipped));
        }
        for script in inputs.scripts {
            // A script may redefine a built-in condition, as in the original.
            conditions.retain(|c| c.name() != script.name);
            if !known.contains(&script.name) {
                known.push(script.name.clone());
            }
            conditions.push(Condition::Script(Box::new(script.clone())));
        }
        let mut per_child = Vec::new();
        for milter in &inputs.milters {
            let mut indexes = Vec::new();
            for name in milter.applicable_conditions {
                // A script's own name first, then the built-in an alias stands for.
                let index = conditions.iter().position(|c| c.name() == name).or_else(|| {
                    let builtin = builtin_name(name)?;
                    conditions.iter().position(|c| c.name() == builtin)
                });
                let Some(index) = index else {
                    let key = format!("milter.{}.applicable_conditions", milter.name);
                    let known: Vec<String> = known.iter().map(|n| format!("{n:?}")).collect();
                    return Err(ConditionError {
                        origin: (inputs.origin_of)(&key),
                        key,
                        message: format!(
                            "milter {:?}: unknown applicable condition {name:?} (known: {})",
                            milter.name,
                            known.join(", ")
                        ),
                    });
                };
                indexes.push(index);
            }
            per_child.push(indexes);
        }
        let uses_dnsbl = conditions.iter().any(|c| {
            matches!(c, Condition::Shipped(Shipped::DnsblListed | Shipped::NotDnsblListed))
        });
        let dnsbl = if uses_dnsbl { Some(Rc::new(dnsbl_setup(&inputs)?)) } else { None };
        Ok(Self { conditions, per_child, sessions, dnsbl })
    }

    /// What the DNSBL conditions need looked up at connect, if some milter uses them.
    pub fn dnsbl(&self) -> Option<&Rc<DnsblSetup>> {
        self.dnsbl.as_ref()
    }

    /// The conditions' state for one new session, without DNSBL lookups: no client is
    /// listed.
    pub fn session(self: &Rc<Self>) -> SessionConditions {
        self.session_with(DnsblVerdict::default())
    }

    /// The conditions' state for one new session whose DNSBL verdict `dnsbl` is set by
    /// the session's connect gate.
    pub fn session_with(self: &Rc<Self>, dnsbl: DnsblVerdict) -> SessionConditions {
        let children = self.per_child.len();
        SessionConditions {
            set: Rc::clone(self),
            pending: vec![Vec::new(); children],
            state: vec![ShippedState::default(); children],
            dnsbl,
        }
    }
}

/// The conditions within one session: per-child state and macros waiting to be sent.
pub struct SessionConditions {
    set: Rc<ConditionSet>,
    /// Macros a condition set for a child, sent with the command it decided on.
    pending: Vec<MacroList>,
    state: Vec<ShippedState>,
    dnsbl: DnsblVerdict,
}

impl SessionConditions {
    fn run_script(
        &mut self,
        script: &ScriptCondition,
        child: usize,
        event: &Event<'_>,
        context: &Context<'_>,
    ) -> bool {
        let index = stopper_index(event);
        let Some(stopper) = &script.stoppers[index] else { return false };
        let script_context = ScriptContext::new(context, child);
        let mut args = vec![Dynamic::from(script_context.clone())];
        let text = |bytes: &[u8]| Dynamic::from(String::from_utf8_lossy(bytes).into_owned());
        match event {
            Event::Connect { host, address } => {
                args.push(text(host));
                args.push(Dynamic::from(ScriptAddress::from_connect(address)));
            }
            Event::Helo { fqdn } => args.push(text(fqdn)),
            Event::EnvelopeFrom { address } | Event::EnvelopeRecipient { address } => {
                args.push(text(address))
            }
            Event::Header { name, value } => {
                args.push(text(name));
                args.push(text(value));
            }
            Event::Body { chunk } => args.push(text(chunk)),
            Event::Data | Event::EndOfHeader | Event::EndOfMessage => {}
        }
        let result = stopper.call_bool(args);
        self.pending[child].extend(script_context.take_set_macros());
        match result {
            Ok(stop) => stop,
            Err(error) => {
                log::warn!(
                    "[condition][error] {:?}: {} stopper ({}): {error}; the milter still applies",
                    script.name,
                    STOPPERS[index],
                    stopper.origin()
                );
                false
            }
        }
    }
}

impl Conditions for SessionConditions {
    fn stop(&mut self, child: usize, event: &Event<'_>, context: &Context<'_>) -> bool {
        let set = Rc::clone(&self.set);
        let Some(indexes) = set.per_child.get(child) else { return false };
        for &index in indexes {
            let stop = match &set.conditions[index] {
                Condition::Shipped(shipped) => shipped.stop(
                    &mut self.state[child],
                    event,
                    context,
                    set.sessions.as_ref(),
                    &self.dnsbl,
                    &mut self.pending[child],
                ),
                Condition::Script(script) => self.run_script(script, child, event, context),
            };
            if stop {
                log::debug!(
                    "[condition][stop] {:?} stops the milter at {}",
                    set.conditions[index].name(),
                    event.stage().name()
                );
                self.pending[child].clear();
                return true;
            }
        }
        false
    }

    fn extra_macros(&mut self, child: usize, _stage: Stage, _context: &Context<'_>) -> MacroList {
        self.pending.get_mut(child).map(std::mem::take).unwrap_or_default()
    }
}
