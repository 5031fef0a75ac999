//! End-to-end tests of the forking parts, run against the `echo_daemon` example: the test
//! process itself never forks (libtest is multi-threaded). Readiness is polled with deadlines;
//! every started daemon sits in a guard that kills it (and its workers) if a test fails.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(15);

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn echo_daemon() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join("echo_daemon");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test -p supervisor` (which builds the \
         examples), or `cargo build -p supervisor --example echo_daemon` first",
        path.display()
    );
    path
}

struct TestDir(PathBuf);

impl TestDir {
    fn new(label: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("supervisor-it-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A started echo_daemon. On drop it kills the supervisor and every worker it finds, and
/// prints the daemon's log when the test failed.
struct Daemon {
    foreground: Option<Child>,
    supervisor: Option<i32>,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join("daemon.log");
        let child = Command::new(echo_daemon())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start echo_daemon");
        Self { supervisor: Some(child.id() as i32), foreground: Some(child), log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the foreground process to exit.
    fn wait_foreground(&mut self) -> ExitStatus {
        let child = self.foreground.as_mut().expect("foreground process");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "echo_daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.supervisor {
            for worker in children_of(pid) {
                let _ = kill(Pid::from_raw(worker), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(mut child) = self.foreground.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- echo_daemon log ---\n{}", self.log());
        }
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (state, ppid) from /proc/PID/stat; the command name may contain spaces and parentheses.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Alive and not a zombie (orphans may stay zombies here: pid 1 may not reap).
fn is_running(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z')
}

/// Running processes whose parent is `parent`.
fn children_of(parent: i32) -> BTreeSet<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(stat(pid), Some((state, ppid)) if ppid == parent && state != 'Z'))
        .collect()
}

fn echo(socket: &Path, text: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{text}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// The pid in an echo reply "pid 123: text\n".
fn served_by(reply: &str) -> i32 {
    reply
        .strip_prefix("pid ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
}

fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The real, effective, saved and filesystem uids (or gids) from /proc/PID/status.
fn ids(pid: i32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().map(|id| id.parse().unwrap()).collect()
}

#[test]
fn workers_share_the_listener_are_replaced_and_stop_on_sigterm() {
    let dir = TestDir::new("prefork");
    let socket = dir.join("echo.sock");
    let pid_file = dir.join("echo.pid");
    let mut daemon = Daemon::start(
        &dir,
        &[socket.to_str().unwrap(), "3", "--pid-file", pid_file.to_str().unwrap()],
        &[],
    );
    let supervisor = daemon.supervisor.unwrap();

    wait_until("3 workers run", || children_of(supervisor).len() == 3);
    wait_until("the pid file names the supervisor", || {
        read_pid_file(&pid_file) == Some(supervisor)
    });
    let workers = children_of(supervisor);

    // Every answer comes from a worker, through the one shared listener.
    for i in 0..10 {
        let reply = echo(&socket, &format!("hello {i}")).unwrap();
        assert!(reply.ends_with(&format!(": hello {i}\n")), "{reply:?}");
        assert!(workers.contains(&served_by(&reply)), "{reply:?} not from {workers:?}");
    }

    // A killed worker is replaced by a new process.
    let victim = *workers.first().unwrap();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    wait_until("the killed worker is replaced", || {
        let now = children_of(supervisor);
        now.len() == 3 && !now.contains(&victim)
    });
    let replaced = children_of(supervisor);
    let newcomer = *replaced.difference(&workers).next().unwrap();
    wait_until("the new worker answers too", || {
        (0..20).any(|_| echo(&socket, "again").map(|r| served_by(&r)).ok() == Some(newcomer))
    });
    assert!(daemon.log().contains("was killed by SIGKILL"));

    // SIGHUP is logged; SIGUSR1 is forwarded. Neither kills anybody.
    kill(Pid::from_raw(supervisor), Signal::SIGHUP).unwrap();
    kill(Pid::from_raw(supervisor), Signal::SIGUSR1).unwrap();
    wait_until("SIGHUP is logged", || daemon.log().contains("SIGHUP received"));
    echo(&socket, "after signals").unwrap();
    assert_eq!(children_of(supervisor), replaced);

    // SIGTERM: everything stops, cleans up and exits 0.
    kill(Pid::from_raw(supervisor), Signal::SIGTERM).unwrap();
    let status = daemon.wait_foreground();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    for worker in &replaced {
        assert!(!is_running(*worker), "worker {worker} outlived the supervisor");
    }
    assert!(!socket.exists(), "socket left behind");
    assert!(!pid_file.exists(), "pid file left behind");
}

#[test]
fn a_single_process_serves_itself_without_workers() {
    let dir = TestDir::new("single");
    let socket = dir.join("echo.sock");
    let mut daemon = Daemon::start(&dir, &[socket.to_str().unwrap(), "0"], &[]);
    let process = daemon.supervisor.unwrap();

    wait_until("the socket accepts", || echo(&socket, "x").is_ok());
    assert_eq!(served_by(&echo(&socket, "hi").unwrap()), process);
    assert!(children_of(process).is_empty());

    // Reload and log-reopen requests must not kill it (their default action would).
    kill(Pid::from_raw(process), Signal::SIGHUP).unwrap();
    kill(Pid::from_raw(process), Signal::SIGUSR1).unwrap();
    assert_eq!(served_by(&echo(&socket, "still here").unwrap()), process);

    kill(Pid::from_raw(process), Signal::SIGTERM).unwrap();
    assert_eq!(daemon.wait_foreground().code(), Some(0));
    assert!(!socket.exists());
}

#[test]
fn a_crashing_worker_is_throttled_not_fork_bombed() {
    let dir = TestDir::new("crash");
    let socket = dir.join("echo.sock");
    let mut daemon =
        Daemon::start(&dir, &[socket.to_str().unwrap(), "1"], &[("ECHO_DAEMON_EXIT_AT_ONCE", "3")]);
    wait_until("the second back-off step", || daemon.log().contains("restarting it in 2s"));
    let log = daemon.log();
    // Started at 0 s, after 1 s, and (not yet) after 2 more seconds.
    assert_eq!(log.matches("started worker 0").count(), 2, "{log}");
    assert!(log.contains("exited with code 3"), "{log}");

    kill(Pid::from_raw(daemon.supervisor.unwrap()), Signal::SIGTERM).unwrap();
    assert_eq!(daemon.wait_foreground().code(), Some(0));
}

#[test]
fn daemon_mode_returns_only_once_the_socket_accepts() {
    let dir = TestDir::new("daemon");
    let socket = dir.join("echo.sock");
    let pid_file = dir.join("echo.pid");
    let mut launcher = Daemon::start(
        &dir,
        &[socket.to_str().unwrap(), "2", "--daemon", "--pid-file", pid_file.to_str().unwrap()],
        &[],
    );
    let launcher_pid = launcher.supervisor.take().unwrap();
    let status = launcher.wait_foreground();
    assert_eq!(status.code(), Some(0), "{}", launcher.log());

    // Ready means ready: no retry needed.
    let supervisor = read_pid_file(&pid_file).expect("the pid file exists once ready");
    launcher.supervisor = Some(supervisor);
    assert_ne!(supervisor, launcher_pid, "the daemon is a new process");
    let reply = echo(&socket, "ready?").expect("the socket accepts once ready");
    assert!(children_of(supervisor).contains(&served_by(&reply)));
    assert_eq!(children_of(supervisor).len(), 2);
    let (_, parent) = stat(supervisor).unwrap();
    assert_ne!(parent, std::process::id() as i32, "detached from the test");

    kill(Pid::from_raw(supervisor), Signal::SIGTERM).unwrap();
    wait_until("the daemon exits", || !is_running(supervisor));
    wait_until("the pid file is removed", || !pid_file.exists());
    assert!(!socket.exists());
}

#[test]
fn daemon_mode_reports_a_locked_pid_file_to_the_shell() {
    let dir = TestDir::new("locked");
    let socket = dir.join("echo.sock");
    let pid_path = dir.join("echo.pid");
    let mut holder = File::create(&pid_path).unwrap();
    holder.write_all(b"4242\n").unwrap();
    let _lock = nix::fcntl::Flock::lock(holder, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| errno)
        .unwrap();

    let mut launcher = Daemon::start(
        &dir,
        &[socket.to_str().unwrap(), "2", "--daemon", "--pid-file", pid_path.to_str().unwrap()],
        &[],
    );
    launcher.supervisor = None;
    let status = launcher.wait_foreground();
    assert_ne!(status.code(), Some(0));
    let expected = format!(
        "echo_daemon: pid file {} is locked by a running process (pid 4242)\n",
        pid_path.display()
    );
    let log = launcher.log();
    assert!(log.ends_with(&expected), "{log:?}");
    assert_eq!(log.matches("is locked by").count(), 1, "one line: {log:?}");
    assert_eq!(fs::read_to_string(&pid_path).unwrap(), "4242\n");
    wait_until("the failed daemon removes its socket", || !socket.exists());
}

#[test]
fn workers_run_as_the_requested_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("user nobody");
    let dir = TestDir::new("user");
    // The unprivileged supervisor writes the pid file and removes both files on exit.
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("echo.sock");
    let pid_file = dir.join("echo.pid");
    let mut daemon = Daemon::start(
        &dir,
        &[
            socket.to_str().unwrap(),
            "2",
            "--user",
            "nobody",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        &[],
    );
    let supervisor = daemon.supervisor.unwrap();
    wait_until("2 workers run", || children_of(supervisor).len() == 2);
    wait_until("the pid file is written", || pid_file.exists());

    let uid = nobody.uid.as_raw();
    let gid = nobody.gid.as_raw();
    for pid in children_of(supervisor).into_iter().chain([supervisor]) {
        assert_eq!(ids(pid, "Uid:"), [uid; 4], "uids of {pid}");
        assert_eq!(ids(pid, "Gid:"), [gid; 4], "gids of {pid}");
        assert!(!ids(pid, "Groups:").contains(&0), "root group kept by {pid}");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&socket).unwrap().uid(), uid, "socket owner");
    echo(&socket, "as nobody").unwrap();

    kill(Pid::from_raw(supervisor), Signal::SIGTERM).unwrap();
    assert_eq!(daemon.wait_foreground().code(), Some(0), "{}", daemon.log());
    assert!(!socket.exists());
    assert!(!pid_file.exists());
}

#[test]
fn an_unknown_user_is_refused_before_serving() {
    let dir = TestDir::new("nouser");
    let socket = dir.join("echo.sock");
    let mut daemon = Daemon::start(
        &dir,
        &[socket.to_str().unwrap(), "1", "--user", "no-such-user-for-supervisor-tests"],
        &[],
    );
    let status = daemon.wait_foreground();
    assert_eq!(status.code(), Some(1));
    assert!(daemon
        .log()
        .ends_with("echo_daemon: unknown user \"no-such-user-for-supervisor-tests\"\n"));
    assert!(!socket.exists());
}

#[test]
fn workers_stop_when_the_supervisor_dies() {
    let dir = TestDir::new("orphans");
    let socket = dir.join("echo.sock");
    let daemon = Daemon::start(&dir, &[socket.to_str().unwrap(), "2"], &[]);
    let supervisor = daemon.supervisor.unwrap();
    wait_until("2 workers run", || children_of(supervisor).len() == 2);
    let workers = children_of(supervisor);

    // No SIGTERM reaches the workers: they see EOF on their pipe.
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).unwrap();
    wait_until("the orphaned workers exit", || workers.iter().all(|&pid| !is_running(pid)));
}
