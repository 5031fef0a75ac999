//! The Debian package, for real (as root, as CI runs): `packaging/build-deb`, `apt-get
//! install` with a policy-rc.d that keeps the service stopped, then the SysV init script:
//! start, a session, restart after an upgrade, a child milter added by reload, status, stop,
//! and `apt-get purge`.
//! Whatever happens, the package is purged at the end ([`Installed`]'s drop), which also
//! takes away the user, the group and every file it created.

use crate::support;
use crate::support::postfix;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use postfix::{send_mail, simple_message, Postfix};
use support::{
    deadline, entry_field, getent, is_alive, live_processes_of, read_lossy, require_root, run,
    source_path, status_field, wait_for, Finished, TempDir, TestClient,
};

const INIT_SCRIPT: &str = "/etc/init.d/milter-manager";
const SOCKET: &str = "/run/milter-manager/milter-manager.sock";
const PID_FILE: &str = "/run/milter-manager/milter-manager.pid";
const LOCAL_CONFIG: &str = "/etc/milter-manager/milter-manager.local.toml";
const POLICY: &str = "/usr/sbin/policy-rc.d";
/// The log file the package's logrotate snippet rotates.
const LOG: &str = "/var/log/milter-manager.log";
/// No platform default nor detected milter (the host's would answer too), and a log file
/// (the package logs to syslog otherwise) at a level that shows reopening it.
const BASE_CONFIG: &str = "load_default = false\n\n[log]\npath = \"/var/log/milter-manager.log\"\n\
                           level = \"default|info\"\nuse_syslog = false\n";
/// The release build inside `packaging/build-deb` may compile everything.
const BUILD_TIME: Duration = Duration::from_secs(3600);
const APT_TIME: Duration = Duration::from_secs(600);

/// The workspace's target directory: the one holding this test's binaries, so that the
/// package's release build shares it.
fn target_dir() -> PathBuf {
    let server = Path::new(support::TEST_SERVER);
    server.parent().and_then(Path::parent).expect("target/<profile>/milter-test-server").into()
}

fn command_line(dir: &TempDir, name: &str, program: &str, args: &[&str]) -> Finished {
    let mut command = Command::new(program);
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run(dir, name, &mut command, APT_TIME)
}

/// apt-get, waiting for the dpkg lock if another apt-get holds it.
fn apt_get(dir: &TempDir, name: &str, args: &[&str]) -> Finished {
    let mut all = vec!["-y", "-q", "-o", "DPkg::Lock::Timeout=300"];
    all.extend_from_slice(args);
    command_line(dir, name, "apt-get", &all)
}

fn init_script(dir: &TempDir, action: &str) -> Finished {
    command_line(dir, &format!("init-{action}"), INIT_SCRIPT, &[action])
}

/// One session through the installed service; its `status:` line.
fn session(dir: &TempDir, name: &str) -> String {
    let finished = command_line(
        dir,
        name,
        support::TEST_SERVER,
        &["-s", &format!("unix:{SOCKET}"), "-f", "<package-test@example.org>"],
    );
    assert!(finished.status.success(), "session {name}: {}", finished.describe());
    finished.stdout.lines().find(|l| l.starts_with("status:")).unwrap_or("").to_string()
}

/// A policy-rc.d that forbids every service action while the package installs, so that
/// the test starts the service itself. The host's own one is put back afterwards.
struct ServicesForbidden {
    saved: Option<PathBuf>,
}

impl ServicesForbidden {
    fn new() -> Self {
        let policy = Path::new(POLICY);
        let saved = policy.exists().then(|| {
            let saved = PathBuf::from(format!("{POLICY}.debian-package-test"));
            std::fs::rename(policy, &saved).expect("set the host's policy-rc.d aside");
            saved
        });
        std::fs::write(
            policy,
            "#!/bin/sh\n# tests/it/debian_package.rs: no service starts\nexit 101\n",
        )
        .expect("write policy-rc.d");
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { saved }
    }
}

