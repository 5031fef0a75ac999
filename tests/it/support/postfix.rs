//! End-to-end harness: a real Postfix in front, real milters behind (standard library only).
//!
//! `crate::support::postfix`. What it runs, all on 127.0.0.1 and inside one [`TempDir`]:
//!
//! ```text
//!  send_mail ──SMTP──> Postfix smtpd ──milter──> (milter-manager ──> children | a milter)
//!                         │ relayhost
//!                         └──SMTP──> MailSink (in this process) ──> DIR/postfix/delivered/NNN.eml
//! ```
//!
//! * [`Postfix`]: a throwaway instance (root needed) with its own config, queue and
//!   `maillog`; `smtpd_milters` is the milter under test, `milter_default_action =
//!   tempfail` so a broken milter chain shows up as a failure instead of mail let through.
//!   Everything it accepts is relayed to its [`MailSink`], which keeps each message
//!   byte-exact; [`Postfix::wait_for_deliveries`] waits for them.
//! * [`send_mail`]: one SMTP transaction, every reply line of every step kept
//!   ([`SmtpTranscript`]).
//! * [`OpenDkim`]: opendkim signing for `example.com` with a key made for the test;
//!   [`dkim_verify`] checks a delivered message against that key without DNS.
//! * [`Pymilter`] (`tests/peers/pymilter_modifier.py`) and [`Manager`] (the
//!   `milter-manager` binary with a TOML config naming its children); milter-test-client
//!   is [`crate::support::TestClient`].
//!
//! Every process is stopped and every file removed on drop. When a test fails, the drop of
//! each part prints what it logged (Postfix's maillog, the manager's output, ...), so the
//! failure report explains itself. A missing program fails the test with a pointer to
//! `scripts/install-test-deps.sh`; nothing is ever skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{
    accepts_tcp, deadline, free_tcp_port, read_lossy, require_program, require_root, run,
    source_path, wait_for, ChildGuard, TempDir, MANAGER, TIMEOUT,
};

/// Debian's interpreter, which sees python3-milter and python3-dkim (a pyenv `python3` on
/// PATH may not).
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// The domain OpenDKIM signs for and its selector (`test._domainkey.example.com`).
pub(crate) const DKIM_DOMAIN: &str = "example.com";
pub(crate) const DKIM_SELECTOR: &str = "test";

/// The body `tests/peers/pymilter_modifier.py` puts in place of every message's body.
pub(crate) const PYMILTER_BODY: &[u8] = b"Replaced by pymilter.\r\nSecond replaced line.\r\n";

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTCONF: &str = "/usr/sbin/postconf";
const POSTQUEUE: &str = "/usr/sbin/postqueue";
const OPENDKIM: &str = "/usr/sbin/opendkim";
const OPENDKIM_GENKEY: &str = "/usr/sbin/opendkim-genkey";

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|line| format!("{line}\n")).collect()
}

/// Prints `text` under a title when the current test is failing (called from drops).
pub(crate) fn print_if_failing(title: &str, text: impl FnOnce() -> String) {
    if std::thread::panicking() {
        let text = text();
        if !text.is_empty() {
            eprintln!("===== {title} =====\n{text}===== end of {title} =====");
        }
    }
}

/// A milter that listens on 127.0.0.1:`port`, in the syntax of the project's tools
/// (`inet:PORT@[127.0.0.1]`).
pub(crate) fn milter_spec(port: u16) -> String {
    format!("inet:{port}@[127.0.0.1]")
}

/// Waits until a process that cannot report readiness listens on 127.0.0.1:`port`;
/// panics with `logs()` if it exits first or the deadline passes. The probe is one empty
/// connection.
pub(crate) fn wait_listening(
    name: &str,
    port: u16,
    process: &mut ChildGuard,
    logs: impl Fn() -> String,
) {
    let mut exited = None;
    let mut listening = false;
    wait_for(deadline(), || {
        exited = process.exited();
        listening = exited.is_none() && accepts_tcp(port);
        listening || exited.is_some()
    });
    assert!(
        listening,
        "{name} is not listening on 127.0.0.1:{port} (exit: {exited:?})\n{}",
        logs()
    );
}

