//! The rc.d scripts of the FreeBSD port (packaging/freebsd/files/milter_manager.in) and
//! of the pkgsrc package (packaging/pkgsrc/files/milter-manager.sh): they parse (`sh -n`),
//! shellcheck finds nothing, and run against a stub rc.subr they hand rc.subr the command
//! line, pid file and reload signal milter-manager needs, with the rc.conf variables'
//! defaults and with them set. The Debian SysV init script runs against a stub
//! start-stop-daemon: it takes the original package's settings file (OPTION_ARGS).

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{require_program, source_path, TempDir, MANAGER};

/// A stand-in for the system's rc.subr: `run_rc_command` records what rc.subr would use
/// (`key=value` lines in $RC_RECORD) instead of starting anything; `load_rc_config` reads
/// the test's rc.conf ($RC_CONF).
const STUB_RC_SUBR: &str = r#"
load_rc_config() {
	[ -n "${RC_CONF:-}" ] && . "$RC_CONF"
	return 0
}
checkyesno() {
	eval "_value=\${$1}"
	case "$_value" in
	[Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;;
	*) return 1 ;;
	esac
}
run_rc_command() {
	eval "rc_flags=\${${name}_flags:-}"
	eval "rc_user=\${${name}_user:-}"
	if checkyesno "$rcvar"; then enabled=yes; else enabled=no; fi
	if [ -n "${start_precmd:-}" ] && command -v "$start_precmd" >/dev/null; then
		precmd_defined=yes
	else
		precmd_defined=no
	fi
	{
		echo "argument=$1"
		echo "name=$name"
		echo "rcvar=$rcvar"
		echo "enabled=$enabled"
		echo "command=$command"
		echo "command_line=$command $rc_flags $command_args"
		echo "pidfile=$pidfile"
		echo "extra_commands=$extra_commands"
		echo "sig_reload=$sig_reload"
		echo "rc_user=$rc_user"
		echo "precmd_defined=$precmd_defined"
	} >"$RC_RECORD"
}
"#;

struct Script {
    /// The file in the source tree.
    source: &'static str,
    /// What the packaging system replaces in it, placeholder first.
    substitutions: &'static [(&'static str, &'static str)],
    /// The rc.conf variable that enables it.
    rcvar: &'static str,
    prefix: &'static str,
    config_dir: &'static str,
    pidfile: &'static str,
}

const FREEBSD: Script = Script {
    source: "packaging/freebsd/files/milter_manager.in",
    substitutions: &[("%%PREFIX%%", "/usr/local"), ("%%ETCDIR%%", "/usr/local/etc/milter-manager")],
    rcvar: "milter_manager_enable",
    prefix: "/usr/local",
    config_dir: "/usr/local/etc/milter-manager",
    pidfile: "/var/run/milter-manager/milter-manager.pid",
};

const PKGSRC: Script = Script {
    source: "packaging/pkgsrc/files/milter-manager.sh",
    substitutions: &[
        ("@RCD_SCRIPTS_SHELL@", "/bin/sh"),
        ("@PREFIX@", "/usr/pkg"),
        ("@VARBASE@", "/var"),
        ("@PKG_SYSCONFDIR@", "/usr/pkg/etc/milter-manager"),
        ("@MILTER_MANAGER_USER@", "milter-manager"),
        ("@MILTER_MANAGER_GROUP@", "milter-manager"),
    ],
    rcvar: "milter_manager",
    prefix: "/usr/pkg",
    config_dir: "/usr/pkg/etc/milter-manager",
    pidfile: "/var/run/milter-manager/milter-manager.pid",
};

/// The script as installed (placeholders replaced), reading `rc_subr` for /etc/rc.subr.
fn installed(script: &Script, dir: &TempDir, rc_subr: &Path) -> PathBuf {
    let mut text =
        std::fs::read_to_string(source_path(script.source)).expect("read the rc.d script");
    for (placeholder, value) in script.substitutions {
        text = text.replace(placeholder, value);
    }
    let leftover = regex_like_placeholder(&text);
    assert!(leftover.is_none(), "{}: placeholder {leftover:?} is not substituted", script.source);
    let path = dir.join("milter_manager");
    std::fs::write(&path, text.replace("/etc/rc.subr", &rc_subr.display().to_string()))
        .expect("write the script");
    path
}

/// The first `%%NAME%%` or `@NAME@` left in `text`.
fn regex_like_placeholder(text: &str) -> Option<String> {
    let pattern = regex::Regex::new(r"%%[A-Z_]+%%|@[A-Z_]+@").expect("a valid pattern");
    pattern.find(text).map(|m| m.as_str().to_string())
}

