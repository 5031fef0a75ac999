//! The prefork supervisor: forks N workers that share the listener, replaces the ones that
//! die (with crash throttling), forwards signals and stops them all on SIGTERM/SIGINT. It
//! serves no mail and runs no threads: one poll on a signal self-pipe drives everything.
//!
//! SIGHUP reloads by generation: when the reload hook returns a new serving function, the
//! supervisor forks the new generation's workers and closes the old workers' pipes, so they
//! stop accepting, finish their sessions and exit. Old workers are reaped, never replaced.

use std::os::fd::{OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use crate::daemon::StartupReport;
use crate::error::{Error, Result};
use crate::fork;
use crate::signals::SignalPipe;
use crate::throttle::RespawnThrottle;
use crate::{
    ControlContext, ControlSocket, Hooks, Listener, MetricsSocket, ReloadOutcome, Reloaded,
    RunningWorker, Serve, WorkerContext,
};

/// The most workers one supervisor forks.
pub const MAX_WORKERS: u32 = 1000;

/// How long stopping workers get before SIGKILL: the workers' own drain deadline (60 s by
/// default) plus a margin.
const STOP_DEADLINE: Duration = Duration::from_secs(65);

/// Exit code of a worker whose `serve` panicked (the code Rust uses for a panicking main).
const PANIC_EXIT_CODE: i32 = 101;

/// Everything the supervisor knows about one worker position of the current generation.
struct Slot {
    index: u32,
    state: SlotState,
    throttle: RespawnThrottle,
}

/// A forked worker process.
struct Worker {
    pid: Pid,
    /// Its `WorkerContext::worker_id`.
    id: u32,
    started: Instant,
    /// Write end of the worker's `parent_watch` pipe; closing it tells the worker to stop.
    to_worker: Option<OwnedFd>,
}

enum SlotState {
    Running(Worker),
    /// Dead, to be replaced at `at`.
    Waiting {
        at: Instant,
    },
    /// Dead, not to be replaced (shutting down).
    Stopped,
}

/// A worker of an older generation, told to stop, finishing its sessions.
struct Draining {
    index: u32,
    generation: u64,
    worker: Worker,
}

pub(crate) struct Prefork<'a> {
    /// `None` only inside a worker, which takes it.
    listener: Option<Listener>,
    /// The current generation's serving function.
    serve: Serve<'a>,
    /// 1 at start, +1 per successful reload.
    generation: u64,
    slots: Vec<Slot>,
    draining: Vec<Draining>,
    /// `None` only inside a worker, which drops it.
    signals: Option<SignalPipe>,
    /// Descriptors of the supervisor (pid file lock; the start-up report until readiness) a
    /// worker must not keep.
    close_in_child: Vec<RawFd>,
    hooks: &'a mut Hooks,
}

impl<'a> Prefork<'a> {
    pub(crate) fn new(
        listener: Listener,
        n_workers: u32,
        serve: Serve<'a>,
        hooks: &'a mut Hooks,
        close_in_child: Vec<RawFd>,
    ) -> Result<Self> {
        Ok(Prefork {
            listener: Some(listener),
            serve,
            generation: 1,
            slots: fresh_slots(n_workers, Instant::now()),
            draining: Vec::new(),
            // Installed before the first fork so that no SIGCHLD can be missed.
            signals: Some(SignalPipe::install()?),
            close_in_child,
            hooks,
        })
    }

    /// Starts the workers, reports readiness, then supervises until SIGTERM/SIGINT, when it
    /// stops every worker and returns 0.
    pub(crate) fn run(mut self, report: &mut StartupReport) -> Result<i32> {
        // Open only until readiness: the first workers close it, later ones must not close
        // whatever then has its number.
        let report_fd = report.raw_fd();
        self.close_in_child.extend(report_fd);
        for position in 0..self.slots.len() {
            if let Err(error) = self.spawn(position) {
                self.stop_all()?;
                return Err(error);
            }
        }
        log::info!("supervising {} workers", self.slots.len());
        report.ready();
        self.close_in_child.retain(|fd| Some(*fd) != report_fd);

        loop {
            self.wait_for_signal_or_control(self.next_respawn())?;
            self.serve_control();
            let pending = self.signals().take_pending();
            self.reap(false);
            if pending.terminate || pending.interrupt {
                let name = if pending.terminate { "SIGTERM" } else { "SIGINT" };
                log::info!("{name} received: stopping the workers");
                // The workers close their copies as they start draining; with this one
                // closed too, a new client is refused at once instead of waiting in a
                // backlog that would be reset when the manager exits.
                self.listener.take();
                self.stop_all()?;
                return Ok(0);
            }
            if pending.hangup {
                log::info!("SIGHUP received: reloading the configuration");
                self.reload_and_tell();
            }
            if pending.user1 {
                if let Some(reopen_logs) = self.hooks.on_reopen_logs.as_mut() {
                    reopen_logs();
                }
                self.signal_running(Signal::SIGUSR1);
            }
            self.respawn_due(Instant::now());
        }
    }

