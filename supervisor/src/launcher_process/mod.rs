//! The privilege-mode launcher: a small process forked while the supervisor is still root,
//! before the privilege drop, that stays root to start programs (child milters) as their
//! configured users. It never sees mail: it answers one request line per connection on a
//! unix socket that only the effective user can reach (a private 0700 directory and a 0600
//! socket, both owned by that user), so the unprivileged workers and the supervisor can ask
//! it with an ordinary non-blocking connection. It stays single-threaded (it is forked)
//! and polls up to [`MAX_CLIENTS`] clients at once, each with its own deadline, so a slow
//! or silent client delays no other request.
//!
//! What a request means is the caller's business: the launcher hands each line to a
//! handler, which decides with [`Programs`] what to start or stop. Programs are tracked by
//! name: one that is still running is not started again, nor one that was stopped and has
//! not ended yet; exited ones are reaped. A milter is started at most once per
//! [`MIN_START_INTERVAL`], however often it is asked for. One that ended on its own soon
//! after its start is started again only after a pause that doubles with each such end
//! (1 s, 2 s, 4 s … 60 s; [`RespawnThrottle`](crate::throttle::RespawnThrottle)), so a milter that cannot run is not started
//! for every session. A request refused for either reason is answered with the wait.
//!
//! The launcher lives as long as someone holds the write end of its watch pipe (the
//! supervisor and every worker inherit it): when the last holder is gone it stops the
//! programs it started (SIGTERM to their process groups), removes its socket and exits.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::{self, ForkResult, Gid, Pid, Uid};

use crate::error::{Error, Result};
use crate::launcher_client::{Client, CLIENT_DEADLINE, MAX_REQUEST};
use crate::{fork, privileges};

mod launch_backoff;
mod program_command;
mod programs;

pub use launch_backoff::{LaunchBackoff, MIN_START_INTERVAL};
pub use programs::{ProgramError, Programs, Started};

/// How many clients are served at once; more wait in the listen queue.
const MAX_CLIENTS: usize = 32;
/// How often exited programs are reaped when nothing else happens.
const REAP_INTERVAL_MS: u16 = 200;

#[derive(Debug)]
pub struct Launcher {
    pid: Pid,
    socket: PathBuf,
    /// The write end of the launcher's watch pipe: its EOF stops the launcher.
    _alive: OwnedFd,
}

