//! The real milters Debian bookworm packages, run as throwaway daemons on 127.0.0.1 with
//! their own configuration in the test's directory: never the host's /etc or its running
//! services, and no network.
//!
//! * [`SpamAssassin`]: spamd (rules from /usr/share/spamassassin, network tests off) and
//!   spamass-milter in front of it.
//! * [`ClamAv`]: clamd with one test signature of its own (no downloaded database) and
//!   clamav-milter in front of it.
//! * [`OpenDmarc`], opendmarc.
//! * [`Rspamd`]: rspamd's proxy worker in milter mode, scanning itself (`self_scan`), no
//!   rules but its built-in GTUBE check.
//!
//! Each daemon runs in its own process group, killed whole on drop (spamd and rspamd fork
//! workers); when a test fails, the drop prints what each one logged. A missing program
//! fails the test with the package to install; nothing is skipped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::support::postfix::{create, print_if_failing, wait_listening};
use crate::support::{
    deadline, free_tcp_port, read_lossy, require_program, running_as_root, wait_for, write_file,
    ChildGuard, TempDir,
};

const SPAMD: &str = "/usr/sbin/spamd";
const SPAMC: &str = "/usr/bin/spamc";
const SPAMASS_MILTER: &str = "/usr/sbin/spamass-milter";
const CLAMD: &str = "/usr/sbin/clamd";
const CLAMAV_MILTER: &str = "/usr/sbin/clamav-milter";
const OPENDMARC: &str = "/usr/sbin/opendmarc";
const RSPAMD: &str = "/usr/bin/rspamd";

/// SpamAssassin's test pattern: any message whose body holds it scores 1000.
pub(crate) const GTUBE: &str =
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// The text [`ClamAv`]'s own signature (`MilterTestSig`) finds in a message.
pub(crate) const CLAMAV_MARKER: &str = "MILTER-MANAGER-TEST-VIRUS-MARKER";

/// One daemon in its own process group, with its standard output and error (and the log
/// file it writes, if any) in `home`.
struct Daemon {
    name: &'static str,
    process: ChildGuard,
    logs: Vec<PathBuf>,
}

impl Daemon {
    fn spawn(name: &'static str, home: &Path, command: &mut Command, log: Option<PathBuf>) -> Self {
        let stdout = home.join(format!("{name}.stdout"));
        let stderr = home.join(format!("{name}.stderr"));
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        let process = ChildGuard::spawn(name, command);
        let logs = [Some(stdout), Some(stderr), log].into_iter().flatten().collect();
        Self { name, process, logs }
    }

    /// Everything it wrote, for assertion messages.
    fn logs(&self) -> String {
        logs_of(&self.logs)
    }

    /// Waits until 127.0.0.1:`port` accepts connections; panics with its logs if it exits
    /// first or does not listen in time.
    fn wait_tcp(&mut self, port: u16) {
        let logs = self.logs.clone();
        wait_listening(self.name, port, &mut self.process, || logs_of(&logs));
    }

    /// SIGKILL to the whole group, and waits until its leader is gone.
    fn kill(&mut self) {
        self.kill_group();
        self.process.wait_until(deadline());
    }

