//! milter-manager's process model through the real binaries: workers replaced after a
//! crash, SIGHUP reloads by generation under load, a failing reload, privileges, socket and
//! pid file as root, the crash back-off, and `max_connections` over every worker. The load
//! comes from milter-performance-check; the child milters are milter-test-client or a small
//! milter written here. Processes are found through /proc.

use crate::support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use milter_manager::protocol::{
    Actions, Command as MilterCommand, ConnectAddress, Deframer, Negotiation, Reply, Steps,
};
use serde_json::Value;
use support::milter::{milter_session, serve_tcp};
use support::{
    children_of, ctl, deadline, getent, group_id, kill, read_lossy, require_root, status_field,
    user_id, wait_for, ChildGuard, ManagerOptions, ManagerProcess, TempDir, TestClient,
    PERFORMANCE_CHECK, TEST_SERVER,
};

fn child_config(spec: &str, manager_items: &str) -> String {
    format!("[manager]\n{manager_items}\n\n[milter.\"child\"]\nconnection_spec = \"{spec}\"\n")
}

/// milter-performance-check's counts: (sessions, completed, errors), read from its JSON.
struct Load {
    completed: usize,
    errors: usize,
    report: String,
}

/// Starts milter-performance-check against `spec`; its report goes to a file of `dir`.
fn start_load(
    dir: &TempDir,
    name: &str,
    spec: &str,
    mails: usize,
    concurrency: usize,
) -> ChildGuard {
    let mut command = Command::new(PERFORMANCE_CHECK);
    command
        .args(["--milter", spec, "--json", "--timeout", "30"])
        .args(["--n-mails", &mails.to_string()])
        .args(["--n-concurrent-connections", &concurrency.to_string()])
        .stdin(Stdio::null())
        .stdout(File::create(dir.join(&format!("{name}.json"))).unwrap())
        .stderr(File::create(dir.join(&format!("{name}.stderr"))).unwrap());
    ChildGuard::spawn("milter-performance-check", &mut command)
}

/// Waits for a load started with [`start_load`] and reads its counts.
fn finish_load(dir: &TempDir, name: &str, mut load: ChildGuard) -> Load {
    load.wait_until(Instant::now() + Duration::from_secs(180));
    let report = read_lossy(&dir.join(&format!("{name}.json")));
    let parsed: Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("the report is not JSON: {e}:\n{report}"));
    let count = |value: &Value| usize::try_from(value.as_u64().expect("a count")).unwrap();
    Load {
        completed: count(&parsed["completed"]),
        errors: count(&parsed["errors"]["count"]),
        report: format!(
            "{report}\n--- stderr:\n{}",
            read_lossy(&dir.join(&format!("{name}.stderr")))
        ),
    }
}

fn run_load(dir: &TempDir, name: &str, spec: &str, mails: usize, concurrency: usize) -> Load {
    let load = start_load(dir, name, spec, mails, concurrency);
    finish_load(dir, name, load)
}

fn session_passes(dir: &TempDir, name: &str, spec: &str) -> bool {
    let out =
        support::run(dir, name, Command::new(TEST_SERVER).args(["-s", spec]), support::TIMEOUT);
    out.status.success() && out.stdout.contains("status: pass")
}

// ---------------------------------------------------------------------------------------

#[test]
fn a_killed_worker_is_replaced_and_the_other_finishes_its_sessions() {
    let dir = TempDir::new("pm-kill");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let manager = ManagerProcess::start(&dir, &child_config(&client.spec, "n_workers = 2"));
    let workers = manager.wait_for_workers(2);

    let load = start_load(&dir, "load", &manager.spec(), 1000, 20);
    let busy = wait_for(deadline(), || manager.log().matches("[session][end]").count() >= 50);
    assert!(busy, "sessions run\n{}", manager.log());
    let victim = workers[0];
    let mut load = load;
    assert!(load.exited().is_none(), "the load still runs when the worker is killed");
    kill(victim, "KILL");
    let load = finish_load(&dir, "load", load);
    // Only the sessions in flight on the killed worker may fail (at most the concurrency).
    assert!(load.errors <= 20, "{}", load.report);
    assert_eq!(load.completed + load.errors, 1000, "{}", load.report);

    let mut replaced = Vec::new();
    let ok = wait_for(deadline(), || {
        replaced = manager.workers();
        replaced.len() == 2 && !replaced.contains(&victim) && replaced.contains(&workers[1])
    });
    assert!(ok, "a new worker replaces {victim}: {replaced:?}\n{}", manager.log());
    assert!(manager.log().contains(&format!("(pid {victim}) was killed by SIGKILL")));
    let after = run_load(&dir, "after", &manager.spec(), 40, 20);
    assert_eq!((after.completed, after.errors), (40, 0), "{}", after.report);
}