impl Drop for ServicesForbidden {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(POLICY);
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, POLICY);
        }
    }
}

/// The package, installed by the test: stopped and purged on drop, pass or panic.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if Path::new(INIT_SCRIPT).exists() {
            let _ = Command::new(INIT_SCRIPT).arg("stop").output();
        }
        let purge = Command::new("apt-get")
            .args(["purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "milter-manager"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        if let Ok(out) = purge {
            if !out.status.success() {
                eprintln!(
                    "apt-get purge milter-manager failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

#[test]
fn the_package_installs_a_service_that_serves_reloads_stops_and_purges_cleanly() {
    // It creates the user milter-manager that other tests' managers would serve as.
    let _host = support::host::changing_host();
    require_root();
    let installed_before = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "milter-manager"])
        .output()
        .expect("run dpkg-query");
    // Empty when dpkg never knew it; "... not-installed" when it forgot it.
    let state = String::from_utf8_lossy(&installed_before.stdout).into_owned();
    assert!(
        state.is_empty() || state.ends_with(" not-installed"),
        "the package milter-manager is on this host already ({state}): this test would purge it"
    );
    assert!(getent("passwd", "milter-manager").is_none(), "a user milter-manager exists already");
    assert!(!Path::new(LOG).exists(), "{LOG} exists already: the purge would remove it");
    let dir = TempDir::new("deb");

    let build_deb = source_path("packaging/build-deb");
    let mut build = Command::new(&build_deb);
    build.env("CARGO_TARGET_DIR", target_dir());
    let built = run(&dir, "build-deb", &mut build, BUILD_TIME);
    assert!(built.status.success(), "packaging/build-deb: {}", built.describe());
    let deb = built
        .stdout
        .lines()
        .find(|l| {
            Path::new(l)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("milter-manager_"))
        })
        .unwrap_or_else(|| {
            panic!("build-deb printed no milter-manager_*.deb: {}", built.describe())
        })
        .to_string();

    // lintian: no error (warnings such as an initial changelog closing no bug are fine).
    let dbgsym = deb.replace("milter-manager_", "milter-manager-dbgsym_");
    let lintian = command_line(&dir, "lintian", "lintian", &[&deb, &dbgsym]);
    let errors: Vec<&str> = lintian.stdout.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(
        lintian.status.code().is_some_and(|code| code <= 2) && errors.is_empty(),
        "lintian finds errors in the packages: {}",
        lintian.describe()
    );

    // Kept for the whole test: the purge of the drop guard, too, must not start anything.
    let _forbidden = ServicesForbidden::new();
    let installed = Installed;
    let install = apt_get(&dir, "apt-install", &["install", &deb]);
    assert!(install.status.success(), "apt-get install {deb}: {}", install.describe());
    assert!(!Path::new(SOCKET).exists(), "the install started the service despite policy-rc.d");
    let munin_plugin = Path::new("/usr/share/munin/plugins/milter_manager");
    let mode = std::fs::metadata(munin_plugin).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o755), "{} is not installed", munin_plugin.display());
    // The unit as installed (its programs exist now); no systemd needs to run.
    let unit = "/lib/systemd/system/milter-manager.service";
    let verify = command_line(&dir, "systemd-analyze", "systemd-analyze", &["verify", unit]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify {unit} (package systemd): {}",
        verify.describe()
    );

    // The user and the groups the postinst set up.
    let user =
        getent("passwd", "milter-manager").expect("the postinst created user milter-manager");
    let uid = entry_field(&user, 2);
    let group =
        getent("group", "milter-manager").expect("the postinst created group milter-manager");
    let gid = entry_field(&group, 2);
    assert_eq!(entry_field(&user, 3), gid, "the user's primary group is milter-manager: {user}");
    if getent("passwd", "postfix").is_some() {
        let members = entry_field(&group, 3);
        assert!(
            members.split(',').any(|m| m == "postfix"),
            "postfix joins the socket's group: {group}"
        );
    }
    if let Some(opendkim) = getent("group", "opendkim") {
        let members = entry_field(&opendkim, 3);
        assert!(
            members.split(',').any(|m| m == "milter-manager"),
            "milter-manager joins opendkim's socket group: {opendkim}"
        );
    }

    // The log analyzer's cron job runs as milter-manager-log, who reads the mail log (group
    // adm) and writes the web directory; run here as cron would, over a log of the test.
    let cron = read_lossy(Path::new("/etc/cron.d/milter-manager"));
    assert!(
        cron.lines().any(|l| l.starts_with("*/5 * * * * milter-manager-log ")
            && l.contains("/usr/bin/milter-manager-log-analyzer --log /var/log/mail.log* ")),
        "/etc/cron.d/milter-manager:\n{cron}"
    );
    let log_user = getent("passwd", "milter-manager-log").expect("user milter-manager-log");
    let adm = getent("group", "adm").expect("group adm");
    assert!(
        entry_field(&adm, 3).split(',').any(|m| m == "milter-manager-log"),
        "{adm}: {log_user}"
    );
    let mail_log = dir.join("mail.log");
    support::write_statistics_log(&mail_log, 0o644);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let web = "/var/lib/milter-manager-log/public_html";
    let analyzed = command_line(
        &dir,
        "log-analyzer",
        "runuser",
        &[
            "-u",
            "milter-manager-log",
            "--",
            "/usr/bin/milter-manager-log-analyzer",
            "--log",
            &mail_log.to_string_lossy(),
            "--output-directory",
            web,
        ],
    );
    assert!(analyzed.status.success(), "{}", analyzed.describe());
    assert!(Path::new(web).join("index.html").is_file(), "no page in {web}");

    // The installed converter takes an original configuration to one the installed
    // manager checks.
    let original = dir.join("original");
    std::fs::create_dir(&original).unwrap();
    std::fs::write(
        original.join("milter-manager.conf"),
        "manager.connection_spec = \"inet:10030@[127.0.0.1]\"\n\
         define_milter(\"child\") do |milter|\n\
         \x20 milter.connection_spec = \"inet:10031@[127.0.0.1]\"\n\
         end\n",
    )
    .unwrap();
    let converted = dir.join("converted");
    let (original_arg, converted_arg) = (original.to_string_lossy(), converted.to_string_lossy());
    let migrate = command_line(
        &dir,
        "migrate",
        "/usr/bin/milter-manager-migrate-config",
        &[&original_arg, &converted_arg],
    );
    assert!(migrate.status.success(), "{}", migrate.describe());
    let check = command_line(
        &dir,
        "check-converted",
        "/usr/sbin/milter-manager",
        &["--config-dir", &converted_arg, "--check-config"],
    );
    assert!(check.status.success(), "{}", check.describe());

    // Started without the host's milters, no child: the fallback status answers.
    std::fs::write(LOCAL_CONFIG, BASE_CONFIG).expect("write the local configuration");
    let started = init_script(&dir, "start");
    assert!(started.status.success(), "init script start: {}", started.describe());
    let pid: u32 = read_lossy(Path::new(PID_FILE)).trim().parse().unwrap_or_else(|_| {
        panic!("{PID_FILE} holds no pid: {:?}", read_lossy(Path::new(PID_FILE)))
    });
    let ids = status_field(pid, "Uid");
    assert!(ids.split_whitespace().all(|id| id == uid), "pid {pid} serves as {uid}: Uid {ids}");
    let socket = std::fs::metadata(SOCKET).unwrap_or_else(|e| panic!("{SOCKET}: {e}"));
    assert_eq!(socket.mode() & 0o777, 0o660, "{SOCKET} mode");
    assert_eq!(socket.gid().to_string(), gid, "{SOCKET} group");
    let fallback = session(&dir, "fallback");
    assert!(fallback.starts_with("status: accept "), "no child: the fallback: {fallback}");

    // An upgrade replaces the binary under the running daemon; restart still finds it.
    let reinstall = apt_get(&dir, "apt-reinstall", &["install", "--reinstall", &deb]);
    assert!(reinstall.status.success(), "apt-get install --reinstall: {}", reinstall.describe());
    let restarted = init_script(&dir, "restart");
    assert!(restarted.status.success(), "init script restart: {}", restarted.describe());
    let new_pid = read_lossy(Path::new(PID_FILE)).trim().to_string();
    assert_ne!(new_pid, pid.to_string(), "restart after an upgrade left the old daemon running");
    assert!(!is_alive(pid), "the old daemon {pid} is still there");
    let restarted_session = session(&dir, "restarted");
    assert!(restarted_session.starts_with("status: accept "), "{restarted_session}");

    // A child milter, added by reload. Its socket's group lets milter-manager connect, as
    // the package's groups let it reach opendkim's.
    let child_socket = dir.join("child.sock");
    let child = TestClient::start(
        &dir,
        &format!("unix:{}", child_socket.display()),
        &["--unix-socket-group", "milter-manager"],
    );
    std::fs::set_permissions(&child_socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    std::fs::write(
        LOCAL_CONFIG,
        format!("{BASE_CONFIG}\n[milter.\"package-test\"]\nconnection_spec = \"{}\"\n", child.spec),
    )
    .expect("write the local configuration");
    let reloaded = init_script(&dir, "reload");
    assert!(reloaded.status.success(), "init script reload: {}", reloaded.describe());
    let mut sessions = 0;
    let reached = wait_for(deadline(), || {
        sessions += 1;
        session(&dir, &format!("after-reload-{sessions}"));
        child.report().contains("<package-test@example.org>")
    });
    assert!(reached, "no session reached the child after reload; its report:\n{}", child.report());

    // Postfix, as configured by an admin: smtpd (user postfix) reaches the packaged socket
    // and delivers through the service and its child.
    {
        let postfix = Postfix::start_with_milter_specs(&dir, &[format!("unix:{SOCKET}")]);
        let sender = "postfix-package-test@example.com";
        let message = simple_message(sender, &["ok@example.org"], "through the package", "Hi.\n");
        let sent = send_mail(postfix.smtp_port(), sender, &["ok@example.org"], &message);
        let accepted = sent.end_of_data.as_ref().is_some_and(|reply| reply.code == 250);
        assert!(
            accepted,
            "Postfix did not accept the mail through the packaged service: {:#?}\n{}",
            sent.dialogue,
            postfix.maillog_tail(20)
        );
        let delivered = postfix.wait_for_deliveries(1);
        assert_eq!(delivered.len(), 1, "one mail delivered");
        assert!(
            child.report().contains(&format!("<{sender}>")),
            "the child did not see Postfix's mail; its report:\n{}",
            child.report()
        );
    }

    // logrotate with the package's snippet: the daemon writes on in the new file.
    let rotate = command_line(
        &dir,
        "logrotate",
        "logrotate",
        &[
            "-f",
            "-s",
            &dir.join("logrotate.state").to_string_lossy(),
            "/etc/logrotate.d/milter-manager",
        ],
    );
    assert!(rotate.status.success(), "logrotate (package logrotate): {}", rotate.describe());
    assert!(Path::new(&format!("{LOG}.1")).exists(), "logrotate did not rotate {LOG}");
    let reopened =
        wait_for(deadline(), || read_lossy(Path::new(LOG)).contains("log file reopened"));
    assert!(reopened, "no 'log file reopened' in the new {LOG}:\n{}", read_lossy(Path::new(LOG)));
    assert_eq!(std::fs::metadata(LOG).unwrap().uid().to_string(), uid, "{LOG} owner");

    // Privilege mode as a service: started as root, serving as milter-manager, and a child
    // that is not running is started from its command by the first session needing it.
    let launched_port = support::free_tcp_port();
    let launched_pid = dir.join("launched.pid");
    let launched_report = dir.join("launched-report.txt");
    let start_child = format!(
        "{client} -s 'inet:{launched_port}@[127.0.0.1]' --log-path {log} >{report} 2>&1 & \
         echo $! >{pid}",
        client = support::TEST_CLIENT,
        log = dir.join("launched.log").display(),
        report = launched_report.display(),
        pid = launched_pid.display(),
    );
    std::fs::write(
        LOCAL_CONFIG,
        format!(
            "{BASE_CONFIG}\n[security]\nprivilege_mode = true\n\n[milter.launched]\n\
             connection_spec = \"inet:{launched_port}@[127.0.0.1]\"\ncommand = \"/bin/sh\"\n\
             command_options = [\"-c\", {start_child:?}]\n"
        ),
    )
    .expect("write the local configuration");
    let restarted = init_script(&dir, "restart");
    assert!(restarted.status.success(), "restart in privilege mode: {}", restarted.describe());
    let mut sessions = 0;
    let launched = wait_for(deadline(), || {
        sessions += 1;
        session(&dir, &format!("privileged-{sessions}"));
        read_lossy(&launched_report).contains("<package-test@example.org>")
    });
    let launched_child: Option<u32> = read_lossy(&launched_pid).trim().parse().ok();
    assert!(
        launched,
        "the child was not started and reached in privilege mode; its report:\n{}\nlog:\n{}",
        read_lossy(&launched_report),
        read_lossy(Path::new(LOG))
    );
    // The daemon serves as milter-manager; only its launcher stayed root, so the child
    // (no user_name) runs as root.
    let pid: u32 = read_lossy(Path::new(PID_FILE)).trim().parse().expect("a pid after restart");
    let daemon_ids = status_field(pid, "Uid");
    assert!(
        daemon_ids.starts_with(&format!("{uid}\t")),
        "the daemon serves as {uid}: {daemon_ids}"
    );
    let child_pid = launched_child.expect("the started child wrote its pid");
    let child_ids = status_field(child_pid, "Uid");
    let _ = Command::new("kill").arg(child_pid.to_string()).status();
    assert!(child_ids.starts_with("0\t"), "the launcher started the child as root: {child_ids}");

    let status = init_script(&dir, "status");
    assert_eq!(status.status.code(), Some(0), "status while running: {}", status.describe());

    let stopped = init_script(&dir, "stop");
    assert!(stopped.status.success(), "init script stop: {}", stopped.describe());
    assert_eq!(
        live_processes_of(&uid),
        Vec::<u32>::new(),
        "processes of milter-manager after stop"
    );
    assert!(!Path::new(SOCKET).exists(), "{SOCKET} is left after stop");
    assert!(!Path::new(PID_FILE).exists(), "{PID_FILE} is left after stop");
    let status = init_script(&dir, "status");
    assert_eq!(status.status.code(), Some(3), "status when stopped: {}", status.describe());

    let purge = apt_get(&dir, "apt-purge", &["purge", "milter-manager"]);
    assert!(purge.status.success(), "apt-get purge: {}", purge.describe());
    drop(installed);
    assert!(!Path::new("/etc/milter-manager").exists(), "/etc/milter-manager is left after purge");
    assert!(!Path::new("/var/lib/milter-manager").exists(), "/var/lib/milter-manager is left");
    assert!(!Path::new(LOG).exists() && !Path::new(&format!("{LOG}.1")).exists(), "{LOG} is left");
    assert_eq!(getent("passwd", "milter-manager"), None, "user milter-manager after purge");
    assert_eq!(getent("group", "milter-manager"), None, "group milter-manager after purge");
    assert_eq!(getent("passwd", "milter-manager-log"), None, "user milter-manager-log after purge");
    assert_eq!(getent("group", "milter-manager-log"), None, "its group after purge");
    assert!(!Path::new("/var/lib/milter-manager-log").exists(), "its web directory after purge");
    if let Some(opendkim) = getent("group", "opendkim") {
        assert!(!entry_field(&opendkim, 3).contains("milter-manager"), "{opendkim} after purge");
    }
}