/// A file for a child's standard output or error.
pub(crate) fn create(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Delivered mail
// ---------------------------------------------------------------------------------------

/// One message as Postfix delivered it to the sink: the envelope, and the DATA bytes
/// exactly as sent (dot-stuffing undone, CRLF line ends, no final `.` line).
#[derive(Clone, Debug)]
pub(crate) struct DeliveredMessage {
    /// The MAIL FROM address with its angle brackets, e.g. `<sender@example.com>`.
    pub mail_from: String,
    /// The RCPT TO addresses, each with its angle brackets, in the order sent.
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
    /// Where the sink stored `data` (`NNN.eml`, next to `NNN.envelope`).
    pub path: PathBuf,
}

impl DeliveredMessage {
    /// The message as text (lossy), for assertion messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// Offset of the first byte of the body (after the empty line), or the length.
    fn body_start(&self) -> usize {
        let data = &self.data;
        let mut line_start = 0;
        while line_start < data.len() {
            let end = data[line_start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| line_start + i + 1);
            let line = &data[line_start..end];
            if line == b"\r\n" || line == b"\n" {
                return end;
            }
            line_start = end;
        }
        data.len()
    }

    /// The header section, without the empty line that ends it.
    pub(crate) fn header_section(&self) -> &[u8] {
        let start = self.body_start();
        let data = &self.data[..start];
        data.strip_suffix(b"\r\n").or(data.strip_suffix(b"\n")).unwrap_or(data)
    }

    /// The body, byte-exact.
    pub(crate) fn body(&self) -> &[u8] {
        &self.data[self.body_start()..]
    }

    /// Every header field as (name, unfolded value with surrounding blanks trimmed), in
    /// message order.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(self.header_section()).into_owned();
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.to_string(), value.trim().to_string()));
            }
        }
        fields
    }

    /// The values of every field named `name` (case-insensitive), in message order.
    pub(crate) fn header_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
            .collect()
    }
}

/// State shared by the sink's threads.
struct SinkShared {
    dir: PathBuf,
    stop: AtomicBool,
    messages: Mutex<Vec<DeliveredMessage>>,
    /// Unexpected conditions (I/O errors mid-transaction, odd commands), for diagnostics.
    problems: Mutex<Vec<String>>,
}

/// A minimal SMTP server on 127.0.0.1 that accepts everything and stores each message it
/// receives (see [`DeliveredMessage`]). It is where [`Postfix`] relays all mail. It
/// offers no ESMTP extension, so Postfix sends one command at a time.
pub(crate) struct MailSink {
    port: u16,
    shared: Arc<SinkShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl MailSink {
    /// Listens on a port picked by the kernel; messages go to files in `dir` (created).
    pub(crate) fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the mail sink");
        let port = listener.local_addr().expect("sink address").port();
        let shared = Arc::new(SinkShared {
            dir: dir.to_path_buf(),
            stop: AtomicBool::new(false),
            messages: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mail-sink".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if acceptor_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&acceptor_shared);
                    // Detached: a session ends when Postfix quits or closes (or at the
                    // read timeout); nothing waits for it.
                    let _ = std::thread::Builder::new().name("mail-sink-session".into()).spawn(
                        move || {
                            if let Err(e) = sink_session(stream, &shared) {
                                shared.problems.lock().unwrap().push(format!("session: {e}"));
                            }
                        },
                    );
                }
            })
            .expect("spawn the mail sink thread");
        Self { port, shared, acceptor: Some(acceptor) }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, in order of arrival.
    pub(crate) fn messages(&self) -> Vec<DeliveredMessage> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// What went wrong in sink sessions, if anything.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.shared.problems.lock().unwrap().clone()
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, self.port).into(),
            Duration::from_millis(500),
        );
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The address inside `<...>` at the start of a MAIL FROM/RCPT TO argument, brackets
/// kept; the ESMTP parameters after it are dropped.
fn envelope_address(argument: &str) -> String {
    let argument = argument.trim();
    match argument.find('>') {
        Some(end) if argument.starts_with('<') => argument[..=end].to_string(),
        _ => argument.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// One SMTP session of the sink.
fn sink_session(stream: TcpStream, shared: &SinkShared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP test sink\r\n")?;
    let mut mail_from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(()); // closed without QUIT
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        let reply: &[u8] = match verb {
            "EHLO" | "HELO" => {
                mail_from = None;
                recipients.clear();
                b"250 sink.test\r\n"
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                mail_from = Some(envelope_address(&command["MAIL FROM:".len()..]));
                recipients.clear();
                b"250 2.1.0 Ok\r\n"
            }
            "RCPT" if upper.starts_with("RCPT TO:") && mail_from.is_some() => {
                recipients.push(envelope_address(&command["RCPT TO:".len()..]));
                b"250 2.1.5 Ok\r\n"
            }
            "DATA" if !recipients.is_empty() => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let data = read_data(&mut reader)?;
                let message = store_message(
                    shared,
                    mail_from.take().unwrap_or_default(),
                    std::mem::take(&mut recipients),
                    data,
                )?;
                let reply = format!(
                    "250 2.0.0 Ok: queued as {}\r\n",
                    message.path.file_stem().unwrap_or_default().to_string_lossy()
                );
                writer.write_all(reply.as_bytes())?;
                continue;
            }
            "RSET" => {
                mail_from = None;
                recipients.clear();
                b"250 2.0.0 Ok\r\n"
            }
            "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "MAIL" | "RCPT" | "DATA" => b"503 5.5.1 Bad sequence of commands\r\n",
            _ => {
                shared.problems.lock().unwrap().push(format!("unexpected command {command:?}"));
                b"502 5.5.2 Command not recognized\r\n"
            }
        };
        writer.write_all(reply)?;
    }
}