#[test]
fn twenty_reloads_under_load_lose_no_session_and_leave_only_the_last_generation() {
    let dir = TempDir::new("pm-reload");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let mut manager = ManagerProcess::start(&dir, &child_config(&client.spec, "n_workers = 2"));
    manager.wait_for_workers(2);

    // Every SIGHUP lands while a load runs: a load that ended is followed by another.
    let mut loads = vec![start_load(&dir, "load0", &manager.spec(), 2000, 10)];
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(100 + (i % 3) * 50));
        if loads.last_mut().unwrap().exited().is_some() {
            let name = format!("load{}", loads.len());
            loads.push(start_load(&dir, &name, &manager.spec(), 2000, 10));
        }
        manager.signal("HUP");
    }
    for (i, load) in loads.into_iter().enumerate() {
        let load = finish_load(&dir, &format!("load{i}"), load);
        assert_eq!((load.completed, load.errors), (2000, 0), "{}", load.report);
    }

    // The last generation's workers, as the supervisor logged them, and nothing else.
    let reloaded =
        wait_for(deadline(), || manager.log().contains("reloaded configuration (generation 21)"));
    assert!(reloaded, "{}", manager.log());
    let last: Vec<u32> = manager
        .log()
        .lines()
        .filter(|line| line.contains("started worker") && line.ends_with("generation 21)"))
        .map(|line| {
            let pid = line.split("(pid ").nth(1).unwrap().split(',').next().unwrap();
            pid.parse().unwrap()
        })
        .collect();
    assert_eq!(last.len(), 2, "{}", manager.log());
    let mut workers = Vec::new();
    let settled = wait_for(deadline(), || {
        workers = manager.workers();
        workers.len() == 2 && last.iter().all(|pid| workers.contains(pid))
    });
    assert!(settled, "children {workers:?}, last generation {last:?}\n{}", manager.log());
    for pid in workers {
        let state = status_field(pid, "State");
        assert!(!state.starts_with('Z'), "worker {pid} is a zombie: {state}");
    }
    assert!(session_passes(&dir, "after", &manager.spec()), "{}", manager.log());
}

#[test]
fn a_reload_with_an_error_keeps_the_running_configuration_and_says_where() {
    let dir = TempDir::new("pm-bad-reload");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let config = child_config(&client.spec, "n_workers = 1");
    let mut manager = ManagerProcess::start(&dir, &config);
    let workers = manager.wait_for_workers(1);

    manager.write_config(&format!("{config}fallback_status = \"maybe\"\n"));
    manager.signal("HUP");
    let path = manager.conf.join("milter-manager.toml");
    let wanted = format!("reload failed; keeping the running configuration: {}:6:", path.display());
    assert!(wait_for(deadline(), || manager.log().contains(&wanted)), "{}", manager.log());
    let line = manager.log().lines().find(|l| l.contains(&wanted)).unwrap().to_string();
    assert!(line.contains("fallback_status"), "{line}");

    assert!(session_passes(&dir, "after", &manager.spec()), "{}", manager.log());
    assert_eq!(manager.workers(), workers, "the running workers stay");
    assert!(!manager.log().contains("generation 2"), "{}", manager.log());
}

#[test]
fn as_root_workers_run_as_the_effective_user_with_the_configured_socket_and_pid_file() {
    require_root();
    let dir = TempDir::new("pm-root");
    // The unprivileged supervisor removes the socket and the pid file here at the end.
    let run_dir = dir.join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pid_file = run_dir.join("milter-manager.pid");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let config = format!(
        "[security]\neffective_user = \"nobody\"\n\n{}",
        child_config(
            &client.spec,
            &format!(
                "n_workers = 2\nunix_socket_mode = 0o660\nunix_socket_group = \"nogroup\"\n\
                 pid_file = \"{}\"",
                pid_file.display()
            )
        )
    );
    let options =
        ManagerOptions { socket_dir: Some(&run_dir), user_from_config: true, ..Default::default() };
    let mut manager = ManagerProcess::start_with(&dir, &config, &options);
    let workers = manager.wait_for_workers(2);

    let nobody = user_id("nobody");
    for pid in &workers {
        let uid = status_field(*pid, "Uid");
        let uids: Vec<&str> = uid.split_whitespace().collect();
        assert!(uids.iter().all(|u| *u == nobody), "worker {pid}: Uid {uid}");
    }
    let socket = std::fs::metadata(&manager.socket).unwrap();
    assert_eq!(socket.mode() & 0o7777, 0o660);
    assert_eq!(socket.gid().to_string(), group_id("nogroup"));
    let written = wait_for(deadline(), || !read_lossy(&pid_file).is_empty());
    assert!(written, "{}", manager.log());
    assert_eq!(read_lossy(&pid_file).trim(), manager.pid().to_string());
    assert!(session_passes(&dir, "session", &manager.spec()), "{}", manager.log());

    let status = manager.process.terminate();
    assert_eq!(status.code(), Some(0), "{}", manager.log());
    assert!(!pid_file.exists(), "the pid file is removed on SIGTERM");
    assert!(!manager.socket.exists(), "the socket is removed on SIGTERM");
}

#[test]
fn a_worker_crashing_at_start_is_restarted_with_growing_delays() {
    let dir = TempDir::new("pm-crash");
    let options =
        ManagerOptions { env: &[("MILTER_MANAGER_TEST_CRASH_WORKER", "1")], ..Default::default() };
    let manager = ManagerProcess::start_with(&dir, "[manager]\nn_workers = 1\n", &options);
    // 1 s, 2 s, then 4 s: about 3 s after the start.
    let backed_off = wait_for(Instant::now() + Duration::from_secs(30), || {
        manager.log().contains("restarting it in 4s")
    });
    let log = manager.log();
    assert!(backed_off, "{log}");
    let delays: Vec<&str> =
        log.lines().filter_map(|line| line.split("restarting it in ").nth(1)).collect();
    assert_eq!(delays[..3], ["1s", "2s", "4s"], "{log}");
    assert!(log.contains("MILTER_MANAGER_TEST_CRASH_WORKER=1 (test only)"), "{log}");
    // No tight loop: by the third back-off the worker was started three times.
    let starts = log.lines().filter(|line| line.contains("started worker 0")).count();
    assert_eq!(starts, 3, "{log}");
}

