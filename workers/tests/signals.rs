//! Stop signals. Signal handlers are process-wide, so the worker runs in a child process: this
//! test binary re-runs itself with an environment variable that selects the child's part.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use workers::{run, Listener, WorkerConfig};

use common::{
    child_socket, connect_when_ready, finish_child, follow_log, log_to_stderr, socket_path,
    spawn_child, ReplyingFactory,
};

/// Says "started" to whatever the peer sends; runs until the peer hangs up.
fn started(_: &[u8]) -> Vec<u8> {
    b"started".to_vec()
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
    let exit = run(listener, ReplyingFactory(started), config).unwrap();
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
    let mut log_lines = follow_log(&mut child);

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
    let (stdout, rest) = finish_child(child, log_lines, &socket);

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
