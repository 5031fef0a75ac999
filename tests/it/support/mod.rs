//! Helpers shared by the integration tests (std, tempfile and nix), `crate::support` of
//! the one test binary (tests/it/main.rs). Every process a test starts is
//! wrapped in a [`ChildGuard`], which kills it when the test ends, pass or panic; every
//! file goes into a [`TempDir`], removed the same way. Waiting is done by polling a
//! condition against a deadline ([`wait_for`]), never by sleeping a fixed time.

pub(crate) mod host;
pub(crate) mod milter;
pub(crate) mod packaged_milters;
pub(crate) mod postfix;
pub(crate) mod processes;
pub(crate) mod scenario;

pub(crate) use processes::{
    children_of, entry_field, getent, group_id, is_alive, kill, live_processes_of, processes_with,
    real_uid, require_root, running_as_root, status_field, user_id,
};

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that normally takes milliseconds.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// The binaries under test.
pub(crate) const TEST_CLIENT: &str = env!("CARGO_BIN_EXE_milter-test-client");
pub(crate) const TEST_SERVER: &str = env!("CARGO_BIN_EXE_milter-test-server");
pub(crate) const MANAGER: &str = env!("CARGO_BIN_EXE_milter-manager");
pub(crate) const CTL: &str = env!("CARGO_BIN_EXE_milter-manager-ctl");
pub(crate) const PERFORMANCE_CHECK: &str = env!("CARGO_BIN_EXE_milter-performance-check");

/// `TIMEOUT` from now.
pub(crate) fn deadline() -> Instant {
    Instant::now() + TIMEOUT
}