/// A milter that holds each session ~100 ms at connect and records how many sessions it
/// held at once; the hold lies inside the manager's session, so this is a lower bound of
/// the manager's concurrency that cannot overcount.
fn start_counting_milter() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (holding_in, most_in) = (Arc::clone(&holding), Arc::clone(&most));
    let port = serve_tcp(move |stream, _| {
        milter_session(stream, |command| match command {
            MilterCommand::Connect { .. } => {
                let now = holding_in.fetch_add(1, Ordering::SeqCst) + 1;
                most_in.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                holding_in.fetch_sub(1, Ordering::SeqCst);
                vec![Reply::Continue]
            }
            MilterCommand::EndOfMessage { .. } => vec![Reply::Accept],
            _ => vec![Reply::Continue],
        })
    });
    (port, holding, most)
}

#[test]
fn max_connections_holds_over_all_workers_and_everyone_is_served() {
    let dir = TempDir::new("pm-max");
    let (port, _, most) = start_counting_milter();
    let spec = format!("inet:{port}@[127.0.0.1]");
    let items = "n_workers = 2\nmax_connections = 5\nsuspend_time_on_unacceptable = 1";
    let manager = ManagerProcess::start(&dir, &child_config(&spec, items));
    manager.wait_for_workers(2);

    let load = run_load(&dir, "load", &manager.spec(), 20, 20);
    assert_eq!((load.completed, load.errors), (20, 0), "{}\n{}", load.report, manager.log());
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 5, "{most} sessions at once with max_connections = 5\n{}", manager.log());
    assert!(most >= 2, "the sessions overlapped ({most} at most)");
    assert!(manager.log().contains("the maximum (manager.max_connections)"), "{}", manager.log());
}

#[test]
fn a_connection_that_never_negotiates_is_closed_and_frees_its_max_connections_place() {
    let dir = TempDir::new("pm-negotiation-timeout");
    let items = "max_connections = 1\nnegotiation_timeout = 1\nsuspend_time_on_unacceptable = 1";
    let manager = ManagerProcess::start(&dir, &format!("[manager]\n{items}\n"));
    // Takes the only place and sends nothing.
    let mut idle = UnixStream::connect(&manager.socket).expect("connect to the manager");
    idle.set_read_timeout(Some(support::TIMEOUT)).unwrap();

    // Served once the idle connection is gone (before, it held the place for two hours).
    let out = support::run(
        &dir,
        "served",
        Command::new(TEST_SERVER).args(["-s", &manager.spec()]),
        support::TIMEOUT,
    );
    assert!(out.status.success(), "{}\n{}", out.describe(), manager.log());
    let mut byte = [0; 1];
    let read = idle.read(&mut byte);
    assert!(matches!(read, Ok(0)), "the idle connection was not closed: {read:?}");
    let line = "the MTA made no option offer within 1s (manager.negotiation_timeout); closing";
    assert!(manager.log().contains(line), "{}", manager.log());
}

/// The descriptors process `pid` holds: how many, and the highest number.
fn descriptors_of(pid: u32) -> (u64, u64) {
    let numbers: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the process's descriptors")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (numbers.len() as u64, numbers.iter().copied().max().unwrap_or(0))
}

/// Sets process `pid`'s limit of open files (the soft one) to `limit`.
fn limit_files_of(pid: u32, limit: u64) {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: prlimit reads and writes only the two structs, which outlive the calls.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: old.rlim_max };
    // SAFETY: as above.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// An MTA session on the manager's socket: negotiation, then connect; the reply to connect.
fn connect_reply(socket: &Path) -> (UnixStream, Reply) {
    let mut stream = UnixStream::connect(socket).expect("connect to the manager");
    stream.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    let mut deframer = Deframer::default();
    let mut next_reply = |stream: &mut UnixStream| loop {
        if let Some(frame) = deframer.next_frame() {
            let frame = frame.expect("a packet from the manager");
            return Reply::decode(frame.code, frame.data).expect("a reply");
        }
        let mut buffer = [0; 4096];
        let n = stream.read(&mut buffer).expect("the manager's reply");
        assert_ne!(n, 0, "the manager closed the session");
        deframer.push(&buffer[..n]);
    };
    let mut out = Vec::new();
    MilterCommand::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())).encode(&mut out);
    stream.write_all(&out).unwrap();
    assert!(matches!(next_reply(&mut stream), Reply::Negotiate(_)));
    let mut out = Vec::new();
    let address = ConnectAddress::Inet { port: 25, address: b"192.0.2.1".to_vec() };
    MilterCommand::Connect { hostname: b"mx.example.net".to_vec(), address }.encode(&mut out);
    stream.write_all(&out).unwrap();
    let reply = next_reply(&mut stream);
    (stream, reply)
}