/// The DATA lines up to the lone `.`, dot-stuffing undone, line ends kept.
fn read_data(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b".") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}

/// Writes the message to `NNN.eml` and its envelope to `NNN.envelope`, then records it.
fn store_message(
    shared: &SinkShared,
    mail_from: String,
    recipients: Vec<String>,
    data: Vec<u8>,
) -> std::io::Result<DeliveredMessage> {
    let mut messages = shared.messages.lock().unwrap();
    let number = messages.len() + 1;
    let path = shared.dir.join(format!("{number:03}.eml"));
    std::fs::write(&path, &data)?;
    let mut envelope = format!("MAIL FROM:{mail_from}\n");
    for recipient in &recipients {
        envelope.push_str(&format!("RCPT TO:{recipient}\n"));
    }
    std::fs::write(shared.dir.join(format!("{number:03}.envelope")), envelope)?;
    let message = DeliveredMessage { mail_from, recipients, data, path };
    messages.push(message.clone());
    Ok(message)
}

// ---------------------------------------------------------------------------------------
// Postfix
// ---------------------------------------------------------------------------------------

/// A throwaway Postfix instance under `DIR/postfix` (root needed): smtpd on a free
/// 127.0.0.1 port, the given milter in `smtpd_milters`, every accepted message relayed to
/// a [`MailSink`]. Stopped on drop; if the test is failing, the tail of its maillog is
/// printed first.
pub(crate) struct Postfix {
    root: PathBuf,
    config_dir: PathBuf,
    smtp_port: u16,
    sink: MailSink,
}

impl Postfix {
    /// Starts an instance whose smtpd talks to the milter on 127.0.0.1:`milter_port`
    /// (`smtpd_milters = inet:127.0.0.1:PORT`, protocol 6, `milter_default_action =
    /// tempfail`). The milter may start later: smtpd connects to it per SMTP session.
    pub(crate) fn start(dir: &TempDir, milter_port: u16) -> Self {
        Self::start_with_milters(dir, &[milter_port])
    }

    /// Like [`Postfix::start`] with several milters in `smtpd_milters`, in order: Postfix
    /// chains them itself (the reference to compare the manager with).
    pub(crate) fn start_with_milters(dir: &TempDir, milter_ports: &[u16]) -> Self {
        let specs: Vec<String> =
            milter_ports.iter().map(|port| format!("inet:127.0.0.1:{port}")).collect();
        Self::start_with_milter_specs(dir, &specs)
    }

    /// Like [`Postfix::start_with_milters`] with the milters in Postfix's syntax
    /// (`unix:/path`, `inet:host:port`), as `smtpd_milters` lists them.
    pub(crate) fn start_with_milter_specs(dir: &TempDir, milter_specs: &[String]) -> Self {
        Self::start_with_main_cf(dir, milter_specs, &[])
    }

