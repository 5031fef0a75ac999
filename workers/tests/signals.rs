//! Stop signals. Signal handlers are process-wide, so the worker runs in a child process: this
//! test binary re-runs itself with an environment variable that selects the child's part.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use workers::{run, Action, ConnKey, Listener, PeerAddr, Session, SessionFactory, WorkerConfig};

use common::{child_socket, connect_when_ready, log_to_stderr, socket_path, spawn_child};

/// Says "started" on the peer's first bytes and then runs until the peer hangs up.
#[derive(Default)]
struct Stubborn {
    actions: Vec<Action>,
    finished: bool,
}

impl Session for Stubborn {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], _: Instant) {
        self.actions.push(Action::Send { conn: ConnKey::PEER, bytes: b"started".to_vec() });
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

struct StubbornFactory;

impl SessionFactory for StubbornFactory {
    type Session = Stubborn;
    fn new_session(&mut self, _: &PeerAddr, _: Instant) -> Stubborn {
        Stubborn::default()
    }
}

/// The child's part: a worker with signal handling on `socket`, reporting how it ended.
fn run_worker_child(socket: &Path) {
    log_to_stderr();
    let listener = Listener::Unix(UnixListener::bind(socket).unwrap());
    let config = WorkerConfig {
        handle_signals: true,
        // Long enough that only the second signal can end the drain within the test.
        shutdown_deadline: Duration::from_secs(600),
        ..WorkerConfig::default()
    };
    let exit = run(listener, StubbornFactory, config).unwrap();
    println!("EXIT {exit:?}");
}

fn send_sigterm(pid: u32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed: {}", std::io::Error::last_os_error());
}

#[test]
fn a_second_stop_signal_drops_the_sessions_in_flight() {
    if let Some(socket) = child_socket() {
        return run_worker_child(&socket);
    }
    let socket = socket_path("signals");
    let mut child = spawn_child("a_second_stop_signal_drops_the_sessions_in_flight", &socket);
    let mut log_lines = BufReader::new(child.stderr.take().unwrap()).lines();

    let mut client = connect_when_ready(&socket);
    client.write_all(b"hello").unwrap();
    let mut started = [0u8; 7];
    client.read_exact(&mut started).unwrap();
    assert_eq!(&started, b"started");

    send_sigterm(child.id());
    let drain_started =
        log_lines.by_ref().map(Result::unwrap).find(|line| line.contains("no longer accepting"));
    assert!(drain_started.is_some(), "the child never logged the start of its drain");
    assert!(child.try_wait().unwrap().is_none(), "the child exited while a session was in flight");

    send_sigterm(child.id());
    let rest: Vec<String> = log_lines.map(Result::unwrap).collect();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(child.wait().unwrap().success(), "child failed; stderr: {rest:?}");
    let _ = std::fs::remove_file(&socket);

    assert!(
        rest.iter().any(|line| line.contains("another stop signal")),
        "the second signal was not what ended the drain: {rest:?}"
    );
    assert!(stdout.contains("EXIT DeadlineExpired { dropped: 1 }"), "child said: {stdout}");
    // The dropped session's connection is closed.
    let mut rest_of_stream = Vec::new();
    client.read_to_end(&mut rest_of_stream).unwrap();
    assert!(rest_of_stream.is_empty());
}