/// Out of file descriptors, a child that cannot be connected to is the manager's failure:
/// the session gets manager.fallback_status (not the child's fallback, accept), and
/// accepting pauses.
#[test]
fn out_of_descriptors_an_unreachable_child_counts_as_the_managers_failure() {
    let dir = TempDir::new("pm-descriptors");
    let (port_a, _, _) = start_counting_milter();
    let (port_b, _, _) = start_counting_milter();
    let config = format!(
        "[manager]\nfallback_status = \"reject\"\n\n\
         [milter.\"a\"]\nconnection_spec = \"inet:{port_a}@[127.0.0.1]\"\n\n\
         [milter.\"b\"]\nconnection_spec = \"inet:{port_b}@[127.0.0.1]\"\n"
    );
    let manager = ManagerProcess::start(&dir, &config);
    // Each session takes three descriptors (the MTA's, a's, b's). The limit leaves room
    // for whole sessions and two more: the last session gets its MTA connection and a,
    // and finds no descriptor for b.
    let (count, highest) = descriptors_of(manager.pid());
    let mut limit = highest + 1;
    while (limit - count) % 3 != 2 {
        limit += 1;
    }
    limit_files_of(manager.pid(), limit);
    let whole_sessions = (limit - count - 2) / 3;

    let mut held = Vec::new();
    for _ in 0..whole_sessions {
        let (stream, reply) = connect_reply(&manager.socket);
        assert!(matches!(reply, Reply::Continue), "{reply:?} before the limit\n{}", manager.log());
        held.push(stream);
    }
    let (_last, reply) = connect_reply(&manager.socket);
    assert!(matches!(reply, Reply::Reject), "{reply:?} out of descriptors\n{}", manager.log());
    let log = manager.log();
    let counted = "b: cannot connect: Too many open files (os error 24); counting it as reject \
                   (the manager is out of file descriptors";
    assert!(log.contains(counted), "{log}");
    assert!(log.contains("Too many open files (os error 24); pausing accepts"), "{log}");
}

fn session_status(dir: &TempDir, name: &str, spec: &str) -> String {
    let out =
        support::run(dir, name, Command::new(TEST_SERVER).args(["-s", spec]), support::TIMEOUT);
    // "status: reject at connect": the status without the stage.
    let line = out.stdout.lines().find_map(|l| l.strip_prefix("status: ")).unwrap_or("");
    line.split_whitespace().next().unwrap_or("").to_string()
}

#[test]
fn sessions_after_a_reload_use_the_new_configuration_with_and_without_workers() {
    for n_workers in [0, 2] {
        let dir = TempDir::new(&format!("pm-apply-{n_workers}"));
        let controller = format!("unix:{}", dir.join("control.sock").display());
        let config = |status: &str| {
            format!(
                "[manager]\nn_workers = {n_workers}\nfallback_status = \"{status}\"\n\n\
                 [controller]\nconnection_spec = \"{controller}\"\n"
            )
        };
        let mut manager = ManagerProcess::start(&dir, &config("reject"));
        assert_eq!(session_status(&dir, "before", &manager.spec()), "reject", "{}", manager.log());
        manager.write_config(&config("temporary-failure"));
        manager.signal("HUP");
        let reloaded = wait_for(deadline(), || {
            manager.log().contains("reloaded configuration (generation 2)")
        });
        assert!(reloaded, "n_workers = {n_workers}\n{}", manager.log());
        let status = session_status(&dir, "after", &manager.spec());
        assert_eq!(status, "temporary-failure", "n_workers = {n_workers}\n{}", manager.log());

        // The controller's reload answers once it is done; switching between one process
        // and workers is named as needing a restart, and the rest applies.
        let flipped = if n_workers == 0 { "n_workers = 1" } else { "n_workers = 0" };
        let items = config("accept").replace(&format!("n_workers = {n_workers}"), flipped);
        manager.write_config(&items);
        let reload = ctl(&dir, "reload", &["-s", &controller, "reload"]);
        assert!(reload.status.success(), "{}\n{}", reload.describe(), manager.log());
        let served_by = if n_workers == 0 { " in this one process" } else { "; 2 of 2 workers" };
        assert!(
            reload
                .stdout
                .starts_with(&format!("reloaded: generation 3 serves new sessions{served_by}"))
                && reload.stdout.contains(
                    "restart needed: manager.n_workers changed; it takes effect when \
                     milter-manager restarts\n"
                ),
            "{}",
            reload.describe()
        );
        let status = session_status(&dir, "after-ctl", &manager.spec());
        assert_eq!(status, "accept", "n_workers = {n_workers}\n{}", manager.log());
    }
}

#[test]
fn sigusr1_reopens_the_log_file_in_the_supervisor_and_every_worker() {
    let dir = TempDir::new("pm-reopen-logs");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let config = child_config(&client.spec, "n_workers = 2");
    let mut manager = ManagerProcess::start(&dir, &config);
    let workers = manager.wait_for_workers(2);

    // A log rotation: the file is moved away, then the manager is told.
    let rotated = dir.join("manager.log.1");
    std::fs::rename(&manager.log, &rotated).unwrap();
    // A worker that has only just started may not handle SIGUSR1 yet (it ignores it until
    // then), so the signal is sent again until every process has reopened.
    let mut pids = workers.clone();
    pids.push(manager.pid());
    let mut next_signal = Instant::now();
    let everyone = wait_for(deadline(), || {
        if Instant::now() >= next_signal {
            manager.signal("USR1");
            next_signal = Instant::now() + Duration::from_secs(1);
        }
        let log = manager.log();
        pids.iter().all(|pid| log.contains(&format!("log file reopened (pid {pid})")))
    });
    assert!(everyone, "the supervisor and both workers reopen:\n{}", manager.log());

    assert!(session_passes(&dir, "after", &manager.spec()), "{}", manager.log());
    let session_logged = wait_for(deadline(), || manager.log().contains("[session][end]"));
    assert!(session_logged, "sessions log to the new file:\n{}", manager.log());
    assert!(!read_lossy(&rotated).contains("[session][end]"), "nothing more in the old one");
    assert_eq!(manager.workers(), workers, "the workers stay");
}

