//! Becoming a daemon (fork → setsid → fork, chdir("/"), umask, stdio to /dev/null) while still
//! telling the launching shell whether the start-up worked, as Postfix's `master -w` does: the
//! original process waits on a pipe until the daemon writes "ready" (exit 0) or an error line
//! (printed to stderr, exit 1). A pipe closed without either also means failure.
//! Hand-written: the daemonize crate reports only its own steps, not "ready" after start-up.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::stat::{self, Mode};
use nix::sys::wait::waitpid;
use nix::unistd::{self, ForkResult};

use crate::error::{Error, Result};
use crate::fork;

const READY: &str = "ready";
const ERROR_PREFIX: &str = "error: ";

/// The daemon's end of the start-up report. In the foreground it reports nothing: errors are
/// returned to the caller, which prints them itself.
#[derive(Debug, Default)]
pub(crate) struct StartupReport {
    to_launcher: Option<File>,
}

impl StartupReport {
    pub(crate) fn foreground() -> Self {
        Self::default()
    }

    /// Start-up succeeded: the launching process exits 0.
    pub(crate) fn ready(&mut self) {
        self.send(READY);
    }

    /// Start-up failed: the launching process prints `error` and exits 1.
    pub(crate) fn failed(&mut self, error: &Error) {
        let line = error.to_string().replace('\n', " ");
        self.send(&format!("{ERROR_PREFIX}{line}"));
    }

    /// The pipe, for closing in forked workers (the launcher reads up to the first line, but
    /// a worker must not keep its end open anyway).
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.to_launcher.as_ref().map(|file| file.as_raw_fd())
    }

    fn send(&mut self, line: &str) {
        if let Some(mut pipe) = self.to_launcher.take() {
            // The launcher may be gone (killed); the daemon runs on regardless.
            let _ = pipe.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Detaches from the terminal. Returns in the daemon only; the launching process waits for
/// the report and exits, the intermediate process exits at once.
pub(crate) fn daemonize() -> Result<StartupReport> {
    let (from_daemon, to_launcher) = unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|errno| Error::Daemonize { step: "pipe", source: io::Error::from(errno) })?;
    let first = fork::fork().map_err(|source| Error::Daemonize { step: "fork", source })?;
    if let ForkResult::Parent { child } = first {
        drop(to_launcher);
        let code = wait_for_report(from_daemon);
        // Reap the intermediate process; it exits right after its own fork.
        let _ = waitpid(child, None);
        std::process::exit(code);
    }
    drop(from_daemon);
    let mut report = StartupReport { to_launcher: Some(File::from(to_launcher)) };
    if let Err(error) = detach() {
        report.failed(&error);
        return Err(error);
    }
    Ok(report)
}

/// In the first child: new session, second fork (so the daemon is not a session leader and
/// can never acquire a controlling terminal), then the usual daemon environment.
fn detach() -> Result<()> {
    let step_error =
        |step: &'static str| move |source: io::Error| Error::Daemonize { step, source };
    unistd::setsid().map_err(io::Error::from).map_err(step_error("setsid"))?;
    if let ForkResult::Parent { .. } = fork::fork().map_err(step_error("fork"))? {
        // Leave without running destructors (they belong to the daemon); std's buffers were
        // flushed before the fork, so there is nothing to write twice.
        std::process::exit(0);
    }
    unistd::chdir("/").map_err(io::Error::from).map_err(step_error("chdir /"))?;
    stat::umask(Mode::from_bits_truncate(0o022));
    redirect_stdio_to_dev_null().map_err(step_error("redirect stdio to /dev/null"))?;
    Ok(())
}

fn redirect_stdio_to_dev_null() -> io::Result<()> {
    let dev_null = OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        unistd::dup2(dev_null.as_raw_fd(), target)?;
    }
    Ok(())
}

/// In the launching process: reads the daemon's one-line report and turns it into an exit
/// code, printing a failure to stderr.
fn wait_for_report(from_daemon: OwnedFd) -> i32 {
    let mut line = String::new();
    let read = BufReader::new(File::from(from_daemon)).read_line(&mut line);
    let line = line.trim_end();
    if read.is_ok() && line == READY {
        return 0;
    }
    let reason = match line.strip_prefix(ERROR_PREFIX) {
        Some(reason) => reason.to_string(),
        None => "the daemon exited during start-up without reporting why (see the logs)".into(),
    };
    eprintln!("{}: {reason}", program_name());
    1
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .and_then(|arg0| std::path::Path::new(arg0).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "daemon".into())
}