/// Runs `script ARGUMENT` with `rc_conf` and returns what the stub recorded.
fn run_script(
    script: &Path,
    dir: &TempDir,
    rc_conf: &str,
    argument: &str,
) -> HashMap<String, String> {
    let conf = dir.join("rc.conf");
    let record = dir.join("record");
    std::fs::write(&conf, rc_conf).expect("write rc.conf");
    let _ = std::fs::remove_file(&record);
    let out = Command::new("sh")
        .arg(script)
        .arg(argument)
        .env("RC_CONF", &conf)
        .env("RC_RECORD", &record)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{} {argument} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&record).expect("run_rc_command was not called");
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// The arguments of a recorded command line, without the program.
fn arguments(record: &HashMap<String, String>) -> Vec<String> {
    record["command_line"].split_whitespace().skip(1).map(str::to_string).collect()
}

/// milter-manager accepts every option the script passes (clap rejects an unknown one
/// before it gets to --help).
fn manager_accepts(arguments: &[String]) {
    let out =
        Command::new(MANAGER).args(arguments).arg("--help").output().expect("run milter-manager");
    assert!(
        out.status.success(),
        "milter-manager rejects {arguments:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_script(script: &Script) {
    require_program("/usr/bin/shellcheck", "shellcheck");
    let dir = TempDir::new("rc");
    let rc_subr = dir.join("rc.subr");
    std::fs::write(&rc_subr, STUB_RC_SUBR).expect("write the stub rc.subr");
    let path = installed(script, &dir, &rc_subr);

    let out = Command::new("sh").arg("-n").arg(&path).output().expect("run sh -n");
    assert!(
        out.status.success(),
        "sh -n {}: {}",
        script.source,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(&path)
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}",
        script.source,
        String::from_utf8_lossy(&out.stdout)
    );

    // Defaults.
    let record = run_script(&path, &dir, "", "start");
    assert_eq!(record["argument"], "start");
    assert_eq!(record["name"], "milter_manager");
    assert_eq!(record["rcvar"], script.rcvar);
    assert_eq!(record["enabled"], "no", "{}: enabled without rc.conf", script.source);
    assert_eq!(record["command"], format!("{}/sbin/milter-manager", script.prefix));
    assert_eq!(record["pidfile"], script.pidfile);
    assert_eq!(record["extra_commands"], "reload");
    assert_eq!(record["sig_reload"], "HUP");
    assert_eq!(
        record["precmd_defined"], "yes",
        "{}: start_precmd names no function",
        script.source
    );
    // milter-manager switches users itself after binding as root: rc.subr must not su.
    assert_eq!(record["rc_user"], "", "{}: rc.subr would run it through su", script.source);
    let expected: Vec<String> = [
        "--config-dir",
        script.config_dir,
        "--daemon",
        "--pid-file",
        script.pidfile,
        "--user-name",
        "milter-manager",
        "--group-name",
        "milter-manager",
        "--unix-socket-group",
        "mail",
    ]
    .map(str::to_string)
    .to_vec();
    assert_eq!(arguments(&record), expected, "{}: defaults", script.source);
    manager_accepts(&expected);

    // Everything set in rc.conf.
    let rc_conf = format!(
        "{}=YES\nmilter_manager_flags=\"--verbose\"\nmilter_manager_user=mailfilter\n\
         milter_manager_group=mfgroup\nmilter_manager_socket_group=postfix\n\
         milter_manager_connection_spec=unix:/var/run/mm/mm.sock\n\
         milter_manager_config_dir=/srv/mm\nmilter_manager_pidfile=/var/run/mm/mm.pid\n",
        script.rcvar
    );
    let record = run_script(&path, &dir, &rc_conf, "reload");
    assert_eq!(record["argument"], "reload");
    assert_eq!(record["enabled"], "yes", "{}: {}=YES", script.source, script.rcvar);
    assert_eq!(record["pidfile"], "/var/run/mm/mm.pid");
    assert_eq!(record["rc_user"], "");
    let expected: Vec<String> = [
        "--verbose",
        "--config-dir",
        "/srv/mm",
        "--daemon",
        "--pid-file",
        "/var/run/mm/mm.pid",
        "--user-name",
        "mailfilter",
        "--group-name",
        "mfgroup",
        "--unix-socket-group",
        "postfix",
        "--connection-spec",
        "unix:/var/run/mm/mm.sock",
    ]
    .map(str::to_string)
    .to_vec();
    assert_eq!(arguments(&record), expected, "{}: rc.conf settings", script.source);
    manager_accepts(&expected);
}

#[test]
fn freebsd_rc_script_starts_milter_manager_as_configured() {
    check_script(&FREEBSD);
}

#[test]
fn pkgsrc_rc_script_starts_milter_manager_as_configured() {
    check_script(&PKGSRC);
}

