//! The control process: with `n_workers == 0`, a small process of its own serves the
//! control socket and hears of each reload from the serving process.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;

use nix::poll::{PollFd, PollFlags};

use super::{ControlContext, ControlSocket, ReloadOutcome};
use crate::MetricsSocket;

/// The serving process's end of the socket that tells the control process (with
/// `n_workers == 0`) about each reload.
#[derive(Debug)]
pub struct ReloadReporter {
    socket: UnixDatagram,
}

impl ReloadReporter {
    /// Sends `outcome` without blocking; a control process that is gone is not an error.
    pub fn report(&self, outcome: &ReloadOutcome) {
        if let Err(error) = self.socket.send(&outcome.encode()) {
            log::warn!("cannot tell the controller process about the reload: {error}");
        }
    }
}

/// With `n_workers == 0` the serving process runs the mail loop, which has no room for the
/// control socket nor the metrics page: a small process of its own serves them instead,
/// until the serving process is gone (EOF on the returned pipe's other end). A reload
/// request becomes SIGHUP to the serving process, which reports every reload's outcome
/// through the returned reporter.
/// `close_in_child` are descriptors of the serving process the control process must not
/// keep (the MTA listener among them).
pub(crate) fn fork_server(
    mut control: Option<&mut ControlSocket>,
    mut metrics: Option<&mut MetricsSocket>,
    close_in_child: &[std::os::fd::RawFd],
) -> crate::error::Result<(std::os::fd::OwnedFd, ReloadReporter)> {
    use nix::unistd::{self, ForkResult};
    let error = |source: io::Error| crate::error::Error::ControlProcess { source };
    let (watch_read, watch_write) =
        unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| error(errno.into()))?;
    let (reports, reporter) = UnixDatagram::pair().map_err(error)?;
    // The serving process's event loop must never wait for the control process.
    reporter.set_nonblocking(true).map_err(error)?;
    reports.set_nonblocking(true).map_err(error)?;
    let server = std::process::id();
    match crate::fork::fork().map_err(error)? {
        ForkResult::Parent { child } => {
            log::info!("controller process started (pid {child})");
            Ok((watch_write, ReloadReporter { socket: reporter }))
        }
        ForkResult::Child => {
            drop(watch_write);
            drop(reporter);
            for fd in close_in_child {
                let _ = unistd::close(*fd);
            }
            let mut context =
                ControlContext { supervisor_pid: server, generation: 1, workers: Vec::new() };
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let sockets =
                    Sockets { control: control.as_deref_mut(), metrics: metrics.as_deref_mut() };
                serve_alone(sockets, &watch_read, &reports, &mut context)
            }))
            .unwrap_or(101);
            // No destructors: the socket file belongs to the serving process.
            std::process::exit(code)
        }
    }
}

/// What the control process serves.
struct Sockets<'a> {
    control: Option<&'a mut ControlSocket>,
    metrics: Option<&'a mut MetricsSocket>,
}

fn serve_alone(
    mut sockets: Sockets<'_>,
    watch: &std::os::fd::OwnedFd,
    reports: &UnixDatagram,
    context: &mut ControlContext,
) -> i32 {
    loop {
        let control_deadline = sockets.control.as_deref().and_then(ControlSocket::next_deadline);
        let metrics_deadline = sockets.metrics.as_deref().and_then(MetricsSocket::next_deadline);
        let timeout =
            crate::poll_timeout(control_deadline.into_iter().chain(metrics_deadline).min());
        let mut fds = vec![
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(reports.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(control) = sockets.control.as_deref() {
            fds.extend(control.poll_fds());
        }
        if let Some(metrics) = sockets.metrics.as_deref() {
            fds.extend(metrics.poll_fds());
        }
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => {
                log::error!("controller: poll failed: {}", errno.desc());
                return 1;
            }
        }
        let server_gone = fds[0].revents().is_some_and(|events| !events.is_empty());
        drop(fds);
        if server_gone {
            return 0;
        }
        if let Some(metrics) = sockets.metrics.as_deref_mut() {
            metrics.service(context);
        }
        receive_reports(&mut sockets, reports, context);
        let Some(control) = sockets.control.as_deref_mut() else { continue };
        control.service(context);
        if control.take_reload_request() {
            let server = nix::unistd::Pid::from_raw(context.supervisor_pid as i32);
            if let Err(errno) = nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGHUP) {
                let result = Err(format!("cannot signal the serving process: {}", errno.desc()));
                let generation = context.generation;
                let failed =
                    ReloadOutcome { generation, result, workers_wanted: 0, report: String::new() };
                control.reloaded(&failed);
            }
        }
    }
}

/// Takes every reload the serving process reported.
fn receive_reports(
    sockets: &mut Sockets<'_>,
    reports: &UnixDatagram,
    context: &mut ControlContext,
) {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match reports.recv(&mut buffer) {
            Ok(n) => match ReloadOutcome::decode(&buffer[..n]) {
                Some(outcome) => {
                    context.generation = outcome.generation;
                    if let Some(metrics) = sockets.metrics.as_deref_mut() {
                        metrics.reloaded(&outcome);
                    }
                    if let Some(control) = sockets.control.as_deref_mut() {
                        control.reloaded(&outcome);
                    }
                }
                None => log::warn!("controller: unreadable reload report ignored"),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::warn!("controller: cannot read the reload reports: {e}");
                return;
            }
        }
    }
}
