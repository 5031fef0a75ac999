//! The control socket, served by the supervisor's own poll loop next to its signal pipe:
//! every connection sends one request line and gets one answer, then is closed. Nothing
//! blocks: accepting, reading and writing are non-blocking, and a client that takes longer
//! than [`CLIENT_DEADLINE`] is dropped. What a request means is the caller's handler's job.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use crate::bind::{BoundSocket, SocketFileGuard};
use crate::Listener;

/// How long one client may take for its request and for reading the answer.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// The longest request line read; a longer one is answered by the handler as it is cut.
const MAX_REQUEST: usize = 4096;
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

/// What the handler is told besides the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlContext {
    /// The supervisor's pid (signal it for the paths its signals take).
    pub supervisor_pid: u32,
    /// The running workers: (index, pid).
    pub workers: Vec<(u32, u32)>,
}

/// Answers one request line (without its line break).
pub type ControlHandler = Box<dyn FnMut(&str, &ControlContext) -> String>;

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
    handler: ControlHandler,
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
    deadline: Instant,
}

impl ControlSocket {
    pub fn new(mut bound: BoundSocket, handler: ControlHandler) -> io::Result<ControlSocket> {
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
        for client in &self.clients {
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
        self.clients.retain_mut(|client| {
            if client.answer.is_none() {
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
                        let answer = handler(&line, context);
                        client.answer = Some((answer.into_bytes(), 0));
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
                log::warn!(
                    "control client dropped after {}s without finishing",
                    CLIENT_DEADLINE.as_secs()
                );
                return false;
            }
            true
        });
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
/// is gone (EOF on the returned pipe's other end). `close_in_child` are descriptors of the
/// serving process the control process must not keep (the MTA listener among them).
pub(crate) fn fork_server(
    control: &mut ControlSocket,
    close_in_child: &[std::os::fd::RawFd],
) -> crate::error::Result<std::os::fd::OwnedFd> {
    use nix::unistd::{self, ForkResult};
    let error = |source: io::Error| crate::error::Error::ControlProcess { source };
    let (watch_read, watch_write) =
        unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| error(errno.into()))?;
    let server = std::process::id();
    match crate::fork::fork().map_err(error)? {
        ForkResult::Parent { child } => {
            log::info!("controller process started (pid {child})");
            Ok(watch_write)
        }
        ForkResult::Child => {
            drop(watch_write);
            for fd in close_in_child {
                let _ = unistd::close(*fd);
            }
            let context = ControlContext { supervisor_pid: server, workers: Vec::new() };
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serve_alone(control, &watch_read, &context)
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
    context: &ControlContext,
) -> i32 {
    loop {
        let timeout = crate::poll_timeout(control.next_deadline());
        let mut fds = vec![PollFd::new(watch.as_fd(), PollFlags::POLLIN)];
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
        control.service(context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use crate::{bind, BindTarget, ListenOptions};
    use std::os::unix::net::UnixStream;

    #[test]
    fn each_connection_gets_the_handlers_answer_to_its_line_then_eof() {
        let dir = TestDir::new("control");
        let path = dir.path().join("control.sock");
        let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let handler: ControlHandler = Box::new(|line: &str, context: &ControlContext| {
            format!("{line} from {} with {:?}\n", context.supervisor_pid, context.workers)
        });
        let mut control = ControlSocket::new(bound, handler).unwrap();
        let context = ControlContext { supervisor_pid: 7, workers: vec![(0, 70)] };
        let mut first = UnixStream::connect(&path).unwrap();
        let mut second = UnixStream::connect(&path).unwrap();
        first.write_all(b"status\r\nignored\n").unwrap();
        second.write_all(b"reload").unwrap();
        second.shutdown(std::net::Shutdown::Write).unwrap();
        control.service(&context);
        for (stream, expected) in [
            (&mut first, "status from 7 with [(0, 70)]\n"),
            (&mut second, "reload from 7 with [(0, 70)]\n"),
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
}
