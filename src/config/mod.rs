//! The configuration: `milter-manager.toml` in the configuration directory, the files it
//! includes, the platform default, and command-line overrides.
//!
//! Every file may steer loading with four top-level keys:
//!
//! - `include = ["conf.d/*.toml"]`: files that must exist (a glob may match nothing);
//! - `load_default = true`: `defaults/<package.platform>.toml` of the configuration
//!   directory, if there is one;
//! - `include_optional = ["milter-manager.local.toml"]`: files loaded only if they exist;
//! - `remove_milters = ["name"]`: forget milters defined so far.
//!
//! A file is applied in this order: its `remove_milters`, its own settings, its `include`
//! files, the platform default, its `include_optional` files. Later values win, key by
//! key; a milter defined again is changed only in the keys given. Patterns are relative to
//! the including file's directory and may use `*`, `?` and `[...]` in the file name.
//!
//! This module reads files and nothing else: no socket, no process, and it does not ask
//! the system who it runs as (the caller names the serving user).

mod check;
mod condition_inputs;
mod document;
mod error;
mod file_safety;
mod glob;
mod loader;
mod model;
mod origin;
mod overrides;
mod schema;
mod script;
mod show;
mod values;

#[cfg(test)]
mod testdir;

use std::path::{Path, PathBuf};

pub use crate::conditions::script::ManagerScripts;
pub use crate::conditions::{
    DnsblSettings, RemoteNetworkSettings, RestrictAccountsSettings, S25rSettings, ScriptCondition,
    StressSettings, TrustSettings,
};
pub(crate) use document::CONVERTED_FROM;
pub use error::{ConfigError, IncludeError, MilterNameError, ModeError, ValueError};
pub use model::{
    CommandOptions, Controller, Log, Manager, Milter, Package, Security, EVENT_LOOP_BACKENDS,
    MAX_WORKERS, PLATFORMS, SYSLOG_FACILITIES,
};
pub use origin::Origin;
pub use overrides::Overrides;
pub(crate) use schema::SECTIONS;
pub use values::mode_text;

/// The name of the main file in the configuration directory.
pub const MAIN_FILE: &str = "milter-manager.toml";
/// The configuration directory when none is given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/milter-manager";

/// The whole configuration, checked.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub package: Package,
    pub security: Security,
    pub manager: Manager,
    pub controller: Controller,
    pub log: Log,
    pub s25r: S25rSettings,
    pub remote_network: RemoteNetworkSettings,
    pub trust: TrustSettings,
    pub stress: StressSettings,
    pub dnsbl: DnsblSettings,
    pub restrict_accounts: RestrictAccountsSettings,
    /// Applicable conditions defined by Rhai files, in the order they were defined.
    pub conditions: Vec<ScriptCondition>,
    /// `manager.maintained` and the connection checkers of Rhai files.
    pub manager_scripts: ManagerScripts,
    /// The child milters in the order they were first defined.
    pub milters: Vec<Milter>,
    /// What loading has to tell the admin: milters the platform detection found but
    /// could not define, and why. One line each, for the log.
    pub notes: Vec<String>,
    /// What the admin should fix though the configuration loads (configuration files
    /// others may write, outside privilege mode). One line each, for the log.
    pub warnings: Vec<String>,
    /// Every configuration file read, in order: a manager started as root checks that the
    /// user it serves as can read them again at a reload.
    pub files_read: Vec<PathBuf>,
    /// Every existing directory an include glob listed: listed again at a reload.
    pub directories_listed: Vec<PathBuf>,
    origins: origin::Origins,
    /// The directory platform files are read under when `package.options` names none
    /// (`/` when unset): tests load over a fake machine.
    root: Option<PathBuf>,
}

/// Equal when every value is equal; where the values came from does not count, so a
/// configuration printed by `show` and loaded back equals the original.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            package,
            security,
            manager,
            controller,
            log,
            s25r,
            remote_network,
            trust,
            stress,
            dnsbl,
            restrict_accounts,
            conditions,
            manager_scripts,
            milters,
            notes: _,
            warnings: _,
            files_read: _,
            directories_listed: _,
            origins: _,
            root: _,
        } = self;
        *package == other.package
            && *s25r == other.s25r
            && *remote_network == other.remote_network
            && *trust == other.trust
            && *stress == other.stress
            && *dnsbl == other.dnsbl
            && *restrict_accounts == other.restrict_accounts
            && *conditions == other.conditions
            && *manager_scripts == other.manager_scripts
            && *security == other.security
            && *manager == other.manager
            && *controller == other.controller
            && *log == other.log
            && *milters == other.milters
    }
}

