//! The controller's answers, in the supervisor process: status from the counters the
//! workers share, the configuration as `--show-config` prints it, reload (the files checked
//! first, then the same path as SIGHUP), and stop-child through the launcher.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use milter_manager::config::Config;
use milter_manager::control::{
    error_answer, ok_answer, ControlRequest, Counters, StatusReport, WorkerLine, FINAL_STATUSES,
};
use milter_manager::launch::{LaunchAnswer, LaunchRequest};
use supervisor::{ControlContext, SessionBoard, SharedCounters};

/// What the controller knows of the running configuration. Shared so that a reload can
/// replace it.
#[derive(Debug, Clone)]
pub struct RunningConfig {
    /// The `--show-config` text.
    pub shown: String,
    /// The enabled child milters in the order the sessions number them.
    pub children: Vec<String>,
    /// Every configured milter and whether it has a `command`.
    pub commands: Vec<(String, bool)>,
}

impl RunningConfig {
    pub fn of(config: &Config) -> RunningConfig {
        RunningConfig {
            shown: config.show(),
            children: config.milters.iter().filter(|m| m.enabled).map(|m| m.name.clone()).collect(),
            commands: config
                .milters
                .iter()
                .map(|m| (m.name.clone(), m.command.is_some()))
                .collect(),
        }
    }
}

pub struct Controller {
    /// The command line, to load the configuration the way a reload will.
    pub options: crate::Options,
    pub board: Rc<SessionBoard>,
    pub counters: Rc<SharedCounters>,
    pub config: Rc<RefCell<RunningConfig>>,
    /// The launcher's socket; `None` when privilege mode is off.
    pub launcher: Option<PathBuf>,
}

impl Controller {
    /// The answer to one request line.
    pub fn answer(&mut self, line: &str, context: &ControlContext) -> String {
        let request = match ControlRequest::parse(line) {
            Ok(request) => request,
            Err(reason) => {
                log::warn!("controller: refused {line:?}: {reason}");
                return error_answer(&reason);
            }
        };
        log::info!("controller: {}", request.encode().trim_end());
        let answer = match request {
            ControlRequest::Status => Ok(self.status(context).to_string()),
            ControlRequest::Configuration => Ok(self.config.borrow().shown.clone()),
            ControlRequest::Reload => self.reload(context),
            ControlRequest::StopChild(name) => self.stop_child(&name),
        };
        match answer {
            Ok(body) => ok_answer(&body),
            Err(reason) => {
                log::warn!("controller: {line:?} failed: {reason}");
                error_answer(&reason)
            }
        }
    }

    fn status(&self, context: &ControlContext) -> StatusReport {
        let children = self
            .config
            .borrow()
            .children
            .iter()
            .enumerate()
            .map(|(child, name)| {
                let counts = FINAL_STATUSES.map(|status| {
                    Counters::child_status(child, status).map_or(0, |i| self.counters.get(i))
                });
                (name.clone(), counts)
            })
            .collect();
        StatusReport {
            sessions_in_flight: self.board.total() as u64,
            sessions_done: self.counters.get(Counters::SESSIONS_DONE),
            workers: context
                .workers
                .iter()
                .map(|&(index, pid)| WorkerLine { index, pid })
                .collect(),
            children,
        }
    }

    /// Loads the configuration as the reload will, so that a broken one is refused in the
    /// answer (the running one stays) instead of only in the log; then takes the same path
    /// as SIGHUP, whose signal pipe wakes the supervisor's loop.
    fn reload(&self, context: &ControlContext) -> Result<String, String> {
        let (config, _) = crate::load(&self.options, &self.board).map_err(|error| {
            format!("the configuration does not load, the running one stays: {error}")
        })?;
        let supervisor = nix::unistd::Pid::from_raw(context.supervisor_pid as i32);
        nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGHUP)
            .map_err(|errno| format!("cannot signal the supervisor: {}", errno.desc()))?;
        let children = config.milters.iter().filter(|m| m.enabled).count();
        Ok(format!(
            "configuration loaded ({children} child milters); reloading (as SIGHUP): sessions \
             that start from now on get it"
        ))
    }

    fn stop_child(&self, name: &str) -> Result<String, String> {
        let has_command =
            self.config.borrow().commands.iter().find(|(n, _)| n == name).map(|c| c.1);
        match has_command {
            None => return Err(format!("no milter named {name:?} in the configuration")),
            Some(false) => {
                return Err(format!("milter {name:?} has no command: the manager did not start it"))
            }
            Some(true) => {}
        }
        let Some(launcher) = &self.launcher else {
            return Err("privilege mode is off: the manager starts no child milter".into());
        };
        let line = supervisor::launcher::ask(launcher, &LaunchRequest::Stop(name.into()).encode())
            .map_err(|e| format!("cannot reach the launcher: {e}"))?;
        match LaunchAnswer::parse(&line)? {
            LaunchAnswer::Refused(reason) => Err(reason),
            answer => Ok(format!("milter {name:?}: {answer}")),
        }
    }
}

/// Binds `controller.connection_spec` (as root, before the privilege drop) with its socket
/// options, and hands each request to `controller`. `None` when no controller is configured.
pub fn bind(
    config: &Config,
    controller: Controller,
) -> Result<Option<supervisor::ControlSocket>, String> {
    let Some((target, listen)) = target(config)? else { return Ok(None) };
    let bound = supervisor::bind(&target, &listen).map_err(|e| format!("controller: {e}"))?;
    log::info!("controller listening on {}", bound.local_description());
    let mut controller = controller;
    let handler =
        Box::new(move |line: &str, context: &ControlContext| controller.answer(line, context));
    supervisor::ControlSocket::new(bound, handler)
        .map(Some)
        .map_err(|e| format!("controller: cannot set up the socket: {e}"))
}

/// Fails as [`bind`] would on what is at the controller's socket path already, without
/// binding anything.
pub fn check_bindable(config: &Config) -> Result<(), String> {
    let Some((target, listen)) = target(config)? else { return Ok(()) };
    supervisor::check_bindable(&target, &listen).map_err(|e| format!("controller: {e}"))
}

fn target(
    config: &Config,
) -> Result<Option<(supervisor::BindTarget, supervisor::ListenOptions)>, String> {
    let settings = &config.controller;
    let Some(spec) = &settings.connection_spec else { return Ok(None) };
    let target = crate::common::bind_target(spec).map_err(|e| format!("controller: {e}"))?;
    let listen = supervisor::ListenOptions {
        unix_socket_mode: Some(settings.unix_socket_mode),
        unix_socket_group: settings.unix_socket_group.clone(),
        remove_unix_socket_on_create: settings.remove_unix_socket_on_create,
        remove_unix_socket_on_close: settings.remove_unix_socket_on_close,
        ..supervisor::ListenOptions::default()
    };
    Ok(Some((target, listen)))
}