/// The user a manager started as root without `security.effective_user` serves as.
fn default_user() -> &'static str {
    if getent("passwd", "milter-manager").is_some() {
        "milter-manager"
    } else {
        "nobody"
    }
}

#[test]
fn as_root_without_effective_user_workers_serve_as_the_default_user_and_reopen_the_log() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-default-user");
    // The unprivileged supervisor removes its socket here at the end.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let options = ManagerOptions { user_from_config: true, ..Default::default() };
    let controller = dir.join("controller.sock");
    let config = format!(
        "[controller]\nconnection_spec = \"unix:{}\"\n\n{}",
        controller.display(),
        child_config(&client.spec, "n_workers = 1")
    );
    let mut manager = ManagerProcess::start_with(&dir, &config, &options);
    let workers = manager.wait_for_workers(1);

    let uid = user_id(user);
    for pid in workers.iter().chain([&manager.pid()]) {
        let line = status_field(*pid, "Uid");
        assert!(line.split_whitespace().all(|u| u == uid), "process {pid}: Uid {line}");
    }
    let log = manager.log();
    assert!(log.contains(&format!("serving as user \"{user}\" (uid {uid})")), "{log}");
    assert!(
        log.contains(&format!(
            "started as root without security.effective_user: serving as user \"{user}\""
        )),
        "{log}"
    );
    assert!(session_passes(&dir, "session", &manager.spec()), "{}", manager.log());
    // Bound as root, both sockets belong to the user, like the log file created as root,
    // which SIGUSR1 reopens.
    for path in [&manager.socket, &controller, &manager.log] {
        let owner = std::fs::metadata(path).unwrap().uid().to_string();
        assert_eq!(owner, uid, "{}", path.display());
    }
    manager.signal("USR1");
    let reopened = |log: &str| log.matches("SIGUSR1 received: log file reopened").count() >= 2;
    assert!(wait_for(deadline(), || reopened(&manager.log())), "{}", manager.log());
    assert!(!manager.log().contains("still logging to the old file"), "{}", manager.log());
    // The configuration, read as root at start, is read again as the user.
    manager.signal("HUP");
    let reloaded = |log: &str| log.contains("reloaded configuration (generation 2)");
    assert!(wait_for(deadline(), || reloaded(&manager.log())), "{}", manager.log());

    let status = manager.process.terminate();
    assert_eq!(status.code(), Some(0), "{}", manager.log());
    assert!(!manager.socket.exists(), "the socket is removed on SIGTERM");
    assert!(!controller.exists(), "the controller's socket too");
}

/// A child milter whose socket the serving user may not open: the log says whom the
/// manager serves as and what to do, not only "Permission denied".
#[test]
fn a_child_socket_the_serving_user_cannot_open_is_explained() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-child-access");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let private = TempDir::new("pm-child-access-private");
    let client = TestClient::start_unix(&private, &[]);
    // Like /run/opendmarc: only the milter's own user and group may go in.
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let options = ManagerOptions { user_from_config: true, ..Default::default() };
    let manager = ManagerProcess::start_with(&dir, &child_config(&client.spec, ""), &options);
    let out = support::run(
        &dir,
        "server",
        Command::new(TEST_SERVER).args(["-s", &manager.spec()]),
        support::TIMEOUT,
    );
    assert!(out.stdout.contains("status: accept"), "{}\n{}", out.describe(), manager.log());
    let hint = format!(
        "Permission denied (os error 13) ({}); the manager serves as user \"{user}\": give it \
         access to the socket and its directory (e.g. add user \"{user}\" to the socket's group)",
        client.spec
    );
    assert!(wait_for(deadline(), || manager.log().contains(&hint)), "{hint}\n{}", manager.log());
}

#[test]
fn as_root_a_pid_file_the_user_cannot_write_fails_at_once_and_leaves_no_socket() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-pid-root-only");
    let root_only = dir.join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pid_file = root_only.join("milter-manager.pid");
    let socket = dir.join("manager.sock");
    let conf = dir.join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("milter-manager.toml"),
        format!("[manager]\npid_file = \"{}\"\n", pid_file.display()),
    )
    .unwrap();
    let mut command = Command::new(support::MANAGER);
    command.arg("-c").arg(&conf).arg("-s").arg(format!("unix:{}", socket.display()));
    let out = support::run(&dir, "manager", &mut command, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert_eq!(
        out.stderr,
        format!(
            "milter-manager: pid file {}: directory {} is not writable by user \"{user}\", whom \
             the processes run as (owned by root:root, mode 0700)\n",
            pid_file.display(),
            root_only.display()
        )
    );
    assert!(!socket.exists(), "nothing was bound");
    assert!(!pid_file.exists());
}