    fn kill_group(&mut self) {
        if self.process.exited().is_none() {
            let _ = killpg(Pid::from_raw(self.process.id() as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        print_if_failing(self.name, || self.logs());
        self.kill_group();
    }
}

fn logs_of(paths: &[PathBuf]) -> String {
    paths.iter().map(|path| format!("--- {}:\n{}", path.display(), read_lossy(path))).collect()
}

fn home(dir: &TempDir, name: &str) -> PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
    home
}

// ---------------------------------------------------------------------------------------
// spamd + spamass-milter
// ---------------------------------------------------------------------------------------

/// spamd and spamass-milter. spamd reads the rules Debian ships in /usr/share/spamassassin,
/// a site configuration of the test's own (which loads only the Check plugin: no Bayes, no
/// auto-welcomelist, no DNS), and runs one child (`--max-children=1`, `--local`).
/// spamass-milter adds its X-Spam-* headers and modifies nothing else (`-m`); it runs
/// spamc with an empty configuration file of the test's.
pub(crate) struct SpamAssassin {
    home: PathBuf,
    spamd_port: u16,
    port: u16,
    milter: Daemon,
    _spamd: Daemon,
}

impl SpamAssassin {
    /// Starts spamd, waits for its port, then spamass-milter, and waits for its port.
    pub(crate) fn start(dir: &TempDir) -> Self {
        require_program(SPAMD, "spamd");
        require_program(SPAMC, "spamc");
        require_program(SPAMASS_MILTER, "spamass-milter");
        let home = home(dir, "spamassassin");
        let site = home.join("site");
        // The Check plugin runs the rules; without a .pre file loading it spamd scans
        // nothing ("no loaded plugin implements 'check_main'").
        write_file(&site.join("init.pre"), "loadplugin Mail::SpamAssassin::Plugin::Check\n");
        write_file(&site.join("local.cf"), "use_bayes 0\nskip_rbl_checks 1\n");
        write_file(&home.join("spamc.conf"), "");
        let spamd_port = free_tcp_port();
        let mut command = Command::new(SPAMD);
        command
            .arg(format!("--listen=127.0.0.1:{spamd_port}"))
            .args(["--max-children=1", "--local", "--nouser-config", "--syslog=stderr"])
            .arg("--configpath=/usr/share/spamassassin")
            .arg(format!("--siteconfigpath={}", site.display()))
            .arg(format!("--helper-home-dir={}", home.display()))
            .arg(format!("--pidfile={}", home.join("spamd.pid").display()));
        if running_as_root() {
            // spamd refuses to run its children as root.
            command.args(["--username", "nobody"]);
        }
        let mut spamd = Daemon::spawn("spamd", &home, &mut command, None);
        spamd.wait_tcp(spamd_port);
        let port = free_tcp_port();
        let milter = Self::start_milter(&home, port, spamd_port);
        Self { home, spamd_port, port, milter, _spamd: spamd }
    }

    fn start_milter(home: &Path, port: u16, spamd_port: u16) -> Daemon {
        let mut command = Command::new(SPAMASS_MILTER);
        command
            .args(["-p", &format!("inet:{port}@127.0.0.1"), "-m", "--"])
            .arg("-F")
            .arg(home.join("spamc.conf"))
            .args(["-d", "127.0.0.1", "-p", &spamd_port.to_string()]);
        let mut milter = Daemon::spawn("spamass-milter", home, &mut command, None);
        milter.wait_tcp(port);
        milter
    }

    /// spamass-milter's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills spamass-milter (connections to it are reset) and starts it again on the same
    /// port; spamd goes on.
    pub(crate) fn restart_milter(&mut self) {
        self.milter.kill();
        self.milter = Self::start_milter(&self.home, self.port, self.spamd_port);
    }
}

// ---------------------------------------------------------------------------------------
// clamd + clamav-milter
// ---------------------------------------------------------------------------------------

/// clamd with a database of one signature of the test's own (`MilterTestSig`, which
/// finds [`CLAMAV_MARKER`]; no downloaded database is needed), on a unix socket of the
/// test's; clamav-milter in front of it rejects infected mail and replaces its
/// X-Virus-* headers.
pub(crate) struct ClamAv {
    port: u16,
    _milter: Daemon,
    _clamd: Daemon,
}

impl ClamAv {
    /// Starts clamd, waits until it answers PING, then clamav-milter, and waits for its
    /// port.
    pub(crate) fn start(dir: &TempDir) -> Self {
        require_program(CLAMD, "clamav-daemon");
        require_program(CLAMAV_MILTER, "clamav-milter");
        let home = home(dir, "clamav");
        let database = home.join("db");
        let marker: String = CLAMAV_MARKER.bytes().map(|b| format!("{b:02x}")).collect();
        write_file(&database.join("test.ndb"), &format!("MilterTestSig:0:*:{marker}\n"));
        let h = home.display();
        let socket = home.join("clamd.sock");
        // No User line: each runs as the test does.
        write_file(
            &home.join("clamd.conf"),
            &format!(
                "LocalSocket {h}/clamd.sock\n\
                 DatabaseDirectory {}\n\
                 TemporaryDirectory {h}\n\
                 PidFile {h}/clamd.pid\n\
                 LogFile {h}/clamd.log\n\
                 Foreground yes\n",
                database.display()
            ),
        );
        let mut command = Command::new(CLAMD);
        command.arg("-c").arg(home.join("clamd.conf"));
        let mut clamd = Daemon::spawn("clamd", &home, &mut command, Some(home.join("clamd.log")));
        // Its socket exists a moment before it scans; a milter asking then fails
        // ("Failed to initiate streaming/fdpassing") and tempfails the message.
        let answered = wait_for(deadline(), || {
            clamd_answers_ping(&socket) || clamd.process.exited().is_some()
        });
        assert!(
            answered && clamd_answers_ping(&socket),
            "clamd does not answer on {}\n{}",
            socket.display(),
            clamd.logs()
        );
        let port = free_tcp_port();
        write_file(
            &home.join("clamav-milter.conf"),
            &format!(
                "MilterSocket inet:{port}@127.0.0.1\n\
                 ClamdSocket unix:{h}/clamd.sock\n\
                 TemporaryDirectory {h}\n\
                 PidFile {h}/clamav-milter.pid\n\
                 LogFile {h}/clamav-milter.log\n\
                 Foreground yes\n\
                 OnInfected Reject\n\
                 AddHeader Replace\n"
            ),
        );
        let mut command = Command::new(CLAMAV_MILTER);
        command.arg("-c").arg(home.join("clamav-milter.conf"));
        let log = home.join("clamav-milter.log");
        let mut milter = Daemon::spawn("clamav-milter", &home, &mut command, Some(log));
        milter.wait_tcp(port);
        Self { port, _milter: milter, _clamd: clamd }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// Whether clamd answers `zPING` with `PONG` on `socket`.
fn clamd_answers_ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = Vec::new();
    if stream.write_all(b"zPING\0").is_err() {
        return false;
    }
    // It closes the connection after its answer; a timeout ends the read as well.
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"PONG")
}

// ---------------------------------------------------------------------------------------
// opendmarc
// ---------------------------------------------------------------------------------------

/// opendmarc, reporting as `test.example` in its Authentication-Results header, SPF results
/// ignored. It looks up the From domain's policy; a test uses a domain under `.invalid`,
/// which has none wherever it runs.
pub(crate) struct OpenDmarc {
    port: u16,
    _daemon: Daemon,
}

/// The authserv-id [`OpenDmarc`] puts in its Authentication-Results header.
pub(crate) const DMARC_AUTHSERV_ID: &str = "test.example";

impl OpenDmarc {
    pub(crate) fn start(dir: &TempDir) -> Self {
        require_program(OPENDMARC, "opendmarc");
        let home = home(dir, "opendmarc");
        let port = free_tcp_port();
        write_file(
            &home.join("opendmarc.conf"),
            &format!(
                "Socket inet:{port}@127.0.0.1\n\
                 PidFile {}/opendmarc.pid\n\
                 AuthservID {DMARC_AUTHSERV_ID}\n\
                 Syslog false\n\
                 SPFIgnoreResults true\n",
                home.display()
            ),
        );
        let mut command = Command::new(OPENDMARC);
        command.arg("-f").arg("-c").arg(home.join("opendmarc.conf"));
        let mut daemon = Daemon::spawn("opendmarc", &home, &mut command, None);
        daemon.wait_tcp(port);
        Self { port, _daemon: daemon }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

// ---------------------------------------------------------------------------------------
// rspamd
// ---------------------------------------------------------------------------------------

/// rspamd with one worker, its proxy in milter mode scanning mail itself (`self_scan`):
/// no rules are loaded (`filters = ""`, no Lua), so a message scores nothing but GTUBE,
/// which rspamd checks in its own code and rejects. DNS goes to a closed port of
/// 127.0.0.1; its database, hyperscan cache and list of top-level domains are in the
/// test's directory.
pub(crate) struct Rspamd {
    port: u16,
    _daemon: Daemon,
}

impl Rspamd {
    pub(crate) fn start(dir: &TempDir) -> Self {
        require_program(RSPAMD, "rspamd");
        let home = home(dir, "rspamd");
        let h = home.display();
        let port = free_tcp_port();
        // Its list of top-level domains, for finding URLs: Debian's whole list takes it
        // some 9 s to compile at every start; the few a test's mail uses do as well.
        write_file(&home.join("tld.dat"), "com\norg\ninvalid\n");
        // hs_cache_dir: by default its hyperscan helper uses (and cleans) /var/lib/rspamd.
        let config = format!(
            "options {{\n\
             \x20 pidfile = \"{h}/rspamd.pid\";\n\
             \x20 dbdir = \"{h}\";\n\
             \x20 hs_cache_dir = \"{h}\";\n\
             \x20 tempdir = \"{h}\";\n\
             \x20 filters = \"\";\n\
             \x20 url_tld = \"{h}/tld.dat\";\n\
             \x20 dns {{ nameserver = [\"127.0.0.1:1\"]; timeout = 0.1s; retransmits = 0; }}\n\
             }}\n\
             logging {{ type = \"file\"; filename = \"{h}/rspamd.log\"; level = \"info\"; }}\n\
             actions {{ reject = 15; add_header = 6; greylist = 4; }}\n\
             worker \"rspamd_proxy\" {{\n\
             \x20 bind_socket = \"127.0.0.1:{port}\";\n\
             \x20 milter = yes;\n\
             \x20 count = 1;\n\
             \x20 timeout = 10s;\n\
             \x20 upstream \"local\" {{ default = yes; self_scan = yes; }}\n\
             }}\n"
        );
        write_file(&home.join("rspamd.conf"), &config);
        let mut command = Command::new(RSPAMD);
        // -i: its workers may run as root (the test's user) rather than as _rspamd.
        command.args(["-f", "-i", "-c"]).arg(home.join("rspamd.conf"));
        let mut daemon =
            Daemon::spawn("rspamd", &home, &mut command, Some(home.join("rspamd.log")));
        daemon.wait_tcp(port);
        Self { port, _daemon: daemon }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}
