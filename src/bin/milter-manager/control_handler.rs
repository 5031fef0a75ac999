//! The controller's answers, in the supervisor process (with `n_workers = 0`, in a small
//! process of its own): status from the counters the workers share, the configuration as
//! `--show-config` prints it, reload (answered with its outcome once it is done),
//! stop-child through the launcher, and the metrics (`crate::metrics`).

use std::path::PathBuf;
use std::rc::Rc;

use crate::error::StartError;
use milter_manager::config::Config;
use milter_manager::control_protocol::{
    error_answer, ok_answer, reload_answer, ControlRequest, ControllerView, Counters, ReloadReport,
    StatusReport, WorkerLine, FINAL_STATUSES,
};
use milter_manager::launcher_protocol::{LaunchAnswer, LaunchRequest};
use supervisor::{ControlAnswer, ControlContext, ReloadOutcome, SessionBoard, SharedCounters};

use crate::metrics::MetricsSource;

pub(crate) struct Controller {
    pub board: Rc<SessionBoard>,
    pub counters: Rc<SharedCounters>,
    /// The running configuration as the controller shows it; every reload replaces it.
    pub view: ControllerView,
    /// The launcher's socket; `None` when privilege mode is off.
    pub launcher: Option<PathBuf>,
    /// What the `metrics` request answers from.
    pub metrics: Rc<MetricsSource>,
}

impl supervisor::ControlHandler for Controller {
    fn answer(&mut self, line: &str, context: &ControlContext) -> ControlAnswer {
        let request = match ControlRequest::parse(line) {
            Ok(request) => request,
            Err(reason) => {
                log::warn!("controller: refused {line:?}: {reason}");
                return ControlAnswer::Now(error_answer(&reason.to_string()));
            }
        };
        // "info" in the manager's levels: routine, not worth the default log.
        log::debug!("controller: {}", request.encode().trim_end());
        let answer = match request {
            ControlRequest::Status => Ok(self.status(context).to_string()),
            ControlRequest::Configuration => Ok(self.view.shown.clone()),
            ControlRequest::Reload => return ControlAnswer::AfterReload,
            ControlRequest::StopChild(name) => self.stop_child(&name),
            ControlRequest::Metrics => Ok(self.metrics.render(context)),
        };
        ControlAnswer::Now(match answer {
            Ok(body) => ok_answer(&body),
            Err(reason) => {
                log::warn!("controller: {line:?} failed: {reason}");
                error_answer(&reason.to_string())
            }
        })
    }

    fn reloaded(&mut self, outcome: &ReloadOutcome) -> String {
        self.metrics.reloaded(outcome);
        let workers = match &outcome.result {
            Ok(workers) => workers,
            Err(reason) => {
                return error_answer(&format!(
                    "reload failed, generation {} stays: {reason}",
                    outcome.generation
                ))
            }
        };
        let Some(report) = ReloadReport::decode(&outcome.report) else {
            log::warn!("controller: unreadable reload report");
            return error_answer(&format!(
                "generation {} serves new sessions, but the controller cannot read its report",
                outcome.generation
            ));
        };
        self.view = report.view;
        ok_answer(&reload_answer(
            outcome.generation,
            workers,
            outcome.workers_wanted,
            &report.restart_needed,
        ))
    }
}

impl Controller {
    fn status(&self, context: &ControlContext) -> StatusReport {
        let children = self
            .view
            .children
            .iter()
            .map(|(name, slot)| {
                let counts = FINAL_STATUSES.map(|status| {
                    slot.and_then(|slot| Counters::child_status(slot, status))
                        .map_or(0, |i| self.counters.get(i))
                });
                (name.clone(), counts)
            })
            .collect();
        StatusReport {
            generation: context.generation,
            sessions_in_flight: self.board.total() as u64,
            sessions_done: self.counters.get(Counters::SESSIONS_DONE),
            workers: context
                .workers
                .iter()
                .map(|w| WorkerLine { index: w.index, pid: w.pid, generation: w.generation })
                .collect(),
            children,
        }
    }

    fn stop_child(&self, name: &str) -> Result<String, StopChildError> {
        let has_command = self.view.commands.iter().find(|(n, _)| n == name).map(|c| c.1);
        match has_command {
            None => return Err(StopChildError::NotConfigured { name: name.into() }),
            Some(false) => return Err(StopChildError::NoCommand { name: name.into() }),
            Some(true) => {}
        }
        let Some(launcher) = &self.launcher else {
            return Err(StopChildError::PrivilegeModeOff);
        };
        let line =
            supervisor::launcher_process::ask(launcher, &LaunchRequest::Stop(name.into()).encode())
                .map_err(StopChildError::Unreachable)?;
        match LaunchAnswer::parse(&line)? {
            LaunchAnswer::Refused(reason) => Err(StopChildError::Refused(reason)),
            answer => Ok(format!("milter {name:?}: {answer}")),
        }
    }
}

/// Why the controller's stop-child was refused; answered as `error: ...`.
#[derive(Debug, thiserror::Error)]
enum StopChildError {
    #[error("no milter named {name:?} in the configuration")]
    NotConfigured { name: String },
    #[error("milter {name:?} has no command: the manager did not start it")]
    NoCommand { name: String },
    #[error("privilege mode is off: the manager starts no child milter")]
    PrivilegeModeOff,
    #[error("cannot reach the launcher: {0}")]
    Unreachable(std::io::Error),
    #[error(transparent)]
    BadAnswer(#[from] milter_manager::launcher_protocol::BadAnswer),
    /// The launcher's own reason.
    #[error("{0}")]
    Refused(String),
}

/// Binds `controller.connection_spec` (as root, before the privilege drop) with its socket
/// options, and hands each request to `controller`. `None` when no controller is configured.
pub(crate) fn bind(
    config: &Config,
    controller: Controller,
) -> Result<Option<supervisor::ControlSocket>, StartError> {
    let Some((target, listen)) = target(config)? else { return Ok(None) };
    let bound = supervisor::bind(&target, &listen).map_err(StartError::ControllerBind)?;
    log::info!("controller listening on {}", bound.local_description());
    supervisor::ControlSocket::new(bound, Box::new(controller))
        .map(Some)
        .map_err(StartError::ControllerSocket)
}

/// Fails as [`bind`] would on what is at the controller's socket path already, without
/// binding anything.
pub(crate) fn check_bindable(config: &Config) -> Result<(), StartError> {
    let Some((target, listen)) = target(config)? else { return Ok(()) };
    supervisor::check_bindable(&target, &listen).map_err(StartError::ControllerBind)
}

fn target(
    config: &Config,
) -> Result<Option<(supervisor::BindTarget, supervisor::ListenOptions)>, StartError> {
    let settings = &config.controller;
    let Some(spec) = &settings.connection_spec else { return Ok(None) };
    let target =
        milter_manager::program::bind_target(spec).map_err(StartError::ControllerAddress)?;
    let listen = supervisor::ListenOptions {
        unix_socket_mode: Some(settings.unix_socket_mode),
        unix_socket_group: settings.unix_socket_group.clone(),
        remove_unix_socket_on_create: settings.remove_unix_socket_on_create,
        remove_unix_socket_on_close: settings.remove_unix_socket_on_close,
        ..supervisor::ListenOptions::default()
    };
    Ok(Some((target, listen)))
}
