//! Command-line options that override the files.

use std::path::PathBuf;

use serde::de::{value, IntoDeserializer};

use super::error::ConfigError;
use super::model::MAX_WORKERS;
use super::origin::Origin;
use super::values::{self as v, Setting};
use super::Config;
use crate::spec::Spec;

/// The values given on the command line; `None` leaves the file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub connection_spec: Option<Spec>,
    pub daemon: Option<bool>,
    pub pid_file: Option<PathBuf>,
    pub effective_user: Option<String>,
    pub effective_group: Option<String>,
    pub unix_socket_group: Option<String>,
    pub unix_socket_mode: Option<u32>,
    pub n_workers: Option<u32>,
    pub log_level: Option<String>,
    pub log_path: Option<PathBuf>,
    pub use_syslog: Option<bool>,
    pub syslog_facility: Option<String>,
    /// Kept and shown like the file's items of the same names, which change nothing here.
    pub event_loop_backend: Option<String>,
    pub packet_buffer_size: Option<u64>,
    pub max_pending_finished_sessions: Option<u32>,
}

/// An option's value read as an `S`, with the checks (and messages) of a file's value.
fn checked<'de, S: Setting>(
    key: &str,
    option: Option<impl IntoDeserializer<'de, value::Error>>,
) -> Result<Option<S::Field>, ConfigError> {
    option
        .map(|value| v::decode_plain::<S, _>(value))
        .transpose()
        .map_err(|message| ConfigError::command_line(key, message))
}

/// An empty option is a slip rather than a wish to unset the item, as `""` is in a file.
fn not_empty(key: &str, text: &str) -> Result<(), ConfigError> {
    if text.is_empty() {
        return Err(ConfigError::command_line(key, "must not be empty"));
    }
    Ok(())
}

