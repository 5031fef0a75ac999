//! The control socket, served by the supervisor's own poll loop next to its signal pipe:
//! every connection sends one request line and gets one answer, then is closed. Nothing
//! blocks: accepting, reading and writing are non-blocking, and a client that takes longer
//! than [`CLIENT_DEADLINE`] is dropped. What a request means is the caller's handler's job.
//!
//! A reload request is answered with the reload's outcome: the client waits (up to
//! [`RELOAD_DEADLINE`]) until the supervisor has reloaded, or with `n_workers == 0` until
//! the serving process reports its reload back over a datagram socket.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use crate::bind::{BoundSocket, SocketFileGuard};
use crate::Listener;

/// How long one client may take for its request and for reading the answer.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client waits for the outcome of the reload it asked for.
pub const RELOAD_DEADLINE: Duration = Duration::from_secs(60);
/// The longest request line read; a longer one is answered by the handler as it is cut.
const MAX_REQUEST: usize = 4096;
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

/// What the handler is told besides the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlContext {
    /// The supervisor's pid (the serving process's with `n_workers == 0`).
    pub supervisor_pid: u32,
    /// The generation serving new sessions: 1 at start, +1 per successful reload.
    pub generation: u64,
    /// The running workers, older generations' draining ones included.
    pub workers: Vec<RunningWorker>,
}

/// One live worker process as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningWorker {
    pub index: u32,
    pub pid: u32,
    pub generation: u64,
}

/// What the handler makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAnswer {
    /// The answer, sent at once.
    Now(String),
    /// Reload; the answer is [`ControlHandler::reloaded`]'s for the outcome.
    AfterReload,
}

/// The caller's side of the control socket.
pub trait ControlHandler {
    /// Answers one request line (without its line break).
    fn answer(&mut self, line: &str, context: &ControlContext) -> ControlAnswer;
    /// Told every reload's outcome, asked for or not; returns the answer for the clients
    /// that asked for it.
    fn reloaded(&mut self, outcome: &ReloadOutcome) -> String;
}

/// What became of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// The generation serving new sessions afterwards (the running one when it failed).
    pub generation: u64,
    /// Ok: the new generation's workers that were started, as (index, pid) (none when one
    /// process serves alone); Err: why the running configuration stays.
    pub result: Result<Vec<(u32, u32)>, String>,
    /// How many workers the new generation should have (0: one process serves alone).
    pub workers_wanted: u32,
    /// The reload hook's own report (opaque here), e.g. the items that need a restart.
    pub report: String,
}