/// A file of the source tree, e.g. `source_path("tests/peers/x.lua")`.
pub(crate) fn source_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Polls `condition` every 10 ms until it holds (true) or `deadline` passes (false).
/// The condition is checked once more at the deadline, so a slow machine only costs time.
pub(crate) fn wait_for(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return condition();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
/// Prefer letting the program bind port 0 itself when it can report the port it got.
pub(crate) fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`. The probe connects
/// and closes at once, so the listener sees one empty connection.
pub(crate) fn accepts_tcp(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

/// Writes `text` to `path`, creating the directories above it.
pub(crate) fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a file in a directory"))
        .unwrap_or_else(|e| panic!("create the directory of {}: {e}", path.display()));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A mail log of one session's end statistics line, with permissions `mode`: what the
/// packages' log analyzer jobs are run on.
pub(crate) fn write_statistics_log(path: &Path, mode: u32) {
    write_file(
        path,
        "2026-12-02T10:00:00+00:00 mx milter-manager[1]: [statistics] \
         [session][end][end-of-message][pass][0.01](1)\n",
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The file's contents, or "" if it cannot be read (yet).
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// A fresh directory under the system temp dir, removed with its contents on drop.
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    /// `name` only makes the directory recognisable; the path is unique.
    pub(crate) fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mm-test-{name}-"))
            // The programs under test may run as another user (tempfile's default is 0700).
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .unwrap_or_else(|e| panic!("create a test directory for {name}: {e}"));
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

/// A child process that is killed (SIGKILL) and reaped when the guard is dropped.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Spawns `command`; panics with `name` and the reason if it cannot be started.
    pub(crate) fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name: name.to_string(), child }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited, without waiting.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// Waits until the process exits; panics if it is still running at `deadline`.
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> ExitStatus {
        let mut status = None;
        wait_for(deadline, || {
            status = self.exited();
            status.is_some()
        });
        status.unwrap_or_else(|| panic!("{} did not exit in time", self.name))
    }

    /// Sends `signal` (a name such as "TERM") unless the process has already exited.
    pub(crate) fn signal(&mut self, signal: &str) {
        if self.exited().is_some() {
            return; // reaped: the pid may belong to someone else by now
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill (package procps): {e}"));
        assert!(status.success(), "kill -{signal} {} ({}) failed", self.id(), self.name);
    }

    /// SIGTERM, then waits (until `TIMEOUT`) for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_until(deadline())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // A no-op for a child already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished command printed.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Everything, for assertion messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "exit: {}\n--- stdout:\n{}--- stderr:\n{}---",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion with no stdin, its output captured in files of `dir`
/// (`NAME.stdout`, `NAME.stderr`). Panics if it is still running after `timeout`, or if
/// it cannot be started (e.g. the program is not installed).
pub(crate) fn run(dir: &TempDir, name: &str, command: &mut Command, timeout: Duration) -> Finished {
    let stdout_path = dir.join(&format!("{name}.stdout"));
    command.stdout(File::create(&stdout_path).expect("create stdout file"));
    run_to_end(dir, name, command, timeout, &stdout_path)
}

/// [`run`] with standard output a pipe whose reader is gone, as `prog | head` leaves it once
/// `head` has its lines (Finished::stdout is empty).
pub(crate) fn run_with_stdout_closed(
    dir: &TempDir,
    name: &str,
    command: &mut Command,
    timeout: Duration,
) -> Finished {
    let (reader, writer) = nix::unistd::pipe().expect("create a pipe");
    drop(reader);
    command.stdout(Stdio::from(writer));
    let nothing = dir.join(&format!("{name}.stdout"));
    File::create(&nothing).expect("create stdout file");
    run_to_end(dir, name, command, timeout, &nothing)
}

/// What a tool whose reader went away must do: end with status 0 (as `| head` expects),
/// without a panic on standard error.
pub(crate) fn assert_ended_quietly(out: &Finished) {
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    assert_eq!(out.status.code(), Some(0), "{}", out.describe());
}

fn run_to_end(
    dir: &TempDir,
    name: &str,
    command: &mut Command,
    timeout: Duration,
    stdout_path: &Path,
) -> Finished {
    let stderr_path = dir.join(&format!("{name}.stderr"));
    command.stdin(Stdio::null()).stderr(File::create(&stderr_path).expect("create stderr file"));
    let mut child = ChildGuard::spawn(name, command);
    let mut status = None;
    wait_for(Instant::now() + timeout, || {
        status = child.exited();
        status.is_some()
    });
    let stdout = read_lossy(stdout_path);
    let stderr = read_lossy(&stderr_path);
    let Some(status) = status else {
        panic!(
            "{name} still running after {timeout:?}\n--- stdout:\n{stdout}--- stderr:\n{stderr}---"
        );
    };
    Finished { status, stdout, stderr }
}

/// milter-manager-ctl with `args`, to completion (a reload answers once every worker has
/// taken the new configuration, hence more than `TIMEOUT`).
pub(crate) fn ctl(dir: &TempDir, name: &str, args: &[&str]) -> Finished {
    run(dir, name, Command::new(CTL).args(args), Duration::from_secs(30))
}

/// A running `milter-test-client`: its report (standard output) goes to one file, its
/// log to another, so the report holds only the `[N] ...` lines.
pub(crate) struct TestClient {
    /// The spec it listens on, as its "listening on" log line gives it (with the
    /// real port when it was started on port 0).
    pub spec: String,
    pub process: ChildGuard,
    report_path: PathBuf,
    log_path: PathBuf,
}

impl TestClient {
    /// Starts milter-test-client on `spec` with `extra` arguments and waits for its
    /// "listening on" log line (and, for a unix socket, for the socket file). Waiting
    /// on the log rather than probing the socket keeps session numbers starting at 1.
    pub(crate) fn start(dir: &TempDir, spec: &str, extra: &[&str]) -> Self {
        let report_path = dir.join("client-report.txt");
        let log_path = dir.join("client.log");
        let mut command = Command::new(TEST_CLIENT);
        command
            .args(["-s", spec, "--log-path"])
            .arg(&log_path)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(File::create(&report_path).expect("create report file"))
            .stderr(File::create(dir.join("client.stderr")).expect("create stderr file"));
        let mut process = ChildGuard::spawn("milter-test-client", &mut command);
        let mut listening = None;
        let mut exited = None;
        wait_for(deadline(), || {
            listening = read_lossy(&log_path).lines().find_map(|line| {
                let (_, rest) = line.split_once("listening on ")?;
                Some(rest.trim().to_string())
            });
            exited = process.exited();
            listening.is_some() || exited.is_some()
        });
        let Some(listening) = listening else {
            panic!(
                "milter-test-client -s {spec} did not report listening (exit: {exited:?})\n\
                 --- log:\n{}--- stderr:\n{}---",
                read_lossy(&log_path),
                read_lossy(&dir.join("client.stderr"))
            );
        };
        if let Some(path) = listening.strip_prefix("unix:").or(listening.strip_prefix("local:")) {
            let path = PathBuf::from(path);
            assert!(
                wait_for(deadline(), || path.exists()),
                "socket {} never appeared",
                path.display()
            );
        }
        Self { spec: listening, process, report_path, log_path }
    }

    /// Listens on `unix:DIR/client.sock`.
    pub(crate) fn start_unix(dir: &TempDir, extra: &[&str]) -> Self {
        let spec = format!("unix:{}", dir.join("client.sock").display());
        Self::start(dir, &spec, extra)
    }

    /// Listens on a port of 127.0.0.1 picked by the kernel (no race with other tests);
    /// [`TestClient::port`] tells which.
    pub(crate) fn start_tcp(dir: &TempDir, extra: &[&str]) -> Self {
        Self::start(dir, "inet:0@[127.0.0.1]", extra)
    }

    /// The TCP port of an `inet:PORT@...` spec.
    pub(crate) fn port(&self) -> u16 {
        let port = self
            .spec
            .strip_prefix("inet:")
            .and_then(|rest| rest.split('@').next())
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no TCP port in {:?}", self.spec));
        assert_ne!(port, 0, "milter-test-client reported port 0 instead of the port it bound");
        port
    }

    /// The report so far.
    pub(crate) fn report(&self) -> String {
        read_lossy(&self.report_path)
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Stops it with SIGTERM; returns its exit status and complete report.
    pub(crate) fn stop(mut self) -> (ExitStatus, String) {
        let status = self.process.terminate();
        (status, self.report())
    }
}

/// Fails the test (never skips it) when a peer program the test suite relies on is not
/// installed; `scripts/install-test-deps.sh` installs them all.
pub(crate) fn require_program(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (scripts/install-test-deps.sh)"
    );
}

/// How [`ManagerProcess::start_with`] starts milter-manager.
#[derive(Default)]
pub(crate) struct ManagerOptions<'a> {
    /// Where `manager.sock` goes (default: the test's directory).
    pub socket_dir: Option<&'a Path>,
    /// More command-line arguments.
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    /// A log line that says it is ready (default: the socket file exists).
    pub ready_line: Option<&'a str>,
    /// Leave the user it serves as to the configuration and its defaults. Without it, it
    /// serves as the test's own user (`--user-name`): started as root it would otherwise
    /// switch to nobody, who may not write the files of the test's directory.
    pub user_from_config: bool,
}

/// The name of the user running the tests.
pub(crate) fn own_user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(out.stdout).expect("a user name").trim().to_string()
}

/// A running milter-manager on `unix:<dir>/manager.sock`, with `config` as
/// `<dir>/conf/milter-manager.toml` and everything logged to `<dir>/manager.log`.
pub(crate) struct ManagerProcess {
    pub process: ChildGuard,
    pub conf: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl ManagerProcess {
    pub(crate) fn start(dir: &TempDir, config: &str) -> Self {
        Self::start_with(dir, config, &ManagerOptions::default())
    }

    /// Starts it and waits until it is ready; panics with its stderr and log if it is not.
    pub(crate) fn start_with(dir: &TempDir, config: &str, options: &ManagerOptions) -> Self {
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).expect("create the configuration directory");
        std::fs::write(conf.join("milter-manager.toml"), config).expect("write the configuration");
        let socket = options.socket_dir.unwrap_or(dir.path()).join("manager.sock");
        let log = dir.join("manager.log");
        let mut command = Command::new(MANAGER);
        command
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .arg("--log-path")
            .arg(&log)
            .args(["--log-level", "all", "--no-syslog"]);
        if !options.user_from_config {
            command.args(["--user-name", &own_user_name()]);
        }
        // Its private directory for large bodies goes with the test's files, not into /tmp
        // (a manager killed at the end of a test cannot remove it).
        command
            .args(options.args)
            .env("TMPDIR", dir.path())
            .envs(options.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("manager.stdout")).expect("create stdout file"))
            .stderr(File::create(dir.join("manager.stderr")).expect("create stderr file"));
        let mut process = ChildGuard::spawn("milter-manager", &mut command);
        let ready = || match options.ready_line {
            Some(line) => read_lossy(&log).contains(line),
            // The socket file exists from its bind, a moment before it listens: the log
            // line comes after both.
            None => socket.exists() && read_lossy(&log).contains("] listening on "),
        };
        let up = wait_for(deadline(), || ready() || process.exited().is_some());
        assert!(
            up && ready() && socket.exists(),
            "milter-manager did not start\n--- stderr:\n{}--- log:\n{}",
            read_lossy(&dir.join("manager.stderr")),
            read_lossy(&log)
        );
        Self { process, conf, socket, log }
    }

    /// Starts it and waits until `line` is in its log ("supervising": its workers run;
    /// "listening on", with `n_workers = 0`).
    pub(crate) fn start_until(dir: &TempDir, config: &str, line: &str) -> Self {
        Self::start_with(
            dir,
            config,
            &ManagerOptions { ready_line: Some(line), ..Default::default() },
        )
    }

    pub(crate) fn spec(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Its pid: the supervisor's when it runs in the foreground.
    pub(crate) fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The supervisor's live children (zombies included: they are still its children).
    pub(crate) fn workers(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Waits until exactly `n` workers run and returns them.
    pub(crate) fn wait_for_workers(&self, n: usize) -> Vec<u32> {
        let mut workers = Vec::new();
        let ready = wait_for(deadline(), || {
            workers = self.workers();
            workers.len() == n
        });
        assert!(ready, "expected {n} workers, have {workers:?}\n--- log:\n{}", self.log());
        workers
    }

    pub(crate) fn signal(&mut self, signal: &str) {
        self.process.signal(signal);
    }

    /// Replaces milter-manager.toml.
    pub(crate) fn write_config(&self, config: &str) {
        std::fs::write(self.conf.join("milter-manager.toml"), config).unwrap();
    }

    /// The privilege-mode launcher's socket, from its start-up log line.
    pub(crate) fn launcher_socket(&self) -> PathBuf {
        let log = self.log();
        let line = log.lines().find(|line| line.contains("launcher started (pid"));
        let path = line.and_then(|line| line.split(" on ").last());
        PathBuf::from(path.unwrap_or_else(|| panic!("no launcher in the log:\n{log}")).trim())
    }

    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log)
    }
}
