//! SIGHUP and the controller's `reload`: the whole configuration loaded and checked again,
//! the same way as at start (included files, Rhai scripts, conditions, child addresses). A
//! configuration that fails leaves the running one in place; one that loads also switches
//! the log settings and the privilege-mode launcher's list of startable milters. Items that
//! only a restart can change are named in the log and in the controller's answer at every
//! reload while the running process differs from the files.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use milter_manager::config::Config;
use milter_manager::control_protocol::{ControllerView, CounterSlots, Counters, ReloadReport};
use milter_manager::launcher_protocol::{LaunchAnswer, LaunchRequest};
use supervisor::{ReloadOutcome, ReloadReporter, SessionBoard, SharedCounters};

use crate::adapter::Generation;
use crate::error::StartError;
use crate::worker::{self, Plan};
use crate::Options;

pub(crate) struct Reloader {
    options: Options,
    board: Rc<SessionBoard>,
    /// Where reloads are counted, for the metrics.
    counters: Rc<SharedCounters>,
    /// The configuration the process started with: restart-only items are compared to it.
    started: Config,
    /// Which counter row each milter name has; grows with the names reloads bring.
    slots: CounterSlots,
    /// The privilege-mode launcher's socket, told to read the configuration again.
    launcher: Option<PathBuf>,
}

/// A configuration that loaded, and what the controller is told of it.
pub(crate) struct Loaded {
    pub config: Config,
    pub generation: Generation,
    pub report: ReloadReport,
}

impl Reloader {
    pub(crate) fn new(
        options: &Options,
        board: &Rc<SessionBoard>,
        counters: &Rc<SharedCounters>,
        started: &Config,
        slots: &CounterSlots,
        launcher: Option<PathBuf>,
    ) -> Self {
        Self {
            options: options.clone(),
            board: Rc::clone(board),
            counters: Rc::clone(counters),
            started: started.clone(),
            slots: slots.clone(),
            launcher,
        }
    }

    /// The configuration as the files say now, or why not (also logged, in one line).
    pub(crate) fn load(&mut self) -> Result<Loaded, StartError> {
        let (config, generation) = crate::load(&self.options, &self.board, &mut self.slots)
            .map_err(|error| {
                log::error!("reload failed; keeping the running configuration: {error}");
                self.counters.increment(Counters::RELOADS_FAILED);
                error
            })?;
        self.counters.increment(Counters::RELOADS_OK);
        for note in &config.notes {
            log::info!("[configuration] {note}");
        }
        let restart_needed = restart_needed(&self.started, &config, running_as_root());
        for line in &restart_needed {
            log::warn!("{line}");
        }
        if let Err(error) = crate::set_up_logging(&config, true) {
            log::warn!("reload: {error}; logging stays as it was");
        }
        self.reload_launcher();
        // Made by the serving user itself after the switch: nothing to hand over.
        crate::spill::prepare(config.manager.temporary_directory.as_deref());
        let view = ControllerView::of(&config, &self.slots);
        Ok(Loaded { config, generation, report: ReloadReport { restart_needed, view } })
    }

    /// The launcher reads the files itself (it trusts nothing the unprivileged processes
    /// send): milters a reload added can be started without a restart.
    fn reload_launcher(&self) {
        let Some(socket) = &self.launcher else { return };
        let asked = supervisor::launcher_process::ask(socket, &LaunchRequest::Reload.encode());
        let answer = asked
            .map_err(|e| e.to_string())
            .and_then(|line| LaunchAnswer::parse(&line).map_err(|e| e.to_string()));
        match answer {
            Ok(LaunchAnswer::Refused(reason)) | Err(reason) => {
                log::warn!("reload: the launcher kept its list of startable milters: {reason}")
            }
            Ok(answer) => log::info!("reload: launcher: {answer}"),
        }
    }
}