    /// Like [`Postfix::start_with_milter_specs`] with more `main.cf` parameters (name,
    /// value), written after the harness's own so that they win.
    pub(crate) fn start_with_main_cf(
        dir: &TempDir,
        milter_specs: &[String],
        extra_parameters: &[(&str, &str)],
    ) -> Self {
        // Postfix's master runs as root.
        require_root();
        require_program(POSTFIX, "postfix");
        require_program(POSTCONF, "postfix");
        // Postfix's daemons run as user postfix and must get to the queue.
        let traversable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), traversable.clone()).expect("chmod the temp dir");
        let root = dir.join("postfix");
        let config_dir = root.join("etc");
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir_all(root.join(sub)).expect("create the Postfix directories");
        }
        std::fs::set_permissions(&root, traversable).expect("chmod the Postfix directory");
        let sink = MailSink::start(&root.join("delivered"));
        let smtp_port = free_tcp_port();
        let r = root.display();
        let main_cf = format!(
            "# Written by tests/it/support/postfix.rs: a throwaway instance, loopback only.\n\
             compatibility_level = 3.6\n\
             queue_directory = {r}/spool\n\
             data_directory = {r}/data\n\
             myhostname = mta.test\n\
             mydomain = test\n\
             mydestination =\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             # no DNS here: no reverse lookup of the client, no TLS\n\
             smtpd_peername_lookup = no\n\
             smtpd_tls_security_level = none\n\
             smtp_tls_security_level = none\n\
             smtpd_error_sleep_time = 0\n\
             # every message goes to the test's sink\n\
             relayhost = [127.0.0.1]:{sink}\n\
             smtp_connection_cache_on_demand = no\n\
             # a delivery that failed is retried soon, not in minutes\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             maillog_file = {r}/maillog\n\
             maillog_file_prefixes = {r}\n\
             # the milter under test; a broken one must show, never let mail through\n\
             smtpd_milters = {milters}\n\
             non_smtpd_milters =\n\
             milter_protocol = 6\n\
             milter_default_action = tempfail\n\
             milter_connect_timeout = 10s\n\
             milter_command_timeout = 10s\n\
             milter_content_timeout = 20s\n",
            sink = sink.port(),
            milters = milter_specs.join(", "),
        );
        let mut main_cf = main_cf;
        for (name, value) in extra_parameters {
            main_cf.push_str(&format!("{name} = {value}\n"));
        }
        std::fs::write(config_dir.join("main.cf"), main_cf).expect("write main.cf");
        // Debian's pristine master.cf, then: no port 25, one smtpd on our port, no chroot
        // (the temporary queue has no etc/ for a chroot).
        let master_cf = ["/usr/share/postfix/master.cf.dist", "/etc/postfix/master.cf"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or_else(|| {
                panic!("no master.cf to start from: run scripts/install-test-deps.sh as root")
            });
        std::fs::copy(master_cf, config_dir.join("master.cf")).expect("copy master.cf");
        let service = format!("127.0.0.1:{smtp_port}");
        let postconf_edits: [&[&str]; 3] = [
            &["-M#", "smtp/inet"],
            &["-Me", &format!("{service}/inet = {service} inet n - n - - smtpd")],
            &["-F", "*/*/chroot = n"],
        ];
        for (i, edit) in postconf_edits.iter().enumerate() {
            let mut command = Command::new(POSTCONF);
            command.arg("-c").arg(&config_dir).args(*edit);
            let finished = run(dir, &format!("postconf-{i}"), &mut command, TIMEOUT);
            assert!(finished.status.success(), "postconf {edit:?}\n{}", finished.describe());
        }
        // master.lock lives in data_directory and is opened by user postfix.
        let mut chown = Command::new("chown");
        chown.arg("postfix:postfix").arg(root.join("data"));
        let finished = run(dir, "chown", &mut chown, TIMEOUT);
        assert!(finished.status.success(), "chown postfix data_directory\n{}", finished.describe());

        let postfix = Self { root, config_dir, smtp_port, sink };
        // 'postfix start' creates the queue directories, checks, and waits (master -w)
        // until the master has bound its sockets.
        let finished = run(dir, "postfix-start", &mut postfix.command(&["start"]), TIMEOUT);
        assert!(
            finished.status.success(),
            "postfix start failed\n{}\n--- maillog:\n{}",
            finished.describe(),
            postfix.maillog_tail(30)
        );
        let bound =
            wait_for(deadline(), || TcpListener::bind((Ipv4Addr::LOCALHOST, smtp_port)).is_err());
        assert!(
            bound,
            "Postfix is not listening on 127.0.0.1:{smtp_port}\n--- maillog:\n{}",
            postfix.maillog_tail(30)
        );
        postfix
    }

    /// `postfix -c CONFIG ARGS...`
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(POSTFIX);
        command.arg("-c").arg(&self.config_dir).args(args);
        command
    }

    /// The port its smtpd listens on (127.0.0.1).
    pub(crate) fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Sends one message through its smtpd; see [`send_mail`].
    pub(crate) fn send(&self, from: &str, recipients: &[&str], message: &str) -> SmtpTranscript {
        send_mail(self.smtp_port, from, recipients, message)
    }

    /// Waits (up to `TIMEOUT`) until at least `count` messages have been delivered and
    /// returns all of them. On timeout, panics with the queue and the maillog's tail.
    pub(crate) fn wait_for_deliveries(&self, count: usize) -> Vec<DeliveredMessage> {
        let start = Instant::now();
        if wait_for(start + TIMEOUT, || self.sink.messages().len() >= count) {
            return self.sink.messages();
        }
        let queue = Command::new(POSTQUEUE)
            .arg("-c")
            .arg(&self.config_dir)
            .arg("-p")
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(postqueue: {e})"));
        panic!(
            "expected {count} delivered message(s), got {} after {:?}\n\
             --- sink problems: {:?}\n--- postqueue -p:\n{queue}--- maillog (tail):\n{}",
            self.sink.messages().len(),
            start.elapsed(),
            self.sink.problems(),
            self.maillog_tail(40)
        );
    }

    /// The whole maillog so far (Postfix writes it through postlogd, a moment late).
    pub(crate) fn maillog(&self) -> String {
        read_lossy(&self.root.join("maillog"))
    }

    /// The last `lines` lines of the maillog.
    pub(crate) fn maillog_tail(&self, lines: usize) -> String {
        tail(&self.maillog(), lines)
    }

    /// The master's pid, from its pid file.
    fn master_pid(&self) -> Option<u32> {
        read_lossy(&self.root.join("spool/pid/master.pid")).trim().parse().ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        print_if_failing("Postfix maillog (tail)", || self.maillog_tail(60));
        let pid = self.master_pid();
        // 'postfix stop' signals the master (which stops its children) and waits up to
        // 5 s for it, then kills the process group.
        let _ = self.command(&["stop"]).stdin(Stdio::null()).output();
        if let Some(pid) = pid {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let gone = wait_for(deadline(), || {
                // Gone, or a zombie waiting for init.
                read_lossy(&proc.join("stat")).split(") ").nth(1).is_none_or(|s| s.starts_with('Z'))
            });
            if !gone {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// SMTP client
// ---------------------------------------------------------------------------------------

/// One SMTP reply: its code and every line as received (e.g. `550 5.7.1 no thanks`),
/// without line ends.
#[derive(Clone, Debug)]
pub(crate) struct SmtpReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// 2xx or 3xx.
    pub(crate) fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// Every reply of one SMTP transaction, step by step. A step that was not reached (a
/// real client stops after a refusal) is `None` or missing.
#[derive(Clone, Debug, Default)]
pub(crate) struct SmtpTranscript {
    pub greeting: Option<SmtpReply>,
    pub ehlo: Option<SmtpReply>,
    pub mail_from: Option<SmtpReply>,
    /// Each recipient (bare address, as given) with its reply, in order. Sent only if
    /// MAIL FROM was accepted.
    pub rcpt_to: Vec<(String, SmtpReply)>,
    /// Sent only if some recipient was accepted.
    pub data: Option<SmtpReply>,
    /// The reply to the final `.` (the message's fate), if DATA got 354.
    pub end_of_data: Option<SmtpReply>,
    pub quit: Option<SmtpReply>,
    /// The whole dialogue (`C: ...`, `S: ...`), message content left out.
    pub dialogue: Vec<String>,
}

impl SmtpTranscript {
    /// The reply to RCPT TO `recipient`; panics if it was not sent.
    pub(crate) fn rcpt_reply(&self, recipient: &str) -> &SmtpReply {
        self.rcpt_to
            .iter()
            .find(|(address, _)| address == recipient)
            .map(|(_, reply)| reply)
            .unwrap_or_else(|| panic!("no RCPT TO {recipient} was sent\n{}", self.describe()))
    }

    /// Whether the message was accepted for delivery (250 after the final `.`).
    pub(crate) fn accepted(&self) -> bool {
        self.end_of_data.as_ref().is_some_and(|reply| reply.code == 250)
    }

    /// The dialogue, for assertion messages.
    pub(crate) fn describe(&self) -> String {
        self.dialogue.iter().map(|line| format!("{line}\n")).collect()
    }
}

/// An SMTP connection of [`send_mail`].
struct SmtpConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpConnection {
    fn read_reply(&mut self, transcript: &mut SmtpTranscript) -> SmtpReply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line);
            match read {
                Ok(0) => panic!("SMTP server closed the connection\n{}", transcript.describe()),
                Ok(_) => {}
                Err(e) => panic!("reading an SMTP reply: {e}\n{}", transcript.describe()),
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            transcript.dialogue.push(format!("S: {line}"));
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        let code = lines[0].get(..3).and_then(|code| code.parse().ok()).unwrap_or_else(|| {
            panic!("malformed SMTP reply {:?}\n{}", lines, transcript.describe())
        });
        SmtpReply { code, lines }
    }

    fn command(&mut self, command: &str, transcript: &mut SmtpTranscript) -> SmtpReply {
        transcript.dialogue.push(format!("C: {command}"));
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {command:?}: {e}\n{}", transcript.describe()));
        self.read_reply(transcript)
    }
}

/// Sends one message to the SMTP server on 127.0.0.1:`port` the way a plain client does
/// (EHLO, MAIL FROM, each RCPT TO, DATA, QUIT; one command at a time) and returns every
/// reply. `from` and `recipients` are bare addresses (`a@example.com`); `message` is the
/// header and body, with `\n` or `\r\n` line ends (sent as CRLF, dot-stuffed). Panics on
/// a connection error, with the dialogue so far.
pub(crate) fn send_mail(
    port: u16,
    from: &str,
    recipients: &[&str],
    message: &str,
) -> SmtpTranscript {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("connect to SMTP 127.0.0.1:{port}: {e}"));
    // Generous: Postfix waits for the milters before it answers.
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("set the read timeout");
    let writer = stream.try_clone().expect("clone the SMTP stream");
    let mut connection = SmtpConnection { reader: BufReader::new(stream), writer };
    let mut transcript = SmtpTranscript::default();
    let greeting = connection.read_reply(&mut transcript);
    let greeted = greeting.code == 220;
    transcript.greeting = Some(greeting);
    if greeted {
        transcript.ehlo = Some(connection.command("EHLO client.test", &mut transcript));
        let reply = connection.command(&format!("MAIL FROM:<{from}>"), &mut transcript);
        let sender_ok = reply.is_positive();
        transcript.mail_from = Some(reply);
        if sender_ok {
            for recipient in recipients {
                let reply = connection.command(&format!("RCPT TO:<{recipient}>"), &mut transcript);
                transcript.rcpt_to.push((recipient.to_string(), reply));
            }
        }
        if transcript.rcpt_to.iter().any(|(_, reply)| reply.is_positive()) {
            let reply = connection.command("DATA", &mut transcript);
            let go_ahead = reply.code == 354;
            transcript.data = Some(reply);
            if go_ahead {
                let mut content = Vec::new();
                for line in message.strip_suffix('\n').unwrap_or(message).split('\n') {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if line.starts_with('.') {
                        content.push(b'.');
                    }
                    content.extend_from_slice(line.as_bytes());
                    content.extend_from_slice(b"\r\n");
                }
                content.extend_from_slice(b".\r\n");
                transcript.dialogue.push(format!("C: ({} bytes of message and .)", content.len()));
                connection.writer.write_all(&content).unwrap_or_else(|e| {
                    panic!("sending the message: {e}\n{}", transcript.describe())
                });
                transcript.end_of_data = Some(connection.read_reply(&mut transcript));
            }
        }
        transcript.quit = Some(connection.command("QUIT", &mut transcript));
    }
    transcript
}

/// A small message with the usual header fields (From, To, Subject, Date, a unique
/// Message-ID) and `body` (`\n` line ends are fine).
pub(crate) fn simple_message(from: &str, to: &[&str], subject: &str, body: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let unique = format!(
        "{}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let domain = from.rsplit('@').next().unwrap_or("example.com");
    format!(
        "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\n\
         Date: Sat, 22 Nov 2025 10:00:00 +0000\r\nMessage-ID: <{unique}@{domain}>\r\n\r\n{body}",
        to.join(", ")
    )
}

// ---------------------------------------------------------------------------------------
// OpenDKIM and verification
// ---------------------------------------------------------------------------------------

/// opendkim in the foreground on a free 127.0.0.1 port, signing mail from
/// [`DKIM_DOMAIN`] with selector [`DKIM_SELECTOR`] and a key generated for the test
/// (`DIR/opendkim/test.private`, public record `test.txt`). Killed on drop.
pub(crate) struct OpenDkim {
    port: u16,
    dir: PathBuf,
    process: ChildGuard,
}

impl OpenDkim {
    /// Generates the key, writes `opendkim.conf`, starts opendkim and waits until its
    /// port accepts connections.
    pub(crate) fn start(dir: &TempDir) -> Self {
        require_program(OPENDKIM, "opendkim");
        require_program(OPENDKIM_GENKEY, "opendkim-tools");
        let home = dir.join("opendkim");
        std::fs::create_dir_all(&home).expect("create the opendkim directory");
        let mut genkey = Command::new(OPENDKIM_GENKEY);
        genkey.arg("-D").arg(&home).args(["-d", DKIM_DOMAIN, "-s", DKIM_SELECTOR]);
        let finished = run(dir, "opendkim-genkey", &mut genkey, TIMEOUT);
        assert!(finished.status.success(), "opendkim-genkey failed\n{}", finished.describe());
        let port = free_tcp_port();
        let h = home.display();
        // Mode s: sign only (nothing to verify without DNS). InternalHosts: mail from
        // 127.0.0.1 is ours, hence signed. simple/simple canonicalization: the signature
        // breaks if any header the signer saw (leading spaces included) or the body
        // differs from what is delivered. Syslog off: it logs nothing then, startup
        // errors go to stderr.
        let config = format!(
            "Syslog no\n\
             Mode s\n\
             Domain {DKIM_DOMAIN}\n\
             Selector {DKIM_SELECTOR}\n\
             KeyFile {h}/{DKIM_SELECTOR}.private\n\
             Canonicalization simple/simple\n\
             InternalHosts 127.0.0.1\n\
             RequireSafeKeys no\n\
             Socket inet:{port}@127.0.0.1\n\
             PidFile {h}/opendkim.pid\n"
        );
        std::fs::write(home.join("opendkim.conf"), config).expect("write opendkim.conf");
        let mut command = Command::new(OPENDKIM);
        command
            .arg("-f")
            .arg("-x")
            .arg(home.join("opendkim.conf"))
            .stdin(Stdio::null())
            .stdout(create(&home.join("stdout")))
            .stderr(create(&home.join("stderr")));
        let mut process = ChildGuard::spawn("opendkim", &mut command);
        let logs = || format!("--- opendkim stderr:\n{}", read_lossy(&home.join("stderr")));
        wait_listening("opendkim", port, &mut process, logs);
        Self { port, dir: home, process }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The public key as a DNS record (`test.txt` from opendkim-genkey).
    pub(crate) fn public_key_txt(&self) -> PathBuf {
        self.dir.join(format!("{DKIM_SELECTOR}.txt"))
    }

    /// Panics unless `message` carries a DKIM-Signature that verifies with this key.
    pub(crate) fn assert_signed(&self, message: &DeliveredMessage) {
        if let Err(report) = dkim_verify(&self.public_key_txt(), &message.data) {
            panic!(
                "the DKIM signature of {} does not verify\n{report}\n--- message:\n{}",
                message.path.display(),
                message.text()
            );
        }
    }
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        print_if_failing("opendkim stderr", || read_lossy(&self.dir.join("stderr")));
        let _ = self.process.exited();
    }
}

/// Runs `tests/peers/dkim_verify.py PUBLIC_KEY_TXT < message`: `Ok(its output)` if every
/// DKIM-Signature of `message` verifies against that key (at least one needed), `Err(its
/// output)` otherwise. No DNS is used.
pub(crate) fn dkim_verify(public_key_txt: &Path, message: &[u8]) -> Result<String, String> {
    require_program(PYTHON, "python3");
    let mut child = Command::new(PYTHON)
        .arg(source_path("tests/peers/dkim_verify.py"))
        .arg(public_key_txt)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} dkim_verify.py: {e}"));
    let mut stdin = child.stdin.take().expect("stdin of dkim_verify.py");
    let message = message.to_vec();
    // Written from a thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(&message));
    let output = child.wait_with_output().expect("wait for dkim_verify.py");
    let _ = writer.join();
    let report = format!(
        "dkim_verify.py: {}\n--- stdout:\n{}--- stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(report)
    } else {
        if String::from_utf8_lossy(&output.stderr).contains("No module named 'dkim'") {
            panic!("python3-dkim is missing: run scripts/install-test-deps.sh as root\n{report}");
        }
        Err(report)
    }
}

// ---------------------------------------------------------------------------------------
// pymilter child and the manager
// ---------------------------------------------------------------------------------------

/// `tests/peers/pymilter_modifier.py` on a free 127.0.0.1 port (see that file for what it
/// does). Killed on drop; its log is printed if the test is failing.
pub(crate) struct Pymilter {
    port: u16,
    log_path: PathBuf,
    process: ChildGuard,
}

impl Pymilter {
    /// Starts it and waits until its port accepts connections.
    pub(crate) fn start(dir: &TempDir) -> Self {
        Self::start_on(dir, free_tcp_port(), "accept")
    }

    /// Starts it on `port`, answering end-of-message `eom` ("accept" or "continue"), and
    /// waits until the port accepts connections. libmilter cannot report a port it picked
    /// itself, so the caller takes one that is free now (or the port of an earlier one).
    pub(crate) fn start_on(dir: &TempDir, port: u16, eom: &str) -> Self {
        require_program(PYTHON, "python3");
        let log_path = dir.join("pymilter.log");
        let mut command = Command::new(PYTHON);
        command
            .arg(source_path("tests/peers/pymilter_modifier.py"))
            .arg(port.to_string())
            .arg(eom)
            .stdin(Stdio::null())
            .stdout(create(&dir.join("pymilter.stdout")))
            .stderr(create(&log_path));
        let mut process = ChildGuard::spawn("pymilter_modifier.py", &mut command);
        let logs = || {
            format!(
                "('No module named Milter' means: run scripts/install-test-deps.sh)\n\
                 --- its stderr:\n{}",
                read_lossy(&log_path)
            )
        };
        wait_listening("pymilter_modifier.py", port, &mut process, logs);
        Self { port, log_path, process }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// SIGKILL, and waits until it is gone (its port then refuses connections).
    pub(crate) fn kill(&mut self) {
        self.process.signal("KILL");
        self.process.wait_until(deadline());
    }
}

impl Drop for Pymilter {
    fn drop(&mut self) {
        print_if_failing("pymilter_modifier.py log", || self.log());
    }
}

/// One `[milter."NAME"]` section of the manager's configuration.
pub(crate) struct ManagedMilter<'a> {
    pub name: &'a str,
    pub port: u16,
    /// `fallback_status = "..."`, or none to keep the default.
    pub fallback_status: Option<&'a str>,
}

/// `milter-manager --config-dir DIR/manager` in the foreground on a free 127.0.0.1 port,
/// its children on 127.0.0.1 too. Its output goes to `DIR/manager/output.log`; killed on
/// drop, after printing that output if the test is failing.
pub(crate) struct Manager {
    port: u16,
    output_path: PathBuf,
    process: ChildGuard,
}

impl Manager {
    /// Writes `DIR/manager/milter-manager.toml` naming `children` in order, starts the
    /// manager and waits until its port accepts connections (panics with its output if
    /// it exits first).
    pub(crate) fn start(dir: &TempDir, children: &[ManagedMilter]) -> Self {
        let config_dir = dir.join("manager");
        std::fs::create_dir_all(&config_dir).expect("create the manager directory");
        let port = free_tcp_port();
        let mut config = format!("[manager]\nconnection_spec = \"{}\"\n", milter_spec(port));
        for child in children {
            config.push_str(&format!(
                "\n[milter.\"{}\"]\nconnection_spec = \"{}\"\n",
                child.name,
                milter_spec(child.port)
            ));
            if let Some(status) = child.fallback_status {
                config.push_str(&format!("fallback_status = \"{status}\"\n"));
            }
        }
        std::fs::write(config_dir.join("milter-manager.toml"), &config)
            .expect("write milter-manager.toml");
        let output_path = config_dir.join("output.log");
        let output = create(&output_path);
        let mut command = Command::new(MANAGER);
        command
            .arg("--config-dir")
            .arg(&config_dir)
            // Its private directory for large bodies goes with the test's files.
            .env("TMPDIR", &config_dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone the output file"))
            .stderr(output);
        let mut process = ChildGuard::spawn("milter-manager", &mut command);
        let logs = || {
            format!(
                "--- milter-manager.toml:\n{config}--- its output (stdout and stderr):\n{}",
                read_lossy(&output_path)
            )
        };
        wait_listening("milter-manager", port, &mut process, logs);
        Self { port, output_path, process }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its output (stdout and stderr) so far.
    pub(crate) fn output(&self) -> String {
        read_lossy(&self.output_path)
    }

    /// Its exit status if it has exited, without waiting.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        print_if_failing("milter-manager output", || tail(&self.output(), 200));
        let _ = self.process.exited();
    }
}
