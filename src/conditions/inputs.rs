//! What the conditions of one configuration are built from. The configuration hands it
//! over (it implements `From<&Config>`), so this layer depends on nothing of the
//! configuration's: settings, Rhai conditions, which milter names which condition, where
//! each value was set, and how to read the machine's files.

use std::path::PathBuf;

use super::definition::ScriptCondition;
use super::files::FileReader;
use super::settings::{
    DnsblSettings, RemoteNetworkSettings, RestrictAccountsSettings, S25rSettings, StressSettings,
    TrustSettings,
};

/// Where the value of a key (`s25r.whitelist`, `milter.NAME.applicable_conditions`) was
/// set, as errors name it (`FILE:LINE`); `None` for a default.
pub type OriginOf<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// An enabled child milter as the conditions see it.
#[derive(Debug, Clone, Copy)]
pub struct MilterConditions<'a> {
    pub name: &'a str,
    /// The conditions that must all hold for it to apply, by name.
    pub applicable_conditions: &'a [String],
}

/// Everything [`super::ConditionSet::new`] needs.
pub struct ConditionInputs<'a> {
    pub s25r: &'a S25rSettings,
    pub remote_network: &'a RemoteNetworkSettings,
    pub trust: &'a TrustSettings,
    pub stress: &'a StressSettings,
    pub dnsbl: &'a DnsblSettings,
    pub restrict_accounts: &'a RestrictAccountsSettings,
    /// Conditions defined by Rhai files, in the order they were defined.
    pub scripts: &'a [ScriptCondition],
    /// The enabled child milters, in the engine's order.
    pub milters: Vec<MilterConditions<'a>>,
    pub origin_of: OriginOf<'a>,
    /// The directory standing for `/` when reading the machine's files (resolv.conf,
    /// Postfix's): `/`, or a fake root in tests.
    pub root: PathBuf,
    /// Reads those files and the trust lists.
    pub files: &'a dyn FileReader,
}

#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use crate::conditions::files::MemoryFiles;

    /// Owned values to borrow [`ConditionInputs`] from: every setting at its default, no
    /// milter, files from memory.
    #[derive(Default)]
    pub(crate) struct OwnedInputs {
        pub s25r: S25rSettings,
        pub remote_network: RemoteNetworkSettings,
        pub trust: TrustSettings,
        pub stress: StressSettings,
        pub dnsbl: DnsblSettings,
        pub restrict_accounts: RestrictAccountsSettings,
        pub scripts: Vec<ScriptCondition>,
        /// Enabled milters: name and the conditions it names.
        pub milters: Vec<(String, Vec<String>)>,
        /// The origin of every key.
        pub origin: Option<String>,
        pub root: PathBuf,
        pub files: MemoryFiles,
    }

    impl OwnedInputs {
        pub(crate) fn under(root: &str) -> Self {
            Self { root: root.into(), ..Self::default() }
        }

        pub(crate) fn inputs(&self) -> ConditionInputs<'_> {
            ConditionInputs {
                s25r: &self.s25r,
                remote_network: &self.remote_network,
                trust: &self.trust,
                stress: &self.stress,
                dnsbl: &self.dnsbl,
                restrict_accounts: &self.restrict_accounts,
                scripts: &self.scripts,
                milters: self
                    .milters
                    .iter()
                    .map(|(name, conditions)| MilterConditions {
                        name,
                        applicable_conditions: conditions,
                    })
                    .collect(),
                origin_of: Box::new(|_| self.origin.clone()),
                root: self.root.clone(),
                files: &self.files,
            }
        }
    }
}
