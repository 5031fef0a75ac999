//! The programs the launcher started: started once per name, as their user, stopped by
//! process group, reaped when they exit, and held back by their [`LaunchBackoff`].

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::launch_backoff::{LaunchBackoff, MIN_START_INTERVAL};
use super::program_command::{command_as, ChildIdentity};
use crate::error::Error;

/// How long to wait before asking again for a milter that was stopped and has not ended.
const STOPPING_RECHECK: Duration = Duration::from_millis(200);

/// Why the launcher did not start or stop a program; the handler sends it back as the answer.
/// The messages carry their cause's words, so no `source()` repeats them.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("milter {name:?}: the command is empty")]
    EmptyCommand { name: String },
    /// The user it should run as cannot be resolved.
    #[error("milter {name:?}: {error}")]
    User { name: String, error: Box<Error> },
    #[error("milter {name:?}: cannot run {program}: {}", crate::error::os_words(error))]
    Run { name: String, program: String, error: io::Error },
    #[error("milter {name:?} is not running as a program of the launcher")]
    NotRunning { name: String },
}

/// The programs the launcher started and that have not exited yet, and the back-off of
/// those that ended on their own.
#[derive(Debug, Default)]
pub struct Programs {
    running: BTreeMap<String, Running>,
    /// Stopped (SIGTERM sent) but not reaped yet: not started again before it has ended.
    stopping: BTreeMap<String, Pid>,
    backoff: BTreeMap<String, LaunchBackoff>,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    pid: Pid,
    started: Instant,
}

/// What [`Programs::start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    New(u32),
    /// Started earlier and still running: left alone.
    AlreadyRunning(u32),
    /// Started too recently, ended soon after its last start, or stopped and not ended yet:
    /// not started before this much time has passed.
    BackingOff(Duration),
}

