//! The milter-manager binary: configuration checks and printing, command-line overrides,
//! and serving mail through real child milters (milter-test-client) driven by
//! milter-test-server.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    assert_ended_quietly, deadline, entry_field, getent, run, run_with_stdout_closed, wait_for,
    write_file as write, ManagerProcess, TempDir, TestClient, MANAGER, TEST_SERVER,
};

fn manager(dir: &TempDir, name: &str, args: &[&str]) -> support::Finished {
    run(dir, name, Command::new(MANAGER).args(args), Duration::from_secs(20))
}

/// A Debian machine under `root` as the packages of the usual milters leave it (their
/// service files and configurations, trimmed), with their sockets under `sockets`; rspamd's
/// proxy on a loopback port where nothing listens.
fn debian_mail_host(root: &Path, sockets: &Path) {
    let file = |path: &str, text: String| write(&root.join(path.trim_start_matches('/')), &text);
    let s = sockets.display();
    file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n".into());
    file(
        "/etc/init.d/spamass-milter",
        "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: spamass-milter\n\
         # Short-Description: milter for spamassassin\n### END INIT INFO\n\
         NAME=spamass-milter\nDAEMON=/usr/sbin/spamass-milter\n\
         SOCKET=/var/run/spamass/spamass.sock\nDEFAULT=/etc/default/spamass-milter\n\
         if [ -r $DEFAULT ]; then\n    . $DEFAULT\nfi\n"
            .into(),
    );
    file(
        "/etc/default/spamass-milter",
        format!("OPTIONS=\"-u spamass-milter -i 127.0.0.1\"\nSOCKET=\"{s}/spamass.sock\"\n"),
    );
    file(
        "/etc/init.d/clamav-milter",
        "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: clamav-milter\n\
         # Description: ClamAV virus milter\n### END INIT INFO\n\
         DAEMON=/usr/sbin/clamav-milter\nCLAMAVMILTERCONF=/etc/clamav/clamav-milter.conf\n"
            .into(),
    );
    file(
        "/etc/clamav/clamav-milter.conf",
        format!("MilterSocket {s}/clamav-milter.ctl\nMilterSocketMode 666\nUser clamav\n"),
    );
    let port = support::free_tcp_port();
    file(
        "/lib/systemd/system/rspamd.service",
        "[Unit]\nDescription=rapid spam filtering system\n[Service]\n\
         ExecStart=/usr/bin/rspamd -c /etc/rspamd/rspamd.conf -f\n"
            .into(),
    );
    file(
        "/etc/rspamd/rspamd.conf",
        format!("worker \"rspamd_proxy\" {{\n  bind_socket = \"127.0.0.1:{port}\";\n  milter = yes;\n}}\n"),
    );
    for (name, description) in [("opendkim", "OpenDKIM Milter"), ("opendmarc", "OpenDMARC Milter")]
    {
        file(
            &format!("/lib/systemd/system/{name}.service"),
            format!("[Unit]\nDescription={description}\n[Service]\nType=forking\nExecStart=/usr/sbin/{name}\n"),
        );
        file(&format!("/etc/{name}.conf"), format!("Syslog yes\nSocket local:{s}/{name}.sock\n"));
        file(&format!("/etc/systemd/system/multi-user.target.wants/{name}.service"), String::new());
    }
}

/// The shipped configuration directory (its tracked files only) set to read `root` as the
/// machine; returns its path.
fn shipped_conf(dir: &TempDir, root: &Path) -> std::path::PathBuf {
    let conf = dir.join("conf");
    let shipped = support::source_path("conf");
    for name in ["milter-manager.toml", "defaults/debian.toml"] {
        write(&conf.join(name), &std::fs::read_to_string(shipped.join(name)).unwrap());
    }
    write(
        &conf.join("conf.d/00-machine.toml"),
        &format!("[package]\noptions = \"root={}\"\n", root.display()),
    );
    conf
}