impl ReloadOutcome {
    /// One datagram: the generation, then `ok WANTED INDEX:PID...` or `error REASON`, then
    /// the report verbatim.
    pub fn encode(&self) -> Vec<u8> {
        let status = match &self.result {
            Ok(workers) => {
                let pids: Vec<String> = workers.iter().map(|(i, p)| format!(" {i}:{p}")).collect();
                format!("ok {}{}", self.workers_wanted, pids.concat())
            }
            Err(reason) => format!("error {}", reason.replace('\n', " ")),
        };
        format!("{}\n{status}\n{}", self.generation, self.report).into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<ReloadOutcome> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let generation = parts.next()?.parse().ok()?;
        let status = parts.next()?;
        let report = parts.next().unwrap_or("").to_string();
        let (result, workers_wanted) = match status.split_once(' ') {
            Some(("error", reason)) => (Err(reason.to_string()), 0),
            _ => {
                let mut words = status.split(' ');
                if words.next()? != "ok" {
                    return None;
                }
                let wanted = words.next()?.parse().ok()?;
                let workers = words
                    .map(|word| {
                        let (index, pid) = word.split_once(':')?;
                        Some((index.parse().ok()?, pid.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                (Ok(workers), wanted)
            }
        };
        Some(ReloadOutcome { generation, result, workers_wanted, report })
    }
}

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

/// A bound control socket and its handler.
pub struct ControlSocket {
    listener: Listener,
    /// Removes the socket file: always if the start fails before serving, when the
    /// supervisor ends only if asked to ([`ControlSocket::start_serving`]).
    file: Option<SocketFileGuard>,
    remove_on_close: bool,
    /// The unix socket's path and whether `unix_socket_group` was applied, to give it to the
    /// user the supervisor switches to, as the MTA's socket is.
    unix_path: Option<(std::path::PathBuf, bool)>,
    clients: Vec<Client>,
    handler: Box<dyn ControlHandler>,
    /// A client asked for a reload that has not been started yet.
    reload_asked: bool,
}

impl std::fmt::Debug for ControlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSocket").field("clients", &self.clients.len()).finish()
    }
}

enum Stream {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

struct Client {
    stream: Stream,
    request: Vec<u8>,
    /// The answer and how much of it was written; `None` while reading the request.
    answer: Option<(Vec<u8>, usize)>,
    /// Waiting for the outcome of the reload it asked for.
    awaits_reload: bool,
    deadline: Instant,
}

impl ControlSocket {
    pub fn new(
        mut bound: BoundSocket,
        handler: Box<dyn ControlHandler>,
    ) -> io::Result<ControlSocket> {
        let file = Some(std::mem::replace(&mut bound.unserved, SocketFileGuard::none()));
        let remove_on_close = bound.remove_on_close;
        let unix_path = bound.unix_path.clone().map(|path| (path, bound.group_applied));
        let listener = bound.listener;
        match &listener {
            Listener::Unix(listener) => listener.set_nonblocking(true)?,
            Listener::Tcp(listener) => listener.set_nonblocking(true)?,
        }
        Ok(ControlSocket {
            listener,
            file,
            remove_on_close,
            unix_path,
            clients: Vec::new(),
            handler,
            reload_asked: false,
        })
    }

    /// The unix socket's path and whether its group was set by `unix_socket_group`.
    pub(crate) fn unix_path(&self) -> Option<(&std::path::Path, bool)> {
        self.unix_path.as_ref().map(|(path, group_applied)| (path.as_path(), *group_applied))
    }

    /// The start went through: from now on the socket file is removed at the end only when
    /// `remove_unix_socket_on_close` asked for it.
    pub(crate) fn start_serving(&mut self) {
        self.file = self.file.take().map(|file| file.served(self.remove_on_close));
    }

    /// The descriptors to poll: the listener (while there is room) and each client.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if self.clients.len() < MAX_CLIENTS {
            let fd = match &self.listener {
                Listener::Unix(listener) => listener.as_fd(),
                Listener::Tcp(listener) => listener.as_fd(),
            };
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        for client in self.clients.iter().filter(|client| !client.awaits_reload) {
            let flags =
                if client.answer.is_some() { PollFlags::POLLOUT } else { PollFlags::POLLIN };
            fds.push(PollFd::new(client.stream.as_fd(), flags));
        }
        fds
    }

    /// When the oldest client must be dropped.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|client| client.deadline).min()
    }

    /// Accepts, reads, answers and writes whatever can be done without blocking.
    pub(crate) fn service(&mut self, context: &ControlContext) {
        self.accept_clients();
        let now = Instant::now();
        let handler = &mut self.handler;
        let reload_asked = &mut self.reload_asked;
        self.clients.retain_mut(|client| {
            if client.answer.is_none() && !client.awaits_reload {
                match client.read_request() {
                    Progress::Pending => {}
                    // Connected and closed without a byte: another instance checking
                    // whether the socket is live, not a request.
                    Progress::Done if client.request.is_empty() => {
                        log::debug!("control client closed without a request");
                        return false;
                    }
                    Progress::Done => {
                        let line = client.request_line();
                        match handler.answer(&line, context) {
                            ControlAnswer::Now(answer) => {
                                client.answer = Some((answer.into_bytes(), 0))
                            }
                            ControlAnswer::AfterReload => {
                                client.awaits_reload = true;
                                client.deadline = Instant::now() + RELOAD_DEADLINE;
                                *reload_asked = true;
                            }
                        }
                    }
                    Progress::Failed(error) => {
                        log::debug!("control client dropped: {error}");
                        return false;
                    }
                }
            }
            if client.answer.is_some() {
                match client.write_answer() {
                    Progress::Pending => {}
                    Progress::Done => return false,
                    Progress::Failed(error) => {
                        log::debug!("control client dropped while answering: {error}");
                        return false;
                    }
                }
            }
            if now >= client.deadline {
                log::warn!("control client dropped: it did not finish in time");
                return false;
            }
            true
        });
    }

    /// Whether a client asked for a reload since the last call (the caller reloads, then
    /// calls [`ControlSocket::reloaded`]).
    pub(crate) fn take_reload_request(&mut self) -> bool {
        std::mem::take(&mut self.reload_asked)
    }

    /// A reload finished: the handler hears of it and the clients waiting for it get its
    /// answer (written by the next [`ControlSocket::service`]).
    pub(crate) fn reloaded(&mut self, outcome: &ReloadOutcome) {
        let answer = self.handler.reloaded(outcome);
        for client in self.clients.iter_mut().filter(|client| client.awaits_reload) {
            client.awaits_reload = false;
            client.answer = Some((answer.clone().into_bytes(), 0));
        }
    }

    fn accept_clients(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            let accepted = match &self.listener {
                Listener::Unix(listener) => listener.accept().map(|(s, _)| Stream::Unix(s)),
                Listener::Tcp(listener) => listener.accept().map(|(s, _)| Stream::Tcp(s)),
            };
            match accepted {
                Ok(stream) => {
                    if let Err(e) = stream.set_nonblocking() {
                        log::warn!("control client dropped: {e}");
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        request: Vec::new(),
                        answer: None,
                        awaits_reload: false,
                        deadline: Instant::now() + CLIENT_DEADLINE,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("cannot accept a control client: {e}");
                    return;
                }
            }
        }
    }

    /// In a forked worker: close the descriptors but leave the socket file alone.
    pub(crate) fn forget_in_child(mut self) {
        if let Some(file) = self.file.take() {
            file.disarm();
        }
    }
}

enum Progress {
    Pending,
    Done,
    Failed(io::Error),
}

impl Client {
    fn read_request(&mut self) -> Progress {
        let mut buffer = [0u8; 1024];
        loop {
            match self.stream.read(&mut buffer) {
                // EOF ends the request even without a line break.
                Ok(0) => return Progress::Done,
                Ok(n) => {
                    self.request.extend_from_slice(&buffer[..n]);
                    if self.request.contains(&b'\n') || self.request.len() >= MAX_REQUEST {
                        return Progress::Done;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Failed(e),
            }
        }
    }

    fn request_line(&self) -> String {
        let end = self.request.iter().position(|b| *b == b'\n').unwrap_or(self.request.len());
        let line = &self.request[..end.min(MAX_REQUEST)];
        String::from_utf8_lossy(line).trim_end_matches('\r').to_string()
    }

    fn write_answer(&mut self) -> Progress {
        let Some((answer, written)) = self.answer.as_mut() else { return Progress::Pending };
        while *written < answer.len() {
            match self.stream.write(&answer[*written..]) {
                Ok(0) => return Progress::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Failed(e),
            }
        }
        Progress::Done
    }
}

impl Stream {
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.set_nonblocking(true),
            Stream::Tcp(stream) => stream.set_nonblocking(true),
        }
    }

    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Unix(stream) => stream.as_fd(),
            Stream::Tcp(stream) => stream.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.read(buf),
            Stream::Tcp(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.write(buf),
            Stream::Tcp(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// With `n_workers == 0` the serving process runs the mail loop, which has no room for the
/// control socket: a small process of its own serves it instead, until the serving process
/// is gone (EOF on the returned pipe's other end). A reload request becomes SIGHUP to the
/// serving process, which reports every reload's outcome through the returned reporter.
/// `close_in_child` are descriptors of the serving process the control process must not
/// keep (the MTA listener among them).
pub(crate) fn fork_server(
    control: &mut ControlSocket,
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
                serve_alone(control, &watch_read, &reports, &mut context)
            }))
            .unwrap_or(101);
            // No destructors: the socket file belongs to the serving process.
            std::process::exit(code)
        }
    }
}