impl Config {
    /// Loads `milter-manager.toml` of `config_dir` and what it includes.
    ///
    /// `serving_uid` is the user the manager serves as: besides root, the only user who
    /// may own the files read (see `file_safety`). The caller says who that is: this
    /// module does not ask the system who it runs as.
    pub fn load(config_dir: &Path, serving_uid: u32) -> Result<Self, ConfigError> {
        Self::load_with_dir(config_dir, &config_dir.join(MAIN_FILE), serving_uid)
    }

    /// Loads one file and what it includes; its directory is the configuration directory
    /// (where `defaults/` is looked up). `serving_uid` as for [`Config::load`].
    pub fn load_file(path: &Path, serving_uid: u32) -> Result<Self, ConfigError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::load_with_dir(&dir, path, serving_uid)
    }

    /// Loads `milter-manager.toml` of `config_dir` as on the machine whose `/` is `root`
    /// (platform detection, installed milters, Postfix's files), unless `package.options`
    /// names another root. `serving_uid` as for [`Config::load`].
    pub fn load_under(
        config_dir: &Path,
        root: &Path,
        serving_uid: u32,
    ) -> Result<Self, ConfigError> {
        let path = config_dir.join(MAIN_FILE);
        Self::load_from(config_dir, &path, Some(root.to_path_buf()), serving_uid)
    }

    /// [`Config::load_file`] over the machine whose `/` is `root`.
    #[cfg(test)]
    fn load_file_under(path: &Path, root: &Path, serving_uid: u32) -> Result<Self, ConfigError> {
        let dir = path.parent().expect("a file in a directory");
        Self::load_from(dir, path, Some(root.to_path_buf()), serving_uid)
    }

    fn load_with_dir(
        config_dir: &Path,
        path: &Path,
        serving_uid: u32,
    ) -> Result<Self, ConfigError> {
        Self::load_from(config_dir, path, None, serving_uid)
    }

    fn load_from(
        config_dir: &Path,
        path: &Path,
        root: Option<PathBuf>,
        serving_uid: u32,
    ) -> Result<Self, ConfigError> {
        let fresh = || Self { root: root.clone(), ..Self::default() };
        let mut config = fresh();
        let mut loader = loader::Loader::new(config_dir);
        loader.load(&mut config, path)?;
        if let Some(off) = loader.default_turned_off().cloned() {
            if loader.default_loaded() {
                // A file read after the default turned it off: the last word wins, so
                // everything is read again without it.
                config = fresh();
                loader = loader::Loader::without_default(config_dir);
                loader.load(&mut config, path)?;
            }
            config.notes.push(format!(
                "{off}: load_default = false: no platform default, no detected milter"
            ));
        }
        config.settle_platform();
        config.settle_detected_conditions();
        config.check_complete()?;
        (config.files_read, config.directories_listed) = loader.into_files();
        file_safety::check(&mut config, serving_uid)?;
        Ok(config)
    }

    /// Sets `package.platform` from the machine when no file set it.
    fn settle_platform(&mut self) {
        if self.origins.get("package", "platform") != Origin::Default {
            return;
        }
        // The system this binary was built for is the one it runs on: no call needed.
        let found = crate::detect::detect_platform(&self.system_root(), std::env::consts::OS);
        self.package.platform = found.name.to_string();
        self.origins.set("package", "platform", Origin::Detected { source: found.source });
    }

    /// A detected milter keeps only the conditions that exist: what was found on the
    /// machine must never stop the manager from starting (a file's own names still must
    /// exist, see `ConditionSet`).
    fn settle_detected_conditions(&mut self) {
        for milter in &mut self.milters {
            let key = format!("milter.{}.applicable_conditions", milter.name);
            let Origin::Detected { source } = self.origins.lookup(&key) else { continue };
            let conditions = &self.conditions;
            let notes = &mut self.notes;
            milter.applicable_conditions.retain(|name| {
                let known = crate::conditions::builtin_name(name).is_some()
                    || conditions.iter().any(|c| c.name == *name);
                if !known {
                    notes.push(format!(
                        "{source}: {}: no applicable condition {name:?}; \
                         the milter is kept without it",
                        milter.name
                    ));
                }
                known
            });
        }
    }

    /// Checks what no single file can: an enabled milter must have a connection spec by
    /// the end, since any later file may give it.
    fn check_complete(&self) -> Result<(), ConfigError> {
        for milter in &self.milters {
            if milter.enabled && milter.connection_spec.is_none() {
                let origin = self
                    .origins
                    .milter(&milter.name)
                    .map(|m| m.defined.clone())
                    .unwrap_or_default();
                return Err(ConfigError::from_origin(
                    &origin,
                    format!("milter.{}.connection_spec", milter.name),
                    format!(
                        "milter {:?} is enabled but has no connection_spec; \
                         set connection_spec or set enabled = false",
                        milter.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The directory platform files are read under: `/`, or `root=DIR` of
    /// `package.options` (for tests and chroots).
    pub fn system_root(&self) -> PathBuf {
        self.package
            .options
            .as_deref()
            .and_then(|text| crate::detect::PackageOptions::parse(text).ok())
            .and_then(|options| options.other.get("root").cloned())
            .map(PathBuf::from)
            .or_else(|| self.root.clone())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The index of the child milter named `name`; a new name is defined at the end of the
    /// list, with every item at its default, as coming from `origin`.
    fn define_milter(&mut self, name: &str, origin: Origin) -> Result<usize, MilterNameError> {
        if name.is_empty() {
            return Err(MilterNameError::Empty);
        }
        if name.chars().any(char::is_control) {
            return Err(MilterNameError::ControlCharacters);
        }
        let index = match self.milters.iter().position(|m| m.name == name) {
            Some(index) => index,
            None => {
                self.milters.push(Milter::new(name));
                self.origins.milter_defined(name, origin);
                self.milters.len() - 1
            }
        };
        Ok(index)
    }

    /// Forgets the child milter named `name` (`remove_milters`, `remove_milter()`).
    fn remove_milter(&mut self, name: &str) -> Result<(), MilterNameError> {
        let Some(index) = self.milters.iter().position(|m| m.name == name) else {
            let defined = self.milters.iter().map(|m| m.name.clone()).collect();
            return Err(MilterNameError::NotDefined { name: name.to_string(), defined });
        };
        self.milters.remove(index);
        self.origins.remove_milter(name);
        Ok(())
    }

    /// The child milter named `name`.
    pub fn milter(&self, name: &str) -> Option<&Milter> {
        self.milters.iter().find(|m| m.name == name)
    }

    /// Where the value of `key` came from: `manager.n_workers`, `milter.opendkim.enabled`.
    /// Keys never set (or unknown) are `Origin::Default`.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.lookup(key)
    }

    /// The configuration as TOML, each item preceded by its origin (`--show-config`).
    pub fn show(&self) -> String {
        show::show(self)
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TestDir;
    use super::*;
    use crate::spec::Spec;
    use crate::status::FallbackStatus;

    fn repo_conf() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
    }

    #[test]
    fn defaults_are_the_manuals() {
        let config = Config::default();
        assert_eq!(config.package, Package { platform: "debian".into(), options: None });
        assert_eq!(
            config.security,
            Security { privilege_mode: false, effective_user: None, effective_group: None }
        );
        let m = &config.manager;
        assert_eq!(m.connection_spec, Spec::parse("inet:10025@[127.0.0.1]").unwrap());
        assert_eq!(m.unix_socket_mode, 0o660);
        assert_eq!(m.unix_socket_group, None);
        assert!(m.remove_unix_socket_on_create && m.remove_unix_socket_on_close);
        assert!(!m.daemon);
        assert_eq!(m.pid_file, None);
        assert_eq!(m.maintenance_interval, 100);
        assert_eq!(m.suspend_time_on_unacceptable, 5);
        assert_eq!(m.max_connections, 0);
        assert_eq!(m.max_file_descriptors, 0);
        assert_eq!(m.custom_configuration_directory, None);
        assert_eq!(m.fallback_status, FallbackStatus::Accept);
        assert_eq!(m.fallback_status_at_disconnect, FallbackStatus::TemporaryFailure);
        assert_eq!(m.event_loop_backend, "glib");
        assert_eq!(m.n_workers, 0);
        assert_eq!(m.packet_buffer_size, 0);
        assert_eq!(m.chunk_size, 65535);
        assert_eq!(m.max_pending_finished_sessions, 0);
        assert_eq!(m.connection_check_interval, 0);
        assert!(!m.report_memory_statistics);
        assert_eq!(m.max_body_memory, 5 * 1024 * 1024);
        assert_eq!(m.max_spill_size, 1024 * 1024 * 1024);
        assert_eq!(m.max_child_modifications, 10_000);
        assert_eq!(m.max_child_modification_bytes, 10 * 1024 * 1024);
        assert_eq!(m.temporary_directory, None);
        let c = &config.controller;
        assert_eq!(c.connection_spec, None);
        assert_eq!(c.unix_socket_mode, 0o660);
        assert_eq!(c.unix_socket_group, None);
        assert!(c.remove_unix_socket_on_create && c.remove_unix_socket_on_close);
        assert_eq!(
            config.log,
            Log {
                level: "default".into(),
                path: None,
                use_syslog: true,
                syslog_facility: "mail".into()
            }
        );
        assert!(config.milters.is_empty());
        let milter = Milter::new("x");
        assert_eq!(milter.connection_spec, None);
        assert_eq!(milter.description, None);
        assert!(milter.enabled);
        assert_eq!(milter.fallback_status, FallbackStatus::Accept);
        assert!(!milter.evaluation_mode);
        assert!(milter.applicable_conditions.is_empty());
        assert_eq!((milter.command.clone(), milter.command_options.clone()), (None, None));
        assert_eq!(milter.user_name, None);
        assert_eq!(milter.connection_timeout, 297.0);
        assert_eq!(milter.writing_timeout, 7.0);
        assert_eq!(milter.reading_timeout, 7.0);
        assert_eq!(milter.end_of_message_timeout, 297.0);
        assert_eq!(config.origin("manager.n_workers"), Origin::Default);
    }

    /// A copy of the shipped files (not what a developer keeps beside them, such as a
    /// milter-manager.local.toml).
    fn shipped_copy(label: &str) -> TestDir {
        let dir = TestDir::new(label);
        dir.write(MAIN_FILE, &std::fs::read_to_string(repo_conf().join(MAIN_FILE)).unwrap());
        for platform in PLATFORMS {
            let name = format!("defaults/{platform}.toml");
            dir.write(&name, &std::fs::read_to_string(repo_conf().join(&name)).unwrap());
        }
        dir
    }

    #[test]
    fn shipped_configuration_gives_the_defaults() {
        let dir = shipped_copy("shipped");
        let config = dir.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config, Config::default());
        for platform in PLATFORMS {
            let text =
                std::fs::read_to_string(dir.path().join(format!("defaults/{platform}.toml")));
            dir.write(MAIN_FILE, &text.unwrap());
            let config = dir.load().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config, Config::default(), "{platform}");
        }
    }

    #[test]
    fn shipped_configuration_documents_every_item() {
        let text = std::fs::read_to_string(repo_conf().join(MAIN_FILE)).unwrap();
        for section in schema::SECTIONS.iter().chain([&schema::MILTER_TABLE]) {
            for key in schema::keys_of(section) {
                assert!(text.contains(&format!("# {key} = ")), "{section}.{key} is not shown");
            }
        }
        // Uncommented, each shown item is the default (or, for optional items, a
        // placeholder): a file of them loads back to the defaults.
        let known: Vec<&str> = schema::SECTIONS
            .iter()
            .chain([&schema::MILTER_TABLE])
            .flat_map(|section| schema::keys_of(section))
            .collect();
        let mut uncommented = String::new();
        for line in text.lines() {
            if line.starts_with("# Child milters") {
                break;
            }
            let shown_item = line
                .strip_prefix("# ")
                .filter(|l| l.split(" = ").next().is_some_and(|key| known.contains(&key)));
            match shown_item {
                Some(item) if !item.ends_with("(not set)") => uncommented.push_str(item),
                Some(_) => {}
                None if !line.starts_with('#') => uncommented.push_str(line),
                None => {}
            }
            uncommented.push('\n');
        }
        let dir = TestDir::new("shipped-uncommented");
        let uncommented = uncommented.replace("include = [\"conf.d/*.toml\"]", "");
        dir.write(MAIN_FILE, &uncommented);
        let config = dir.load().unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(config, Config::default());
    }

    /// Every item set in a file, with the line each one is on.
    const EVERY_ITEM: &str = r#"[package]
platform = "pkgsrc"
options = "prefix=/etc"
[security]
privilege_mode = true
effective_user = "nobody"
effective_group = "nogroup"
[manager]
connection_spec = "unix:/run/m.sock"
unix_socket_mode = 0o600
unix_socket_group = "postfix"
remove_unix_socket_on_create = false
remove_unix_socket_on_close = false
daemon = true
pid_file = "/run/m.pid"
maintenance_interval = 10
suspend_time_on_unacceptable = 10
max_connections = 10
negotiation_timeout = 4.5
max_file_descriptors = 65535
custom_configuration_directory = "/tmp/m/"
fallback_status = "reject"
fallback_status_at_disconnect = "discard"
event_loop_backend = "libev"
n_workers = 10
packet_buffer_size = 4096
chunk_size = 1000
max_pending_finished_sessions = 5
connection_check_interval = 5
report_memory_statistics = true
max_body_memory = 1024
max_spill_size = 0
max_child_modifications = 20
max_child_modification_bytes = 0
max_idle_child_connections = 0
temporary_directory = "/var/tmp"
[controller]
connection_spec = "inet:10026@localhost"
unix_socket_mode = "0600"
unix_socket_group = "adm"
remove_unix_socket_on_create = false
remove_unix_socket_on_close = false
metrics_connection_spec = "inet:9115@[127.0.0.1]"
[log]
level = "all"
path = "/var/log/m.log"
use_syslog = false
syslog_facility = "local0"
[s25r]
whitelist = ["mx.example.com", "/\\.example\\.org$/"]
blacklist = ["/^dyn-/i"]
default_whitelist = false
check_only_ipv4 = false
[remote_network]
local_addresses = ["160.29.167.0/24", "2001:2f8:c2:201::fff0"]
remote_addresses = ["192.168.1.1"]
[trust]
envelope_from_domains = ["example.com"]
default_envelope_from_domains = false
envelope_from_domain_files = ["/etc/milter-manager/trusted-domains"]
[stress]
threshold_n_connections = 20
[dnsbl]
services = ["bl.example=127.0.0.2", "any.example"]
default_services = false
name_servers = ["192.0.2.53", "127.0.0.1:5353"]
timeout = 2.5
[restrict_accounts]
accounts = ["alice@example.com", "@example.org"]
[milter."test-milter"]
connection_spec = "inet:10026@localhost"
description = "test milter"
enabled = false
fallback_status = "temporary-failure"
evaluation_mode = true
applicable_conditions = ["S25R"]
command = "/etc/init.d/milter-greylist"
command_options = "start"
user_name = "nobody"
connection_timeout = 60
writing_timeout = 15
reading_timeout = 15.5
end_of_message_timeout = 60
reuse_connection = false
max_idle_connections = 2
idle_connection_timeout = 5
"#;

    #[test]
    fn every_item_is_read_with_its_line() {
        let dir = TestDir::new("every-item");
        let path = dir.write(MAIN_FILE, EVERY_ITEM);
        let config = dir.load().unwrap_or_else(|e| panic!("{e}"));
        let mut table = String::new();
        let mut seen = 0;
        for (index, line) in EVERY_ITEM.lines().enumerate() {
            if let Some(header) = line.strip_prefix('[') {
                table = header.trim_end_matches(']').replace('"', "");
                continue;
            }
            let key = line.split(" = ").next().unwrap();
            let full = format!("{table}.{key}");
            let expected = Origin::File { path: path.clone(), line: index + 1 };
            assert_eq!(config.origin(&full), expected, "{full}");
            seen += 1;
        }
        let all: usize = schema::SECTIONS
            .iter()
            .chain([&schema::MILTER_TABLE])
            .map(|s| schema::keys_of(s).len())
            .sum();
        assert_eq!(seen, all, "the test sets every item");

        // Every value differs from the default.
        let defaults = Config::default();
        assert_eq!(config.package.platform, "pkgsrc");
        assert_eq!(config.package.options.as_deref(), Some("prefix=/etc"));
        assert_ne!(config.security, defaults.security);
        let m = &config.manager;
        assert_eq!(m.connection_spec.to_string(), "unix:/run/m.sock");
        assert_eq!((m.unix_socket_mode, m.n_workers, m.chunk_size), (0o600, 10, 1000));
        assert_eq!(m.fallback_status_at_disconnect, FallbackStatus::Discard);
        assert_eq!(m.temporary_directory, Some(PathBuf::from("/var/tmp")));
        assert_eq!(m.negotiation_timeout, 4.5);
        assert_eq!(config.controller.unix_socket_mode, 0o600);
        assert_eq!(
            config.controller.connection_spec.as_ref().unwrap().to_string(),
            "inet:10026@localhost"
        );
        assert_eq!(config.log.syslog_facility, "local0");
        let milter = config.milter("test-milter").unwrap();
        assert!(!milter.enabled && milter.evaluation_mode);
        assert_eq!(milter.command_options, Some(CommandOptions::Line("start".into())));
        assert_eq!(milter.applicable_conditions, ["S25R"]);
        assert_eq!(
            (milter.connection_timeout, milter.writing_timeout, milter.reading_timeout),
            (60.0, 15.0, 15.5)
        );
        assert_eq!(config.origin("milter.test-milter.nonsense"), Origin::Default);
        assert_eq!(config.origin("manager"), Origin::Default);
    }
}
