//! Running out of file descriptors: the worker pauses accepting instead of spinning, and
//! serves the waiting clients once descriptors are free again. The descriptor limit is
//! process-wide, so the worker runs in a child process.
#![cfg(target_os = "linux")] // counts descriptors in /proc/self/fd

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use workers::{
    run, Action, ConnKey, Endpoint, Listener, PeerAddr, Session, SessionFactory, WorkerConfig,
};

use common::{
    child_socket, connect_when_ready, finish_child, follow_log, log_to_stderr, socket_path,
    spawn_child, ReplyingFactory,
};

const CLIENTS: usize = 6;
/// How many client connections the child can hold at once.
const SPARE_DESCRIPTORS: u64 = 2;

fn open_descriptors() -> u64 {
    // The directory handle itself is among the entries; it is closed again afterwards.
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1
}

fn limit_open_descriptors(limit: u64) {
    let rlimit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: current_hard_limit() };
    // SAFETY: setrlimit only reads the struct passed by reference, which outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) };
    assert_eq!(rc, 0, "setrlimit failed: {}", std::io::Error::last_os_error());
}

fn current_hard_limit() -> libc::rlim_t {
    let mut rlimit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct passed by reference, which outlives the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) };
    assert_eq!(rc, 0, "getrlimit failed: {}", std::io::Error::last_os_error());
    rlimit.rlim_max
}

/// Answers the peer's bytes with their reverse.
fn reverse(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

/// The child's part: a worker whose process can hold only a couple of client connections.
fn run_worker_child(socket: &Path) {
    log_to_stderr();
    let listener = Listener::Unix(UnixListener::bind(socket).unwrap());
    // The parent closes our stdin once every client was served.
    let parent_watch = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    // `run` adds one descriptor of its own, the epoll instance.
    limit_open_descriptors(open_descriptors() + 1 + SPARE_DESCRIPTORS);
    let config = WorkerConfig {
        handle_signals: false,
        accept_pause: Duration::from_millis(20),
        parent_watch: Some(parent_watch),
        ..WorkerConfig::default()
    };
    let exit = run(listener, ReplyingFactory(reverse), config).unwrap();
    println!("EXIT {exit:?}");
}

#[test]
fn pauses_accepting_when_out_of_descriptors_and_serves_everyone_later() {
    if let Some(socket) = child_socket() {
        return run_worker_child(&socket);
    }
    let socket = socket_path("fd-exhaustion");
    let mut child =
        spawn_child("pauses_accepting_when_out_of_descriptors_and_serves_everyone_later", &socket);
    let log_lines = follow_log(&mut child);

    // All clients connect before any is served: the listen backlog holds them while the
    // child runs out of descriptors accepting them.
    let clients: Vec<_> = (0..CLIENTS).map(|_| connect_when_ready(&socket)).collect();
    // Each client hangs up after its answer, which frees a descriptor in the child.
    for (n, mut client) in clients.into_iter().enumerate() {
        client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let request = format!("client {n}");
        client.write_all(request.as_bytes()).unwrap();
        let mut answer = vec![0; request.len()];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(answer, request.bytes().rev().collect::<Vec<_>>());
    }
    drop(child.stdin.take()); // the stop request
    let (stdout, log) = finish_child(child, log_lines, &socket);

    assert!(stdout.contains("EXIT Drained"), "child said: {stdout}");
    assert!(
        log.iter()
            .any(|line| line.contains("Too many open files") && line.contains("pausing accepts")),
        "the child never paused accepting: {log:?}"
    );
}

/// Connects out as soon as its client is accepted, having taken every descriptor left, and
/// tells the client how that went.
struct ConnectOut {
    actions: Vec<Action>,
    finished: bool,
    hoard: Vec<std::fs::File>,
}

const OUTBOUND: ConnKey = ConnKey(1);

impl Session for ConnectOut {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], _: Instant) {}
    fn handle_connected(&mut self, _: ConnKey, result: std::io::Result<()>, _: Instant) {
        let answer = match result {
            Ok(()) => "connected".to_string(),
            Err(e) => format!("connect failed: {e}"),
        };
        self.hoard.clear();
        self.actions.push(Action::Close { conn: ConnKey::PEER });
        self.actions.push(Action::Send { conn: ConnKey::PEER, bytes: answer.into_bytes() });
        self.finished = true;
    }
    fn handle_closed(&mut self, conn: ConnKey, _: Option<std::io::Error>, _: Instant) {
        self.finished |= conn == ConnKey::PEER;
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

struct ConnectOutFactory(std::path::PathBuf);

impl SessionFactory for ConnectOutFactory {
    type Session = ConnectOut;
    fn new_session(&mut self, _: &PeerAddr, _: Instant) -> ConnectOut {
        let connect = Action::Connect {
            conn: OUTBOUND,
            endpoint: Endpoint::Unix(self.0.clone()),
            write_timeout: None,
            reuse: None,
        };
        let mut hoard = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            hoard.push(file);
        }
        ConnectOut { actions: vec![connect], finished: false, hoard }
    }
}

/// The child's part: a worker whose sessions find no descriptor left to connect out.
fn run_connecting_worker_child(socket: &Path) {
    log_to_stderr();
    let listener = Listener::Unix(UnixListener::bind(socket).unwrap());
    let parent_watch = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    // Room for the epoll instance and the client; the session takes the rest.
    limit_open_descriptors(open_descriptors() + 16);
    let config = WorkerConfig {
        handle_signals: false,
        accept_pause: Duration::from_millis(20),
        parent_watch: Some(parent_watch),
        ..WorkerConfig::default()
    };
    let target = socket.with_extension("nowhere");
    let exit = run(listener, ConnectOutFactory(target), config).unwrap();
    println!("EXIT {exit:?}");
}

#[test]
fn a_connect_out_of_descriptors_fails_the_session_and_pauses_accepting() {
    if let Some(socket) = child_socket() {
        return run_connecting_worker_child(&socket);
    }
    let socket = socket_path("fd-exhaustion-connect");
    let mut child =
        spawn_child("a_connect_out_of_descriptors_fails_the_session_and_pauses_accepting", &socket);
    let log_lines = follow_log(&mut child);

    let mut client = connect_when_ready(&socket);
    client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    drop(child.stdin.take()); // the stop request
    let (stdout, log) = finish_child(child, log_lines, &socket);

    assert!(
        answer.starts_with("connect failed: Too many open files"),
        "the session heard: {answer:?}; child log: {log:?}"
    );
    assert!(stdout.contains("EXIT Drained"), "child said: {stdout}");
    assert!(
        log.iter().any(|line| line.contains("connecting to")
            && line.contains("Too many open files")
            && line.contains("pausing accepts")),
        "the child did not pause accepting after the failed connect: {log:?}"
    );
}