/// Starts the manager as root with `conf` (the serving user is the default one) and the
/// socket `socket`, expecting a refusal at start: its stderr, and that nothing was bound.
fn refused_start(dir: &TempDir, conf: &Path, socket: &Path) -> String {
    let mut command = Command::new(support::MANAGER);
    command.arg("-c").arg(conf).arg("-s").arg(format!("unix:{}", socket.display()));
    let out = support::run(dir, "manager", &mut command, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(!socket.exists(), "nothing was bound");
    out.stderr
}

/// A directory of `dir` with `mode`, owned by root.
fn directory_with_mode(dir: &TempDir, name: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// SIGHUP reads the configuration as the serving user: a file only root can read would
/// pass at start and fail every reload, so the start refuses it and says what to change.
#[test]
fn as_root_a_configuration_file_the_user_cannot_read_fails_at_start() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-conf-root-only");
    let run_dir = directory_with_mode(&dir, "run", 0o777);
    let conf = directory_with_mode(&dir, "conf", 0o755);
    let main = conf.join("milter-manager.toml");
    std::fs::write(&main, "include_optional = [\"local.toml\"]\n").unwrap();
    let local = conf.join("local.toml");
    std::fs::write(&local, "[manager]\nn_workers = 0\n").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stderr = refused_start(&dir, &conf, &run_dir.join("manager.sock"));
    assert_eq!(
        stderr,
        format!(
            "milter-manager: configuration file {} is not readable by user \"{user}\", whom \
             the processes run as and who reads it again at a reload (owned by root:root, mode \
             0600): let that user read it (chgrp/chmod g+r)\n",
            local.display()
        )
    );

    // A directory the user cannot enter is named as such.
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stderr = refused_start(&dir, &conf, &run_dir.join("manager.sock"));
    assert_eq!(
        stderr,
        format!(
            "milter-manager: configuration file {}: directory {} cannot be searched by user \
             \"{user}\", whom the processes run as and who reads the file again at a reload \
             (owned by root:root, mode 0700): let that user in (chgrp/chmod g+x)\n",
            main.display(),
            conf.display()
        )
    );
}

/// An include glob's directory is listed again at every reload: one the user can enter
/// but not list would pass at start and fail every reload, so the start refuses it.
#[test]
fn as_root_an_include_directory_the_user_cannot_list_fails_at_start() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-conf-d-unlisted");
    let run_dir = directory_with_mode(&dir, "run", 0o777);
    let conf = directory_with_mode(&dir, "conf", 0o755);
    std::fs::write(conf.join("milter-manager.toml"), "include = [\"conf.d/*.toml\"]\n").unwrap();
    let conf_d = conf.join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(conf_d.join("local.toml"), "[manager]\nn_workers = 0\n").unwrap();
    std::fs::set_permissions(&conf_d, std::fs::Permissions::from_mode(0o711)).unwrap();
    let stderr = refused_start(&dir, &conf, &run_dir.join("manager.sock"));
    assert_eq!(
        stderr,
        format!(
            "milter-manager: configuration directory {} cannot be listed by user \"{user}\", \
             whom the processes run as and who lists it again at a reload for new files (owned \
             by root:root, mode 0711): let that user list it (chgrp/chmod g+rx)\n",
            conf_d.display()
        )
    );
}

/// What the serving user meets after the start: a file a reload's glob picks up that it
/// cannot read, or an optional file in a directory it cannot enter, fails that reload (it
/// is not skipped), and a log that a rotation moved out of a directory it
/// cannot write stays the one written. The log says each, and mail goes on.
#[test]
fn as_root_a_reload_or_reopen_the_user_cannot_do_is_logged_and_mail_goes_on() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-after-start");
    // The user may enter but not write here, where the log is.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_dir = directory_with_mode(&dir, "run", 0o777);
    let conf_d = dir.join("conf/conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let options =
        ManagerOptions { socket_dir: Some(&run_dir), user_from_config: true, ..Default::default() };
    // Only root may enter `private`, where an optional file is not there yet.
    let private = dir.join("conf/private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = format!(
        "include = [\"conf.d/*.toml\"]\ninclude_optional = [\"private/local.toml\"]\n{}",
        child_config(&client.spec, "n_workers = 1")
    );
    let mut manager = ManagerProcess::start_with(&dir, &config, &options);
    manager.wait_for_workers(1);

    let root_only = conf_d.join("root-only.toml");
    std::fs::write(&root_only, "[manager]\nn_workers = 2\n").unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o600)).unwrap();
    manager.signal("HUP");
    let failed = format!(
        "reload failed; keeping the running configuration: {}: cannot read the file: \
         Permission denied",
        root_only.display()
    );
    assert!(wait_for(deadline(), || manager.log().contains(&failed)), "{}", manager.log());
    assert!(session_passes(&dir, "after-reload", &manager.spec()), "{}", manager.log());
    assert_eq!(manager.workers().len(), 1, "the running configuration stays");
    // An optional file the user cannot see is not taken for missing.
    std::fs::remove_file(&root_only).unwrap();
    let local = private.join("local.toml");
    std::fs::write(&local, "[manager]\nn_workers = 2\n").unwrap();
    manager.signal("HUP");
    let unseen = format!(
        "include_optional: cannot tell whether {} exists: Permission denied",
        local.display()
    );
    assert!(wait_for(deadline(), || manager.log().contains(&unseen)), "{}", manager.log());
    assert!(!manager.log().contains("reloaded configuration"), "{}", manager.log());

    let rotated = dir.join("manager.log.1");
    std::fs::rename(&manager.log, &rotated).unwrap();
    manager.signal("USR1");
    let kept = format!(
        "SIGUSR1 received: cannot open log file {}: Permission denied (os error 13); still \
         logging to the old file; the processes serve as user \"{user}\": let the rotation \
         create the new file for that user",
        manager.log.display()
    );
    let rotated_log = || read_lossy(&rotated);
    assert!(wait_for(deadline(), || rotated_log().contains(&kept)), "{}", rotated_log());
    assert!(!manager.log.exists(), "no file is made in a directory the user cannot write");
    assert!(session_passes(&dir, "after-reopen", &manager.spec()), "{}", rotated_log());
    let status = manager.process.terminate();
    assert_eq!(status.code(), Some(0), "{}", rotated_log());
}

