//! The configuration as the rest of the program sees it: plain values, already checked,
//! with the defaults of the configuration manual.

use std::path::PathBuf;

use crate::spec::Spec;
use crate::status::FallbackStatus;

/// `[package]`: which platform's milter detection the default file does.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// "debian", "redhat", "freebsd" or "pkgsrc"; picks `defaults/<platform>.toml`.
    pub platform: String,
    /// Extra hints for the detection, `name=value,name=value`.
    pub options: Option<String>,
}

/// `[security]`: the identity the daemon runs as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Security {
    /// Needed to start child milters with their `command`.
    pub privilege_mode: bool,
    pub effective_user: Option<String>,
    pub effective_group: Option<String>,
}

/// `[manager]`: the socket the MTA talks to and how the daemon serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub connection_spec: Spec,
    pub unix_socket_mode: u32,
    pub unix_socket_group: Option<String>,
    pub remove_unix_socket_on_create: bool,
    pub remove_unix_socket_on_close: bool,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    /// Sessions between two maintenance runs; 0 turns maintenance off.
    pub maintenance_interval: u32,
    /// Seconds to wait when no more connection can be accepted.
    pub suspend_time_on_unacceptable: u32,
    /// 0: no limit.
    pub max_connections: u32,
    /// Seconds a new MTA connection may take to make its option offer.
    pub negotiation_timeout: f64,
    /// 0: keep the system's limit.
    pub max_file_descriptors: u64,
    pub custom_configuration_directory: Option<PathBuf>,
    /// Told to the MTA when the manager itself cannot decide.
    pub fallback_status: FallbackStatus,
    /// Told to the MTA when the SMTP client is found gone.
    pub fallback_status_at_disconnect: FallbackStatus,
    /// "glib" or "libev": accepted for compatibility, the event loop is the same.
    pub event_loop_backend: String,
    /// 0: one process serves mail; N: N worker processes.
    pub n_workers: u32,
    /// Bytes of end-of-message packets buffered before sending; 0: no buffering.
    pub packet_buffer_size: u64,
    /// Largest body chunk sent to a child milter.
    pub chunk_size: u32,
    pub max_pending_finished_sessions: u32,
    /// Seconds between checks that the SMTP client is still there; 0: no check.
    pub connection_check_interval: u32,
    pub report_memory_statistics: bool,
    /// Bytes of a message body kept in memory before it goes to a temporary file.
    pub max_body_memory: u64,
    /// Bytes the temporary files of large bodies may hold together in one process (a
    /// worker); 0: no limit.
    pub max_spill_size: u64,
    /// Header and recipient changes one child may send at one end-of-message, and their
    /// bytes; past either, that child fails. 0: no limit.
    pub max_child_modifications: u64,
    pub max_child_modification_bytes: u64,
    /// Child connections kept for reuse by one process, all children together.
    pub max_idle_child_connections: u32,
    /// Where body spill files go; `None`: `$TMPDIR` or `/tmp`.
    pub temporary_directory: Option<PathBuf>,
}

/// `[controller]`: the optional control socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    /// `None`: no control socket.
    pub connection_spec: Option<Spec>,
    pub unix_socket_mode: u32,
    pub unix_socket_group: Option<String>,
    pub remove_unix_socket_on_create: bool,
    pub remove_unix_socket_on_close: bool,
    /// `None`: no metrics page; else where `GET /metrics` is served over HTTP.
    pub metrics_connection_spec: Option<Spec>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// Levels joined by `|`, as `crate::logging::Levels::parse` reads them.
    pub level: String,
    /// `None`: standard output; `-` is standard output too.
    pub path: Option<PathBuf>,
    pub use_syslog: bool,
    pub syslog_facility: String,
}

/// The options given to a child milter's `command`.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOptions {
    /// One string, split into words by the shell rules when used.
    Line(String),
    /// One argument per element.
    Arguments(Vec<String>),
}

