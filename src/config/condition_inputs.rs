//! The configuration as the conditions take it: their settings, the Rhai conditions, the
//! enabled milters' condition names, the origins for errors, and the machine's files
//! read from disk under [`Config::system_root`].

use std::io;
use std::path::Path;

use super::{Config, Origin};
use crate::conditions::{ConditionInputs, FileReader, MilterConditions};

/// Reads the real files.
pub(super) struct Disk;

impl FileReader for Disk {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl<'a> From<&'a Config> for ConditionInputs<'a> {
    fn from(config: &'a Config) -> Self {
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

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::conditions::{ConditionSet, SessionCount};
    use crate::config::testdir::TestDir;
    use crate::config::MAIN_FILE;

    struct NoSessions;

    impl SessionCount for NoSessions {
        fn n_sessions(&self) -> usize {
            0
        }
    }

    #[test]
    fn the_machines_files_are_read_from_disk_under_the_root() {
        let dir = TestDir::new("inputs");
        let root = dir.machine();
        dir.write("machine/etc/resolv.conf", "nameserver 192.0.2.53\n");
        let list = dir.write("trusted", "example.jp\n");
        let toml = format!(
            "[milter.a]\nconnection_spec = \"inet:1@[127.0.0.1]\"\n\
             applicable_conditions = [\"DNSBL Listed\", \"Trust\"]\n\
             [trust]\nenvelope_from_domain_files = [{:?}]\n",
            list.display().to_string()
        );
        dir.write(MAIN_FILE, &toml);
        let config = Config::load_under(dir.path(), &root, dir.owner()).unwrap();
        let inputs = ConditionInputs::from(&config);
        assert_eq!(inputs.root, root);
        let set = ConditionSet::new(&config, Rc::new(NoSessions)).unwrap();
        let servers = &set.dnsbl().unwrap().name_servers;
        assert_eq!(servers, &["192.0.2.53:53".parse().unwrap()]);

        // A list that cannot be read: the error names the line that set it.
        std::fs::remove_file(&list).unwrap();
        let error = ConditionSet::new(&config, Rc::new(NoSessions)).err().unwrap();
        let main = dir.path().join(MAIN_FILE);
        assert!(
            error.to_string().starts_with(&format!(
                "{}:5: trust.envelope_from_domain_files: cannot read trusted domain list {}: ",
                main.display(),
                list.display()
            )),
            "{error}"
        );
    }
}