/// Both packages set package.platform in a conf.d file, read before the platform default.
#[test]
fn ports_set_their_platform() {
    for (file, platform) in [
        ("packaging/freebsd/files/00-platform.toml", "freebsd"),
        ("packaging/pkgsrc/files/00-platform.toml", "pkgsrc"),
    ] {
        let text = std::fs::read_to_string(source_path(file)).expect("read the platform file");
        assert!(
            text.contains(&format!("[package]\nplatform = \"{platform}\"\n")),
            "{file}:\n{text}"
        );
    }
    let newsyslog =
        std::fs::read_to_string(source_path("packaging/freebsd/files/milter-manager.newsyslog"))
            .expect("read the newsyslog snippet");
    let entry = newsyslog.lines().find(|l| !l.starts_with('#')).expect("an entry");
    let fields: Vec<&str> = entry.split_whitespace().collect();
    // The pid file of the rc.d script and SIGUSR1 (30 on FreeBSD), which reopens the log.
    assert_eq!(fields[fields.len() - 2..], [FREEBSD.pidfile, "30"], "{entry}");
}

/// The SysV init scripts (Debian's, and Red Hat's for `--with sysvinit`): shell syntax
/// and shellcheck clean. Debian's runs for real in tests/it/debian_package.rs.
#[test]
fn sysv_init_scripts_pass_shellcheck() {
    require_program("/usr/bin/shellcheck", "shellcheck");
    for (script, shell) in [
        ("packaging/debian/milter-manager.init", "sh"),
        ("packaging/rpm/milter-manager.init", "bash"),
    ] {
        let path = source_path(script);
        let out = Command::new(shell).arg("-n").arg(&path).output().expect("run the shell");
        assert!(
            out.status.success(),
            "{shell} -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("shellcheck")
            .args([&format!("--shell={shell}"), "--severity=style"])
            .arg(&path)
            .output()
            .expect("run shellcheck");
        assert!(
            out.status.success(),
            "shellcheck {script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The Debian SysV init script takes the original milter manager's settings file as it is:
/// `OPTION_ARGS` (the original's name) reaches milter-manager after `EXTRA_ARGS` (ours).
/// Run with a stub start-stop-daemon that records its arguments, and stub LSB functions.
#[test]
fn debian_init_script_passes_the_original_option_args() {
    let dir = TempDir::new("debian-init");
    let stubs = dir.join("bin");
    std::fs::create_dir(&stubs).unwrap();
    let record = dir.join("record");
    let start_stop = stubs.join("start-stop-daemon");
    std::fs::write(
        &start_stop,
        format!(
            "#!/bin/sh\n# --test: not running; the start: what would run, after --.\n\
             case \" $* \" in *\" --test \"*) exit 0 ;; esac\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n\
             printf '%s\\n' \"$@\" >{}\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&start_stop, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lsb = dir.join("init-functions");
    std::fs::write(&lsb, "log_daemon_msg() { :; }\nlog_end_msg() { return \"$1\"; }\n").unwrap();
    let default = dir.join("default");
    std::fs::write(
        &default,
        "# As the original package's /etc/default/milter-manager writes it.\n\
         USER=root\nGROUP=root\nSOCKET_GROUP=root\n\
         OPTION_ARGS=\"--n-workers 3 --log-level all\"\n",
    )
    .unwrap();
    let run_dir = dir.join("run");
    let text = std::fs::read_to_string(source_path("packaging/debian/milter-manager.init"))
        .expect("read the init script");
    let replaced = [
        ("PATH=/sbin:", format!("PATH={}:/sbin:", stubs.display())),
        ("DAEMON=/usr/sbin/milter-manager", format!("DAEMON={MANAGER}")),
        ("RUNDIR=/run/milter-manager", format!("RUNDIR={}", run_dir.display())),
        ("/etc/default/$NAME", default.display().to_string()),
        ("/lib/lsb/init-functions", lsb.display().to_string()),
    ];
    let mut script = text.clone();
    for (from, to) in &replaced {
        assert!(script.contains(from), "the init script no longer has {from:?}");
        script = script.replace(from, to);
    }
    let path = dir.join("milter-manager.init");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("sh").arg(&path).arg("start").output().expect("run sh");
    assert!(out.status.success(), "start failed: {}", String::from_utf8_lossy(&out.stderr));
    let arguments: Vec<String> = std::fs::read_to_string(&record)
        .expect("start-stop-daemon started nothing")
        .lines()
        .map(str::to_string)
        .collect();
    let tail: Vec<&str> = arguments.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(tail, ["--n-workers", "3", "--log-level", "all"], "{arguments:?}");
    manager_accepts(&arguments);
}
