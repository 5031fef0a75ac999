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
//! (1 s, 2 s, 4 s … 60 s; [`RespawnThrottle`]), so a milter that cannot run is not started
//! for every session. A request refused for either reason is answered with the wait.
//!
//! The launcher lives as long as someone holds the write end of its watch pipe (the
//! supervisor and every worker inherit it): when the last holder is gone it stops the
//! programs it started (SIGTERM to their process groups), removes its socket and exits.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Gid, Pid, Uid};

use crate::error::{Error, Result};
use crate::launcher_client::{Client, CLIENT_DEADLINE, MAX_REQUEST};
use crate::throttle::RespawnThrottle;
use crate::{fork, privileges};

/// The `PATH` a started milter gets (the usual system one; not the manager's own).
const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How many clients are served at once; more wait in the listen queue.
const MAX_CLIENTS: usize = 32;
/// How often exited programs are reaped when nothing else happens.
const REAP_INTERVAL_MS: u16 = 200;
/// The least time between two starts of one milter: a flood of requests runs its command
/// (as root, perhaps) once, not once per request.
pub const MIN_START_INTERVAL: Duration = Duration::from_secs(3);
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

/// The running launcher, as the supervisor holds it.
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

/// When a program may be started again: [`MIN_START_INTERVAL`] after its last start, and
/// after the pause of one that ends on its own. Pure: time is passed in.
#[derive(Debug, Clone, Default)]
pub struct LaunchBackoff {
    throttle: RespawnThrottle,
    not_before: Option<Instant>,
    last_start: Option<Instant>,
}

impl LaunchBackoff {
    /// The program was started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The program ended at `now` after `lifetime`; returns the pause before its next start
    /// (zero after a healthy life).
    pub fn ended(&mut self, lifetime: Duration, now: Instant) -> Duration {
        let delay = self.throttle.delay_after(lifetime);
        self.not_before = Some(now + delay);
        delay
    }

    /// How long a start asked for at `now` must still wait; `None`: start it.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let rate_limit = self.last_start.map(|at| at + MIN_START_INTERVAL);
        let at = self.not_before.into_iter().chain(rate_limit).max()?;
        (at > now).then(|| at - now)
    }

    /// Whether the pause after an early end (not only the rate limit) holds a start at `now`.
    fn pausing(&self, now: Instant) -> bool {
        self.not_before.is_some_and(|at| at > now)
    }
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
        let home = match &identity {
            Some(identity) => identity.home.clone(),
            None => root_home(),
        };
        let mut command = Command::new(program);
        // Nothing of root's environment or working directory leaks into the milter: only
        // what a login would give the user.
        command
            .args(arguments)
            .stdin(Stdio::null())
            .env_clear()
            .env("PATH", CHILD_PATH)
            .env("LANG", std::env::var_os("LANG").unwrap_or_else(|| "C".into()))
            .env("HOME", home)
            .current_dir("/");
        // SAFETY: the closure runs between fork and exec in a single-threaded process and
        // only makes system calls (no allocation: the group list was built before).
        unsafe {
            command.pre_exec(move || {
                // Its own group: a stop reaches the helpers a start script leaves behind.
                unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                if let Some(identity) = &identity {
                    unistd::setgroups(&identity.groups)?;
                    unistd::setgid(identity.gid)?;
                    unistd::setuid(identity.uid)?;
                }
                Ok(())
            });
        }
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
    fn reap(&mut self) {
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

    fn stop_all(&mut self) {
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

/// A program's user, resolved before the fork.
struct ChildIdentity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: PathBuf,
}

impl ChildIdentity {
    fn resolve(user: &str) -> Result<Self> {
        let account = privileges::lookup_user(user)?;
        let name = CString::new(account.name.clone())
            .map_err(|_| Error::UnknownUser { name: user.to_string() })?;
        let groups =
            unistd::getgrouplist(&name, account.gid).map_err(|errno| Error::AccountLookup {
                what: format!("the groups of user \"{}\"", account.name),
                source: io::Error::from(errno),
            })?;
        Ok(Self { uid: account.uid, gid: account.gid, groups, home: account.dir })
    }
}

/// Root's home directory, for a milter without `user_name`.
fn root_home() -> PathBuf {
    match nix::unistd::User::from_uid(Uid::from_raw(0)) {
        Ok(Some(root)) => root.dir,
        _ => PathBuf::from("/"),
    }
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

    #[test]
    fn a_program_that_keeps_ending_waits_longer_each_time() {
        let mut backoff = LaunchBackoff::default();
        let start = Instant::now();
        assert_eq!(backoff.wait(start), None, "never ended: start it");
        let quick = Duration::from_millis(50);
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let delay = backoff.ended(quick, now);
            assert_eq!(backoff.wait(now), Some(delay), "not before the pause");
            assert_eq!(backoff.wait(now + delay / 2), Some(delay / 2));
            assert_eq!(backoff.wait(now + delay), None, "at most once per pause");
            delays.push(delay.as_secs());
            now += delay;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        // A long life starts it again at once and resets the pauses.
        assert_eq!(backoff.ended(Duration::from_secs(3600), now), Duration::ZERO);
        assert_eq!(backoff.wait(now), None);
        assert_eq!(backoff.ended(quick, now), Duration::from_secs(1));
    }

    #[test]
    fn a_milter_is_started_at_most_once_per_interval() {
        let mut backoff = LaunchBackoff::default();
        let start = Instant::now();
        backoff.started(start);
        assert_eq!(backoff.wait(start), Some(MIN_START_INTERVAL), "asked again at once");
        let second = Duration::from_secs(1);
        assert_eq!(backoff.wait(start + second), Some(MIN_START_INTERVAL - second));
        assert_eq!(backoff.wait(start + MIN_START_INTERVAL), None);
        assert!(!backoff.pausing(start), "the rate limit is no back-off");
        // Ended at once: the longer of the two waits holds.
        let early = Duration::from_millis(10);
        assert_eq!(backoff.ended(early, start + early), Duration::from_secs(1));
        assert_eq!(backoff.wait(start + early), Some(MIN_START_INTERVAL - early));
        assert!(backoff.pausing(start + early));
        let later = start + MIN_START_INTERVAL;
        backoff.started(later);
        assert_eq!(backoff.ended(early, later + early), Duration::from_secs(2));
        assert_eq!(backoff.wait(later + early), Some(MIN_START_INTERVAL - early));
        assert_eq!(backoff.ended(early, later + early), Duration::from_secs(4));
        assert_eq!(backoff.wait(later + early), Some(Duration::from_secs(4)), "over the limit");
    }
}
