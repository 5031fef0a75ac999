//! milter-test-client's command line and process behaviour, through the real binary:
//! exit status and one-line reasons for bad input, workers, daemon mode, privileges.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{
    children_of, group_id, kill, processes_with, status_field, user_id, ChildGuard,
    TEST_CLIENT as CLIENT, TEST_SERVER as SERVER,
};

fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    assert!(support::wait_for(support::deadline(), condition), "timed out waiting for {what}");
}

/// Runs the client expecting it to fail at start; returns its stderr.
fn failing_start(args: &[&str]) -> String {
    let output = Command::new(CLIENT).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success(), "{args:?} should fail");
    String::from_utf8(output.stderr).unwrap()
}

fn session_passes(socket: &Path) -> bool {
    let output =
        Command::new(SERVER).args(["-s", &format!("unix:{}", socket.display())]).output().unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains("status: pass")
}

#[test]
fn bad_input_gets_a_one_line_reason() {
    let dir = support::TempDir::new("bad-input");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-s".into(), "tcp:25".into()],
            "invalid connection spec \"tcp:25\": unknown type \"tcp\"",
        ),
        (vec!["-s".into(), "inet:99999".into()], "port 99999 is out of range"),
        (
            vec!["-s".into(), format!("unix:{}/missing/dir/x.sock", dir.path().display())],
            "missing/dir/x.sock",
        ),
        (vec!["--n-workers".into(), "1001".into()], "1001 is not in 0..=1000"),
        (vec!["--event-loop-backend".into(), "epoll".into()], "invalid value 'epoll'"),
        (vec!["--log-level".into(), "error|loud".into()], "unknown log level \"loud\""),
        (vec!["--packet-buffer-size".into(), "lots".into()], "is not a size"),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = failing_start(&args);
        // The first line says what is wrong (the argument parser adds a hint line after).
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let stderr = failing_start(&["-s", &format!("inet:{port}@[127.0.0.1]")]);
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

#[test]
fn a_socket_another_client_listens_on_is_refused_and_kept() {
    let dir = support::TempDir::new("client-live-socket");
    let first = support::TestClient::start_unix(&dir, &[]);
    let stderr = failing_start(&["-s", &first.spec]);
    let path = first.spec.strip_prefix("unix:").unwrap();
    assert_eq!(
        stderr,
        format!(
            "milter-test-client: cannot bind {}: another process is listening on it\n",
            first.spec
        )
    );
    assert!(session_passes(Path::new(path)), "the first client still serves");
}

#[test]
fn help_and_version() {
    let help = Command::new(CLIENT).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for option in [
        "--connection-spec",
        "--log-level",
        "--log-path",
        "--verbose",
        "--syslog",
        "--no-report-request",
        "--report-memory-profile",
        "--daemon",
        "--user",
        "--group",
        "--unix-socket-group",
        "--n-workers",
        "--event-loop-backend",
        "--packet-buffer-size",
        "--version",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    assert!(help.contains("mio event loop"), "--help explains the backends: {help}");
    let version = Command::new(CLIENT).arg("--version").output().unwrap();
    assert!(String::from_utf8(version.stdout).unwrap().starts_with("milter-test-client "));
}

#[test]
fn workers_share_the_listener_and_stop_on_sigterm() {
    let dir = support::TempDir::new("workers");
    let socket = dir.path().join("w.sock");
    let mut command = Command::new(CLIENT);
    command
        .args([
            "-s",
            &format!("unix:{}", socket.display()),
            "--n-workers",
            "3",
            "--no-report-request",
        ])
        .args(["--log-path", &dir.path().join("log").display().to_string()]);
    let mut guard = ChildGuard::spawn("milter-test-client", &mut command);
    let pid = guard.id();
    wait_for("3 workers", || children_of(pid).len() == 3);
    wait_for("the socket", || socket.exists());
    for _ in 0..6 {
        assert!(session_passes(&socket));
    }
    kill(pid, "TERM");
    let status = guard.wait_until(support::deadline());
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn report_memory_profile_prints_after_each_session() {
    let dir = support::TempDir::new("memory");
    let socket = dir.path().join("m.sock");
    let report = dir.path().join("report");
    let mut command = Command::new(CLIENT);
    command
        .args([
            "-s",
            &format!("unix:{}", socket.display()),
            "--report-memory-profile",
            "--no-report-request",
        ])
        .args(["--log-path", &dir.path().join("log").display().to_string()])
        .env("MILTER_MEMORY_PROFILE", "yes")
        .stdout(std::fs::File::create(&report).unwrap());
    let _guard = ChildGuard::spawn("milter-test-client", &mut command);
    wait_for("the socket", || socket.exists());
    assert!(session_passes(&socket));
    wait_for("the memory line", || std::fs::read_to_string(&report).unwrap().contains("memory:"));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("[1] memory: VmSize=") || text.contains("VmRSS="), "{text}");
    assert!(text.contains("VmHWM="), "MILTER_MEMORY_PROFILE=yes adds detail: {text}");
}

#[test]
fn daemon_returns_once_accepting_and_drops_privileges() {
    let dir = support::TempDir::new("daemon");
    // The socket directory must be usable by the unprivileged user.
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let running_as_root = support::running_as_root();
    let socket = run_dir.join("d.sock");
    let mut args = vec![
        "-s".to_string(),
        format!("unix:{}", socket.display()),
        "--daemon".into(),
        "--n-workers".into(),
        "1".into(),
        "--no-report-request".into(),
        "--unix-socket-group".into(),
        "daemon".into(),
    ];
    if running_as_root {
        Command::new("chmod").args(["777", &run_dir.display().to_string()]).status().unwrap();
        args.extend(["--user".into(), "nobody".into(), "--group".into(), "nogroup".into()]);
    }
    let status = Command::new(CLIENT).args(&args).status().unwrap();
    assert!(status.success(), "the launching process exits 0 once the daemon accepts");
    // Ready means ready: the socket accepts a session right away.
    assert!(socket.exists());
    assert!(session_passes(&socket));
    let meta = std::fs::metadata(&socket).unwrap();
    let daemon_gid = group_id("daemon");
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta).to_string(), daemon_gid);
    // Find the daemon: the process whose command line names this socket and has a worker child.
    let supervisor = find_process(&socket).expect("the daemon runs");
    let workers = children_of(supervisor);
    assert_eq!(workers.len(), 1);
    if running_as_root {
        let uid = status_field(workers[0], "Uid");
        assert!(uid.starts_with(&format!("{}\t", user_id("nobody"))), "worker uid line: {uid}");
    }
    kill(supervisor, "TERM");
    wait_for("the daemon to exit", || !Path::new(&format!("/proc/{supervisor}")).exists());
    assert!(!socket.exists());
}

fn find_process(socket: &Path) -> Option<u32> {
    let needle = socket.display().to_string();
    processes_with(&needle).into_iter().find(|pid| !children_of(*pid).is_empty())
}