/// The unprivileged supervisor removes the socket at the stop: a directory only root may
/// write is refused at start (unless the socket is kept at close).
#[test]
fn as_root_a_socket_directory_the_user_cannot_write_fails_at_start() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-socket-root-only");
    let run_dir = directory_with_mode(&dir, "run", 0o755);
    let conf = directory_with_mode(&dir, "conf", 0o755);
    std::fs::write(conf.join("milter-manager.toml"), "").unwrap();
    let socket = run_dir.join("manager.sock");
    let stderr = refused_start(&dir, &conf, &socket);
    assert_eq!(
        stderr,
        format!(
            "milter-manager: socket {}: directory {} is not writable by user \"{user}\", whom \
             the processes run as (owned by root:root, mode 0755): the stop removes it as \
             that user; let that user write there (chown/chmod), or set \
             manager.remove_unix_socket_on_close = false\n",
            socket.display(),
            run_dir.display()
        )
    );

    // Kept at the stop, the socket's directory does not matter.
    let options =
        ManagerOptions { socket_dir: Some(&run_dir), user_from_config: true, ..Default::default() };
    let config = "[manager]\nremove_unix_socket_on_close = false\n";
    let mut manager = ManagerProcess::start_with(&dir, config, &options);
    assert_eq!(manager.socket, socket);
    let status = manager.process.terminate();
    assert_eq!(status.code(), Some(0), "{}", manager.log());
    assert!(socket.exists(), "kept, as configured");

    // The controller's socket likewise.
    let writable = directory_with_mode(&dir, "writable", 0o777);
    let controller = run_dir.join("controller.sock");
    std::fs::write(
        conf.join("milter-manager.toml"),
        format!("[controller]\nconnection_spec = \"unix:{}\"\n", controller.display()),
    )
    .unwrap();
    let stderr = refused_start(&dir, &conf, &writable.join("manager.sock"));
    assert_eq!(
        stderr,
        format!(
            "milter-manager: controller socket {}: directory {} is not writable by user \
             \"{user}\", whom the processes run as (owned by root:root, mode 0755): the stop \
             removes it as that user; let that user write there (chown/chmod), or set \
             controller.remove_unix_socket_on_close = false\n",
            controller.display(),
            run_dir.display()
        )
    );
}

/// SIGUSR1 reopens the log file as the serving user: an existing one only root may write
/// is refused at start.
#[test]
fn as_root_a_log_file_the_user_cannot_write_fails_at_start() {
    // Whom it serves as depends on whether the package's user exists (debian_package).
    let _host = support::host::depending_on_host();
    require_root();
    let user = default_user();
    let dir = TempDir::new("pm-log-root-only");
    let run_dir = directory_with_mode(&dir, "run", 0o777);
    let conf = directory_with_mode(&dir, "conf", 0o755);
    let log = dir.join("manager.log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        conf.join("milter-manager.toml"),
        format!("[log]\npath = \"{}\"\nuse_syslog = false\n", log.display()),
    )
    .unwrap();
    let stderr = refused_start(&dir, &conf, &run_dir.join("manager.sock"));
    assert_eq!(
        stderr,
        format!(
            "milter-manager: log file {} is not writable by user \"{user}\", whom the \
             processes run as (owned by root:root, mode 0644)\n",
            log.display()
        )
    );
}

/// Stops, on drop, the daemon whose pid file this is (the launching process the test
/// started exited at readiness).
struct DaemonStopper(std::path::PathBuf);

impl Drop for DaemonStopper {
    fn drop(&mut self) {
        if let Ok(pid) = read_lossy(&self.0).trim().parse::<u32>() {
            kill(pid, "TERM");
            wait_for(deadline(), || status_field(pid, "State").is_empty());
        }
    }
}

