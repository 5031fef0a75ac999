//! Privilege mode and the controller, through the real binaries: the launcher starts a child
//! milter that is not running (as its user) on the first session and refuses what the
//! configuration does not allow; milter-manager-ctl asks the controller for the status,
//! the configuration, a reload and a child's stop.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    ctl, deadline, free_tcp_port, is_alive, kill, processes_with, read_lossy, real_uid,
    require_root, run, user_id, wait_for, write_file as write, ManagerOptions, ManagerProcess,
    TempDir, TestClient, MANAGER, TEST_CLIENT, TEST_SERVER,
};
/// One session through the manager, Postfix-style.
fn session(dir: &TempDir, name: &str, manager: &ManagerProcess) -> support::Finished {
    let mut command = Command::new(TEST_SERVER);
    command.args(["-s", &manager.spec(), "--from", "<sender@example.org>"]).args([
        "--recipient",
        "<rcpt@example.com>",
        "--body",
        "Hello.\r\n",
    ]);
    run(dir, name, &mut command, Duration::from_secs(60))
}

/// One request line straight to the launcher; its answer line.
fn ask_launcher(socket: &Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the launcher");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn privilege_mode_starts_a_missing_child_as_its_user_once() {
    require_root();
    let dir = TempDir::new("launcher");
    // The child runs as nobody: its log and report go where nobody may write.
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_tcp_port();
    let child_spec = format!("inet:{port}@[127.0.0.1]");
    let script = dir.join("start-client.sh");
    write(
        &script,
        &format!(
            "#!/bin/sh\nexec {TEST_CLIENT} -s '{child_spec}' --log-path {log} >{report} 2>&1\n",
            log = work.join("client.log").display(),
            report = work.join("report.txt").display(),
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let controller = dir.join("controller.sock");
    let config = format!(
        "[security]\nprivilege_mode = true\n\n[manager]\nn_workers = 1\n\n\
         [controller]\nconnection_spec = \"unix:{controller}\"\n\n\
         [milter.\"client\"]\nconnection_spec = \"{child_spec}\"\ncommand = \"{script}\"\n\
         user_name = \"nobody\"\nfallback_status = \"reject\"\nconnection_timeout = 60\n\n\
         [milter.\"plain\"]\nconnection_spec = \"unix:{plain}\"\nenabled = false\n\n\
         [milter.\"off\"]\nconnection_spec = \"{child_spec}\"\nenabled = false\n\
         command = \"{script}\"\n",
        controller = controller.display(),
        script = script.display(),
        plain = dir.join("plain.sock").display(),
    );
    let mut manager = ManagerProcess::start_until(&dir, &config, "supervising");

    // Nothing listens on the child's port: the first session has the launcher start it and
    // gets the child's answer (continue: pass), not its fallback (reject).
    let first = session(&dir, "first", &manager);
    assert!(first.stdout.contains("status: pass"), "{}\n{}", first.describe(), manager.log());
    let report = read_lossy(&work.join("report.txt"));
    assert!(report.contains("<sender@example.org>"), "the child saw the session:\n{report}");
    let clients = processes_with(&child_spec);
    assert_eq!(clients.len(), 1, "one child milter runs: {clients:?}");
    let pid = clients[0];
    assert_eq!(real_uid(pid).to_string(), user_id("nobody"), "the child runs as user_name");

    // It runs, so the second session reaches it and nothing is started again.
    let second = session(&dir, "second", &manager);
    assert!(second.stdout.contains("status: pass"), "{}", second.describe());
    assert_eq!(processes_with(&child_spec), [pid]);
    let socket = manager.launcher_socket();
    assert_eq!(ask_launcher(&socket, "start client\n"), format!("running {pid}\n"));
    let log = manager.log();
    assert_eq!(log.matches("launcher: started milter \"client\"").count(), 1, "{log}");

    // Only enabled milters of the configuration with a command may be started.
    assert_eq!(ask_launcher(&socket, "start plain\n"), "error milter \"plain\" has no command\n");
    assert_eq!(
        ask_launcher(&socket, "start off\n"),
        "error milter \"off\" is disabled (enabled = false)\n"
    );
    assert_eq!(
        ask_launcher(&socket, "start nope\n"),
        "error no milter named \"nope\" in the configuration\n"
    );
    assert!(
        wait_for(deadline(), || manager.log().contains("launcher: refused \"start nope\"")),
        "{}",
        manager.log()
    );

    // The controller stops it through the launcher; it refuses what the launcher did not start.
    let conf = manager.conf.to_str().unwrap().to_string();
    let refused = ctl(&dir, "stop-plain", &["-c", &conf, "stop-child", "plain"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(refused.stderr.contains("milter \"plain\" has no command"), "{}", refused.describe());
    let stopped = ctl(&dir, "stop-client", &["-c", &conf, "stop-child", "client"]);
    assert!(stopped.status.success(), "{}", stopped.describe());
    assert_eq!(stopped.stdout, format!("milter \"client\": stopped (pid {pid})\n"));
    assert!(wait_for(deadline(), || !is_alive(pid)), "the child milter stopped");

    // The next session starts it again; stopping the manager stops it too.
    let third = session(&dir, "third", &manager);
    assert!(third.stdout.contains("status: pass"), "{}\n{}", third.describe(), manager.log());
    let again = processes_with(&child_spec);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(manager.process.terminate().success());
    assert!(wait_for(deadline(), || !is_alive(again[0])), "the launcher stops its milters");
    assert!(wait_for(deadline(), || !socket.exists()), "the launcher removes its socket");
}

#[test]
fn the_controller_reports_status_configuration_and_reloads() {
    let dir = TempDir::new("controller");
    let client_dir = TempDir::new("controller-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let control_port = free_tcp_port();
    let control_spec = format!("inet:{control_port}@[127.0.0.1]");
    // "first" answers (continue: pass); nobody listens for "second", which counts as its
    // fallback status (accept).
    let config = format!(
        "[manager]\nn_workers = 2\n\n[controller]\nconnection_spec = \"{control_spec}\"\n\n\
         [milter.\"first\"]\nconnection_spec = \"{}\"\n\n\
         [milter.\"second\"]\nconnection_spec = \"unix:{}\"\nfallback_status = \"accept\"\n",
        client.spec,
        dir.join("nobody-listens.sock").display()
    );
    let manager = ManagerProcess::start_until(&dir, &config, "supervising");
    const K: usize = 5;
    for i in 0..K {
        let out = session(&dir, &format!("session{i}"), &manager);
        assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    }

    // Sessions are counted when the worker drops them, just after the MTA's last answer.
    let mut status = String::new();
    let counted = wait_for(deadline(), || {
        let out = ctl(&dir, "status", &["-s", &control_spec, "status"]);
        assert!(out.status.success(), "{}", out.describe());
        status = out.stdout;
        status.contains(&format!("sessions-done: {K}\n"))
    });
    assert!(counted, "status:\n{status}\nlog:\n{}", manager.log());
    assert!(status.contains("sessions-in-flight: 0\n"), "{status}");
    assert!(status.starts_with("generation: 1\n"), "{status}");
    assert!(status.contains("workers: 2\n"), "{status}");
    assert_eq!(
        status.matches(", generation 1\n").count(),
        2,
        "each worker's generation:\n{status}"
    );
    // Routine requests are logged at info, not at the default log's message level.
    assert!(manager.log().contains("[info] controller: status\n"), "{}", manager.log());
    assert!(!manager.log().contains("[message] controller:"), "{}", manager.log());
    assert!(
        status.contains(&format!(
            "\"first\": pass={K} accept=0 skip=0 temporary-failure=0 reject=0 discard=0\n"
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "\"second\": pass=0 accept={K} skip=0 temporary-failure=0 reject=0 discard=0\n"
        )),
        "{status}"
    );

    // The configuration it runs loads back.
    let shown = ctl(&dir, "configuration", &["-s", &control_spec, "configuration"]);
    assert!(shown.status.success(), "{}", shown.describe());
    assert!(shown.stdout.contains("[milter.\"second\"]"), "{}", shown.stdout);
    let again = dir.join("again");
    write(&again.join("milter-manager.toml"), &shown.stdout);
    let mut check = Command::new(MANAGER);
    check.arg("-c").arg(&again).arg("--check-config");
    let checked = run(&dir, "check", &mut check, Duration::from_secs(20));
    assert!(checked.status.success(), "{}", checked.describe());
    assert!(
        checked.stdout.contains("configuration is valid (2 child milters"),
        "{}",
        checked.stdout
    );

    // A reload that reorders the milters, adds one and changes an item that needs a
    // restart is answered with its outcome: the new generation and its workers. The
    // configuration directory finds the controller too.
    let conf = manager.conf.to_str().unwrap().to_string();
    let file = manager.conf.join("milter-manager.toml");
    let reordered = format!(
        "[manager]\nn_workers = 2\nunix_socket_mode = 0o600\n\n\
         [controller]\nconnection_spec = \"{control_spec}\"\n\n\
         [milter.\"added\"]\nconnection_spec = \"{spec}\"\n\n\
         [milter.\"second\"]\nconnection_spec = \"unix:{nobody}\"\nfallback_status = \"accept\"\n\n\
         [milter.\"first\"]\nconnection_spec = \"{spec}\"\n",
        spec = client.spec,
        nobody = dir.join("nobody-listens.sock").display()
    );
    write(&file, &reordered);
    let restart_line = "restart needed: manager.unix_socket_mode changed; it takes effect when \
                        milter-manager restarts\n";
    let mut new_pids = Vec::new();
    for (generation, name) in [(2, "reload"), (3, "reload-again")] {
        let reload = ctl(&dir, name, &["-c", &conf, "reload"]);
        assert!(reload.status.success(), "{}\n{}", reload.describe(), manager.log());
        let first_line = reload.stdout.lines().next().unwrap_or("");
        let wanted = format!(
            "reloaded: generation {generation} serves new sessions; 2 of 2 workers started \
             (worker 0: pid "
        );
        assert!(first_line.starts_with(&wanted), "{}", reload.describe());
        // Every reload says what still needs a restart, not only the first after the change.
        assert!(reload.stdout.ends_with(restart_line), "{}", reload.describe());
        new_pids = first_line
            .split("pid ")
            .skip(1)
            .map(|pid| {
                pid.trim_end_matches([')', ',']).split([',', ')']).next().unwrap().to_string()
            })
            .collect();
        assert_eq!(new_pids.len(), 2, "{first_line}");
    }
    let warnings = manager.log().matches("manager.unix_socket_mode changed").count();
    assert_eq!(warnings, 2, "{}", manager.log());
    status = ctl(&dir, "status-reloaded", &["-s", &control_spec, "status"]).stdout;
    assert!(status.starts_with("generation: 3\n"), "{status}");
    for pid in &new_pids {
        assert!(status.contains(&format!(": pid {pid}, generation 3\n")), "{pid}:\n{status}");
    }

    // Counts stay with their milter's name across the reorder; the added one starts at 0.
    const MORE: usize = 3;
    for i in 0..MORE {
        let out = session(&dir, &format!("reloaded{i}"), &manager);
        assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    }
    let all = K + MORE;
    let counted = wait_for(deadline(), || {
        status = ctl(&dir, "status-after", &["-s", &control_spec, "status"]).stdout;
        status.contains(&format!("sessions-done: {all}\n"))
    });
    assert!(counted, "{status}");
    for expected in [
        format!("\"added\": pass={MORE} accept=0 "),
        format!("\"second\": pass=0 accept={all} "),
        format!("\"first\": pass={all} accept=0 "),
    ] {
        assert!(status.contains(&expected), "{expected}:\n{status}");
    }

    // Errors are one line and exit 1.
    let unknown = ctl(&dir, "stop-unknown", &["-s", &control_spec, "stop-child", "nope"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", unknown.describe());
    assert_eq!(
        unknown.stderr,
        "milter-manager-ctl: no milter named \"nope\" in the configuration\n"
    );
    let off = ctl(&dir, "stop-first", &["-s", &control_spec, "stop-child", "first"]);
    assert_eq!(off.status.code(), Some(1), "{}", off.describe());
    assert!(off.stderr.contains("milter \"first\" has no command"), "{}", off.describe());

    // A configuration that does not load is refused in the answer, naming the place; the
    // running one stays and goes on serving.
    write(&file, &reordered.replace("n_workers = 2", "n_workers = \"two\""));
    let refused = ctl(&dir, "reload-broken", &["-s", &control_spec, "reload"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.starts_with("milter-manager-ctl: reload failed, generation 3 stays: ")
            && refused.stderr.contains("milter-manager.toml")
            && refused.stderr.contains("n_workers")
            && refused.stderr.lines().count() == 1,
        "{}",
        refused.describe()
    );
    let shown = ctl(&dir, "configuration-after", &["-s", &control_spec, "configuration"]);
    assert!(shown.stdout.contains("n_workers = 2"), "{}", shown.stdout);
    let out = session(&dir, "after-broken-reload", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
}

#[test]
fn without_workers_the_controller_has_a_process_of_its_own() {
    let dir = TempDir::new("controller-alone");
    let client_dir = TempDir::new("controller-alone-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let controller = dir.join("controller.sock");
    let config = format!(
        "[manager]\nn_workers = 0\n\n[controller]\nconnection_spec = \"unix:{}\"\n\n\
         [milter.\"only\"]\nconnection_spec = \"{}\"\n",
        controller.display(),
        client.spec
    );
    let mut manager = ManagerProcess::start_until(&dir, &config, "listening on");
    let out = session(&dir, "session", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    let spec = format!("unix:{}", controller.display());
    let mut status = String::new();
    let counted = wait_for(deadline(), || {
        let out = ctl(&dir, "status", &["-s", &spec, "status"]);
        assert!(out.status.success(), "{}", out.describe());
        status = out.stdout;
        status.contains("sessions-done: 1\n")
    });
    assert!(counted, "{status}");
    assert!(status.contains("workers: 0\n"), "{status}");
    assert!(status.contains("\"only\": pass=1 accept=0"), "{status}");

    // A reload happens in the serving process; the controller's process answers with its
    // outcome and learns the new configuration (and, from a SIGHUP, its generation).
    let file = manager.conf.join("milter-manager.toml");
    let added = format!(
        "{}\n[milter.\"added\"]\nconnection_spec = \"{}\"\n",
        config.replacen(
            "connection_spec = \"unix:",
            "unix_socket_mode = 0o600\nconnection_spec = \"unix:",
            1
        ),
        client.spec
    );
    write(&file, &added);
    manager.process.signal("HUP");
    let generation_2 = wait_for(deadline(), || {
        ctl(&dir, "status-gen2", &["-s", &spec, "status"]).stdout.starts_with("generation: 2\n")
    });
    assert!(generation_2, "the SIGHUP's reload reaches the controller:\n{}", manager.log());
    let restart_line = "restart needed: controller.unix_socket_mode changed; it takes effect \
                        when milter-manager restarts\n";
    let reload = ctl(&dir, "reload", &["-s", &spec, "reload"]);
    assert!(reload.status.success(), "{}\n{}", reload.describe(), manager.log());
    assert!(
        reload.stdout.starts_with(
            "reloaded: generation 3 serves new sessions in this one process (n_workers = 0)\n"
        ) && reload.stdout.ends_with(restart_line),
        "{}",
        reload.describe()
    );
    let status_3 = ctl(&dir, "status-gen3", &["-s", &spec, "status"]).stdout;
    assert!(status_3.starts_with("generation: 3\n"), "{status_3}");
    let shown = ctl(&dir, "configuration", &["-s", &spec, "configuration"]);
    assert!(shown.stdout.contains("[milter.\"added\"]"), "{}", shown.stdout);
    let out = session(&dir, "session-added", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    let counted = wait_for(deadline(), || {
        status = ctl(&dir, "status-added", &["-s", &spec, "status"]).stdout;
        status.contains("sessions-done: 2\n")
    });
    assert!(counted, "{status}");
    assert!(status.contains("\"only\": pass=2 accept=0"), "{status}");
    assert!(status.contains("\"added\": pass=1 accept=0"), "{status}");

    write(&file, &added.replace("n_workers = 0", "n_workers = 0\nfallback_status = \"maybe\""));
    let refused = ctl(&dir, "reload-broken", &["-s", &spec, "reload"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.starts_with("milter-manager-ctl: reload failed, generation 3 stays: ")
            && refused.stderr.contains("fallback_status"),
        "{}",
        refused.describe()
    );
    assert!(manager.process.terminate().success());
    assert!(!controller.exists(), "the control socket is removed on exit");
}

/// A start script for milter-test-client on `spec`, run by the launcher.
fn client_script(dir: &TempDir, name: &str, spec: &str) -> PathBuf {
    let script = dir.join(&format!("start-{name}.sh"));
    let log = dir.join(&format!("{name}.log"));
    write(
        &script,
        &format!(
            "#!/bin/sh\nexec {TEST_CLIENT} -s '{spec}' --log-path {} >/dev/null 2>&1\n",
            log.display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn privilege_mode_learns_milters_from_a_reload_and_restarts_dead_children_with_a_pause() {
    require_root();
    let dir = TempDir::new("launcher-reload");
    let spec = |port: u16| format!("inet:{port}@[127.0.0.1]");
    let (first_spec, added_spec) = (spec(free_tcp_port()), spec(free_tcp_port()));
    let controller = dir.join("controller.sock");
    let milter = |name: &str, spec: &str| {
        format!(
            "[milter.\"{name}\"]\nconnection_spec = \"{spec}\"\ncommand = \"{}\"\n\
             fallback_status = \"reject\"\nconnection_timeout = 60\n\n",
            client_script(&dir, name, spec).display()
        )
    };
    let config = format!(
        "[security]\nprivilege_mode = true\n\n[manager]\nn_workers = 1\n\n\
         [controller]\nconnection_spec = \"unix:{}\"\n\n{}",
        controller.display(),
        milter("first", &first_spec)
    );
    let manager = ManagerProcess::start_until(&dir, &config, "supervising");
    let out = session(&dir, "first", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());

    // A milter added by a reload is started by the launcher without a restart; one that
    // keeps failing at once is there too.
    let crash = dir.join("crash.sh");
    write(&crash, "#!/bin/sh\nexit 3\n");
    std::fs::set_permissions(&crash, std::fs::Permissions::from_mode(0o755)).unwrap();
    let reloaded = format!(
        "{config}{}[milter.\"crash\"]\nenabled = false\ncommand = \"{}\"\n",
        milter("added", &added_spec),
        crash.display()
    );
    write(&manager.conf.join("milter-manager.toml"), &reloaded);
    let conf = manager.conf.to_str().unwrap().to_string();
    let reload = ctl(&dir, "reload", &["-c", &conf, "reload"]);
    assert!(reload.status.success(), "{}", reload.describe());
    // A disabled milter's command is not startable.
    assert!(
        manager.log().contains("launcher: configuration read again: 2 milters can be started"),
        "{}",
        manager.log()
    );
    let out = session(&dir, "with-added", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    assert_eq!(processes_with(&added_spec).len(), 1, "{}", manager.log());

    // A child that dies is started again by the next session that needs it (after a pause
    // when it had only just started), and the session gets its answer.
    let dead = processes_with(&first_spec);
    assert_eq!(dead.len(), 1, "{dead:?}");
    kill(dead[0], "KILL");
    let ended = format!("launcher: milter \"first\" (pid {}) ended: killed by SIGKILL", dead[0]);
    assert!(wait_for(deadline(), || manager.log().contains(&ended)), "{}", manager.log());
    let out = session(&dir, "after-death", &manager);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    let again = processes_with(&first_spec);
    assert!(again.len() == 1 && again[0] != dead[0], "{again:?}\n{}", manager.log());

    // Enabled (no session needs it: nothing listens on its socket), the milter that ends at
    // once is started at most once per pause: 1 s, 2 s, 4 s.
    let enabled = reloaded.replace(
        "enabled = false\n",
        &format!("connection_spec = \"unix:{}\"\n", dir.join("crash.sock").display()),
    );
    write(&manager.conf.join("milter-manager.toml"), &enabled);
    let reload = ctl(&dir, "reload-enabled", &["-c", &conf, "reload"]);
    assert!(reload.status.success(), "{}", reload.describe());
    assert!(
        manager.log().contains("launcher: configuration read again: 3 milters can be started"),
        "{}",
        manager.log()
    );
    let socket = manager.launcher_socket();
    let mut answers = Vec::new();
    let backed_off = wait_for(Instant::now() + Duration::from_secs(60), || {
        answers.push(ask_launcher(&socket, "start crash\n"));
        manager.log().contains("started again no sooner than in 4s")
    });
    let log = manager.log();
    assert!(backed_off, "{log}");
    let pauses: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains("launcher: milter \"crash\"") && line.contains("ended: exit code 3")
        })
        .filter_map(|line| line.split("no sooner than in ").nth(1))
        .collect();
    assert_eq!(pauses, ["1s", "2s", "4s"], "{log}");
    let starts = answers.iter().filter(|a| a.starts_with("started ")).count();
    assert_eq!(starts, 3, "{answers:?}");
    assert!(answers.iter().any(|a| a.starts_with("wait ")), "{answers:?}");
}

#[test]
fn the_launcher_starts_a_milter_at_most_once_per_pause_and_not_while_it_stops() {
    require_root();
    let dir = TempDir::new("launcher-rate");
    // It ignores SIGTERM, so a stop leaves it running until the test kills it.
    let stubborn = dir.join("stubborn.sh");
    let ready = dir.join("ignores-term");
    write(
        &stubborn,
        &format!("#!/bin/sh\ntrap '' TERM\ntouch {}\nexec sleep 600\n", ready.display()),
    );
    std::fs::set_permissions(&stubborn, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "[security]\nprivilege_mode = true\n\n[manager]\nn_workers = 1\n\n\
         [milter.\"stubborn\"]\nconnection_spec = \"unix:{}\"\ncommand = \"{}\"\n",
        dir.join("stubborn.sock").display(),
        stubborn.display()
    );
    let manager = ManagerProcess::start_until(&dir, &config, "supervising");
    let socket = manager.launcher_socket();
    let started = ask_launcher(&socket, "start stubborn\n");
    let pid: u32 = started.strip_prefix("started ").unwrap().trim().parse().unwrap();
    assert!(wait_for(deadline(), || ready.exists()), "{}", manager.log());
    assert_eq!(ask_launcher(&socket, "stop stubborn\n"), format!("stopped {pid}\n"));

    // Stopped but still running, then a flood: every request is answered with a wait.
    for _ in 0..50 {
        let answer = ask_launcher(&socket, "start stubborn\n");
        assert!(answer.starts_with("wait "), "{answer}\n{}", manager.log());
    }
    assert!(is_alive(pid));
    let starts = || manager.log().matches("launcher: started milter \"stubborn\"").count();
    assert_eq!(starts(), 1, "{}", manager.log());

    // Once it has ended it is started again, after the pause.
    kill(pid, "KILL");
    let ended = format!("launcher: milter \"stubborn\" (pid {pid}) ended after its stop: killed");
    assert!(wait_for(deadline(), || manager.log().contains(&ended)), "{}", manager.log());
    let mut answers = Vec::new();
    let again = wait_for(deadline(), || {
        answers.push(ask_launcher(&socket, "start stubborn\n"));
        answers.last().is_some_and(|answer| answer.starts_with("started "))
    });
    assert!(again, "{answers:?}\n{}", manager.log());
    assert_eq!(starts(), 2, "{}", manager.log());
    assert!(answers[..answers.len() - 1].iter().all(|a| a.starts_with("wait ")), "{answers:?}");
    let last = answers.last().unwrap().strip_prefix("started ").unwrap().trim().parse().unwrap();
    kill(last, "KILL");
}

#[test]
fn the_launcher_answers_while_other_clients_are_slow_or_silent() {
    require_root();
    let dir = TempDir::new("launcher-clients");
    let config = format!(
        "[security]\nprivilege_mode = true\n\n[manager]\nn_workers = 1\n\n\
         [milter.\"only\"]\nconnection_spec = \"unix:{}\"\ncommand = \"/bin/true\"\nenabled = false\n",
        dir.join("only.sock").display()
    );
    let manager = ManagerProcess::start_until(&dir, &config, "supervising");
    let socket = manager.launcher_socket();
    // Ten clients send half a request and stop; one says nothing at all.
    let mut slow: Vec<UnixStream> = (0..10)
        .map(|_| {
            let mut stream = UnixStream::connect(&socket).expect("connect to the launcher");
            stream.write_all(b"start no").unwrap();
            stream
        })
        .collect();
    let silent = UnixStream::connect(&socket).expect("connect to the launcher");
    // A real request is answered meanwhile, and so are the slow ones once they finish:
    // served one at a time, each would have waited for the others' timeouts and failed.
    assert_eq!(
        ask_launcher(&socket, "start only\n"),
        "error milter \"only\" is disabled (enabled = false)\n"
    );
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(b"pe\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "error no milter named \"nope\" in the configuration\n");
    }
    // The silent one is dropped at its deadline, with a word in the log.
    let dropped = "launcher: dropped a client that did not send a request within 2s";
    assert!(wait_for(deadline(), || manager.log().contains(dropped)), "{}", manager.log());
    drop(silent);
}

#[test]
fn a_started_milter_gets_a_clean_environment_and_the_root_directory() {
    require_root();
    let dir = TempDir::new("launcher-environment");
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
    let report = work.join("environment.txt");
    let config = format!(
        "[security]\nprivilege_mode = true\n\n[manager]\nn_workers = 1\n\n\
         [milter.\"show\"]\nconnection_spec = \"unix:{}\"\ncommand = \"/bin/sh\"\n\
         command_options = [\"-c\", \"pwd >{report}; exec /usr/bin/env >>{report}\"]\n\
         user_name = \"nobody\"\n",
        dir.join("show.sock").display(),
        report = report.display()
    );
    // What root's shell has must not reach the milter.
    let env = [("MILTER_TEST_SECRET", "root's"), ("LANG", "C.UTF-8"), ("HOME", "/root")];
    let options =
        ManagerOptions { ready_line: Some("supervising"), env: &env, ..Default::default() };
    let manager = ManagerProcess::start_with(&dir, &config, &options);
    let started = ask_launcher(&manager.launcher_socket(), "start show\n");
    assert!(started.starts_with("started "), "{started}\n{}", manager.log());
    let written = wait_for(deadline(), || read_lossy(&report).contains("PATH="));
    let shown = read_lossy(&report);
    assert!(written, "{shown}\n{}", manager.log());
    let passwd = Command::new("getent").args(["passwd", "nobody"]).output().unwrap();
    let home =
        String::from_utf8_lossy(&passwd.stdout).trim().split(':').nth(5).unwrap().to_string();
    let mut lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.remove(0), "/", "the working directory:\n{shown}");
    // The shell itself adds PWD (and some shells more); everything else comes from the launcher.
    lines.retain(|line| !["PWD=", "OLDPWD=", "SHLVL=", "_="].iter().any(|p| line.starts_with(p)));
    lines.sort_unstable();
    let expected_home = format!("HOME={home}");
    assert_eq!(
        lines,
        [
            expected_home.as_str(),
            "LANG=C.UTF-8",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ],
        "{shown}"
    );
}
