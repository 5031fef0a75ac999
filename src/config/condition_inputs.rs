//! The configuration as the conditions take it: their settings, the Rhai conditions, the
//! enabled milters' condition names, the origins for errors, and the machine's files
//! read from disk under [`Config::system_root`].

use std::io;
use std::path::Path;

use super::{Config, Origin};
use crate::conditions::{ConditionInputs, FileReader, MilterConditions};

/// Reads the real files.
struct Disk;

impl FileReader for Disk {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl<'a> From<&'a Config> for ConditionInputs<'a> {
    fn from(config: &'a Config) -> ConditionInputs<'a> {
        ConditionInputs {
            s25r: &config.s25r,
            remote_network: &config.remote_network,
            trust: &config.trust,
            stress: &config.stress,
            dnsbl: &config.dnsbl,
            restrict_accounts: &config.restrict_accounts,
            scripts: &config.conditions,
            milters: config
                .milters
                .iter()
                .filter(|m| m.enabled)
                .map(|m| MilterConditions {
                    name: &m.name,
                    applicable_conditions: &m.applicable_conditions,
                })
                .collect(),
            origin_of: Box::new(|key| match config.origin(key) {
                Origin::Default => None,
                origin => Some(origin.to_string()),
            }),
            root: config.system_root(),
            files: &Disk,
        }
    }
}
