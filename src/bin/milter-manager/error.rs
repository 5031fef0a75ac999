//! Why milter-manager does not start, or a reload keeps the running configuration. The
//! program prints it after its name; a reload logs it and answers it to the controller.

use std::io;

use milter_manager::conditions::ConditionError;
use milter_manager::config::ConfigError;
use milter_manager::logging::UnknownLevel;
use milter_manager::program::logger::LogError;
use milter_manager::program::ResolveError;
use milter_manager::spec::{Spec, SpecError};
use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Conditions(#[from] ConditionError),
    #[error(transparent)]
    Process(#[from] supervisor::Error),
    #[error("--connection-spec: {0}")]
    ConnectionSpec(SpecError),
    #[error("--user-id {0}: no user has this id")]
    NoSuchUser(u32),
    #[error("--user-id {uid}: cannot look the user up: {}", errno.desc())]
    UserLookup { uid: u32, errno: Errno },
    #[error("--group-id {0}: no group has this id")]
    NoSuchGroup(u32),
    #[error("--group-id {gid}: cannot look the group up: {}", errno.desc())]
    GroupLookup { gid: u32, errno: Errno },
    /// A child's socket that gives no address to connect to.
    #[error("milter {name:?}: {reason}")]
    Endpoint { name: String, reason: ResolveError },
    #[error("milter {name:?}: {spec} has no address")]
    NoAddress { name: String, spec: Spec },
    #[error(
        "security.privilege_mode: started as root without security.effective_user, and neither \
         user \"milter-manager\" nor \"nobody\" exists to serve as: set \
         security.effective_user to an unprivileged user (the launcher alone keeps root)"
    )]
    RootInPrivilegeMode,
    /// A unix socket the serving user could not remove at the stop.
    #[error(
        "{source}: the stop removes it as that user; let that user write there \
         (chown/chmod), or set {section}.remove_unix_socket_on_close = false"
    )]
    SocketNotRemovable { section: &'static str, source: Box<supervisor::Error> },
    #[error("cannot map the shared session counters: {0}")]
    SessionBoard(io::Error),
    #[error("cannot map the shared status counters: {0}")]
    StatusCounters(io::Error),
    #[error("manager.max_file_descriptors = {limit}: cannot set the limit: {errno}")]
    FileLimit { limit: u64, errno: Errno },
    /// `log.level` names no level (checked when loading; a reload checks again).
    #[error(transparent)]
    LogLevel(#[from] UnknownLevel),
    /// The log file or syslog cannot be used.
    #[error(transparent)]
    Logging(#[from] LogError),
    /// `manager.connection_spec` gives no address to listen on.
    #[error(transparent)]
    Listen(ResolveError),
    /// `controller.connection_spec` gives no address to listen on.
    #[error("controller: {0}")]
    ControllerAddress(ResolveError),
    #[error("controller: {0}")]
    ControllerBind(supervisor::Error),
    #[error("controller: cannot set up the socket: {0}")]
    ControllerSocket(io::Error),
    #[error("controller.metrics_connection_spec: {0}")]
    MetricsAddress(ResolveError),
    #[error("controller.metrics_connection_spec: {0}")]
    MetricsBind(supervisor::Error),
    #[error("controller.metrics_connection_spec: cannot set up the socket: {0}")]
    MetricsSocket(io::Error),
}
