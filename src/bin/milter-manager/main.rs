//! milter-manager: the milter proxy. The MTA talks to this one socket; every session is
//! fanned out to the configured child milters and their answers folded into one.

use milter_manager::{out, outln, program};

mod adapter;
mod client_watch;
mod control_handler;
mod error;
mod launch_on_demand;
mod maintenance;
mod metrics;
mod privilege;
mod reload;
mod spill;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use milter_manager::conditions::ConditionSet;
use milter_manager::config::{Config, Overrides, DEFAULT_CONFIG_DIR, MAX_WORKERS};
use milter_manager::engine::{
    ChildConfig, ChildTimeouts, ConnectionReuse, EngineConfig, Limits, MTA_IDLE_TIMEOUT,
};
use milter_manager::logging::Levels;
use milter_manager::spec::Spec;

use adapter::Generation;
use error::StartError;
use milter_manager::control_protocol::{ControllerView, CounterSlots, Counters};
use reload::Reloader;
use supervisor::{SessionBoard, SharedCounters};
use worker::Plan;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "milter-manager",
    version,
    about = "A milter proxy: one milter socket for the MTA, many child milters behind it"
)]
struct Options {
    /// Directory of milter-manager.toml.
    #[arg(short = 'c', long = "config-dir", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Print the effective configuration (loadable TOML) and exit.
    #[arg(long = "show-config")]
    show_config: bool,
    /// Check the configuration, print the result and exit 0 if it is valid, 1 if not.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Socket to listen on (overrides manager.connection_spec): unix:PATH, inet:PORT,
    /// inet:PORT@HOST, inet:PORT@[ADDRESS], inet6:... (--spec: the spelling of the original's
    /// FreeBSD rc.d script).
    #[arg(short = 's', long = "connection-spec", alias = "spec")]
    connection_spec: Option<String>,
    /// Log everything (the same as --log-level=all).
    #[arg(short = 'v', long, overrides_with = "quiet")]
    verbose: bool,
    /// Log nothing (the same as --log-level=none).
    #[arg(short = 'q', long, overrides_with = "verbose")]
    quiet: bool,
    /// Log levels joined with '|' (overrides log.level): all, default, none, critical,
    /// error, warning, message, info, debug, statistics, profile.
    #[arg(long = "log-level")]
    log_level: Option<String>,
    /// Log file (overrides log.path); '-': standard output.
    #[arg(long = "log-path")]
    log_path: Option<PathBuf>,
    /// Also log to syslog (overrides log.use_syslog).
    #[arg(long, overrides_with = "no_syslog")]
    syslog: bool,
    /// Do not log to syslog.
    #[arg(long = "no-syslog")]
    no_syslog: bool,
    /// Syslog facility (overrides log.syslog_facility): mail, daemon, local0..local7, ...
    #[arg(long = "syslog-facility", value_name = "FACILITY")]
    syslog_facility: Option<String>,
    /// Run in the background (overrides manager.daemon).
    #[arg(long, overrides_with = "no_daemon")]
    daemon: bool,
    /// Stay in the foreground.
    #[arg(long = "no-daemon")]
    no_daemon: bool,
    /// Write the process id here (overrides manager.pid_file).
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Run as this user, a name or a numeric id (overrides security.effective_user; needs
    /// root). Started as root without one, it runs as milter-manager, else nobody.
    #[arg(short = 'u', long = "user-name", alias = "user", value_name = "USER")]
    user_name: Option<String>,
    /// Run as the user with this numeric id (overrides security.effective_user; needs root).
    #[arg(long = "user-id", value_name = "UID", conflicts_with = "user_name")]
    user_id: Option<u32>,
    /// Run as this group, a name or a numeric id (overrides security.effective_group; needs
    /// root).
    #[arg(short = 'g', long = "group-name", alias = "group", value_name = "GROUP")]
    group_name: Option<String>,
    /// Run as the group with this numeric id (overrides security.effective_group; needs root).
    #[arg(long = "group-id", value_name = "GID", conflicts_with = "group_name")]
    group_id: Option<u32>,
    /// Group of the unix socket (overrides manager.unix_socket_group).
    #[arg(long = "unix-socket-group", alias = "socket-group-name")]
    unix_socket_group: Option<String>,
    /// Mode of the unix socket in octal, e.g. 0660 (overrides manager.unix_socket_mode).
    #[arg(long = "unix-socket-mode", value_name = "MODE", value_parser = parse_mode)]
    unix_socket_mode: Option<u32>,
    /// Worker processes (0-1000; overrides manager.n_workers; 0: this process serves).
    #[arg(long = "n-workers", value_parser = clap::value_parser!(u32).range(0..=1000))]
    n_workers: Option<u32>,
    /// glib or libev (overrides manager.event_loop_backend). No effect: accepted for the
    /// original's command lines; there is one event loop.
    #[arg(long = "event-loop-backend", value_name = "BACKEND",
          value_parser = ["glib", "libev"])]
    event_loop_backend: Option<String>,
    /// Bytes (overrides manager.packet_buffer_size). No effect: accepted for the original's
    /// command lines.
    #[arg(long = "packet-buffer-size", value_name = "SIZE")]
    packet_buffer_size: Option<u64>,
    /// A number (overrides manager.max_pending_finished_sessions). No effect: accepted for
    /// the original's command lines; finished sessions are freed at once.
    #[arg(long = "max-pending-finished-sessions", value_name = "N")]
    max_pending_finished_sessions: Option<u32>,
    /// The directory milter-manager started in, which relative paths are taken from
    /// (`None` if it cannot be told: they are then used as given).
    #[arg(skip)]
    start_dir: Option<PathBuf>,
}