impl Programs {
    /// Starts `argv` under `name` as `user` (name or uid; `None`: root), in a process group
    /// of its own, with standard input from /dev/null, `/` as its working directory and a
    /// clean environment (`PATH`, `LANG`, the user's `HOME`), unless `name` is still running.
    pub fn start(
        &mut self,
        name: &str,
        argv: &[String],
        user: Option<&str>,
    ) -> std::result::Result<Started, ProgramError> {
        self.reap();
        if let Some(running) = self.running.get(name) {
            return Ok(Started::AlreadyRunning(running.pid.as_raw() as u32));
        }
        let now = Instant::now();
        let backoff = self.backoff.get(name);
        let wait = backoff.and_then(|b| b.wait(now));
        if let Some(pid) = self.stopping.get(name) {
            log::debug!("launcher: milter {name:?} (pid {pid}) was stopped and has not ended yet");
            return Ok(Started::BackingOff(wait.unwrap_or_default().max(STOPPING_RECHECK)));
        }
        if let Some(wait) = wait {
            // A flood of requests is answered with waits, not with a log line each.
            if backoff.is_some_and(|b| b.pausing(now)) {
                log::info!(
                    "launcher: milter {name:?} ended soon after its last start; not starting \
                     it again for {:.1}s (back-off)",
                    wait.as_secs_f64()
                );
            } else {
                log::debug!(
                    "launcher: milter {name:?} was started less than {}s ago; not starting it \
                     again for {:.1}s",
                    MIN_START_INTERVAL.as_secs(),
                    wait.as_secs_f64()
                );
            }
            return Ok(Started::BackingOff(wait));
        }
        let (program, arguments) =
            argv.split_first().ok_or_else(|| ProgramError::EmptyCommand { name: name.into() })?;
        let identity = match user {
            Some(user) => Some(ChildIdentity::resolve(user).map_err(|error| {
                ProgramError::User { name: name.into(), error: Box::new(error) }
            })?),
            None => None,
        };
        let mut command = command_as(program, arguments, identity);
        let child = command.spawn().map_err(|error| ProgramError::Run {
            name: name.into(),
            program: program.clone(),
            error,
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        log::info!(
            "launcher: started milter {name:?} (pid {pid}) as {}: {}",
            user.unwrap_or("root"),
            argv.join(" ")
        );
        let now = Instant::now();
        self.running.insert(name.to_string(), Running { pid, started: now });
        self.backoff.entry(name.to_string()).or_default().started(now);
        Ok(Started::New(pid.as_raw() as u32))
    }

    /// Sends SIGTERM to the process group of `name`, if the launcher started it and it runs.
    pub fn stop(&mut self, name: &str) -> std::result::Result<u32, ProgramError> {
        self.reap();
        let Running { pid, .. } = self
            .running
            .remove(name)
            .ok_or_else(|| ProgramError::NotRunning { name: name.into() })?;
        terminate(pid);
        log::info!("launcher: stopped milter {name:?} (pid {pid})");
        self.stopping.insert(name.to_string(), pid);
        Ok(pid.as_raw() as u32)
    }

    /// Collects every exited program (no zombies).
    pub(super) fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    let name =
                        self.running.iter().find(|(_, p)| p.pid == pid).map(|(n, _)| n.clone());
                    match name.and_then(|name| Some((self.running.remove(&name)?, name))) {
                        Some((running, name)) => {
                            let now = Instant::now();
                            let lifetime = now.duration_since(running.started);
                            let backoff = self.backoff.entry(name.clone()).or_default();
                            let delay = backoff.ended(lifetime, now);
                            let again = if delay.is_zero() {
                                String::new()
                            } else {
                                format!("; started again no sooner than in {}s", delay.as_secs())
                            };
                            log::info!(
                                "launcher: milter {name:?} (pid {pid}) ended: {} after {:.1}s{again}",
                                describe(&status),
                                lifetime.as_secs_f64()
                            );
                        }
                        None => {
                            let stopped = self.stopping.iter().find(|(_, p)| **p == pid);
                            match stopped.map(|(name, _)| name.clone()) {
                                Some(name) => {
                                    self.stopping.remove(&name);
                                    log::info!(
                                        "launcher: milter {name:?} (pid {pid}) ended after its \
                                         stop: {}",
                                        describe(&status)
                                    );
                                }
                                None => {
                                    log::debug!("launcher: reaped pid {pid}: {}", describe(&status))
                                }
                            }
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    log::warn!("launcher: waitpid failed: {}", errno.desc());
                    return;
                }
            }
        }
    }

    pub(super) fn stop_all(&mut self) {
        for (name, Running { pid, .. }) in std::mem::take(&mut self.running) {
            log::info!("launcher: stopping milter {name:?} (pid {pid})");
            terminate(pid);
        }
    }
}

fn terminate(pid: Pid) {
    if signal::killpg(pid, Signal::SIGTERM).is_err() {
        let _ = signal::kill(pid, Signal::SIGTERM);
    }
}

fn describe(status: &WaitStatus) -> String {
    match *status {
        WaitStatus::Exited(_, code) => format!("exit code {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {}", signal.as_str()),
        ref other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_milter() {
        // Built directly: Programs::start reaps any child, which would race other tests.
        let empty = ProgramError::EmptyCommand { name: "dkim".into() };
        assert_eq!(empty.to_string(), "milter \"dkim\": the command is empty");
        let run = ProgramError::Run {
            name: "dkim".into(),
            program: "/nonexistent/milter".into(),
            error: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            run.to_string(),
            "milter \"dkim\": cannot run /nonexistent/milter: No such file or directory"
        );
        let user = ProgramError::User {
            name: "dkim".into(),
            error: Box::new(Error::UnknownUser { name: "nosuchuser".into() }),
        };
        assert_eq!(user.to_string(), "milter \"dkim\": unknown user \"nosuchuser\"");
        assert!(std::error::Error::source(&user).is_none(), "the cause is in the text");
    }
}