impl Launcher {
    /// Forks the launcher. Its socket is owned by `owner_user`/`owner_group` (the identity
    /// the supervisor is about to switch to; `None`: stays root's). `handler` answers each
    /// request line (without its line break) in the launcher process. With `detach`
    /// (the manager becomes a daemon), its output and its programs' go to /dev/null.
    pub fn start<H>(
        owner_user: Option<&str>,
        owner_group: Option<&str>,
        detach: bool,
        handler: H,
    ) -> Result<Self>
    where
        H: FnMut(&str, &mut Programs) -> String,
    {
        let (uid, gid) = owner_ids(owner_user, owner_group)?;
        let step = |step: &str| {
            let step = step.to_string();
            move |source: io::Error| Error::Launcher { step, source }
        };
        let template = std::env::temp_dir().join("milter-manager-launcher.XXXXXX");
        let directory = unistd::mkdtemp(&template)
            .map_err(|errno| step(&format!("mkdtemp {}", template.display()))(errno.into()))?;
        let socket = directory.join("launcher.sock");
        let set_up = || -> Result<(UnixListener, OwnedFd, OwnedFd)> {
            let listener =
                UnixListener::bind(&socket).map_err(step(&format!("bind {}", socket.display())))?;
            fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
                .map_err(step(&format!("chmod {}", socket.display())))?;
            for path in [&directory, &socket] {
                unistd::chown(path.as_path(), uid, gid).map_err(|errno| {
                    step(&format!("chown {}", path.display()))(io::Error::from(errno))
                })?;
            }
            listener.set_nonblocking(true).map_err(step("set the socket non-blocking"))?;
            let (watch_read, watch_write) = unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|errno| step("pipe")(io::Error::from(errno)))?;
            Ok((listener, watch_read, watch_write))
        };
        let (listener, watch_read, watch_write) = match set_up() {
            Ok(parts) => parts,
            Err(error) => {
                remove_socket(&socket);
                return Err(error);
            }
        };
        match fork::fork().map_err(step("fork"))? {
            ForkResult::Child => {
                drop(watch_write);
                let code = panic::catch_unwind(AssertUnwindSafe(|| {
                    serve(listener, watch_read, &socket, detach, handler)
                }))
                .unwrap_or(101);
                std::process::exit(code)
            }
            ForkResult::Parent { child } => {
                // Only the launcher may hold the listener: once it is gone, requests fail
                // at once instead of waiting in a backlog nobody reads.
                drop(listener);
                drop(watch_read);
                log::info!(
                    "privilege mode: launcher started (pid {child}) on {}",
                    socket.display()
                );
                Ok(Self { pid: child, socket, _alive: watch_write })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Where requests go.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

/// Sends one request line to the launcher at `socket` and returns its answer line (blocking,
/// with a timeout): for the supervisor, which asks rarely.
pub fn ask(socket: &Path, request: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(CLIENT_DEADLINE))?;
    stream.set_write_timeout(Some(CLIENT_DEADLINE))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.take(MAX_REQUEST as u64).read_to_string(&mut answer)?;
    Ok(answer)
}

/// The ids the launcher's socket gets: those the supervisor will switch to.
fn owner_ids(user: Option<&str>, group: Option<&str>) -> Result<(Option<Uid>, Option<Gid>)> {
    let user = user.map(privileges::lookup_user).transpose()?;
    let gid = match group {
        Some(group) => Some(privileges::lookup_group(group)?),
        None => user.as_ref().map(|user| user.gid),
    };
    Ok((user.map(|user| user.uid), gid))
}

fn remove_socket(socket: &Path) {
    let _ = fs::remove_file(socket);
    if let Some(directory) = socket.parent() {
        let _ = fs::remove_dir(directory);
    }
}

/// The launcher process: answers requests until the watch pipe reports EOF.
fn serve<H>(
    listener: UnixListener,
    watch: OwnedFd,
    socket: &Path,
    detach: bool,
    mut handler: H,
) -> i32
where
    H: FnMut(&str, &mut Programs) -> String,
{
    // Out of the terminal's process group: a ^C to the manager must not kill the launcher
    // before the manager has stopped using it; the watch pipe ends it.
    let _ = unistd::setsid();
    if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let outputs: &[i32] = if detach { &[1, 2] } else { &[] };
        for fd in [0].iter().chain(outputs) {
            let _ = unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), *fd);
        }
    }
    let mut programs = Programs::default();
    let mut clients: Vec<Client> = Vec::new();
    loop {
        programs.reap();
        let now = Instant::now();
        let wait = clients.iter().map(|c| c.deadline.saturating_duration_since(now)).min();
        // Rounded up, so that a deadline is past when poll returns.
        let wait_ms = wait.map_or(REAP_INTERVAL_MS, |wait| {
            u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX).min(REAP_INTERVAL_MS)
        });
        let accepting = clients.len() < MAX_CLIENTS;
        let mut fds = vec![PollFd::new(watch.as_fd(), PollFlags::POLLIN)];
        if accepting {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        fds.extend(clients.iter().map(|client| PollFd::new(client.as_fd(), client.interest())));
        match nix::poll::poll(&mut fds, PollTimeout::from(wait_ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => {
                log::error!("launcher: poll failed: {}; stopping", errno.desc());
                break;
            }
        }
        let ready: Vec<bool> =
            fds.iter().map(|fd| fd.revents().is_some_and(|events| !events.is_empty())).collect();
        drop(fds);
        if ready[0] {
            log::info!("launcher: the manager is gone; stopping");
            break;
        }
        let (listener_ready, clients_ready) =
            if accepting { (ready[1], &ready[2..]) } else { (false, &ready[1..]) };
        let mut index = 0;
        clients.retain_mut(|client| {
            let ready = clients_ready[index];
            index += 1;
            !ready || serve_client(client, &mut handler, &mut programs)
        });
        let now = Instant::now();
        clients.retain(|client| {
            let waiting = client.deadline > now;
            if !waiting {
                let what = if client.answered() { "take its answer" } else { "send a request" };
                log::warn!(
                    "launcher: dropped a client that did not {what} within {}s",
                    CLIENT_DEADLINE.as_secs()
                );
            }
            waiting
        });
        if listener_ready {
            accept_clients(&listener, &mut clients);
        }
    }
    programs.stop_all();
    remove_socket(socket);
    0
}

/// Takes the waiting connections, as many as [`MAX_CLIENTS`] allows.
fn accept_clients(listener: &UnixListener, clients: &mut Vec<Client>) {
    while clients.len() < MAX_CLIENTS {
        match listener.accept() {
            Ok((stream, _)) => match Client::new(stream, Instant::now()) {
                Ok(client) => clients.push(client),
                Err(e) => log::warn!("launcher: cannot set up a connection: {e}"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("launcher: accept failed: {e}");
                return;
            }
        }
    }
}

/// Moves one ready client on: reads its request, answers it, sends the answer. `false`
/// once it is done with (answered or failed), which closes it.
fn serve_client<H>(client: &mut Client, handler: &mut H, programs: &mut Programs) -> bool
where
    H: FnMut(&str, &mut Programs) -> String,
{
    let sent = if client.answered() {
        client.write_answer()
    } else {
        let answer = match client.read_request() {
            None => return true,
            Some(Ok(line)) => handler(&line, programs),
            Some(Err(reason)) => {
                log::warn!("launcher: refused a request: {reason}");
                format!("error {reason}\n")
            }
        };
        client.answer(answer)
    };
    match sent {
        Ok(done) => !done,
        Err(e) => {
            log::warn!("launcher: cannot send the answer: {e}");
            false
        }
    }
}
