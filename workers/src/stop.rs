//! Where stop requests come from: SIGTERM/SIGINT and EOF on the parent's pipe. SIGHUP and
//! SIGUSR1 come the same way when the loop has a reload or a log-reopening hook.

use std::io::{self, Read};
use std::os::fd::OwnedFd;

use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

/// What readiness on a stop source amounted to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StopEvent {
    Nothing,
    /// The parent's pipe hit EOF or failed: the parent is gone or wants us to stop.
    ParentGone,
    /// This many stop signals arrived (each distinct signal counts once per wake-up), and
    /// whether SIGHUP and SIGUSR1 did.
    Signals {
        stops: usize,
        hangup: bool,
        user1: bool,
    },
}

pub(crate) struct StopSources {
    signals: Option<Signals>,
    parent: Option<Receiver>,
}

impl StopSources {
    pub(crate) fn new(
        handle_signals: bool,
        handle_hangup: bool,
        handle_user1: bool,
        parent_watch: Option<OwnedFd>,
    ) -> io::Result<Self> {
        let signals = if handle_signals {
            let optional = [(handle_hangup, SIGHUP), (handle_user1, SIGUSR1)];
            let extra = optional.iter().filter(|(wanted, _)| *wanted).map(|(_, signal)| *signal);
            Some(Signals::new([SIGTERM, SIGINT].into_iter().chain(extra))?)
        } else {
            None
        };
        let parent = match parent_watch {
            Some(fd) => {
                let receiver = Receiver::from(fd);
                receiver.set_nonblocking(true)?;
                Some(receiver)
            }
            None => None,
        };
        Ok(Self { signals, parent })
    }

    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        signals_token: Token,
        parent_token: Token,
    ) -> io::Result<()> {
        if let Some(signals) = &mut self.signals {
            registry.register(signals, signals_token, Interest::READABLE)?;
        }
        if let Some(parent) = &mut self.parent {
            registry.register(parent, parent_token, Interest::READABLE)?;
        }
        Ok(())
    }

    pub(crate) fn on_signals_ready(&mut self) -> StopEvent {
        match &mut self.signals {
            Some(signals) => {
                let (mut stops, mut hangup, mut user1) = (0, false, false);
                for signal in signals.pending() {
                    match signal {
                        SIGHUP => hangup = true,
                        SIGUSR1 => user1 = true,
                        _ => stops += 1,
                    }
                }
                if stops == 0 && !hangup && !user1 {
                    StopEvent::Nothing
                } else {
                    StopEvent::Signals { stops, hangup, user1 }
                }
            }
            None => StopEvent::Nothing,
        }
    }

    /// Reads the pipe until it would block; anything the parent writes is ignored, only EOF
    /// or an error means "stop". The pipe is dropped then, as it can say nothing more.
    pub(crate) fn on_parent_ready(&mut self, registry: &Registry) -> StopEvent {
        let Some(parent) = &mut self.parent else {
            return StopEvent::Nothing;
        };
        let mut scratch = [0u8; 64];
        let gone = loop {
            match parent.read(&mut scratch) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!(
                        "reading the parent watch pipe failed: {e}; treating it as a stop request"
                    );
                    break true;
                }
            }
        };
        if !gone {
            return StopEvent::Nothing;
        }
        if let Some(mut parent) = self.parent.take() {
            let _ = registry.deregister(&mut parent);
        }
        StopEvent::ParentGone
    }
}