impl Options {
    /// Takes a relative `--config-dir` from the directory the program starts in, and keeps
    /// that directory for a relative log path (see `load`): a daemon works in `/`, and a
    /// reload reads the configuration and SIGUSR1 reopens the log file long after the start.
    fn anchored(mut self) -> Self {
        self.start_dir = std::env::current_dir().ok();
        if let Some(dir) = &self.start_dir {
            self.config_dir = dir.join(&self.config_dir);
        }
        self
    }
}

/// `path` from `dir` if it is relative, except `-` (standard output).
fn anchored_log_path(dir: &Path, path: PathBuf) -> PathBuf {
    if path.as_os_str() == "-" {
        path
    } else {
        dir.join(path)
    }
}

fn main() -> ExitCode {
    let options = Options::parse().anchored();
    match run(&options) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("milter-manager: {error}");
            ExitCode::FAILURE
        }
    }
}

fn overrides(options: &Options) -> Result<Overrides, StartError> {
    let connection_spec = match &options.connection_spec {
        Some(text) => Some(Spec::parse(text).map_err(StartError::ConnectionSpec)?),
        None => None,
    };
    let log_level = match (options.verbose, options.quiet) {
        (true, _) => Some("all".to_string()),
        (_, true) => Some("none".to_string()),
        _ => options.log_level.clone(),
    };
    let effective_user = match options.user_id {
        Some(uid) => Some(user_named_by_id(uid)?),
        None => options.user_name.clone(),
    };
    let effective_group = match options.group_id {
        Some(gid) => Some(group_named_by_id(gid)?),
        None => options.group_name.clone(),
    };
    Ok(Overrides {
        connection_spec,
        daemon: flag(options.daemon, options.no_daemon),
        pid_file: options.pid_file.clone(),
        effective_user,
        effective_group,
        unix_socket_group: options.unix_socket_group.clone(),
        unix_socket_mode: options.unix_socket_mode,
        n_workers: options.n_workers,
        log_level,
        log_path: options.log_path.clone(),
        use_syslog: flag(options.syslog, options.no_syslog),
        syslog_facility: options.syslog_facility.clone(),
        event_loop_backend: options.event_loop_backend.clone(),
        packet_buffer_size: options.packet_buffer_size,
        max_pending_finished_sessions: options.max_pending_finished_sessions,
    })
}

/// `--user-id`: the user's name, as the original takes only an id the system knows.
fn user_named_by_id(uid: u32) -> Result<String, StartError> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => Ok(user.name),
        Ok(None) => Err(StartError::NoSuchUser(uid)),
        Err(errno) => Err(StartError::UserLookup { uid, errno }),
    }
}

/// `--group-id`: the group's name, as the original takes only an id the system knows.
fn group_named_by_id(gid: u32) -> Result<String, StartError> {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(group)) => Ok(group.name),
        Ok(None) => Err(StartError::NoSuchGroup(gid)),
        Err(errno) => Err(StartError::GroupLookup { gid, errno }),
    }
}