impl Config {
    /// Applies command-line values over the loaded ones, checking them as a file's would
    /// be. Nothing changes when one of them is wrong.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        let Overrides {
            connection_spec,
            daemon,
            pid_file,
            effective_user,
            effective_group,
            unix_socket_group,
            unix_socket_mode,
            n_workers,
            log_level,
            log_path,
            use_syslog,
            syslog_facility,
            event_loop_backend,
            packet_buffer_size,
            max_pending_finished_sessions,
        } = overrides;
        // Check everything first, so that an error leaves the configuration as it was.
        if let Some(path) = pid_file {
            not_empty("manager.pid_file", &path.to_string_lossy())?;
        }
        if let Some(user) = effective_user {
            not_empty("security.effective_user", user)?;
        }
        if let Some(group) = effective_group {
            not_empty("security.effective_group", group)?;
        }
        if let Some(group) = unix_socket_group {
            not_empty("manager.unix_socket_group", group)?;
        }
        let n_workers = checked::<v::Whole32<0, MAX_WORKERS>>("manager.n_workers", *n_workers)?;
        let log_level = checked::<v::LogLevels>("log.level", log_level.as_deref())?;
        if let Some(path) = log_path {
            not_empty("log.path", &path.to_string_lossy())?;
        }
        let unix_socket_mode = checked::<v::Mode>("manager.unix_socket_mode", *unix_socket_mode)?;
        let syslog_facility =
            checked::<v::SyslogFacility>("log.syslog_facility", syslog_facility.as_deref())?;
        let event_loop_backend = checked::<v::EventLoopBackend>(
            "manager.event_loop_backend",
            event_loop_backend.as_deref(),
        )?;

        let origins = &mut self.origins;
        let mut mark = |section, key| origins.set(section, key, Origin::CommandLine);
        if let Some(spec) = connection_spec {
            self.manager.connection_spec = spec.clone();
            mark("manager", "connection_spec");
        }
        if let Some(daemon) = daemon {
            self.manager.daemon = *daemon;
            mark("manager", "daemon");
        }
        if let Some(path) = pid_file {
            self.manager.pid_file = Some(path.clone());
            mark("manager", "pid_file");
        }
        if let Some(user) = effective_user {
            self.security.effective_user = Some(user.clone());
            mark("security", "effective_user");
        }
        if let Some(group) = effective_group {
            self.security.effective_group = Some(group.clone());
            mark("security", "effective_group");
        }
        if let Some(group) = unix_socket_group {
            self.manager.unix_socket_group = Some(group.clone());
            mark("manager", "unix_socket_group");
        }
        if let Some(n) = n_workers {
            self.manager.n_workers = n;
            mark("manager", "n_workers");
        }
        if let Some(level) = log_level {
            self.log.level = level;
            mark("log", "level");
        }
        if let Some(path) = log_path {
            self.log.path = Some(path.clone());
            mark("log", "path");
        }
        if let Some(syslog) = use_syslog {
            self.log.use_syslog = *syslog;
            mark("log", "use_syslog");
        }
        if let Some(mode) = unix_socket_mode {
            self.manager.unix_socket_mode = mode;
            mark("manager", "unix_socket_mode");
        }
        if let Some(facility) = syslog_facility {
            self.log.syslog_facility = facility;
            mark("log", "syslog_facility");
        }
        if let Some(backend) = event_loop_backend {
            self.manager.event_loop_backend = backend;
            mark("manager", "event_loop_backend");
        }
        if let Some(size) = packet_buffer_size {
            self.manager.packet_buffer_size = *size;
            mark("manager", "packet_buffer_size");
        }
        if let Some(n) = max_pending_finished_sessions {
            self.manager.max_pending_finished_sessions = *n;
            mark("manager", "max_pending_finished_sessions");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_are_marked() {
        let mut config = Config::default();
        let overrides = Overrides {
            connection_spec: Some(Spec::parse("unix:/run/milter-manager.sock").unwrap()),
            daemon: Some(true),
            pid_file: Some("/run/milter-manager.pid".into()),
            effective_user: Some("milter-manager".into()),
            effective_group: Some("milter-manager".into()),
            unix_socket_group: Some("postfix".into()),
            n_workers: Some(4),
            log_level: Some("all".into()),
            log_path: Some("-".into()),
            use_syslog: Some(false),
            unix_socket_mode: Some(0o600),
            syslog_facility: Some("local3".into()),
            event_loop_backend: Some("libev".into()),
            packet_buffer_size: Some(8192),
            max_pending_finished_sessions: Some(5),
        };
        config.apply_overrides(&overrides).unwrap();
        assert_eq!(config.manager.connection_spec.to_string(), "unix:/run/milter-manager.sock");
        assert!(config.manager.daemon);
        assert_eq!(config.manager.pid_file, Some("/run/milter-manager.pid".into()));
        assert_eq!(config.security.effective_user.as_deref(), Some("milter-manager"));
        assert_eq!(config.security.effective_group.as_deref(), Some("milter-manager"));
        assert_eq!(config.manager.unix_socket_group.as_deref(), Some("postfix"));
        assert_eq!(config.manager.n_workers, 4);
        assert_eq!(config.log.level, "all");
        assert_eq!(config.log.path, Some("-".into()));
        assert!(!config.log.use_syslog);
        assert_eq!(config.manager.unix_socket_mode, 0o600);
        assert_eq!(config.log.syslog_facility, "local3");
        assert_eq!(config.manager.event_loop_backend, "libev");
        assert_eq!(config.manager.packet_buffer_size, 8192);
        assert_eq!(config.manager.max_pending_finished_sessions, 5);
        for key in [
            "manager.connection_spec",
            "manager.daemon",
            "manager.pid_file",
            "security.effective_user",
            "security.effective_group",
            "manager.unix_socket_group",
            "manager.n_workers",
            "log.level",
            "log.path",
            "log.use_syslog",
            "manager.unix_socket_mode",
            "log.syslog_facility",
            "manager.event_loop_backend",
            "manager.packet_buffer_size",
            "manager.max_pending_finished_sessions",
        ] {
            assert_eq!(config.origin(key), Origin::CommandLine, "{key}");
        }
        assert_eq!(config.origin("manager.max_connections"), Origin::Default);
    }

    #[test]
    fn bad_overrides_change_nothing() {
        let mut config = Config::default();
        let overrides =
            Overrides { daemon: Some(true), n_workers: Some(1001), ..Default::default() };
        let error = config.apply_overrides(&overrides).unwrap_err();
        assert_eq!(
            error.to_string(),
            "command line: manager.n_workers: must be a whole number from 0 to 1000"
        );
        assert_eq!(config, Config::default());
        assert_eq!(config.origin("manager.daemon"), Origin::Default);

        let overrides = Overrides { log_level: Some("loud".into()), ..Default::default() };
        let error = config.apply_overrides(&overrides).unwrap_err();
        assert!(error.to_string().starts_with("command line: log.level: unknown log level"));
        let overrides = Overrides { effective_user: Some(String::new()), ..Default::default() };
        assert!(config.apply_overrides(&overrides).is_err());
        let overrides = Overrides { syslog_facility: Some("email".into()), ..Default::default() };
        assert!(config.apply_overrides(&overrides).unwrap_err().to_string().starts_with(
            "command line: log.syslog_facility: unknown value \"email\" (use one of \"kern\""
        ));
        let overrides = Overrides { unix_socket_mode: Some(0o10000), ..Default::default() };
        assert_eq!(
            config.apply_overrides(&overrides).unwrap_err().to_string(),
            "command line: manager.unix_socket_mode: a file mode is at most 0o7777"
        );
        let overrides =
            Overrides { event_loop_backend: Some("epoll".into()), ..Default::default() };
        assert!(config.apply_overrides(&overrides).unwrap_err().to_string().starts_with(
            "command line: manager.event_loop_backend: unknown value \"epoll\" (use one of \"glib\""
        ));
        assert_eq!(config, Config::default());
    }
}