fn running_as_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// One line per item whose new value needs a restart. `as_root`: whether the process still
/// runs as root (it opens a new log file as whoever it runs as).
fn restart_needed(running: &Config, new: &Config, as_root: bool) -> Vec<String> {
    let (old_manager, new_manager) = (&running.manager, &new.manager);
    let (old_controller, new_controller) = (&running.controller, &new.controller);
    let mut lines = Vec::new();
    if old_manager.connection_spec != new_manager.connection_spec {
        lines.push(format!(
            "manager.connection_spec changed to {}; restart milter-manager to listen there \
             (still listening on {})",
            new_manager.connection_spec, old_manager.connection_spec
        ));
    }
    let changed = [
        ("manager.unix_socket_mode", old_manager.unix_socket_mode != new_manager.unix_socket_mode),
        (
            "manager.unix_socket_group",
            old_manager.unix_socket_group != new_manager.unix_socket_group,
        ),
        (
            "manager.remove_unix_socket_on_create",
            old_manager.remove_unix_socket_on_create != new_manager.remove_unix_socket_on_create,
        ),
        (
            "manager.remove_unix_socket_on_close",
            old_manager.remove_unix_socket_on_close != new_manager.remove_unix_socket_on_close,
        ),
        ("manager.daemon", old_manager.daemon != new_manager.daemon),
        ("manager.pid_file", old_manager.pid_file != new_manager.pid_file),
        (
            "manager.max_file_descriptors",
            old_manager.max_file_descriptors != new_manager.max_file_descriptors,
        ),
        ("manager.n_workers", (old_manager.n_workers == 0) != (new_manager.n_workers == 0)),
        // A worker reads it when it starts: a new generation of workers takes a change,
        // the one process of `n_workers = 0` does not.
        (
            "manager.max_idle_child_connections",
            old_manager.n_workers == 0
                && new_manager.n_workers == 0
                && old_manager.max_idle_child_connections != new_manager.max_idle_child_connections,
        ),
        ("security.privilege_mode", running.security.privilege_mode != new.security.privilege_mode),
        ("security.effective_user", running.security.effective_user != new.security.effective_user),
        (
            "security.effective_group",
            running.security.effective_group != new.security.effective_group,
        ),
        (
            "controller.connection_spec",
            old_controller.connection_spec != new_controller.connection_spec,
        ),
        (
            "controller.metrics_connection_spec",
            old_controller.metrics_connection_spec != new_controller.metrics_connection_spec,
        ),
        (
            "controller.unix_socket_mode",
            old_controller.unix_socket_mode != new_controller.unix_socket_mode,
        ),
        (
            "controller.unix_socket_group",
            old_controller.unix_socket_group != new_controller.unix_socket_group,
        ),
        (
            "controller.remove_unix_socket_on_create",
            old_controller.remove_unix_socket_on_create
                != new_controller.remove_unix_socket_on_create,
        ),
        (
            "controller.remove_unix_socket_on_close",
            old_controller.remove_unix_socket_on_close
                != new_controller.remove_unix_socket_on_close,
        ),
    ];
    for (item, differs) in changed {
        if differs {
            lines.push(format!("{item} changed; it takes effect when milter-manager restarts"));
        }
    }
    if running.log.path != new.log.path && !as_root {
        if let Some(path) = &new.log.path {
            lines.push(format!(
                "log.path changed to {}; this process no longer runs as root, so the file is \
                 opened as its user (owned by it, or kept on the old file if it may not write \
                 there); a restart opens it as root",
                path.display()
            ));
        }
    }
    lines
}

/// The supervisor's reload hook (`n_workers` > 0): a new generation of workers with the
/// configuration loaded again, or the error (the running one stays).
pub(crate) fn prefork_hook(
    mut reloader: Reloader,
    shared: worker::Shared,
) -> supervisor::ReloadHook {
    Box::new(move || {
        let Loaded { config, generation, report } = reloader.load()?;
        let plan = Rc::new(Plan::new(&config, generation));
        let shared = shared.clone();
        Ok(supervisor::Reloaded {
            serve: Box::new(move |listener, context| {
                worker::serve(Rc::clone(&plan), &shared, listener, context, None)
            }),
            n_workers: config.manager.n_workers,
            report: report.encode(),
        })
    })
}