/// Started from the test's directory with relative paths: the daemon works in `/`, yet
/// its reloads read the same configuration directory and SIGUSR1 reopens the same log.
#[test]
fn a_daemon_started_with_relative_paths_reloads_and_reopens_its_log() {
    let dir = TempDir::new("pm-daemon-relative");
    support::write_file(&dir.join("conf/milter-manager.toml"), "[manager]\nn_workers = 0\n");
    let pid_file = dir.join("manager.pid");
    let _stopper = DaemonStopper(pid_file.clone());
    let log = dir.join("manager.log");
    let mut command = Command::new(support::MANAGER);
    command
        .current_dir(dir.path())
        .args(["--daemon", "-c", "conf", "--log-path", "manager.log", "--pid-file", "manager.pid"])
        .args(["--log-level", "all", "--no-syslog", "--user-name", &support::own_user_name()])
        .arg("-s")
        .arg(format!("unix:{}", dir.join("manager.sock").display()));
    let launched = support::run(&dir, "launch", &mut command, support::TIMEOUT);
    assert!(launched.status.success(), "{}\n{}", launched.describe(), read_lossy(&log));
    let pid: u32 = read_lossy(&pid_file).trim().parse().expect("the daemon's pid file");

    kill(pid, "HUP");
    let reloaded =
        wait_for(deadline(), || read_lossy(&log).contains("reloaded configuration (generation 2)"));
    assert!(reloaded, "{}", read_lossy(&log));
    assert!(!read_lossy(&log).contains("reload failed"), "{}", read_lossy(&log));

    // A rotation: the daemon logs to a new manager.log in the same directory.
    std::fs::rename(&log, dir.join("manager.log.1")).expect("rotate the log");
    kill(pid, "USR1");
    let reopened = wait_for(deadline(), || read_lossy(&log).contains("log file reopened"));
    assert!(
        reopened,
        "no new manager.log\n--- manager.log.1:\n{}",
        read_lossy(&dir.join("manager.log.1"))
    );
}

#[test]
fn as_a_daemon_workers_forked_after_start_up_serve_and_log() {
    let dir = TempDir::new("pm-daemon");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let pid_file = dir.join("manager.pid");
    let _stopper = DaemonStopper(pid_file.clone());
    let pid_path = pid_file.to_string_lossy().into_owned();
    let options =
        ManagerOptions { args: &["--daemon", "--pid-file", &pid_path], ..Default::default() };
    let config = child_config(&client.spec, "n_workers = 2");
    let mut manager = ManagerProcess::start_with(&dir, &config, &options);
    // The socket appears before the pid file is written; the launching process exits 0
    // only once both are there, as an init script expects.
    let launched = manager.process.wait_until(deadline());
    assert!(launched.success(), "the launching process: {launched}\n{}", manager.log());
    let pid: u32 = read_lossy(&pid_file).trim().parse().expect("the daemon's pid file");
    let mut workers = Vec::new();
    let two = wait_for(deadline(), || {
        workers = children_of(pid);
        workers.len() == 2
    });
    assert!(two, "two workers: {workers:?}\n{}", manager.log());

    // A worker forked after readiness replaces a killed one and stays.
    let victim = workers[0];
    kill(victim, "KILL");
    let mut replaced = Vec::new();
    let ok = wait_for(deadline(), || {
        replaced = children_of(pid);
        replaced.len() == 2 && !replaced.contains(&victim)
    });
    assert!(ok, "a new worker replaces {victim}: {replaced:?}\n{}", manager.log());
    let load = run_load(&dir, "after-kill", &manager.spec(), 40, 4);
    assert_eq!((load.completed, load.errors), (40, 0), "{}", load.report);
    let replacement = *replaced.iter().find(|w| **w != workers[1]).expect("the new worker");
    assert!(
        !status_field(replacement, "State").is_empty(),
        "the replacement {replacement} died\n{}",
        manager.log()
    );
    assert!(!manager.log().contains("the event loop failed"), "{}", manager.log());

    // The workers of a reload log their sessions.
    kill(pid, "HUP");
    let mut reloaded = Vec::new();
    let ok = wait_for(deadline(), || {
        reloaded = children_of(pid);
        reloaded.len() == 2 && reloaded.iter().all(|w| !replaced.contains(w))
    });
    assert!(ok, "a new generation replaces {replaced:?}: {reloaded:?}\n{}", manager.log());
    let logged_before = manager.log().matches("[session][end]").count();
    let load = run_load(&dir, "after-reload", &manager.spec(), 20, 4);
    assert_eq!((load.completed, load.errors), (20, 0), "{}", load.report);
    let logged = wait_for(deadline(), || {
        manager.log().matches("[session][end]").count() >= logged_before + 20
    });
    assert!(logged, "the reloaded workers' sessions are not in the log\n{}", manager.log());
}

/// While the workers drain after SIGTERM, a new client is refused at once instead of
/// waiting in a backlog that is reset when the manager exits.
#[test]
fn during_a_stop_new_clients_are_refused_at_once() {
    let dir = TempDir::new("pm-stop-refuse");
    let client = TestClient::start_tcp(&dir, &["--no-report-request"]);
    let mut manager = ManagerProcess::start(&dir, &child_config(&client.spec, "n_workers = 2"));
    manager.wait_for_workers(2);
    // A session in flight keeps a worker draining.
    let socket = manager.spec().trim_start_matches("unix:").to_string();
    let _in_flight = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    manager.signal("TERM");
    let draining =
        wait_for(deadline(), || manager.log().matches("no longer accepting").count() >= 2);
    assert!(draining, "the workers did not start draining\n{}", manager.log());
    // At once: the stop has no reason to wait for anything before refusing.
    let refused = match std::os::unix::net::UnixStream::connect(&socket) {
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(_) => false,
    };
    assert!(refused, "a client is still taken into the backlog while draining\n{}", manager.log());
}
