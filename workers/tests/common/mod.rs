//! Helpers for tests that run the worker in a child process (for process-wide state such
//! as signal handlers and descriptor limits): the test binary re-runs itself, restricted to
//! one test, with an environment variable telling that test to play the child.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Lines, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use workers::{Action, ConnKey, PeerAddr, Session, SessionFactory};

/// The environment variable that carries the child's socket path.
pub(crate) const CHILD_SOCKET_ENV: &str = "WORKERS_TEST_CHILD_SOCKET";

/// The socket path when running as the child.
pub(crate) fn child_socket() -> Option<PathBuf> {
    std::env::var_os(CHILD_SOCKET_ENV).map(PathBuf::from)
}

/// Runs only `test_name` of this test binary in a child process that serves on `socket`,
/// with its stdin, stdout and stderr piped.
pub(crate) fn spawn_child(test_name: &str, socket: &Path) -> Child {
    let _ = std::fs::remove_file(socket);
    Command::new(std::env::current_exe().unwrap())
        .args([OsStr::new(test_name), OsStr::new("--exact"), OsStr::new("--nocapture")])
        .env(CHILD_SOCKET_ENV, socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("workers-{}-{name}.sock", std::process::id()))
}

/// Prints every log record on stderr, one per line, for the parent to follow.
pub(crate) struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!("LOG {}: {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

pub(crate) fn log_to_stderr() {
    log::set_logger(&StderrLogger).unwrap();
    log::set_max_level(log::LevelFilter::Info);
}

/// Waits until the child listens on `socket`, and connects.
pub(crate) fn connect_when_ready(socket: &Path) -> std::os::unix::net::UnixStream {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(stream) => return stream,
            Err(e) => {
                assert!(Instant::now() < give_up, "the worker child never listened: {e}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The child's log (its standard error), line by line, for the parent to follow.
pub(crate) fn follow_log(child: &mut Child) -> Lines<BufReader<ChildStderr>> {
    BufReader::new(child.stderr.take().unwrap()).lines()
}

/// Once the child was asked to stop: waits for it to end, asserts that it succeeded,
/// removes its socket, and returns its standard output and the rest of its log.
pub(crate) fn finish_child(
    mut child: Child,
    log_lines: Lines<BufReader<ChildStderr>>,
    socket: &Path,
) -> (String, Vec<String>) {
    let log: Vec<String> = log_lines.map(Result::unwrap).collect();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(child.wait().unwrap().success(), "child failed; stderr: {log:?}");
    let _ = std::fs::remove_file(socket);
    (stdout, log)
}

/// A session that answers each read with `answer` of the bytes read; finished when the
/// peer hangs up.
pub(crate) struct Replying {
    answer: fn(&[u8]) -> Vec<u8>,
    actions: Vec<Action>,
    finished: bool,
}

impl Session for Replying {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], _: Instant) {
        self.actions.push(Action::Send { conn, bytes: (self.answer)(bytes) });
    }
    fn handle_connected(&mut self, _: ConnKey, _: std::io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<std::io::Error>, _: Instant) {
        self.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Makes [`Replying`] sessions that answer with the function it holds.
pub(crate) struct ReplyingFactory(pub fn(&[u8]) -> Vec<u8>);

impl SessionFactory for ReplyingFactory {
    type Session = Replying;
    fn new_session(&mut self, _: &PeerAddr, _: Instant) -> Replying {
        Replying { answer: self.0, actions: Vec::new(), finished: false }
    }
}
