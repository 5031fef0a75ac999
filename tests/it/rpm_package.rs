//! packaging/build-rpm builds the Red Hat package on this (Debian) machine with rpmbuild,
//! offline, and the package holds what packaging/rpm/milter-manager.spec promises.
//!
//! The programs cargo built for this test run are packaged (`--binaries`), so the test
//! adds one rpmbuild and no second cargo build.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{require_program, source_path, TempDir};

fn run(what: &str, command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The .rpm files under `dir`: the package, and its -debuginfo package.
fn find_rpms(dir: &Path) -> (PathBuf, PathBuf) {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the output directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rpm") {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 2, "expected two packages in {}: {found:?}", dir.display());
    found.sort();
    let debuginfo = found.pop().expect("two packages");
    let package = found.pop().expect("two packages");
    let name = |path: &Path| path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    assert!(name(&package).starts_with("milter-manager-0"), "{found:?}");
    assert!(name(&debuginfo).starts_with("milter-manager-debuginfo-"), "{}", debuginfo.display());
    (package, debuginfo)
}

/// Runs packaging/build-rpm with the test's binaries and `extra` arguments into `dir`.
fn build_rpm(dir: &TempDir, name: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let binaries =
        Path::new(env!("CARGO_BIN_EXE_milter-manager")).parent().expect("the binaries' directory");
    let output = dir.join(&format!("{name}-out"));
    run(
        "packaging/build-rpm",
        Command::new(source_path("packaging/build-rpm"))
            .arg("--binaries")
            .arg(binaries)
            .arg("--topdir")
            .arg(dir.join(&format!("{name}-top")))
            .arg("--output")
            .arg(&output)
            .args(extra),
    );
    find_rpms(&output)
}

#[test]
fn build_rpm_makes_a_package_with_programs_config_unit_pages_and_user() {
    require_program("/usr/bin/rpmbuild", "rpm");
    let dir = TempDir::new("rpm");
    let (package, debuginfo) = build_rpm(&dir, "systemd", &[]);

    let files = run("rpm -qpl", Command::new("rpm").arg("-qpl").arg(&package));
    let files: Vec<&str> = files.lines().collect();
    for expected in [
        "/usr/sbin/milter-manager",
        "/usr/sbin/milter-manager-ctl",
        "/usr/sbin/milter-manager-migrate-config",
        "/usr/bin/milter-manager-log-analyzer",
        "/usr/bin/milter-test-client",
        "/usr/bin/milter-test-server",
        "/usr/bin/milter-performance-check",
        "/etc/milter-manager/milter-manager.toml",
        "/etc/milter-manager/conf.d/00-platform.toml",
        "/etc/milter-manager/defaults/redhat.toml",
        "/etc/sysconfig/milter-manager",
        "/usr/lib/systemd/system/milter-manager.service",
        "/usr/share/munin/plugins/milter_manager",
        "/etc/cron.d/milter-manager-log",
        "/var/lib/milter-manager-log/public_html",
    ] {
        assert!(
            files.contains(&expected),
            "{} lacks {expected}; it has:\n{}",
            package.display(),
            files.join("\n")
        );
    }
    for page in [
        "man8/milter-manager.8",
        "man5/milter-manager.toml.5",
        "man8/milter-manager-ctl.8",
        "man8/milter-manager-migrate-config.8",
        "man1/milter-manager-log-analyzer.1",
        "man1/milter-test-client.1",
        "man1/milter-test-server.1",
        "man1/milter-performance-check.1",
    ] {
        let path = format!("/usr/share/man/{page}");
        assert!(
            files.iter().any(|f| f.starts_with(&path)),
            "{} lacks the man page {path}",
            package.display()
        );
    }

    // Configuration files an admin may edit survive upgrades.
    let config = run("rpm -qpc", Command::new("rpm").arg("-qpc").arg(&package));
    for expected in [
        "/etc/milter-manager/milter-manager.toml",
        "/etc/milter-manager/conf.d/00-platform.toml",
        "/etc/sysconfig/milter-manager",
    ] {
        assert!(
            config.lines().any(|l| l == expected),
            "{expected} is not a %config file:\n{config}"
        );
    }

    let scripts =
        run("rpm -qp --scripts", Command::new("rpm").arg("-qp").arg("--scripts").arg(&package));
    let preinstall = scripts.split("postinstall scriptlet").next().expect("the scripts");
    assert!(preinstall.contains("preinstall scriptlet"), "no %pre:\n{scripts}");
    assert!(
        preinstall.contains("groupadd -r milter-manager"),
        "%pre does not create the group:\n{scripts}"
    );
    assert!(
        preinstall.contains("useradd -r -g milter-manager")
            && preinstall.contains("milter-manager\n"),
        "%pre does not create the user:\n{scripts}"
    );
    assert!(
        preinstall.contains("useradd -r -g milter-manager-log"),
        "%pre does not create the log analyzer's user:\n{scripts}"
    );
    assert!(
        scripts.contains("systemctl --no-reload preset milter-manager.service"),
        "%post:\n{scripts}"
    );
    assert!(
        scripts.contains("systemctl --no-reload disable --now milter-manager.service"),
        "%preun:\n{scripts}"
    );
    assert!(
        scripts.contains("systemctl try-restart milter-manager.service"),
        "%postun:\n{scripts}"
    );

    // The programs are stripped; their debugging information is in -debuginfo.
    let debug_files = run("rpm -qpl debuginfo", Command::new("rpm").arg("-qpl").arg(&debuginfo));
    let build_ids =
        debug_files.lines().filter(|f| f.starts_with("/usr/lib/debug/.build-id/")).count();
    assert!(
        build_ids >= 5,
        "{} lacks the programs' debug files:\n{debug_files}",
        debuginfo.display()
    );

    // The platform file the package adds says Red Hat, and the packaged program is ours.
    let extracted = dir.join("root");
    std::fs::create_dir(&extracted).expect("create the extraction directory");
    run(
        "rpm2cpio | cpio",
        Command::new("sh")
            .args(["-c", "rpm2cpio \"$1\" | cpio -idm --quiet", "sh"])
            .arg(&package)
            .current_dir(&extracted),
    );
    let platform =
        std::fs::read_to_string(extracted.join("etc/milter-manager/conf.d/00-platform.toml"))
            .expect("read 00-platform.toml");
    assert!(
        platform.contains("[package]\nplatform = \"redhat\"\n"),
        "00-platform.toml:\n{platform}"
    );
    let version = run(
        "the packaged milter-manager",
        Command::new(extracted.join("usr/sbin/milter-manager")).arg("--version"),
    );
    assert!(version.starts_with("milter-manager "), "{version}");
    let strip_check = run(
        "readelf -S",
        Command::new("readelf").arg("-S").arg(extracted.join("usr/sbin/milter-manager")),
    );
    assert!(!strip_check.contains(".debug_info"), "the packaged milter-manager is not stripped");

    // The log analyzer's cron job: the shell opens the mail log as root, the analyzer
    // runs as milter-manager-log and writes the web directory the package gives that user.
    let owners = run(
        "rpm -qp owners",
        Command::new("rpm")
            .args(["-qp", "--queryformat", "[%{FILENAMES} %{FILEUSERNAME}:%{FILEGROUPNAME}\n]"])
            .arg(&package),
    );
    let web_owner = "/var/lib/milter-manager-log/public_html milter-manager-log:milter-manager-log";
    assert!(owners.lines().any(|l| l == web_owner), "file owners:\n{owners}");
    let cron = std::fs::read_to_string(extracted.join("etc/cron.d/milter-manager-log"))
        .expect("read /etc/cron.d/milter-manager-log");
    let job = cron
        .lines()
        .find_map(|l| l.strip_prefix("*/5 * * * * root "))
        .unwrap_or_else(|| panic!("no job run by root every 5 minutes:\n{cron}"));
    // Run as cron would, with the packaged analyzer, a log of the test, and nobody (the
    // package's user does not exist on this host) writing a web directory of the test.
    let web = dir.join("public_html");
    std::fs::create_dir(&web).unwrap();
    run("chown nobody", Command::new("chown").arg("nobody").arg(&web));
    let mail_log = dir.join("maillog");
    support::write_statistics_log(&mail_log, 0o600);
    let analyzer = extracted.join("usr/bin/milter-manager-log-analyzer");
    let job = job
        .replace("/usr/bin/milter-manager-log-analyzer", &analyzer.to_string_lossy())
        .replace("/var/lib/milter-manager-log/public_html", &web.to_string_lossy())
        .replace("/var/log/maillog", &mail_log.to_string_lossy())
        .replace("-u milter-manager-log ", "-u nobody ");
    let ran = Command::new("sh").args(["-c", &job]).output().expect("run the cron job");
    assert!(
        ran.status.success() && ran.stderr.is_empty(),
        "{job}: {:?} {}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    let page = web.join("index.html");
    assert!(page.is_file(), "the cron job wrote no page in {}", web.display());
    let page_owner = run("stat", Command::new("stat").args(["-c", "%U"]).arg(&page));
    assert_eq!(page_owner.trim(), "nobody", "the analyzer ran as the job's user");

    // The environment file names what the unit passes to the daemon.
    let sysconfig = std::fs::read_to_string(extracted.join("etc/sysconfig/milter-manager"))
        .expect("read /etc/sysconfig/milter-manager");
    let unit =
        std::fs::read_to_string(extracted.join("usr/lib/systemd/system/milter-manager.service"))
            .expect("read the unit");
    // systemd-analyze verify needs the programs the unit names where it names them.
    let checked_unit = dir.join("milter-manager.service");
    let manager = extracted.join("usr/sbin/milter-manager");
    std::fs::write(
        &checked_unit,
        unit.replace("/usr/sbin/milter-manager", &manager.to_string_lossy()),
    )
    .expect("write the unit to check");
    let verify = Command::new("systemd-analyze")
        // The man pages it names are in the package, not on this host.
        .args(["verify", "--man=no"])
        .arg(&checked_unit)
        .output()
        .expect("run systemd-analyze (package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify of the RPM's unit: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for variable in ["CONNECTION_SPEC", "USER", "GROUP", "SOCKET_GROUP", "EXTRA_ARGS"] {
        assert!(sysconfig.contains(&format!("\n{variable}=")), "sysconfig lacks {variable}");
        assert!(
            unit.contains(&format!("{{{variable}}}")) || unit.contains(&format!("${variable}")),
            "the unit does not use {variable}:\n{unit}"
        );
    }
}

#[test]
fn build_rpm_with_sysvinit_ships_the_init_script_instead_of_the_unit() {
    require_program("/usr/bin/rpmbuild", "rpm");
    let dir = TempDir::new("rpm-sysv");
    let (package, _) = build_rpm(&dir, "sysv", &["--with", "sysvinit"]);
    // %{_initrddir}: /etc/rc.d/init.d on Red Hat, /etc/init.d for rpm on Debian.
    let files = run("rpm -qpl", Command::new("rpm").arg("-qpl").arg(&package));
    assert!(
        files.lines().any(|f| f.ends_with("/init.d/milter-manager")),
        "no init script:\n{files}"
    );
    assert!(!files.contains("/systemd/"), "a unit besides the init script:\n{files}");
    let scripts =
        run("rpm -qp --scripts", Command::new("rpm").arg("-qp").arg("--scripts").arg(&package));
    assert!(scripts.contains("/sbin/chkconfig --add milter-manager"), "%post:\n{scripts}");
    assert!(scripts.contains("/sbin/chkconfig --del milter-manager"), "%preun:\n{scripts}");
    assert!(!scripts.contains("systemctl"), "systemd scriptlets in the SysV package:\n{scripts}");
}