fn parse_mode(text: &str) -> Result<u32, milter_manager::config::ModeError> {
    milter_manager::config::mode_text(text)
}

fn flag(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// Loads and checks everything a start (or a reload) needs; besides `slots` (new milter
/// names get their counter rows), without side effects.
fn load(
    options: &Options,
    board: &Rc<SessionBoard>,
    slots: &mut CounterSlots,
) -> Result<(Config, Generation), StartError> {
    // Root at start, the serving user at a reload after the drop of privileges.
    let serving_uid = nix::unistd::geteuid().as_raw();
    let mut config = Config::load(&options.config_dir, serving_uid)?;
    config.apply_overrides(&overrides(options)?)?;
    // A relative log path (`--log-path` or log.path) is taken from the start directory
    // too, at a reload as at start.
    if let (Some(dir), Some(path)) = (&options.start_dir, config.log.path.take()) {
        config.log.path = Some(anchored_log_path(dir, path));
    }
    let generation = generation(&config, board, slots)?;
    Ok((config, generation))
}

/// The engine's configuration and where each enabled child listens. Host names are
/// looked up here, once, not on every session.
fn generation(
    config: &Config,
    board: &Rc<SessionBoard>,
    slots: &mut CounterSlots,
) -> Result<Generation, StartError> {
    let sessions = Rc::new(adapter::BoardCount(Rc::clone(board)));
    let conditions = ConditionSet::new(config, sessions)?;
    let mut children = Vec::new();
    let mut endpoints = Vec::new();
    let mut launchable = Vec::new();
    let mut counter_slots = Vec::new();
    for milter in config.milters.iter().filter(|m| m.enabled) {
        let spec = milter.connection_spec.as_ref().expect("checked when loading");
        let name = || milter.name.clone();
        let endpoint = program::endpoints(spec)
            .map_err(|reason| StartError::Endpoint { name: name(), reason })?
            .into_iter()
            .next()
            .ok_or_else(|| StartError::NoAddress { name: name(), spec: spec.clone() })?;
        endpoints.push(endpoint);
        launchable.push(milter.command.is_some());
        counter_slots.push(slots.slot(&milter.name));
        children.push(ChildConfig {
            name: milter.name.clone(),
            fallback_status: milter.fallback_status,
            evaluation_mode: milter.evaluation_mode,
            timeouts: ChildTimeouts {
                connection: Duration::from_secs_f64(milter.connection_timeout),
                writing: Duration::from_secs_f64(milter.writing_timeout),
                reading: Duration::from_secs_f64(milter.reading_timeout),
                end_of_message: Duration::from_secs_f64(milter.end_of_message_timeout),
            },
            reuse: (milter.reuse_connection && milter.max_idle_connections > 0).then(|| {
                ConnectionReuse {
                    max_idle: milter.max_idle_connections as usize,
                    idle_timeout: Duration::from_secs_f64(milter.idle_connection_timeout),
                }
            }),
        });
    }
    let manager = &config.manager;
    let engine = EngineConfig {
        children,
        fallback_status: manager.fallback_status,
        fallback_status_at_disconnect: manager.fallback_status_at_disconnect,
        chunk_size: manager.chunk_size as usize,
        max_body_memory: usize::try_from(manager.max_body_memory).unwrap_or(usize::MAX),
        mta_idle_timeout: MTA_IDLE_TIMEOUT,
        mta_negotiation_timeout: Duration::from_secs_f64(manager.negotiation_timeout),
        limits: Limits {
            modifications: limit(manager.max_child_modifications),
            modification_bytes: limit(manager.max_child_modification_bytes),
            ..Limits::default()
        },
        spill: Arc::new(spill::TempFiles::new(
            manager.temporary_directory.as_deref(),
            manager.max_spill_size,
        )),
        // Anew at each reload: a configuration that fails again says so again, once.
        store_failures: Arc::default(),
    };
    Ok(Generation {
        engine: Arc::new(engine),
        endpoints,
        conditions: Rc::new(conditions),
        connection_check_interval: Duration::from_secs(manager.connection_check_interval.into()),
        scripts: Rc::new(config.manager_scripts.clone()),
        launchable,
        maintenance: maintenance::Maintenance::of(config),
        counter_slots,
    })
}

/// A configured limit for the engine: 0 means none.
fn limit(configured: u64) -> usize {
    match configured {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

fn run(options: &Options) -> Result<i32, StartError> {
    // Mapped before any fork so that every worker shares it; sized for the most workers
    // a configuration may ask for twice over (a reload's new workers beside the old ones
    // finishing their sessions), so a reload needs no new board.
    let board =
        Rc::new(SessionBoard::new(2 * MAX_WORKERS as usize + 1).map_err(StartError::SessionBoard)?);
    let counters = Rc::new(SharedCounters::new(Counters::LEN).map_err(StartError::StatusCounters)?);
    let mut slots = CounterSlots::default();
    let (config, generation) = load(options, &board, &mut slots)?;
    if options.show_config {
        out!("{}", config.show());
        return Ok(0);
    }
    if options.check_config {
        out!("{}", config.check_report());
        let enabled = config.milters.iter().filter(|m| m.enabled).count();
        outln!(
            "{}: configuration is valid ({} child milters, {enabled} enabled)",
            options.config_dir.display(),
            config.milters.len()
        );
        return Ok(0);
    }
    let (serving_user, why_this_user) = privilege::serving_user(&config)?;
    let identity = check_files_for(&config, serving_user.as_deref())?;
    let new_log_file =
        config.log.path.as_ref().filter(|path| path.as_os_str() != "-" && !path.exists());
    set_up_logging(&config, false)?;
    if let (Some(identity), Some(path)) = (&identity, new_log_file) {
        // Created as root a moment ago: reopening it on SIGUSR1 after the switch needs it.
        identity.give_file(path)?;
    }
    for note in &config.notes {
        log::info!("[configuration] {note}");
    }
    for warning in config.warnings.iter().cloned().chain(config.compatibility_warnings()) {
        log::warn!("[configuration] {warning}");
    }
    if let Some(why) = why_this_user {
        log::info!("{why}");
    }
    let manager = &config.manager;
    if manager.max_file_descriptors > 0 {
        raise_file_limit(manager.max_file_descriptors)?;
    }
    let target = program::bind_target(&manager.connection_spec).map_err(StartError::Listen)?;
    let listen = supervisor::ListenOptions {
        unix_socket_mode: Some(manager.unix_socket_mode),
        unix_socket_group: manager.unix_socket_group.clone(),
        remove_unix_socket_on_create: manager.remove_unix_socket_on_create,
        remove_unix_socket_on_close: manager.remove_unix_socket_on_close,
        ..supervisor::ListenOptions::default()
    };
    // Every socket is checked before any is bound: a second instance refused on one of them
    // must not leave the other behind.
    supervisor::check_bindable(&target, &listen)?;
    control_handler::check_bindable(&config)?;
    metrics::check_bindable(&config)?;
    // Forked while still root and before any socket is bound, so it holds none of them.
    let launcher = privilege::start_launcher(&config, serving_user.as_deref(), options)?;
    let launcher_path = launcher.as_ref().map(|l| l.socket_path().to_path_buf());
    let bound = supervisor::bind(&target, &listen)?;
    let listening = format!(
        "listening on {} with {} child milters",
        bound.local_description(),
        generation.endpoints.len()
    );
    let process = supervisor::ProcessOptions {
        daemon: manager.daemon,
        user: serving_user,
        group: config.security.effective_group.clone(),
        pid_file: manager.pid_file.clone(),
        n_workers: manager.n_workers,
    };
    let view = ControllerView::of(&config, &slots);
    let metrics_source = Rc::new(metrics::MetricsSource {
        board: Rc::clone(&board),
        counters: Rc::clone(&counters),
        children: std::cell::RefCell::new(view.children.clone()),
    });
    let controller = control_handler::Controller {
        board: Rc::clone(&board),
        counters: Rc::clone(&counters),
        view,
        launcher: launcher_path.clone(),
        metrics: Rc::clone(&metrics_source),
    };
    let shared = worker::Shared {
        board: Rc::clone(&board),
        counters: Rc::clone(&counters),
        launcher: launcher_path.clone().map(|path| Rc::new(workers::Endpoint::Unix(path))),
    };
    let plan = Rc::new(Plan::new(&config, generation));
    let reloader =
        || Reloader::new(options, &board, &counters, &config, &slots, launcher_path.clone());
    let hooks = supervisor::Hooks {
        on_reload: Some(reload::prefork_hook(reloader(), shared.clone())),
        on_worker_exit: Some({
            let board = Rc::clone(&board);
            // A worker killed with sessions in flight leaves them counted.
            Box::new(move |worker_id| board.reset(worker_id as usize))
        }),
        on_reopen_logs: Some(Box::new(worker::reopen_logs)),
        control: control_handler::bind(&config, controller)?,
        metrics: metrics::bind(&config, metrics_source)?,
    };
    log::info!("{listening}");
    // Used only when this process serves alone (n_workers = 0), where SIGHUP reaches the
    // event loop instead of the supervisor.
    let mut alone_reloader = (manager.n_workers == 0).then(reloader);
    // Made as late as can be, so that a start that fails before leaves no directory
    // behind; as root here, and the serving user needs it for the files of large bodies.
    let spill_directory = spill::prepare(manager.temporary_directory.as_deref());
    if let (Some(directory), Some(identity)) = (&spill_directory, &identity) {
        if let Err(error) = identity.give_file(directory) {
            spill::remove_private_directories();
            return Err(error.into());
        }
    }
    let served =
        supervisor::run_with_hooks(bound, &process, hooks, move |listener, mut context| {
            let reporter = context.reload_reporter.take();
            let on_hangup = alone_reloader
                .take()
                .map(|r| reload::in_process_hook(r, Rc::clone(&plan), reporter));
            worker::serve(Rc::clone(&plan), &shared, listener, context, on_hangup)
        })
        .map_err(StartError::from);
    spill::remove_private_directories();
    served
}

/// Started as root, fails unless the user the processes will serve as can write the pid file
/// (and remove it at the end) and an existing log file (reopened on SIGUSR1), read every
/// configuration file and list every directory an include glob lists (both again at a
/// reload), and remove the unix sockets at the end:
/// before anything is bound or written. Checked, not worked around with descriptors kept
/// from root: a reload may read new files, and the admin fixes the owner once, as sshd and
/// Postfix ask. The identity, when there is one to switch to.
fn check_files_for(
    config: &Config,
    user: Option<&str>,
) -> Result<Option<supervisor::Identity>, StartError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let group = config.security.effective_group.as_deref();
    let Some(identity) = supervisor::Identity::resolve(user, group)? else {
        return Ok(None);
    };
    if let Some(path) = &config.manager.pid_file {
        identity.check_writable("pid file", path, true)?;
    }
    // A log file that does not exist yet is created as root and given to the user.
    if let Some(path) = config.log.path.as_ref().filter(|p| p.as_os_str() != "-" && p.exists()) {
        identity.check_writable("log file", path, false)?;
    }
    for path in &config.files_read {
        identity.check_readable("configuration file", path)?;
    }
    for path in &config.directories_listed {
        identity.check_listable("configuration directory", path)?;
    }
    let (manager, controller) = (&config.manager, &config.controller);
    let sockets = [
        ("manager", "socket", Some(&manager.connection_spec), manager.remove_unix_socket_on_close),
        (
            "controller",
            "controller socket",
            controller.connection_spec.as_ref(),
            controller.remove_unix_socket_on_close,
        ),
    ];
    for (section, what, spec, removed_at_stop) in sockets {
        if let (Some(Spec::Unix { path, .. }), true) = (spec, removed_at_stop) {
            identity.check_removable(what, path).map_err(|source| {
                StartError::SocketNotRemovable { section, source: Box::new(source) }
            })?;
        }
    }
    Ok(Some(identity))
}

/// Installs the logger (at start) or switches it to `config`'s settings (at a reload).
fn set_up_logging(config: &Config, reload: bool) -> Result<(), StartError> {
    let options = program::logger::LogOptions {
        levels: Levels::parse(&config.log.level)?,
        path: config.log.path.clone().filter(|p| p.as_os_str() != "-"),
        syslog: config.log.use_syslog,
        ident: "milter-manager",
        facility: Some(config.log.syslog_facility.clone()),
    };
    let set_up = if reload {
        program::logger::reconfigure(&options)
    } else {
        program::logger::init(&options)
    };
    set_up.map_err(StartError::from)
}

/// `manager.max_file_descriptors`: soft and hard limit of open files.
fn raise_file_limit(limit: u64) -> Result<(), StartError> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_NOFILE, limit, limit)
        .map_err(|errno| StartError::FileLimit { limit, errno })
}