fn serve_alone(
    control: &mut ControlSocket,
    watch: &std::os::fd::OwnedFd,
    reports: &UnixDatagram,
    context: &mut ControlContext,
) -> i32 {
    loop {
        let timeout = crate::poll_timeout(control.next_deadline());
        let mut fds = vec![
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(reports.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(control.poll_fds());
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
        receive_reports(control, reports, context);
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
    control: &mut ControlSocket,
    reports: &UnixDatagram,
    context: &mut ControlContext,
) {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match reports.recv(&mut buffer) {
            Ok(n) => match ReloadOutcome::decode(&buffer[..n]) {
                Some(outcome) => {
                    context.generation = outcome.generation;
                    control.reloaded(&outcome);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use crate::{bind, BindTarget, ListenOptions};
    use std::os::unix::net::UnixStream;

    /// Answers every line with itself and the context; `reload` waits for the reload.
    struct Echo;

    impl ControlHandler for Echo {
        fn answer(&mut self, line: &str, context: &ControlContext) -> ControlAnswer {
            if line == "reload" {
                return ControlAnswer::AfterReload;
            }
            let workers: Vec<String> = context
                .workers
                .iter()
                .map(|w| format!("worker {} pid {}", w.index, w.pid))
                .collect();
            ControlAnswer::Now(format!(
                "{line} from {}: {}\n",
                context.supervisor_pid,
                workers.join(", ")
            ))
        }

        fn reloaded(&mut self, outcome: &ReloadOutcome) -> String {
            format!("generation {}: {:?}\n", outcome.generation, outcome.result)
        }
    }

    #[test]
    fn each_connection_gets_the_handlers_answer_to_its_line_then_eof() {
        let dir = TestDir::new("control");
        let path = dir.path().join("control.sock");
        let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let mut control = ControlSocket::new(bound, Box::new(Echo)).unwrap();
        let worker = RunningWorker { index: 0, pid: 70, generation: 1 };
        let context = ControlContext { supervisor_pid: 7, generation: 1, workers: vec![worker] };
        let mut first = UnixStream::connect(&path).unwrap();
        let mut second = UnixStream::connect(&path).unwrap();
        first.write_all(b"status\r\nignored\n").unwrap();
        second.write_all(b"configuration").unwrap();
        second.shutdown(std::net::Shutdown::Write).unwrap();
        control.service(&context);
        for (stream, expected) in [
            (&mut first, "status from 7: worker 0 pid 70\n"),
            (&mut second, "configuration from 7: worker 0 pid 70\n"),
        ] {
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert_eq!(answer, expected);
        }
        assert_eq!(control.next_deadline(), None, "both clients are done");
        // A client that has not finished its line waits, with a deadline.
        let _slow = UnixStream::connect(&path).unwrap();
        control.service(&context);
        assert!(control.next_deadline().is_some());
        drop(control);
        assert!(!path.exists(), "the socket file goes with the control socket");
    }

    #[test]
    fn a_reload_is_answered_with_its_outcome_once_it_is_done() {
        let dir = TestDir::new("control-reload");
        let path = dir.path().join("control.sock");
        let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let mut control = ControlSocket::new(bound, Box::new(Echo)).unwrap();
        let context = ControlContext { supervisor_pid: 7, generation: 1, workers: Vec::new() };
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"reload\n").unwrap();
        control.service(&context);
        assert!(control.take_reload_request(), "the caller is asked to reload");
        assert!(!control.take_reload_request(), "once");
        client.set_nonblocking(true).unwrap();
        let mut early = [0u8; 16];
        assert_eq!(
            client.read(&mut early).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "no answer before the reload is done"
        );
        let outcome = ReloadOutcome {
            generation: 2,
            result: Ok(vec![(0, 71)]),
            workers_wanted: 1,
            report: String::new(),
        };
        control.reloaded(&outcome);
        control.service(&context);
        client.set_nonblocking(false).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "generation 2: Ok([(0, 71)])\n");
    }

    #[test]
    fn reload_outcomes_travel_as_one_datagram() {
        for outcome in [
            ReloadOutcome {
                generation: 3,
                result: Ok(vec![(0, 10), (1, 11)]),
                workers_wanted: 2,
                report: "note a\nnote b\n".into(),
            },
            ReloadOutcome {
                generation: 1,
                result: Ok(Vec::new()),
                workers_wanted: 0,
                report: String::new(),
            },
            ReloadOutcome {
                generation: 1,
                result: Err("conf/milter-manager.toml:3: bad".into()),
                workers_wanted: 0,
                report: "x".into(),
            },
        ] {
            assert_eq!(ReloadOutcome::decode(&outcome.encode()), Some(outcome));
        }
        assert_eq!(ReloadOutcome::decode(b"x\nok 1\n"), None);
    }
}