/// `[milter.NAME]`: one child milter.
#[derive(Debug, Clone, PartialEq)]
pub struct Milter {
    pub name: String,
    /// Required when the milter is enabled.
    pub connection_spec: Option<Spec>,
    pub description: Option<String>,
    pub enabled: bool,
    /// What the child counts as when it fails, times out or closes.
    pub fallback_status: FallbackStatus,
    /// Log the child's verdicts, never obey them.
    pub evaluation_mode: bool,
    /// Names of the conditions that must all hold for the child to apply.
    pub applicable_conditions: Vec<String>,
    /// Started in privilege mode when the child cannot be reached.
    pub command: Option<String>,
    pub command_options: Option<CommandOptions>,
    /// The user `command` runs as; `None`: root.
    pub user_name: Option<String>,
    /// Timeouts in seconds.
    pub connection_timeout: f64,
    pub writing_timeout: f64,
    pub reading_timeout: f64,
    pub end_of_message_timeout: f64,
    /// Keep a connection that ended cleanly for a later session (`K` instead of quit).
    pub reuse_connection: bool,
    /// Such connections kept by one process, at most.
    pub max_idle_connections: u32,
    /// Seconds a kept connection may wait for its next session.
    pub idle_connection_timeout: f64,
}

pub const PLATFORMS: [&str; 4] = ["debian", "redhat", "freebsd", "pkgsrc"];
pub const EVENT_LOOP_BACKENDS: [&str; 2] = ["glib", "libev"];
pub const SYSLOG_FACILITIES: [&str; 20] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
pub const MAX_WORKERS: u32 = 1000;
/// The milter protocol caps a body chunk at 65535 bytes.
pub(super) const MAX_CHUNK_SIZE: u32 = 65535;
pub(super) const MAX_SOCKET_MODE: u32 = 0o7777;
/// A timeout beyond a day is a typo rather than a wish; the cap also keeps every value
/// representable as a `Duration`.
pub(super) const MAX_TIMEOUT: f64 = 86400.0;

impl Default for Package {
    fn default() -> Self {
        Self { platform: "debian".into(), options: None }
    }
}

impl Default for Manager {
    fn default() -> Self {
        Self {
            connection_spec: Spec::parse("inet:10025@[127.0.0.1]").expect("a valid spec"),
            unix_socket_mode: 0o660,
            unix_socket_group: None,
            remove_unix_socket_on_create: true,
            remove_unix_socket_on_close: true,
            daemon: false,
            pid_file: None,
            maintenance_interval: 100,
            suspend_time_on_unacceptable: 5,
            max_connections: 0,
            negotiation_timeout: 30.0,
            max_file_descriptors: 0,
            custom_configuration_directory: None,
            fallback_status: FallbackStatus::Accept,
            fallback_status_at_disconnect: FallbackStatus::TemporaryFailure,
            event_loop_backend: "glib".into(),
            n_workers: 0,
            packet_buffer_size: 0,
            chunk_size: 65535,
            max_pending_finished_sessions: 0,
            connection_check_interval: 0,
            report_memory_statistics: false,
            max_body_memory: 5 * 1024 * 1024,
            max_spill_size: 1024 * 1024 * 1024,
            max_child_modifications: 10_000,
            max_child_modification_bytes: 10 * 1024 * 1024,
            max_idle_child_connections: 64,
            temporary_directory: None,
        }
    }
}

impl Default for Controller {
    fn default() -> Self {
        Self {
            connection_spec: None,
            unix_socket_mode: 0o660,
            unix_socket_group: None,
            remove_unix_socket_on_create: true,
            remove_unix_socket_on_close: true,
            metrics_connection_spec: None,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "default".into(),
            path: None,
            use_syslog: true,
            syslog_facility: "mail".into(),
        }
    }
}

impl Milter {
    /// A child milter with every item at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            connection_spec: None,
            description: None,
            enabled: true,
            fallback_status: FallbackStatus::Accept,
            evaluation_mode: false,
            applicable_conditions: Vec::new(),
            command: None,
            command_options: None,
            user_name: None,
            connection_timeout: 297.0,
            writing_timeout: 7.0,
            reading_timeout: 7.0,
            end_of_message_timeout: 297.0,
            reuse_connection: true,
            max_idle_connections: 16,
            idle_connection_timeout: 60.0,
        }
    }
}