/// SIGHUP in a process serving alone (`n_workers = 0`): sessions that start afterwards get
/// the configuration loaded again (children, conditions, timeouts, max_connections);
/// sessions in flight keep theirs. Every outcome goes to the controller's process, if any.
pub(crate) fn in_process_hook(
    mut reloader: Reloader,
    plan: Rc<Plan>,
    reporter: Option<ReloadReporter>,
) -> Box<dyn FnMut()> {
    let generation_number = Cell::new(1);
    Box::new(move || {
        log::info!("SIGHUP received: reloading the configuration");
        let outcome = match reloader.load() {
            Ok(Loaded { config, generation, report }) => {
                *plan.generation.borrow_mut() = Rc::new(generation);
                plan.max_connections.set(worker::max_connections(&config));
                generation_number.set(generation_number.get() + 1);
                log::info!(
                    "reloaded configuration (generation {}); sessions in flight finish with \
                     the previous one",
                    generation_number.get()
                );
                ReloadOutcome {
                    generation: generation_number.get(),
                    result: Ok(Vec::new()),
                    workers_wanted: 0,
                    report: report.encode(),
                }
            }
            Err(error) => ReloadOutcome {
                generation: generation_number.get(),
                result: Err(error.to_string()),
                workers_wanted: 0,
                report: String::new(),
            },
        };
        if let Some(reporter) = &reporter {
            reporter.report(&outcome);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use milter_manager::spec::Spec;

    #[test]
    fn only_restart_items_are_named() {
        let mut running = Config::default();
        running.manager.n_workers = 2;
        let mut new = running.clone();
        new.manager.max_connections = 7;
        new.manager.n_workers = running.manager.n_workers + 3;
        new.log.path = Some("/var/log/new.log".into());
        assert!(restart_needed(&running, &new, true).is_empty(), "these apply at a reload");
        new.manager.connection_spec = Spec::parse("inet:2525@[127.0.0.1]").unwrap();
        new.security.effective_user = Some("nobody".into());
        let lines = restart_needed(&running, &new, true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("manager.connection_spec changed to inet:2525@[127.0.0.1]; "));
        assert!(lines[0]
            .ends_with(&format!("(still listening on {})", running.manager.connection_spec)));
        assert_eq!(
            lines[1],
            "security.effective_user changed; it takes effect when milter-manager restarts"
        );
    }

    #[test]
    fn serving_alone_the_bound_on_kept_connections_needs_a_restart() {
        let mut running = Config::default();
        running.manager.n_workers = 0;
        let mut new = running.clone();
        new.manager.max_idle_child_connections = 3;
        assert_eq!(
            restart_needed(&running, &new, true),
            ["manager.max_idle_child_connections changed; it takes effect when milter-manager \
              restarts"]
        );
        // New workers read it as they start.
        running.manager.n_workers = 2;
        new.manager.n_workers = 2;
        assert!(restart_needed(&running, &new, true).is_empty());
    }

    #[test]
    fn the_controller_socket_privileges_and_the_log_files_owner_need_a_restart() {
        let running = Config::default();
        let mut new = running.clone();
        new.controller.connection_spec = Some(Spec::parse("inet:10025@[127.0.0.1]").unwrap());
        new.controller.unix_socket_mode = 0o600;
        new.security.privilege_mode = !running.security.privilege_mode;
        new.manager.remove_unix_socket_on_create = !running.manager.remove_unix_socket_on_create;
        new.log.path = Some("/var/log/new.log".into());
        let items: Vec<String> = restart_needed(&running, &new, false)
            .iter()
            .map(|line| line.split([' ', ';']).next().unwrap().to_string())
            .collect();
        assert_eq!(
            items,
            [
                "manager.remove_unix_socket_on_create",
                "security.privilege_mode",
                "controller.connection_spec",
                "controller.unix_socket_mode",
                "log.path",
            ]
        );
    }
}