/// The README's main command on a Debian host with the usual milters installed: the
/// shipped configuration finds them, says where each came from, starts, and serves mail
/// through the one that runs (opendkim, played by milter-test-client).
#[test]
fn the_shipped_configuration_starts_on_a_host_with_the_usual_milters() {
    let dir = TempDir::new("manager-real-host");
    let root = dir.join("machine");
    let sockets = dir.join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    debian_mail_host(&root, &sockets);
    let conf = shipped_conf(&dir, &root);

    let out = manager(&dir, "check", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert!(out.status.success(), "{}", out.describe());
    let s = sockets.display();
    for line in [
        format!(
            "milter \"clamav-milter\": enabled, unix:{s}/clamav-milter.ctl, applies to: every \
             mail (detected: /etc/init.d/clamav-milter)"
        ),
        format!(
            "milter \"opendkim\": enabled, local:{s}/opendkim.sock, applies to: every mail \
             (detected: /lib/systemd/system/opendkim.service)"
        ),
        format!(
            "milter \"spamass-milter\": enabled, unix:{s}/spamass.sock, applies to: Remote \
             Network, Unauthenticated, No Stress (detected: /etc/init.d/spamass-milter)"
        ),
        "milter \"rspamd\": disabled, inet:".to_string(),
        format!("{}: configuration is valid (5 child milters, 4 enabled)", conf.display()),
    ] {
        assert!(out.stdout.contains(&line), "{line:?} is not in:\n{}", out.describe());
    }
    let shown = manager(&dir, "show", &["-c", conf.to_str().unwrap(), "--show-config"]);
    assert!(
        shown.stdout.contains("# detected: /etc/os-release: ID=debian\nplatform = \"debian\"\n"),
        "{}",
        shown.describe()
    );

    let opendkim_dir = TempDir::new("manager-real-host-opendkim");
    let opendkim = TestClient::start(&opendkim_dir, &format!("unix:{s}/opendkim.sock"), &[]);
    let main = std::fs::read_to_string(conf.join("milter-manager.toml")).unwrap();
    let manager = ManagerProcess::start(&dir, &main);
    let out = test_server(&dir, "server", &manager.spec(), &[]);
    assert!(out.status.success(), "{}\n--- manager log:\n{}", out.describe(), manager.log());
    assert!(
        opendkim.report().contains("<sender@example.org>"),
        "{}\n--- manager log:\n{}",
        opendkim.report(),
        manager.log()
    );
}

#[test]
fn a_bad_value_is_reported_with_file_line_and_key() {
    let dir = TempDir::new("manager-check-bad");
    let conf = dir.join("conf");
    write(&conf.join("milter-manager.toml"), "include_optional = [\"local.toml\"]\n");
    write(
        &conf.join("local.toml"),
        "[manager]\nn_workers = 2\n\n[milter.\"spam\"]\nconnection_spec = \"inet:x@localhost\"\n",
    );
    let out = manager(&dir, "check", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", out.describe());
    let expected = format!("{}:5: milter.spam.connection_spec:", conf.join("local.toml").display());
    assert!(lines[0].contains(&expected), "{}", out.describe());
}

#[test]
fn an_unknown_key_gets_a_hint() {
    let dir = TempDir::new("manager-check-typo");
    let conf = dir.join("conf");
    write(&conf.join("milter-manager.toml"), "[manager]\nn_worker = 2\n");
    let out = manager(&dir, "check", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains(":2: manager.n_worker:"), "{}", out.describe());
    assert!(out.stderr.contains("n_workers"), "{}", out.describe());
}

/// Items of the seed manual, each must appear in --show-config.
const SEED_ITEMS: &[&str] = &[
    "platform",
    "options",
    "privilege_mode",
    "effective_user",
    "effective_group",
    "connection_spec",
    "unix_socket_mode",
    "unix_socket_group",
    "remove_unix_socket_on_create",
    "remove_unix_socket_on_close",
    "daemon",
    "pid_file",
    "maintenance_interval",
    "suspend_time_on_unacceptable",
    "max_connections",
    "max_file_descriptors",
    "custom_configuration_directory",
    "fallback_status",
    "fallback_status_at_disconnect",
    "event_loop_backend",
    "n_workers",
    "packet_buffer_size",
    "connection_check_interval",
    "description",
    "enabled",
    "evaluation_mode",
    "applicable_conditions",
    "command",
    "command_options",
    "user_name",
    "connection_timeout",
    "writing_timeout",
    "reading_timeout",
    "end_of_message_timeout",
    "reuse_connection",
    "max_idle_connections",
    "idle_connection_timeout",
];

fn without_comments(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n")
}

#[test]
fn show_config_round_trips_and_names_origins() {
    let dir = TempDir::new("manager-show");
    let conf = dir.join("conf");
    write(
        &conf.join("milter-manager.toml"),
        "include = [\"conf.d/*.toml\"]\n\n[manager]\nfallback_status = \"reject\"\n",
    );
    write(
        &conf.join("conf.d/10-milters.toml"),
        "[milter.\"opendkim\"]\nconnection_spec = \"unix:/run/opendkim/opendkim.sock\"\n\
         description = \"DKIM \\\"signing\\\"\"\ncommand = \"/etc/init.d/opendkim\"\n\
         command_options = [\"start\", \"--quiet\"]\nreading_timeout = 12.5\n\n\
         [milter.\"spamass\"]\nconnection_spec = \"inet:11120@[127.0.0.1]\"\n\
         enabled = false\nfallback_status = \"temporary-failure\"\n",
    );
    let first = manager(
        &dir,
        "show1",
        &["-c", conf.to_str().unwrap(), "--show-config", "--n-workers", "3"],
    );
    assert!(first.status.success(), "{}", first.describe());
    let shown = &first.stdout;
    let main_file = conf.join("milter-manager.toml");
    assert!(
        shown.contains(&format!("# {}:4\nfallback_status = \"reject\"", main_file.display())),
        "{shown}"
    );
    assert!(shown.contains("# command line\nn_workers = 3"), "{shown}");
    assert!(
        shown.contains("[milter.\"opendkim\"]") && shown.contains("[milter.\"spamass\"]"),
        "{shown}"
    );
    for item in SEED_ITEMS {
        assert!(
            shown.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{item} ="))),
            "--show-config lacks {item}:\n{shown}"
        );
    }
    // Load the printed text as a configuration and print it again.
    let again_dir = dir.join("again");
    write(&again_dir.join("milter-manager.toml"), shown);
    let second = manager(&dir, "show2", &["-c", again_dir.to_str().unwrap(), "--show-config"]);
    assert!(second.status.success(), "{}", second.describe());
    assert_eq!(without_comments(&second.stdout), without_comments(shown));
}

/// As the manual says: `milter-manager --show-config | grep define_applicable_condition`
/// lists the conditions a milter may name, built in or from a Rhai file (with its line),
/// and the printed text still loads.
#[test]
fn show_config_lists_the_conditions_for_grep() {
    let dir = TempDir::new("manager-show-conditions");
    let conf = dir.join("conf");
    // No platform default and a platform set: nothing of this host is read.
    write(
        &conf.join("milter-manager.toml"),
        "load_default = false\ninclude = [\"conditions.rhai\"]\n[package]\nplatform = \"debian\"\n",
    );
    let script = conf.join("conditions.rhai");
    write(
        &script,
        "define_applicable_condition(\"Office Hours\", |condition| {\n\
         \x20 condition.description = \"only from 8 to 19\";\n\
         });\n",
    );
    let shown = manager(&dir, "show", &["-c", conf.to_str().unwrap(), "--show-config"]);
    assert!(shown.status.success(), "{}", shown.describe());
    let grepped: Vec<&str> =
        shown.stdout.lines().filter(|l| l.contains("define_applicable_condition")).collect();
    for name in ["S25R", "Remote Network", "No Stress", "Restrict Accounts"] {
        let line = format!("# define_applicable_condition(\"{name}\") # ");
        assert!(
            grepped.iter().any(|l| l.starts_with(&line) && l.ends_with("(built in)")),
            "{name}: {grepped:#?}"
        );
    }
    assert_eq!(
        grepped.last(),
        Some(&&*format!(
            "# define_applicable_condition(\"Office Hours\") # only from 8 to 19 ({}:1)",
            script.display()
        )),
        "{grepped:#?}"
    );
    let again_dir = dir.join("again");
    write(&again_dir.join("milter-manager.toml"), &shown.stdout);
    let again = manager(&dir, "show2", &["-c", again_dir.to_str().unwrap(), "--show-config"]);
    assert!(again.status.success(), "{}", again.describe());
    assert_eq!(without_comments(&again.stdout), without_comments(&shown.stdout));
}

fn test_server(dir: &TempDir, name: &str, spec: &str, extra: &[&str]) -> support::Finished {
    let mut command = Command::new(TEST_SERVER);
    command
        .args(["-s", spec, "--from", "<sender@example.org>", "--recipient", "<rcpt@example.com>"])
        .args(["--header", "Subject:through the manager", "--body", "Hello.\r\n"])
        .args(extra);
    run(dir, name, &mut command, Duration::from_secs(20))
}

fn milter_config(children: &[(&str, &str)], manager_extra: &str) -> String {
    let mut config = format!("[manager]\n{manager_extra}\n");
    for (name, spec) in children {
        config.push_str(&format!("\n[milter.\"{name}\"]\nconnection_spec = \"{spec}\"\n"));
    }
    config
}

#[test]
fn show_and_check_config_end_quietly_when_the_reader_is_gone() {
    let dir = TempDir::new("manager-stdout-closed");
    let conf = dir.join("conf");
    write(
        &conf.join("milter-manager.toml"),
        &milter_config(&[("a", "inet:10025@[127.0.0.1]")], ""),
    );
    for option in ["--show-config", "--check-config"] {
        let mut command = Command::new(MANAGER);
        command.arg("-c").arg(&conf).arg(option);
        let out = run_with_stdout_closed(&dir, option, &mut command, Duration::from_secs(20));
        assert_ended_quietly(&out);
    }
}

#[test]
fn a_session_goes_through_two_children() {
    let dir = TempDir::new("manager-two-children");
    let first_dir = TempDir::new("manager-two-children-a");
    let second_dir = TempDir::new("manager-two-children-b");
    let first = TestClient::start_unix(&first_dir, &[]);
    let second = TestClient::start_tcp(&second_dir, &[]);
    let config = milter_config(&[("first", &first.spec), ("second", &second.spec)], "");
    let manager = ManagerProcess::start(&dir, &config);
    let out = test_server(&dir, "server", &manager.spec(), &[]);
    assert!(out.status.success(), "{}\n--- manager log:\n{}", out.describe(), manager.log());
    assert!(out.stdout.contains("status: pass"), "{}", out.describe());
    for client in [&first, &second] {
        let report = client.report();
        for wanted in [
            "envelope-from:",
            "<sender@example.org>",
            "Subject",
            "through the manager",
            "end-of-message",
        ] {
            assert!(report.contains(wanted), "{wanted} missing from the report:\n{report}");
        }
    }
    // The statistics lines of the original's format, for its log analyzer.
    assert!(
        wait_for(deadline(), || manager.log().contains("[statistics] [session][end][")),
        "{}",
        manager.log()
    );
    let log = manager.log();
    assert!(log.contains("[statistics] [milter][end][") && log.contains("): first"), "{log}");
    assert!(log.contains("): second"), "{log}");
    drop(manager);
}

#[test]
fn zero_children_answer_the_manager_fallback_status() {
    let dir = TempDir::new("manager-no-children");
    let manager = ManagerProcess::start(&dir, "[manager]\nfallback_status = \"reject\"\n");
    let out = test_server(&dir, "server", &manager.spec(), &[]);
    assert!(out.stdout.contains("status: reject"), "{}\n{}", out.describe(), manager.log());
}

/// Every maintenance_interval sessions, report_memory_statistics logs the memory; and an
/// item kept only for compatibility is warned about.
#[test]
fn maintenance_reports_memory_every_n_sessions() {
    let dir = TempDir::new("manager-maintenance");
    let manager = ManagerProcess::start(
        &dir,
        "[manager]\nmaintenance_interval = 2\nreport_memory_statistics = true\n\
         packet_buffer_size = 4096\n",
    );
    let report = "[maintain][memory] pid ";
    for session in 1..=4 {
        let out = test_server(&dir, &format!("server{session}"), &manager.spec(), &[]);
        assert!(out.status.success(), "{}", out.describe());
        if session == 1 {
            assert!(!manager.log().contains(report), "{}", manager.log());
        }
    }
    let after = |n: usize| format!(" after {n} sessions");
    assert!(wait_for(deadline(), || manager.log().contains(&after(4))), "{}", manager.log());
    let log = manager.log();
    let reports: Vec<&str> = log.lines().filter(|line| line.contains(report)).collect();
    assert_eq!(reports.len(), 2, "{log}");
    assert!(reports[0].contains(&after(2)) && reports[0].contains("resident "), "{log}");
    assert!(
        log.contains("manager.packet_buffer_size (")
            && log.contains("): accepted for compatibility; no effect"),
        "{log}"
    );
}

#[test]
fn an_unreachable_child_counts_as_its_fallback_status() {
    let dir = TempDir::new("manager-unreachable");
    let missing = format!("unix:{}", dir.join("nobody-listens.sock").display());
    let mut config = milter_config(&[("gone", &missing)], "");
    config.push_str("fallback_status = \"temporary-failure\"\n");
    let manager = ManagerProcess::start(&dir, &config);
    let out = test_server(&dir, "server", &manager.spec(), &[]);
    assert!(
        out.stdout.contains("status: temporary-failure"),
        "{}\n{}",
        out.describe(),
        manager.log()
    );
    let log = manager.log();
    assert!(log.contains("gone: cannot connect"), "{log}");
}

#[test]
fn workers_serve_sessions() {
    let dir = TempDir::new("manager-workers");
    let client_dir = TempDir::new("manager-workers-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let config = milter_config(&[("client", &client.spec)], "n_workers = 2");
    let manager = ManagerProcess::start(&dir, &config);
    for i in 0..4 {
        let out = test_server(&dir, &format!("server{i}"), &manager.spec(), &[]);
        assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    }
    let four = wait_for(deadline(), || client.report().matches("] end-of-message:").count() == 4);
    assert!(four, "the child saw 4 messages:\n{}", client.report());
    let mut manager = manager;
    let status = manager.process.terminate();
    assert!(status.success(), "milter-manager exited with {status}");
    assert!(!manager.socket.exists(), "the socket is removed on exit");
}

/// 200 KiB of every byte value but CR and LF (NUL included), in CRLF-ended lines.
fn binary_body() -> Vec<u8> {
    let mut body = Vec::new();
    let mut value = 0u8;
    while body.len() < 200 * 1024 {
        for _ in 0..70 {
            value = value.wrapping_add(1);
            if value != b'\r' && value != b'\n' {
                body.push(value);
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// The body a milter-test-client report shows, chunk after chunk.
fn reported_body(report: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for line in report.lines() {
        if let Some(rest) = line.split_once("] body: ").map(|(_, rest)| rest) {
            let chunk = rest.split_once("chunk=<").map(|(_, c)| c).unwrap_or_default();
            let chunk = chunk.strip_suffix('>').unwrap_or(chunk);
            body.extend(milter_manager::text::unescape(chunk).expect("an escaped chunk"));
        }
    }
    body
}

#[test]
fn a_large_binary_body_spills_to_a_file_and_reaches_every_child_intact() {
    let dir = TempDir::new("manager-spill");
    let first_dir = TempDir::new("manager-spill-a");
    let second_dir = TempDir::new("manager-spill-b");
    let first = TestClient::start_unix(&first_dir, &[]);
    let second = TestClient::start_unix(&second_dir, &[]);
    let spill_dir = dir.join("spill");
    std::fs::create_dir_all(&spill_dir).unwrap();
    let settings =
        format!("max_body_memory = 1000\ntemporary_directory = \"{}\"", spill_dir.display());
    let config = milter_config(&[("first", &first.spec), ("second", &second.spec)], &settings);
    let manager = ManagerProcess::start(&dir, &config);
    let body = binary_body();
    let mail = dir.join("mail.eml");
    std::fs::write(&mail, [b"Subject: binary\n\n".as_slice(), &body].concat()).unwrap();
    let mut command = Command::new(TEST_SERVER);
    command.args([
        "-s",
        &manager.spec(),
        "--from",
        "<a@example.org>",
        "--recipient",
        "<b@example.com>",
    ]);
    command.arg("--mail-file").arg(&mail);
    let out = run(&dir, "server", &mut command, Duration::from_secs(20));
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    for client in [&first, &second] {
        let complete = wait_for(deadline(), || client.report().contains("] end-of-message:"));
        assert!(complete, "{}", client.report());
        let seen = reported_body(&client.report());
        assert_eq!(seen.len(), body.len(), "every byte reaches the child");
        assert!(seen == body, "the body reaches the child unchanged");
    }
    // The spill file has no name in the manager's private directory, the one entry there.
    let entries: Vec<_> =
        std::fs::read_dir(&spill_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mode = std::fs::metadata(&entries[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", entries[0].display());
    assert_eq!(std::fs::read_dir(&entries[0]).unwrap().count(), 0);
    let mut manager = manager;
    assert!(manager.process.terminate().success());
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0, "removed at exit");
}

#[test]
fn a_manager_started_as_root_spills_as_its_serving_user() {
    support::require_root();
    let dir = TempDir::new("manager-spill-nobody");
    // The unprivileged supervisor removes its socket here at the end.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let client = TestClient::start_tcp(&dir, &[]);
    // Like /tmp: anyone may make files there, only their owner remove them.
    let spill_dir = dir.join("spill");
    std::fs::create_dir_all(&spill_dir).unwrap();
    std::fs::set_permissions(&spill_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let settings = format!(
        "n_workers = 1\nmax_body_memory = 1000\ntemporary_directory = \"{}\"",
        spill_dir.display()
    );
    let options = support::ManagerOptions {
        args: &["--user-name", "nobody"],
        user_from_config: true,
        ..Default::default()
    };
    let config = milter_config(&[("client", &client.spec)], &settings);
    let mut manager = ManagerProcess::start_with(&dir, &config, &options);
    let entries: Vec<_> =
        std::fs::read_dir(&spill_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&entries[0]).unwrap());
    assert_eq!(owner.to_string(), support::user_id("nobody"), "given to the serving user");
    let body = "y".repeat(5000);
    let out = test_server(&dir, "server", &manager.spec(), &["--body", &body]);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    let complete = wait_for(deadline(), || client.report().contains("] end-of-message:"));
    assert!(complete, "the child saw the message:\n{}\n{}", client.report(), manager.log());
    assert!(!manager.log().contains("cannot store"), "{}", manager.log());
    assert!(manager.process.terminate().success());
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0, "{}", manager.log());
}

#[test]
fn squatted_spill_file_names_do_not_keep_a_large_message_from_the_child() {
    let dir = TempDir::new("manager-spill-squat");
    let client_dir = TempDir::new("manager-spill-squat-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let spill_dir = dir.join("spill");
    std::fs::create_dir_all(&spill_dir).unwrap();
    let settings = format!(
        "n_workers = 0\nmax_body_memory = 1000\ntemporary_directory = \"{}\"",
        spill_dir.display()
    );
    let manager =
        ManagerProcess::start(&dir, &milter_config(&[("client", &client.spec)], &settings));
    // A local user takes every name a worker named by its pid and a counter would use.
    let pid = manager.process.id();
    for counter in 0..200 {
        write(&spill_dir.join(format!("milter-manager-body-{pid}-{counter}")), "");
    }
    let body = "x".repeat(5000);
    let out = test_server(&dir, "server", &manager.spec(), &["--body", &body]);
    assert!(out.stdout.contains("status: pass"), "{}\n{}", out.describe(), manager.log());
    let complete = wait_for(deadline(), || client.report().contains("] end-of-message:"));
    assert!(complete, "the child saw the message:\n{}\n{}", client.report(), manager.log());
    let seen = String::from_utf8_lossy(&reported_body(&client.report())).into_owned();
    assert!(seen.contains(&body), "the whole body reached the child:\n{}", client.report());
    assert!(!manager.log().contains("cannot store"), "{}", manager.log());
}

#[test]
fn a_body_that_cannot_be_stored_gets_the_manager_fallback_status() {
    let dir = TempDir::new("manager-spill-fails");
    let client_dir = TempDir::new("manager-spill-fails-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let settings = format!(
        "max_body_memory = 10\nfallback_status = \"temporary-failure\"\ntemporary_directory = \"{}\"",
        dir.join("no-such-directory").display()
    );
    let config = milter_config(&[("client", &client.spec)], &settings);
    let manager = ManagerProcess::start(&dir, &config);
    let out = test_server(&dir, "server", &manager.spec(), &["--body", &"x".repeat(100)]);
    assert!(
        out.stdout.contains("status: temporary-failure"),
        "{}\n{}",
        out.describe(),
        manager.log()
    );
    assert!(manager.log().contains("cannot store the message body"), "{}", manager.log());
    // The same cause again: the same answer, and no second error line.
    let out = test_server(&dir, "server", &manager.spec(), &["--body", &"x".repeat(100)]);
    assert!(out.stdout.contains("status: temporary-failure"), "{}", out.describe());
    let log = manager.log();
    let errors = log
        .lines()
        .filter(|line| line.contains("cannot store the message body"))
        .filter(|line| line.contains("logged once per cause"))
        .count();
    assert_eq!(errors, 1, "{log}");
}

/// `manager.max_spill_size` bounds what the temporary files of one process hold: a message
/// that would pass it gets `manager.fallback_status`, one that fits still passes, and the
/// space comes back when a message is done.
#[test]
fn a_body_past_max_spill_size_gets_the_manager_fallback_status() {
    let dir = TempDir::new("manager-spill-size");
    let client_dir = TempDir::new("manager-spill-size-client");
    let client = TestClient::start_unix(&client_dir, &[]);
    let settings = "max_body_memory = 1000\nmax_spill_size = 5000\n\
                    fallback_status = \"temporary-failure\"";
    let config = milter_config(&[("client", &client.spec)], settings);
    let manager = ManagerProcess::start(&dir, &config);
    for (name, size, status) in [
        ("fits", 4000, "status: pass"),
        ("too-large", 6000, "status: temporary-failure"),
        ("fits-again", 4000, "status: pass"),
        ("too-large-again", 6000, "status: temporary-failure"),
    ] {
        let out = test_server(&dir, name, &manager.spec(), &["--body", &"x".repeat(size)]);
        assert!(out.stdout.contains(status), "{name}: {}\n{}", out.describe(), manager.log());
    }
    let log = manager.log();
    let reason = "the temporary files of large bodies in this process would pass \
                  manager.max_spill_size (5000 bytes)";
    let errors = log
        .lines()
        .filter(|line| line.contains(reason) && line.contains("logged once per cause"))
        .count();
    assert_eq!(errors, 1, "one error line for the cause\n{log}");
    // The child saw the two bodies that fit, and not the others.
    let report = client.report();
    assert_eq!(report.matches(&"x".repeat(4000)).count(), 2, "{report}");
}

/// `manager.max_child_modifications`: a child sending more header changes at one
/// end-of-message than the limit counts as failed, its changes are dropped and the log says
/// why; under the default limit the same changes reach the MTA.
#[test]
fn a_child_past_max_child_modifications_fails_and_its_changes_are_dropped() {
    use milter_manager::protocol::{Command as MilterCommand, Reply};
    let port = support::milter::serve_tcp(|stream, _| {
        support::milter::milter_session(stream, |command| match command {
            MilterCommand::EndOfMessage { .. } => (0..6)
                .map(|n| Reply::AddHeader {
                    name: format!("X-Change-{n}").into_bytes(),
                    value: b"yes".to_vec(),
                })
                .chain([Reply::Continue])
                .collect(),
            _ => vec![Reply::Continue],
        })
    });
    let spec = format!("inet:{port}@[127.0.0.1]");
    for (limit, added) in [("", 6), ("max_child_modifications = 5", 0)] {
        let dir = TempDir::new("manager-modification-limit");
        let manager = ManagerProcess::start(&dir, &milter_config(&[("child", &spec)], limit));
        let out = test_server(&dir, "server", &manager.spec(), &["--output-message"]);
        assert!(out.status.success(), "{limit:?}: {}\n{}", out.describe(), manager.log());
        let shown = out.stdout.lines().filter(|l| l.starts_with("+ X-Change-")).count();
        assert_eq!(shown, added, "{limit:?}: {}", out.stdout);
        let reason = "sent more than 5 modifications at end-of-message, the limit";
        let wait = || manager.log().contains(reason);
        if added == 0 {
            assert!(wait_for(deadline(), wait), "{}", manager.log());
        } else {
            assert!(!wait(), "{}", manager.log());
        }
    }
}

/// The manual counts maintenance by sessions that ended: a session still open has not
/// counted yet, and the maintenance follows its end.
#[test]
fn maintenance_follows_the_sessions_that_ended() {
    use milter_manager::protocol::{Actions, Command as MilterCommand, Negotiation, Steps};
    use std::io::{Read, Write};
    let dir = TempDir::new("manager-maintenance-end");
    let manager = ManagerProcess::start(
        &dir,
        "[manager]\nmaintenance_interval = 1\nreport_memory_statistics = true\n",
    );
    let mut mta = std::os::unix::net::UnixStream::connect(&manager.socket).unwrap();
    let mut offer = Vec::new();
    MilterCommand::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())).encode(&mut offer);
    mta.write_all(&offer).unwrap();
    let mut answer = [0; 5];
    mta.read_exact(&mut answer).unwrap();
    assert_eq!(answer[4], b'O', "the manager answered the offer");
    // The session is under way: nothing ended, no maintenance.
    let report = "[maintain][memory] pid ";
    assert!(!manager.log().contains(report), "{}", manager.log());
    drop(mta);
    let ended = || manager.log().contains(" after 1 sessions");
    assert!(wait_for(deadline(), ended), "{}", manager.log());
}

#[test]
fn a_rhai_condition_keeps_one_child_out_of_a_session() {
    let dir = TempDir::new("manager-rhai-condition");
    let first_dir = TempDir::new("manager-rhai-condition-a");
    let second_dir = TempDir::new("manager-rhai-condition-b");
    let first = TestClient::start_unix(&first_dir, &[]);
    let second = TestClient::start_unix(&second_dir, &[]);
    let mut config = String::from("include = [\"conditions.rhai\"]\n");
    config.push_str(&milter_config(&[("first", &first.spec), ("second", &second.spec)], ""));
    config.push_str("applicable_conditions = [\"Not for example.org\"]\n");
    write(
        &dir.join("conf/conditions.rhai"),
        "define_applicable_condition(\"Not for example.org\", |condition| {\n\
         \x20   condition.description = \"keeps the milter away from example.org senders\";\n\
         \x20   condition.define_envelope_from_stopper(|context, from| from.ends_with(\"@example.org>\"));\n\
         });\n",
    );
    let manager = ManagerProcess::start(&dir, &config);
    let out = test_server(&dir, "server", &manager.spec(), &[]);
    assert!(out.status.success(), "{}\n--- manager log:\n{}", out.describe(), manager.log());
    assert!(out.stdout.contains("status: pass"), "{}", out.describe());
    let first_report = first.report();
    assert!(first_report.contains("<sender@example.org>"), "{first_report}");
    // The second child was stopped at MAIL: it never saw the sender or the message.
    let second_report = second.report();
    assert!(!second_report.contains("<sender@example.org>"), "{second_report}");
    assert!(!second_report.contains("through the manager"), "{second_report}");
    drop(manager);
}

#[test]
fn an_unknown_condition_and_a_bad_script_are_reported_with_file_and_line() {
    let dir = TempDir::new("manager-check-conditions");
    let conf = dir.join("conf");
    write(
        &conf.join("milter-manager.toml"),
        "[milter.\"spam\"]\nconnection_spec = \"inet:10026@[127.0.0.1]\"\n\
         applicable_conditions = [\"S25R\", \"Nope\"]\n",
    );
    let out = manager(&dir, "unknown", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let expected = format!(
        "{}:3: milter.spam.applicable_conditions: milter \"spam\": unknown applicable \
         condition \"Nope\" (known: \"S25R\"",
        conf.join("milter-manager.toml").display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.describe());

    write(&conf.join("milter-manager.toml"), "include = [\"bad.rhai\"]\n");
    write(
        &conf.join("bad.rhai"),
        "let x = 1;\ndefine_milter(\"a\", |m| {\n  m.enabled = \"yes\";\n});\n",
    );
    let out = manager(&dir, "bad", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let expected =
        format!("{}:3: milter.a.enabled: expected true or false", conf.join("bad.rhai").display());
    assert!(out.stderr.contains(&expected), "{}", out.describe());

    write(&conf.join("bad.rhai"), "define_applicable_condition(\"x\", |c| {\n  c.define_helo_stopper(|context, fqdn| fqdn ==);\n});\n");
    let out = manager(&dir, "syntax", &["-c", conf.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let expected = format!("{}:2: invalid Rhai: ", conf.join("bad.rhai").display());
    assert!(out.stderr.contains(&expected), "{}", out.describe());
}

/// A second milter-manager on `socket` with the first one's configuration directory (and so
/// its controller socket), as root serving as the test's own user; its log goes to
/// `<dir>/<name>.log`.
fn second_manager(dir: &TempDir, name: &str, conf: &Path, socket: &Path) -> support::Finished {
    let log = dir.join(&format!("{name}.log"));
    let mut command = Command::new(MANAGER);
    command
        .arg("-c")
        .arg(conf)
        .arg("-s")
        .arg(format!("unix:{}", socket.display()))
        .arg("--log-path")
        .arg(&log)
        .args(["--log-level", "all", "--no-syslog", "--user-name", &support::own_user_name()]);
    run(dir, name, &mut command, Duration::from_secs(20))
}

#[test]
fn a_second_instance_on_the_same_manager_socket_is_refused_and_the_first_serves_on() {
    let dir = TempDir::new("manager-second-same");
    let first = ManagerProcess::start(&dir, "[manager]\nfallback_status = \"reject\"\n");
    let second = second_manager(&dir, "second", &first.conf, &first.socket);
    assert_eq!(second.status.code(), Some(1), "{}", second.describe());
    assert_eq!(
        second.stderr,
        format!(
            "milter-manager: cannot bind unix:{}: another process is listening on it\n",
            first.socket.display()
        )
    );
    let out = test_server(&dir, "server", &first.spec(), &[]);
    assert!(out.stdout.contains("status: reject"), "{}\n{}", out.describe(), first.log());
}

#[test]
fn a_second_instance_refused_on_the_controller_socket_leaves_nothing_behind() {
    let dir = TempDir::new("manager-second-controller");
    let controller = dir.join("controller.sock");
    let config = format!("[controller]\nconnection_spec = \"unix:{}\"\n", controller.display());
    let first = ManagerProcess::start(&dir, &config);
    assert!(wait_for(deadline(), || controller.exists()), "{}", first.log());

    let other_socket = dir.join("mm2.sock");
    let second = second_manager(&dir, "second", &first.conf, &other_socket);
    assert_eq!(second.status.code(), Some(1), "{}", second.describe());
    assert_eq!(
        second.stderr,
        format!(
            "milter-manager: controller: cannot bind unix:{}: another process is listening on it\n",
            controller.display()
        )
    );
    assert!(!other_socket.exists(), "its own manager socket is not left behind");
    let second_log = support::read_lossy(&dir.join("second.log"));
    assert!(!second_log.contains("listening on"), "{second_log}");

    // The first instance took the probe for what it is, not for a bad request: by the time
    // it answers a later request, it has seen the probe (accepted before it).
    let spec = format!("unix:{}", controller.display());
    let status = support::ctl(&dir, "ctl", &["-s", &spec, "status"]);
    assert!(status.status.success(), "{}", status.describe());
    let log = first.log();
    assert!(log.contains("control client closed without a request"), "{log}");
    assert!(!log.contains("controller: refused"), "{log}");
}

#[test]
fn the_originals_options_map_to_their_configuration_items() {
    let dir = TempDir::new("manager-original-options");
    let conf = dir.join("conf");
    write(&conf.join("milter-manager.toml"), "[manager]\nn_workers = 1\n");
    let args = [
        "-c",
        conf.to_str().unwrap(),
        "--show-config",
        "-q",
        "--syslog-facility",
        "local4",
        "--user-id",
        "65534",
        "--group-id",
        "65534",
        "--unix-socket-mode",
        "0600",
        "--event-loop-backend",
        "libev",
        "--packet-buffer-size",
        "4096",
        "--max-pending-finished-sessions",
        "10",
        "--spec",
        "inet:10026@[127.0.0.1]",
    ];
    let out = manager(&dir, "show", &args);
    assert!(out.status.success(), "{}", out.describe());
    for item in [
        format!(
            "effective_user = \"{}\"",
            entry_field(&getent("passwd", "65534").expect("user 65534"), 0)
        ),
        format!(
            "effective_group = \"{}\"",
            entry_field(&getent("group", "65534").expect("group 65534"), 0)
        ),
        "connection_spec = \"inet:10026@[127.0.0.1]\"".to_string(),
        "unix_socket_mode = 0o600".to_string(),
        "event_loop_backend = \"libev\"".to_string(),
        "packet_buffer_size = 4096".to_string(),
        "max_pending_finished_sessions = 10".to_string(),
        "level = \"none\"".to_string(),
        "syslog_facility = \"local4\"".to_string(),
    ] {
        assert!(
            out.stdout.contains(&format!("# command line\n{item}\n")),
            "{item}:\n{}",
            out.stdout
        );
    }

    let unknown =
        manager(&dir, "unknown-uid", &["-c", conf.to_str().unwrap(), "--user-id", "4242424"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", unknown.describe());
    assert_eq!(unknown.stderr, "milter-manager: --user-id 4242424: no user has this id\n");
    let postfix_form = ["-c", conf.to_str().unwrap(), "--connection-spec", "inet:127.0.0.1:10025"];
    let spec = manager(&dir, "postfix-form", &postfix_form);
    assert_eq!(spec.status.code(), Some(1), "{}", spec.describe());
    assert_eq!(
        spec.stderr,
        "milter-manager: --connection-spec: invalid connection spec \"inet:127.0.0.1:10025\": \
         port \"127.0.0.1:10025\" is not a number (this looks like Postfix's inet:HOST:PORT form; \
         write inet:PORT@HOST)\n"
    );
    let facility =
        manager(&dir, "facility", &["-c", conf.to_str().unwrap(), "--syslog-facility", "email"]);
    assert_eq!(facility.status.code(), Some(1), "{}", facility.describe());
    assert!(
        facility.stderr.starts_with(
            "milter-manager: command line: log.syslog_facility: unknown value \"email\""
        ),
        "{}",
        facility.describe()
    );
    let help = manager(&dir, "help", &["--help"]);
    for option in
        ["--event-loop-backend", "--packet-buffer-size", "--max-pending-finished-sessions"]
    {
        let mut lines = help.stdout.lines().skip_while(|l| !l.trim_start().starts_with(option));
        assert!(lines.next().is_some(), "{option} is in --help:\n{}", help.stdout);
        let description: Vec<&str> =
            lines.take_while(|l| !l.trim_start().starts_with('-')).collect();
        assert!(description.concat().contains("No effect"), "{option}: {description:?}");
    }
}

/// A log file that is a symbolic link (planted where the serving user may write) is not
/// followed by the manager, which opens it as root: it refuses to start and says why.
#[test]
fn a_symbolic_link_as_the_log_file_is_refused() {
    let dir = TempDir::new("manager-log-link");
    let conf = dir.join("conf");
    write(&conf.join("milter-manager.toml"), "load_default = false\n");
    let secret = dir.join("secret");
    write(&secret, "untouched\n");
    let link = dir.join("mm.log");
    std::os::unix::fs::symlink(&secret, &link).expect("plant the link");
    let socket = format!("unix:{}", dir.join("manager.sock").display());
    let out = manager(
        &dir,
        "link",
        &[
            "-c",
            conf.to_str().unwrap(),
            "-s",
            &socket,
            "--log-path",
            link.to_str().unwrap(),
            "--user-name",
            &support::own_user_name(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let expected = format!("log file {}: is a symbolic link", link.display());
    assert!(out.stderr.contains(&expected), "{}", out.describe());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "untouched\n");
}