    /// Reloads, and tells the controller (whose waiting clients get the outcome).
    fn reload_and_tell(&mut self) {
        let outcome = self.reload();
        if let Some(metrics) = self.hooks.metrics.as_mut() {
            metrics.reloaded(&outcome);
        }
        if let Some(control) = self.hooks.control.as_mut() {
            control.reloaded(&outcome);
        }
    }

    /// SIGHUP or the controller's reload: asks the hook for the next generation; on success
    /// starts its workers, then tells the current ones to finish their sessions and exit.
    fn reload(&mut self) -> ReloadOutcome {
        let failed = |generation, reason: String| ReloadOutcome {
            generation,
            result: Err(reason),
            workers_wanted: 0,
            report: String::new(),
        };
        let Some(hook) = self.hooks.on_reload.as_mut() else {
            log::info!("reloading is not supported; ignored");
            return failed(self.generation, "reloading is not supported".into());
        };
        let Reloaded { serve, n_workers, report } = match hook() {
            Ok(reloaded) => reloaded,
            Err(reason) => return failed(self.generation, reason.to_string()),
        };
        let running = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let n_workers = if n_workers == 0 {
            log::warn!(
                "n_workers = 0 (serving in one process) needs a restart; keeping {running} workers"
            );
            running
        } else if n_workers > MAX_WORKERS {
            log::warn!(
                "{n_workers} workers requested; at most {MAX_WORKERS} are allowed; keeping {running}"
            );
            running
        } else {
            n_workers
        };
        let now = Instant::now();
        let old_generation = self.generation;
        self.generation += 1;
        self.serve = serve;
        let old_slots = std::mem::replace(&mut self.slots, fresh_slots(n_workers, now));
        // Old workers move to the draining list with their pipes still open: a new worker
        // forked now must not inherit a write end (it drops the list), or the old worker's
        // EOF would never come.
        for slot in old_slots {
            if let SlotState::Running(worker) = slot.state {
                let draining = Draining { index: slot.index, generation: old_generation, worker };
                self.draining.push(draining);
            }
        }
        // The new workers first, so that someone accepts all along.
        self.respawn_due(now);
        for old in &mut self.draining {
            // EOF on its pipe: stop accepting, finish the sessions, exit.
            old.worker.to_worker.take();
        }
        log::info!(
            "reloaded configuration (generation {}): {n_workers} workers; {} older workers \
             finishing their sessions",
            self.generation,
            self.draining.len()
        );
        let started = self
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::Running(worker) => Some((slot.index, worker.pid.as_raw() as u32)),
                _ => None,
            })
            .collect();
        ReloadOutcome {
            generation: self.generation,
            result: Ok(started),
            workers_wanted: n_workers,
            report,
        }
    }

    fn signals(&mut self) -> &mut SignalPipe {
        self.signals.as_mut().expect("the supervisor owns its signal pipe")
    }

    /// Sleeps until a signal arrives or `until` passes.
    fn wait_for_signal(&mut self, until: Option<Instant>) -> Result<()> {
        self.wait(until, false)
    }

    /// Sleeps until a signal arrives, `until` passes or the control socket has work.
    fn wait_for_signal_or_control(&mut self, until: Option<Instant>) -> Result<()> {
        let control = self.hooks.control.as_ref().and_then(ControlSocket::next_deadline);
        let metrics = self.hooks.metrics.as_ref().and_then(MetricsSocket::next_deadline);
        let until = until.into_iter().chain(control).chain(metrics).min();
        self.wait(until, true)
    }

    fn wait(&mut self, until: Option<Instant>, with_control: bool) -> Result<()> {
        let timeout = crate::poll_timeout(until);
        let signals = self.signals.as_ref().expect("signal pipe");
        let mut fds = vec![PollFd::new(signals.wake_fd(), PollFlags::POLLIN)];
        if let Some(control) = self.hooks.control.as_ref().filter(|_| with_control) {
            fds.extend(control.poll_fds());
        }
        if let Some(metrics) = self.hooks.metrics.as_ref().filter(|_| with_control) {
            fds.extend(metrics.poll_fds());
        }
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(errno) => Err(Error::Poll { source: errno.into() }),
        }
    }

    /// Lets the control socket do what it can without blocking; a reload it was asked for
    /// is done now, and its answer written on the next turn.
    fn serve_control(&mut self) {
        let context = self.control_context();
        if let Some(metrics) = self.hooks.metrics.as_mut() {
            metrics.service(&context);
        }
        let Some(control) = self.hooks.control.as_mut() else { return };
        control.service(&context);
        if control.take_reload_request() {
            log::info!("the controller asked for a reload: reloading the configuration");
            self.reload_and_tell();
        }
    }

    fn control_context(&self) -> ControlContext {
        let current = self.slots.iter().filter_map(|slot| match &slot.state {
            SlotState::Running(worker) => Some(RunningWorker {
                index: slot.index,
                pid: worker.pid.as_raw() as u32,
                generation: self.generation,
            }),
            _ => None,
        });
        let draining = self.draining.iter().map(|old| RunningWorker {
            index: old.index,
            pid: old.worker.pid.as_raw() as u32,
            generation: old.generation,
        });
        ControlContext {
            supervisor_pid: std::process::id(),
            generation: self.generation,
            workers: current.chain(draining).collect(),
        }
    }

    fn next_respawn(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| match slot.state {
                SlotState::Waiting { at } => Some(at),
                _ => None,
            })
            .min()
    }

    fn respawn_due(&mut self, now: Instant) {
        for position in 0..self.slots.len() {
            let slot = &self.slots[position];
            let SlotState::Waiting { at } = slot.state else {
                continue;
            };
            if at > now {
                continue;
            }
            if let Err(error) = self.spawn(position) {
                let slot = &mut self.slots[position];
                // A failed fork is throttled like a crash (Postfix does the same).
                let delay = slot.throttle.delay_after(Duration::ZERO);
                log::error!("{error}; retrying worker {} in {delay:?}", slot.index);
                slot.state = SlotState::Waiting { at: now + delay };
            }
        }
    }

    /// Forks the worker of slot `position`. Returns in the supervisor only.
    fn spawn(&mut self, position: usize) -> Result<()> {
        let (watch_read, watch_write) = unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|errno| Error::ForkWorker { source: errno.into() })?;
        let id = self.free_worker_id();
        match fork::fork().map_err(|source| Error::ForkWorker { source })? {
            ForkResult::Child => {
                // Only the supervisor may hold the write end, or EOF never comes.
                drop(watch_write);
                self.become_worker(position, id, watch_read)
            }
            ForkResult::Parent { child } => {
                let slot = &mut self.slots[position];
                log::info!(
                    "started worker {} (pid {child}, generation {})",
                    slot.index,
                    self.generation
                );
                slot.state = SlotState::Running(Worker {
                    pid: child,
                    id,
                    started: Instant::now(),
                    to_worker: Some(watch_write),
                });
                Ok(())
            }
        }
    }

    /// In the child: shed everything that belongs to the supervisor, then serve and exit.
    fn become_worker(&mut self, position: usize, worker_id: u32, parent_watch: OwnedFd) -> ! {
        // The supervisor's signal actions would write into its pipe; dropping them leaves the
        // signals caught-and-ignored until the worker installs its own handlers.
        if let Some(signals) = self.signals.take() {
            signals.forget_in_child();
        }
        // Other workers' pipe ends: a worker must see EOF when the supervisor dies, which
        // requires that no worker holds a write end.
        for slot in &mut self.slots {
            slot.state = SlotState::Stopped;
        }
        self.draining.clear();
        if let Some(control) = self.hooks.control.take() {
            control.forget_in_child();
        }
        self.hooks.metrics.take();
        for fd in self.close_in_child.drain(..) {
            let _ = unistd::close(fd);
        }
        let listener = self.listener.take().expect("the supervisor owns the listener");
        let context = WorkerContext {
            worker_index: self.slots[position].index,
            worker_id,
            generation: self.generation,
            parent_watch: Some(parent_watch),
            reload_reporter: None,
        };
        let serve = &mut self.serve;
        // Unwinding must not leave this function: the supervisor's guards up the stack would
        // remove the socket and the pid file.
        let code = panic::catch_unwind(AssertUnwindSafe(|| serve(listener, context)))
            .unwrap_or(PANIC_EXIT_CODE);
        std::process::exit(code)
    }

    /// Collects every exited worker (no zombies) and decides about its replacement.
    fn reap(&mut self, shutting_down: bool) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.worker_ended(pid, status, shutting_down);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    log::warn!("waitpid failed: {}", errno.desc());
                    return;
                }
            }
        }
    }

    fn worker_ended(&mut self, pid: Pid, status: WaitStatus, shutting_down: bool) {
        let now = Instant::now();
        if let Some(at) = self.draining.iter().position(|old| old.worker.pid == pid) {
            let old = self.draining.swap_remove(at);
            let lifetime = now.duration_since(old.worker.started);
            let who = format!("worker {} of generation {} (pid {pid})", old.index, old.generation);
            log_worker_end(&who, &status, lifetime, shutting_down);
            self.worker_exited(old.worker.id);
            return;
        }
        let Some(position) = self.slots.iter().position(
            |slot| matches!(&slot.state, SlotState::Running(worker) if worker.pid == pid),
        ) else {
            log::debug!("reaped process {pid}, which is not a worker");
            return;
        };
        let SlotState::Running(Worker { started, id, .. }) = self.slots[position].state else {
            unreachable!("found by its running state")
        };
        let lifetime = now.duration_since(started);
        let who = format!("worker {} (pid {pid})", self.slots[position].index);
        log_worker_end(&who, &status, lifetime, shutting_down);
        self.worker_exited(id);
        let slot = &mut self.slots[position];
        if shutting_down {
            slot.state = SlotState::Stopped;
            return;
        }
        let delay = slot.throttle.delay_after(lifetime);
        if !delay.is_zero() {
            log::warn!(
                "worker {} lived only {:.1}s; restarting it in {}s",
                slot.index,
                lifetime.as_secs_f64(),
                delay.as_secs()
            );
        }
        slot.state = SlotState::Waiting { at: now + delay };
    }

    fn worker_exited(&mut self, id: u32) {
        if let Some(hook) = self.hooks.on_worker_exit.as_mut() {
            hook(id);
        }
    }

    /// The lowest worker id no running or draining worker holds.
    fn free_worker_id(&self) -> u32 {
        let mut taken: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::Running(worker) => Some(worker.id),
                _ => None,
            })
            .chain(self.draining.iter().map(|old| old.worker.id))
            .collect();
        taken.sort_unstable();
        let mut id = 0;
        for taken in taken {
            if taken == id {
                id += 1;
            } else if taken > id {
                break;
            }
        }
        id
    }

    /// Every live worker, the draining ones of older generations included.
    fn running_pids(&self) -> impl Iterator<Item = (u32, Pid)> + '_ {
        let current = self.slots.iter().filter_map(|slot| match &slot.state {
            SlotState::Running(worker) => Some((slot.index, worker.pid)),
            _ => None,
        });
        current.chain(self.draining.iter().map(|old| (old.index, old.worker.pid)))
    }

    fn signal_running(&self, signal: Signal) {
        for (index, pid) in self.running_pids() {
            if let Err(errno) = signal::kill(pid, signal) {
                if errno != Errno::ESRCH {
                    log::warn!(
                        "cannot send {} to worker {index} (pid {pid}): {}",
                        signal.as_str(),
                        errno.desc()
                    );
                }
            }
        }
    }

    /// Asks every worker to stop (SIGTERM and EOF on its pipe), waits for all of them until
    /// the deadline, then kills the rest.
    fn stop_all(&mut self) -> Result<()> {
        for slot in &mut self.slots {
            match &mut slot.state {
                SlotState::Running(worker) => {
                    // EOF cannot be lost, unlike a SIGTERM that arrives before the worker has
                    // installed its handler.
                    worker.to_worker.take();
                }
                state => *state = SlotState::Stopped,
            }
        }
        self.signal_running(Signal::SIGTERM);
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            self.reap(true);
            if self.running_pids().next().is_none() {
                log::info!("all workers stopped");
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            self.wait_for_signal(Some(deadline))?;
            self.signals().take_pending();
        }
        let stragglers: Vec<(u32, Pid)> = self.running_pids().collect();
        for (index, pid) in stragglers {
            log::warn!(
                "worker {index} (pid {pid}) did not stop within {}s; killing it",
                STOP_DEADLINE.as_secs()
            );
            let _ = signal::kill(pid, Signal::SIGKILL);
            loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => continue,
                    Ok(status) => {
                        self.worker_ended(pid, status, true);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }
}

/// A fresh set of `n` positions, each to be started at `now`.
fn fresh_slots(n: u32, now: Instant) -> Vec<Slot> {
    (0..n)
        .map(|index| Slot {
            index,
            state: SlotState::Waiting { at: now },
            throttle: RespawnThrottle::default(),
        })
        .collect()
}

/// `who`: "worker 0 (pid 123)" or "worker 0 of generation 2 (pid 123)".
fn log_worker_end(who: &str, status: &WaitStatus, lifetime: Duration, expected: bool) {
    let lived = format!("after {:.1}s", lifetime.as_secs_f64());
    match *status {
        WaitStatus::Exited(_, 0) => log::info!("{who} exited {lived}"),
        WaitStatus::Exited(_, code) => {
            log::warn!("{who} exited with code {code} {lived}")
        }
        WaitStatus::Signaled(_, signal, core_dumped) => {
            let core = if core_dumped { " (core dumped)" } else { "" };
            if expected && signal == Signal::SIGKILL {
                log::warn!("{who} killed {lived}");
            } else {
                log::error!("{who} was killed by {}{core} {lived}", signal.as_str());
            }
        }
        ref other => log::warn!("{who} ended: {other:?} {lived}"),
    }
}
