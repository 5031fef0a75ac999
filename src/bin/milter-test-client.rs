//! milter-test-client: a milter that answers "continue" to everything and prints what the
//! MTA sent it, macros included, so an admin can check the MTA's milter settings.

use milter_manager::program;

use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use milter_manager::logging::{Levels, UnknownLevel};
use milter_manager::program::logger::LogError;
use milter_manager::program::ResolveError;
use milter_manager::spec::{Spec, SpecError};
use milter_manager::tools::test_client::{SessionEnd, TestClientSession};
use workers::{Action, ConnKey, PeerAddr};

#[derive(Parser, Debug)]
#[command(
    name = "milter-test-client",
    version,
    about = "A milter that prints everything the MTA sends it, macros included"
)]
struct Options {
    /// Socket to listen on: unix:PATH, inet:PORT, inet:PORT@HOST, inet:PORT@[ADDRESS], inet6:...
    #[arg(short = 's', long = "connection-spec", default_value = "inet:10025")]
    connection_spec: String,
    /// Log levels joined with '|': all, default, none, critical, error, warning, message,
    /// info, debug, statistics, profile.
    #[arg(long = "log-level", default_value = "default")]
    log_level: String,
    /// Log file; '-' or nothing: standard output.
    #[arg(long = "log-path")]
    log_path: Option<PathBuf>,
    /// Log everything (the same as --log-level=all).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Also log to syslog (facility mail).
    #[arg(long)]
    syslog: bool,
    /// Do not print what the MTA sent.
    #[arg(long = "no-report-request")]
    no_report_request: bool,
    /// Print the memory use after each session (more detail with MILTER_MEMORY_PROFILE=yes).
    #[arg(long = "report-memory-profile")]
    report_memory_profile: bool,
    /// Run as a daemon in the background.
    #[arg(long)]
    daemon: bool,
    /// Run as this user (needs root).
    #[arg(long)]
    user: Option<String>,
    /// Run as this group (needs root).
    #[arg(long)]
    group: Option<String>,
    /// Group of the unix socket (with a unix: spec).
    #[arg(long = "unix-socket-group")]
    unix_socket_group: Option<String>,
    /// Worker processes serving mail (0-1000; 0: no workers, this process serves).
    #[arg(long = "n-workers", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    n_workers: u32,
    /// Accepted for compatibility with the original tool (glib or libev); both run the same
    /// mio event loop.
    #[arg(long = "event-loop-backend", default_value = "glib", value_parser = ["glib", "libev"])]
    event_loop_backend: String,
    /// Bytes of packets to gather at end-of-message before sending (0: no buffering). This
    /// milter's answers already go out one write per event, so the value is only checked.
    #[arg(long = "packet-buffer-size", default_value = "0", value_parser = program::parse_size)]
    packet_buffer_size: usize,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("milter-test-client: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why the milter does not run; main prints it after the program's name.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    LogLevel(#[from] UnknownLevel),
    #[error(transparent)]
    Logging(#[from] LogError),
    #[error(transparent)]
    Listen(#[from] ResolveError),
    #[error(transparent)]
    Process(#[from] supervisor::Error),
}

fn run(options: &Options) -> Result<i32, ClientError> {
    let spec = Spec::parse(&options.connection_spec)?;
    let levels = if options.verbose { Levels::ALL } else { Levels::parse(&options.log_level)? };
    program::logger::init(&program::logger::LogOptions {
        levels,
        path: options.log_path.clone(),
        syslog: options.syslog,
        ident: "milter-test-client",
        facility: None,
    })?;
    let target = program::bind_target(&spec)?;
    let listen = supervisor::ListenOptions {
        unix_socket_group: options.unix_socket_group.clone(),
        ..supervisor::ListenOptions::default()
    };
    let bound = supervisor::bind(&target, &listen)?;
    log::info!("listening on {}", bound.local_description());
    let process = supervisor::ProcessOptions {
        daemon: options.daemon,
        user: options.user.clone(),
        group: options.group.clone(),
        pid_file: None,
        n_workers: options.n_workers,
    };
    let report = Reporter {
        requests: !options.no_report_request,
        memory: options.report_memory_profile.then(|| {
            std::env::var("MILTER_MEMORY_PROFILE").is_ok_and(|v| v.eq_ignore_ascii_case("yes"))
        }),
    };
    supervisor::run(bound, &process, |listener, context| {
        let factory = Factory {
            report,
            worker: context.worker_index,
            n_workers: options.n_workers,
            next_id: 0,
        };
        let config = workers::WorkerConfig {
            parent_watch: context.parent_watch,
            ..workers::WorkerConfig::default()
        };
        match workers::run(listener, factory, config) {
            Ok(exit) => {
                log::info!("stopped: {exit:?}");
                0
            }
            Err(error) => {
                log::error!("the event loop failed: {error}");
                1
            }
        }
    })
    .map_err(ClientError::from)
}

/// What to print besides the events.
#[derive(Debug, Clone, Copy)]
struct Reporter {
    requests: bool,
    /// Some(detailed) with --report-memory-profile.
    memory: Option<bool>,
}

struct Factory {
    report: Reporter,
    worker: u32,
    n_workers: u32,
    next_id: u64,
}

impl workers::SessionFactory for Factory {
    type Session = ClientSession;

    fn new_session(&mut self, _peer: &PeerAddr, now: Instant) -> ClientSession {
        self.next_id += 1;
        // With several workers, the worker number keeps labels unique.
        let label = if self.n_workers > 0 {
            format!("{}-{}", self.worker, self.next_id)
        } else {
            self.next_id.to_string()
        };
        ClientSession {
            inner: TestClientSession::new(label, self.report.requests, now),
            closed: false,
        }
    }

    fn session_finished(&mut self, session: ClientSession, _now: Instant) {
        if let Some(detailed) = self.report.memory {
            let line = format!("[{}] memory: {}\n", session.inner.label(), memory_usage(detailed));
            print_report(&line);
        }
        match session.inner.end() {
            Some(SessionEnd::ProtocolError(error)) => {
                log::warn!("[{}] {error}", session.inner.label())
            }
            Some(end) => log::debug!("[{}] session ended: {end:?}", session.inner.label()),
            None => log::debug!("[{}] session dropped", session.inner.label()),
        }
    }
}

/// Adapts the sans-IO session to the event loop and prints its report as it grows.
struct ClientSession {
    inner: TestClientSession,
    closed: bool,
}

impl ClientSession {
    fn flush_report(&mut self) {
        let report = self.inner.take_report();
        if !report.is_empty() {
            print_report(&report);
        }
    }
}

impl workers::Session for ClientSession {
    fn handle_read(&mut self, _conn: ConnKey, bytes: &[u8], now: Instant) {
        self.inner.handle_bytes(bytes, now);
        self.flush_report();
    }

    fn handle_connected(&mut self, _conn: ConnKey, _result: std::io::Result<()>, _now: Instant) {}

    fn handle_closed(&mut self, _conn: ConnKey, _error: Option<std::io::Error>, _now: Instant) {
        self.closed = true;
        self.inner.handle_closed();
        self.flush_report();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.flush_report();
    }

    fn poll_action(&mut self) -> Option<Action> {
        let bytes = self.inner.take_output();
        if !bytes.is_empty() {
            return Some(Action::Send { conn: ConnKey::PEER, bytes });
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.deadline()
    }

    fn is_finished(&self) -> bool {
        self.inner.end().is_some()
    }

    fn is_idle(&self) -> bool {
        self.inner.is_idle()
    }
}

/// Writes report text to standard output in one write, so lines from several workers
/// do not interleave within a line.
fn print_report(text: &str) {
    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop keeps it open.
    let mut stdout = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let _ = stdout.write_all(text.as_bytes());
}

/// The process's memory use from /proc/self/status.
fn memory_usage(detailed: bool) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let wanted: &[&str] = if detailed {
        &["VmRSS", "VmHWM", "VmSize", "VmData", "RssAnon", "RssFile"]
    } else {
        &["VmRSS", "VmSize"]
    };
    let fields: Vec<String> = status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            wanted.contains(&key).then(|| {
                format!("{}={}", key, value.split_whitespace().collect::<Vec<_>>().join(""))
            })
        })
        .collect();
    if fields.is_empty() {
        "unavailable".to_string()
    } else {
        fields.join(" ")
    }
}
