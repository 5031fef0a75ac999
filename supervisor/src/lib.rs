//! The process runtime of milter-manager's daemons: binding the listening socket, the
//! privilege drop, daemonizing, the pid file, and the prefork workers that share the
//! listener. It knows nothing about milters: the caller hands it a bind target and a
//! function that serves the listener in a worker.
//!
//! The order of [`run`] is fixed: switch user/group (still root for the lookups), become a
//! daemon, lock and write the pid file, then serve in this process or fork the workers. The
//! crate starts no threads, so forking is safe at every step.
//!
//! Modules: `bind` (the socket), `privileges`, `daemon` (detaching and the start-up report),
//! `pidfile`, `prefork` (the supervisor loop), `signals` (its self-pipe), `throttle` (respawn
//! back-off), `fork` (the one fork call), `board` and `counters` (memory shared with the
//! workers), `launcher_process` (the privilege-mode root helper, forked before the drop),
//! `control_socket` (the control socket in the supervisor's loop), `metrics_socket` (the
//! metrics page over HTTP, beside it), `error`.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub use board::SessionBoard;
pub use control_socket::{
    ControlAnswer, ControlContext, ControlHandler, ControlSocket, ReloadOutcome, ReloadReporter,
    RunningWorker,
};
pub use counters::SharedCounters;
pub use launcher_process::{Launcher, ProgramError, Programs, Started};
pub use metrics_socket::{MetricsHandler, MetricsSocket};
pub use workers::Listener;

/// What to listen on (a resolved connection spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    Unix(PathBuf),
    /// Addresses to try in order; the first one that binds wins.
    Tcp(Vec<SocketAddr>),
}

/// Set-up of the listening socket.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Permission bits of a unix socket (e.g. 0o660).
    pub unix_socket_mode: Option<u32>,
    /// Group name of a unix socket.
    pub unix_socket_group: Option<String>,
    /// Remove a stale socket file at the path before binding.
    pub remove_unix_socket_on_create: bool,
    /// Remove the socket file when the process exits cleanly.
    pub remove_unix_socket_on_close: bool,
    /// listen(2) backlog.
    pub backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            unix_socket_mode: None,
            unix_socket_group: None,
            remove_unix_socket_on_create: true,
            remove_unix_socket_on_close: true,
            backlog: 1024,
        }
    }
}

/// How the process runs.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    pub daemon: bool,
    /// User to switch to (name or numeric id); only when started as root.
    pub user: Option<String>,
    /// Group to switch to (name or numeric id); only when started as root.
    pub group: Option<String>,
    pub pid_file: Option<PathBuf>,
    /// 0: serve in the supervisor's own process; N: fork N workers sharing the listener.
    pub n_workers: u32,
}

mod bind;
mod board;
mod control_socket;
mod counters;
mod daemon;
mod error;
mod fork;
mod launcher_client;
pub mod launcher_process;
mod metrics_socket;
mod pidfile;
mod prefork;
mod privileges;
mod shared_memory;
mod signals;
#[cfg(test)]
mod test_dir;
mod throttle;

pub use bind::{bind, check_bindable, BoundSocket};
pub use error::Error;
pub use pidfile::PidFile;
pub use prefork::MAX_WORKERS;
pub use privileges::Identity;

/// What a worker's `serve` function gets besides the listener.
#[derive(Debug)]
pub struct WorkerContext {
    /// 0..n_workers; 0 when the process serves alone (`n_workers == 0`).
    pub worker_index: u32,
    /// A number no other live worker holds, old generations' draining workers included:
    /// the lowest free one, so it stays below `2 * MAX_WORKERS` unless draining workers of
    /// several reloads pile up. Meant for per-worker slots in shared memory.
    pub worker_id: u32,
    /// The configuration generation this worker serves: 1 at start, +1 per reload.
    pub generation: u64,
    /// Read end of a pipe whose write end only the supervisor holds: EOF (readable with 0
    /// bytes) means the supervisor is gone or wants the worker to stop, so stop accepting and
    /// drain. `None` when the process serves alone.
    pub parent_watch: Option<OwnedFd>,
    /// When the process serves alone with a controller: where its reloads are reported, so
    /// that the controller's process can answer `reload` and know the running
    /// configuration.
    pub reload_reporter: Option<ReloadReporter>,
}

/// A worker's serving function: gets the shared listener, returns the exit code.
pub type Serve<'a> = Box<dyn FnMut(Listener, WorkerContext) -> i32 + 'a>;

