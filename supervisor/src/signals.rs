//! The supervisor's signals, without threads: each signal sets a flag and then writes a byte to
//! a self-pipe (signal-hook's order), the loop polls the pipe's read end, drains it and then
//! takes the flags.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::SigId;

use crate::error::{Error, Result};

/// The signals the supervisor handles, in the order the loop acts on them.
const HANDLED: [libc::c_int; 5] = [SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1];

/// Which signals arrived since the last [`SignalPipe::take_pending`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub terminate: bool,
    pub interrupt: bool,
    pub hangup: bool,
    pub user1: bool,
}

pub(crate) struct SignalPipe {
    wake_read: UnixStream,
    flags: Vec<(libc::c_int, Arc<AtomicBool>)>,
    registrations: Vec<SigId>,
}

impl SignalPipe {
    pub(crate) fn install() -> Result<Self> {
        let setup_error = |source: io::Error| Error::Signals { source };
        let (wake_read, wake_write) = UnixStream::pair().map_err(setup_error)?;
        wake_read.set_nonblocking(true).map_err(setup_error)?;
        let mut pipe = Self { wake_read, flags: Vec::new(), registrations: Vec::new() };
        for signal in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first, then the wake-up byte: the reader drains, then reads flags.
            let registration = signal_hook::flag::register(signal, Arc::clone(&flag));
            pipe.registrations.push(registration.map_err(setup_error)?);
            let writer = wake_write.try_clone().map_err(setup_error)?;
            let registration = signal_hook::low_level::pipe::register(signal, writer);
            pipe.registrations.push(registration.map_err(setup_error)?);
            pipe.flags.push((signal, flag));
        }
        Ok(pipe)
    }

    /// The descriptor to poll for readability.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_read.as_fd()
    }

    /// Drains the pipe, then takes (and clears) the flags.
    pub(crate) fn take_pending(&mut self) -> Pending {
        let mut buffer = [0u8; 64];
        while let Ok(n) = self.wake_read.read(&mut buffer) {
            if n == 0 {
                break;
            }
        }
        let mut pending = Pending::default();
        for (signal, flag) in &self.flags {
            if flag.swap(false, Ordering::SeqCst) {
                match *signal {
                    // The loop reaps after every wake-up anyway; SIGCHLD only wakes it.
                    SIGCHLD => {}
                    SIGTERM => pending.terminate = true,
                    SIGINT => pending.interrupt = true,
                    SIGHUP => pending.hangup = true,
                    SIGUSR1 => pending.user1 = true,
                    _ => {}
                }
            }
        }
        pending
    }

    /// In a freshly forked worker: drops the supervisor's actions (which also closes the
    /// pipe's write ends) and the read end. Until the worker registers its own handlers these
    /// signals are caught and do nothing (signal-hook keeps its handler installed), so a
    /// worker must install its SIGTERM handling itself; EOF on `parent_watch` is the signal
    /// that cannot be lost.
    pub(crate) fn forget_in_child(self) {
        drop(self);
    }
}

impl Drop for SignalPipe {
    /// Unregistering drops the actions, which closes the write ends they own.
    fn drop(&mut self) {
        for registration in self.registrations.drain(..) {
            signal_hook::low_level::unregister(registration);
        }
    }
}

/// Signals caught and ignored while registered (see [`catch_and_ignore`]).
pub(crate) struct Ignored(Vec<SigId>);

/// For the single-process mode: SIGHUP and SIGUSR1 would otherwise terminate the process
/// (their default action), while in prefork mode the workers inherit them caught and
/// ignored. The serving code may still register its own actions on top.
pub(crate) fn catch_and_ignore(signals: &[libc::c_int]) -> Result<Ignored> {
    let mut registrations = Vec::new();
    for &signal in signals {
        let unused = Arc::new(AtomicBool::new(false));
        let registration = signal_hook::flag::register(signal, unused);
        registrations.push(registration.map_err(|source| Error::Signals { source })?);
    }
    Ok(Ignored(registrations))
}

impl Drop for Ignored {
    fn drop(&mut self) {
        for registration in self.0.drain(..) {
            signal_hook::low_level::unregister(registration);
        }
    }
}