/// What a successful reload hands the supervisor: the next generation's workers.
pub struct Reloaded {
    /// Serves the listener with the new configuration.
    pub serve: Serve<'static>,
    /// How many workers the new generation gets (0 is refused: a running supervisor cannot
    /// become a single serving process; the old count is kept).
    pub n_workers: u32,
    /// Handed to the controller with the outcome ([`ReloadOutcome::report`]).
    pub report: String,
}

/// Loads the configuration again; the error is the application's own, its message goes to
/// the controller.
pub type ReloadHook = Box<dyn FnMut() -> Result<Reloaded, Box<dyn std::error::Error>>>;

/// Extension points called by the supervisor (prefork mode only; with `n_workers == 0` the
/// serving process handles its own signals).
#[derive(Default)]
pub struct Hooks {
    /// Called on SIGHUP and on the controller's reload: loads the configuration again. An
    /// error keeps the running generation (the hook logs it; the controller answers it);
    /// `Ok` starts the new generation's workers and lets the old ones finish their sessions
    /// and exit. Without the hook, SIGHUP is logged and ignored.
    pub on_reload: Option<ReloadHook>,
    /// Called on SIGUSR1 before it is forwarded to the workers (e.g. reopen log files).
    pub on_reopen_logs: Option<Box<dyn FnMut()>>,
    /// Called with a worker's `worker_id` once it has exited and been reaped, whatever the
    /// reason (e.g. to clear what it left in shared memory).
    pub on_worker_exit: Option<Box<dyn FnMut(u32)>>,
    /// The control socket: served by the supervisor's loop, or with `n_workers == 0` by a
    /// small process of its own.
    pub control: Option<ControlSocket>,
    /// The metrics page over HTTP, served like the control socket.
    pub metrics: Option<MetricsSocket>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_reload", &self.on_reload.is_some())
            .field("on_reopen_logs", &self.on_reopen_logs.is_some())
            .field("on_worker_exit", &self.on_worker_exit.is_some())
            .field("control", &self.control.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

/// Runs the process around `serve`: drops privileges, daemonizes, writes the pid file, then
/// either serves in this process (`n_workers == 0`) or forks `n_workers` workers and
/// supervises them until SIGTERM/SIGINT. Returns the exit code for the process; removes the
/// socket (if asked to) and the pid file on the way out.
///
/// With `opts.daemon`, the calling process does not return: it exits 0 once the daemon
/// reports ready, or prints the daemon's error and exits 1. Errors after daemonizing are also
/// returned from `run` in the daemon, for its log.
pub fn run<S>(bound: BoundSocket, opts: &ProcessOptions, serve: S) -> Result<i32, Error>
where
    S: FnMut(Listener, WorkerContext) -> i32,
{
    run_with_hooks(bound, opts, Hooks::default(), serve)
}

/// [`run`] with extension points for SIGHUP and SIGUSR1.
pub fn run_with_hooks<S>(
    mut bound: BoundSocket,
    opts: &ProcessOptions,
    mut hooks: Hooks,
    mut serve: S,
) -> Result<i32, Error>
where
    S: FnMut(Listener, WorkerContext) -> i32,
{
    // Until serving starts, every way out removes the sockets (a start that fails leaves
    // nothing behind); afterwards only those asked to be removed on close.
    if opts.n_workers > MAX_WORKERS {
        return Err(Error::TooManyWorkers { requested: opts.n_workers, max: MAX_WORKERS });
    }
    // Absolute now: the daemon changes to "/" before it opens the pid file.
    let pid_path = match &opts.pid_file {
        Some(path) => Some(
            std::path::absolute(path)
                .map_err(|source| Error::PidFileOpen { path: path.clone(), source })?,
        ),
        None => None,
    };

    let identity = privileges::Identity::resolve(opts.user.as_deref(), opts.group.as_deref())?;
    if let Some(identity) = &identity {
        identity.check_allowed()?;
        if let Some(path) = &bound.unix_path {
            identity.chown_socket(path, bound.group_applied)?;
        }
        if let Some((path, group_applied)) = hooks.control.as_ref().and_then(|c| c.unix_path()) {
            identity.chown_socket(path, group_applied)?;
        }
        identity.switch()?;
    }
    privileges::log_serving_user();

    let mut report =
        if opts.daemon { daemon::daemonize()? } else { daemon::StartupReport::foreground() };
    let pid_file = match acquire_pid_file(pid_path.as_deref()) {
        Ok(pid_file) => pid_file,
        Err(error) => {
            report.failed(&error);
            return Err(error);
        }
    };
    let socket_file = bound.serve_file();
    if let Some(control) = hooks.control.as_mut() {
        control.start_serving();
    }
    let result = serve_or_supervise(
        bound.listener,
        opts.n_workers,
        pid_file.as_ref(),
        &mut hooks,
        &mut serve,
        &mut report,
    );
    match result {
        Ok(code) => {
            // The pid file goes last, so that its absence means "fully stopped".
            drop(socket_file);
            drop(hooks.control.take());
            drop(hooks.metrics.take());
            drop(pid_file);
            Ok(code)
        }
        Err(error) => {
            report.failed(&error);
            Err(error)
        }
    }
}

/// Locks the pid file and writes this (final) process's pid into it.
fn acquire_pid_file(path: Option<&std::path::Path>) -> Result<Option<PidFile>, Error> {
    let Some(path) = path else { return Ok(None) };
    let mut pid_file = PidFile::acquire(path)?;
    pid_file.write_pid(std::process::id())?;
    Ok(Some(pid_file))
}

/// The descriptors of the serving process that a helper process it forks must not keep.
fn serving_fds(
    listener: &Listener,
    pid_file: Option<&PidFile>,
    report: &daemon::StartupReport,
) -> Vec<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    let listener = match listener {
        Listener::Unix(listener) => listener.as_raw_fd(),
        Listener::Tcp(listener) => listener.as_raw_fd(),
    };
    [Some(listener), pid_file.and_then(PidFile::raw_fd), report.raw_fd()]
        .into_iter()
        .flatten()
        .collect()
}

fn serve_or_supervise<S>(
    listener: Listener,
    n_workers: u32,
    pid_file: Option<&PidFile>,
    hooks: &mut Hooks,
    serve: &mut S,
    report: &mut daemon::StartupReport,
) -> Result<i32, Error>
where
    S: FnMut(Listener, WorkerContext) -> i32,
{
    if n_workers == 0 {
        let _reload_and_reopen_are_harmless =
            signals::catch_and_ignore(&[libc::SIGHUP, libc::SIGUSR1])?;
        let served_aside = hooks.control.is_some() || hooks.metrics.is_some();
        let (_control_process_lives_while_this_is_held, reload_reporter) = if served_aside {
            let fds = serving_fds(&listener, pid_file, report);
            let (alive, reporter) =
                control_socket::fork_server(hooks.control.as_mut(), hooks.metrics.as_mut(), &fds)?;
            // The control process serves the metrics page; this process needs no copy.
            hooks.metrics.take();
            (Some(alive), Some(reporter))
        } else {
            (None, None)
        };
        report.ready();
        let context = WorkerContext {
            worker_index: 0,
            worker_id: 0,
            generation: 1,
            parent_watch: None,
            reload_reporter,
        };
        return Ok(serve(listener, context));
    }
    // The start-up report's pipe is not among them: it closes at readiness and its number
    // is reused; Prefork::run closes it in the workers forked before that.
    let close_in_child = pid_file.and_then(PidFile::raw_fd).into_iter().collect();
    let serve: Serve<'_> = Box::new(serve);
    prefork::Prefork::new(listener, n_workers, serve, hooks, close_in_child)?.run(report)
}

/// The poll(2) timeout that wakes at `until` (never without it), rounded up so that a
/// loop does not spin on sub-millisecond remainders.
pub(crate) fn poll_timeout(until: Option<std::time::Instant>) -> nix::poll::PollTimeout {
    use nix::poll::PollTimeout;
    match until {
        None => PollTimeout::NONE,
        Some(at) => {
            let remaining = at.saturating_duration_since(std::time::Instant::now());
            PollTimeout::try_from(remaining.as_micros() / 1000 + 1).unwrap_or(PollTimeout::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn too_many_workers_are_refused_before_anything_happens() {
        let dir = TestDir::new("too-many");
        let path = dir.path().join("milter.sock");
        let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let opts = ProcessOptions { n_workers: MAX_WORKERS + 1, ..ProcessOptions::default() };
        let error = run(bound, &opts, |_, _| unreachable!("nothing is served")).unwrap_err();
        assert_eq!(error.to_string(), "1001 workers requested; at most 1000 are allowed");
        assert!(!path.exists(), "the socket is removed on every way out");
    }
}
