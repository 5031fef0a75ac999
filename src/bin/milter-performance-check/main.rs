//! milter-performance-check: a load generator. It runs many sessions, several at a time,
//! either straight against a milter (milter mode, acting as a Postfix-like MTA) or
//! through an MTA over SMTP (SMTP mode, as the original tool does), and reports
//! throughput, latency percentiles and how the sessions ended.
//!
//! Exit status: 0 when every session completed (a rejected mail is a completed session),
//! 1 when any session failed (or the target's address cannot be found), 2 for bad usage.

use milter_manager::{out, outln, program};

mod collector;
mod failure;
mod milter_mode;
mod runner;
mod smtp_mode;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use milter_manager::message::MailError;
use milter_manager::program::ResolveError;
use milter_manager::spec::{Spec, SpecError};
use milter_manager::tools::performance::{
    dot_stuffed_data, generated_mail, json_report, mail_from_file, parse_period, text_report,
    xclient_command, AuthMap, AuthMapError, AuthMechanism, Credentials, EnvelopeOptions, Mail,
    NotADuration, Pace, RunInfo, Summary,
};

use collector::Collector;
use milter_mode::MilterTarget;
use runner::Plan;
use smtp_mode::{Auth, SmtpSettings, SmtpTarget, SmtpTargetError};
use tls::StartTls;

const NAME: &str = "milter-performance-check";

#[derive(Parser, Debug)]
#[command(
    name = "milter-performance-check",
    version,
    about = "Run many mail sessions against a milter (--milter) or an SMTP server and report \
             throughput, latency and how they ended"
)]
struct Options {
    /// Drive this milter directly, as a Postfix-like MTA: unix:PATH,
    /// inet:PORT[@HOST|@[ADDRESS]] or inet6:... Without it, mails go to the SMTP server.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["smtp_server", "smtp_port"])]
    milter: Option<String>,
    /// The SMTP server to send mails to (SMTP mode).
    #[arg(long = "smtp-server", value_name = "HOST", default_value = "127.0.0.1")]
    smtp_server: String,
    /// The SMTP server's port.
    #[arg(long = "smtp-port", value_name = "PORT", default_value_t = 25)]
    smtp_port: u16,
    /// Take the connection as coming from this client name: Postfix's XCLIENT NAME=
    /// (the server must list this client in smtpd_authorized_xclient_hosts).
    #[arg(long = "connect-host", value_name = "NAME", conflicts_with = "milter")]
    connect_host: Option<String>,
    /// Take the connection as coming from this client address: Postfix's XCLIENT ADDR=.
    #[arg(long = "connect-address", value_name = "ADDRESS", conflicts_with = "milter")]
    connect_address: Option<String>,
    /// STARTTLS when the server offers it (auto), always (a server without it fails the
    /// session) or never. The server's certificate is not verified, as in the original:
    /// this measures an MTA, it does not protect mail.
    #[arg(long, value_name = "HOW", value_enum, default_value_t = StartTls::Auto,
          conflicts_with = "milter")]
    starttls: StartTls,
    /// Authenticate as USER (SMTP AUTH, after STARTTLS and XCLIENT).
    #[arg(
        long = "auth-user",
        value_name = "USER",
        requires = "auth_password",
        conflicts_with = "milter"
    )]
    auth_user: Option<String>,
    /// The password for --auth-user.
    #[arg(long = "auth-password", value_name = "PASSWORD", requires = "auth_user")]
    auth_password: Option<String>,
    /// The AUTH mechanism for --auth-user; auto takes the first the server offers of
    /// CRAM-MD5, PLAIN and LOGIN (as with --auth-map).
    #[arg(long = "auth-mechanism", value_name = "MECHANISM", value_enum,
          default_value_t = AuthChoice::Auto)]
    auth_mechanism: AuthChoice,
    /// Without --auth-user, authenticate with this file's user and password for the
    /// SMTP server: lines `HOST[:PORT] USER:PASSWORD`, as Postfix's
    /// smtp_sasl_password_maps (a server not in it: no AUTH).
    #[arg(long = "auth-map", value_name = "FILE", conflicts_with = "milter")]
    auth_map: Option<PathBuf>,
    /// The name given with EHLO/HELO [default: this host's name over SMTP, mx.example.net
    /// to a milter].
    #[arg(long = "helo-fqdn", value_name = "NAME")]
    helo_fqdn: Option<String>,
    /// How many mails to send (per worker); each is one session on its own connection.
    /// A flood ignores it.
    #[arg(long = "n-mails", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    n_mails: u32,
    /// How many sessions run at the same time (per worker).
    #[arg(long = "n-concurrent-connections", value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    n_concurrent_connections: u32,
    /// Workers, each sending all the mails with its own connections (threads of this
    /// process, where the original forks processes).
    #[arg(long = "n-workers", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    n_workers: u32,
    /// Start the mails evenly over PERIOD (5 = seconds, 5s, 10m, 0.5h), each on its own
    /// connection whatever --n-concurrent-connections says.
    #[arg(long, value_name = "PERIOD", value_parser = parse_period,
          conflicts_with_all = ["interval", "flood"])]
    period: Option<Duration>,
    /// Start one mail every INTERVAL (5 = seconds, 0.5s, 10m, 0.5h), each on its own
    /// connection.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_period, conflicts_with = "flood")]
    interval: Option<Duration>,
    /// Every connection sends the mails over and over for PERIOD, or until interrupted
    /// (Ctrl-C) without one; then the report.
    #[arg(long, value_name = "PERIOD", num_args = 0..=1, require_equals = true,
          default_missing_value = "", value_parser = parse_flood)]
    flood: Option<Flood>,
    /// Send the mail files in a random order.
    #[arg(long, overrides_with = "no_shuffle")]
    shuffle: bool,
    /// Send the mail files in name order (the default).
    #[arg(long = "no-shuffle", overrides_with = "shuffle")]
    no_shuffle: bool,
    /// Envelope sender when the mail has no From: [default: sender@example.com].
    #[arg(short = 'f', long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Envelope sender even when the mail has a From:.
    #[arg(long = "force-from", value_name = "ADDRESS")]
    force_from: Option<String>,
    /// Envelope recipient when the mail has no To: or Cc:; repeat for more [default:
    /// receiver@example.com].
    #[arg(short = 'r', long = "recipient", value_name = "ADDRESS")]
    recipients: Vec<String>,
    /// Envelope recipient even when the mail has a To: or Cc:; repeat for more.
    #[arg(long = "force-recipient", value_name = "ADDRESS")]
    force_recipients: Vec<String>,
    /// Header fields of the generated mail (From, To, Subject, Message-ID, then
    /// X-Performance-Check-N).
    #[arg(
        long = "n-headers",
        value_name = "N",
        default_value_t = 5,
        conflicts_with = "mail_files"
    )]
    n_headers: u32,
    /// Bytes of the generated mail's body (K and M suffixes allowed).
    #[arg(long = "body-size", value_name = "BYTES", default_value = "1024",
          value_parser = program::parse_size, conflicts_with = "mail_files")]
    body_size: usize,
    /// Lines appended to the generated mail's body.
    #[arg(
        long = "n-additional-lines",
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "mail_files"
    )]
    n_additional_lines: u32,
    /// Seconds to wait for each connection, write and reply.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    timeout: Duration,
    /// Seconds to wait for each SMTP reply [default: --timeout].
    #[arg(long = "reading-timeout", value_name = "SECONDS", value_parser = parse_seconds,
          conflicts_with = "milter")]
    reading_timeout: Option<Duration>,
    /// List the failure responses (the server's refusals and the errors) at the end.
    #[arg(long = "report-failure-responses", overrides_with = "no_report_failure_responses")]
    report_failure_responses: bool,
    /// Do not list the failure responses (the default).
    #[arg(long = "no-report-failure-responses", overrides_with = "report_failure_responses")]
    no_report_failure_responses: bool,
    /// Print a line of statistics for the sessions that ended in each INTERVAL (default
    /// 1 s), and one for the rest at the end; to stderr with --json.
    #[arg(long = "report-periodically", value_name = "INTERVAL", num_args = 0..=1,
          require_equals = true, default_missing_value = "1", value_parser = parse_positive_period)]
    report_periodically: Option<Duration>,
    /// Write one CSV line per session to FILE: when it ended (UTC), its time in seconds
    /// and its message's size in bytes.
    #[arg(long = "report-statistics-data", value_name = "FILE")]
    report_statistics_data: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Mails to send instead of a generated one, used in turn (a directory stands for
    /// the files in it).
    #[arg(value_name = "MAIL_FILE")]
    mail_files: Vec<PathBuf>,
}

fn parse_seconds(text: &str) -> Result<Duration, NotSeconds> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(NotSeconds(text.to_string())),
    }
}

/// `--auth-mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthChoice {
    Auto,
    Plain,
    Login,
    #[value(name = "cram_md5", alias = "cram-md5")]
    CramMd5,
}

impl AuthChoice {
    fn mechanism(self) -> Option<AuthMechanism> {
        match self {
            Self::Auto => None,
            Self::Plain => Some(AuthMechanism::Plain),
            Self::Login => Some(AuthMechanism::Login),
            Self::CramMd5 => Some(AuthMechanism::CramMd5),
        }
    }
}

/// `--flood`'s PERIOD; empty (the option alone) floods until interrupted.
#[derive(Debug, Clone, Copy)]
struct Flood(Option<Duration>);

fn parse_flood(text: &str) -> Result<Flood, NotADuration> {
    if text.is_empty() {
        return Ok(Flood(None));
    }
    parse_period(text).map(|period| Flood(Some(period)))
}

/// A period that is not zero (`--report-periodically`).
fn parse_positive_period(text: &str) -> Result<Duration, NotADuration> {
    match parse_period(text)? {
        period if period.is_zero() => Err(NotADuration(text.to_string())),
        period => Ok(period),
    }
}

/// A `--timeout` that is not a duration.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a positive number of seconds")]
struct NotSeconds(String);

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("--milter: {0}")]
    MilterSpec(SpecError),
    #[error("cannot read the mail file {}: {error}", path.display())]
    ReadMailFile { path: PathBuf, error: std::io::Error },
    #[error("mail file {}: {error}", path.display())]
    MailFile { path: PathBuf, error: MailError },
    #[error("cannot read the mail directory {}: {error}", path.display())]
    ReadMailDirectory { path: PathBuf, error: std::io::Error },
    #[error("the mail directories hold no files")]
    NoMailFiles,
    #[error("--report-statistics-data: cannot create {}: {error}", path.display())]
    StatisticsData { path: PathBuf, error: std::io::Error },
    #[error("--auth-map: cannot read {}: {error}", path.display())]
    ReadAuthMap { path: PathBuf, error: std::io::Error },
    #[error("--auth-map: {}: {error}", path.display())]
    AuthMap { path: PathBuf, error: AuthMapError },
    #[error("cannot catch SIGINT: {0}")]
    Signal(std::io::Error),
    /// The milter's address cannot be found.
    #[error(transparent)]
    MilterAddress(#[from] ResolveError),
    /// The SMTP server's address cannot be found.
    #[error(transparent)]
    SmtpAddress(#[from] SmtpTargetError),
}

impl CheckError {
    /// 2 for a bad argument, 1 when the target cannot be found.
    fn exit_status(&self) -> u8 {
        match self {
            Self::MilterAddress(_) | Self::SmtpAddress(_) => 1,
            _ => 2,
        }
    }
}

fn main() -> ExitCode {
    let options = match Options::try_parse() {
        Ok(options) => options,
        // --help and --version.
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            let message = format!("{} (see --help)", first_line(&error.render().to_string()));
            return usage_error(&message);
        }
    };
    match run(&options) {
        Ok(Ran { had_errors, data_written: Err(message) }) => {
            eprintln!("{NAME}: {message}");
            ExitCode::from(u8::from(had_errors).max(1))
        }
        Ok(Ran { had_errors, data_written: Ok(()) }) => ExitCode::from(u8::from(had_errors)),
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::from(error.exit_status())
        }
    }
}

/// One line about bad usage, exit status 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("{NAME}: {message}");
    ExitCode::from(2)
}

/// Clap's message as one line, without its "error: " prefix: its first paragraph (a
/// list such as the missing arguments follows its first line), joined.
fn first_line(rendered: &str) -> String {
    let paragraph: Vec<&str> =
        rendered.lines().map(str::trim).take_while(|line| !line.is_empty()).collect();
    let line = match paragraph.join(" ") {
        joined if joined.is_empty() => "invalid arguments".to_string(),
        joined => joined,
    };
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// How a run went.
struct Ran {
    /// Some session failed.
    had_errors: bool,
    /// The statistics data file's write error, if any.
    data_written: Result<(), String>,
}

/// Runs the check and prints the report.
fn run(options: &Options) -> Result<Ran, CheckError> {
    let mut mails = load_mails(options)?;
    if options.shuffle {
        fastrand::shuffle(&mut mails);
    }
    let pace = match (options.period, options.interval, options.flood) {
        (Some(period), _, _) => Pace::over_period(period, options.n_mails),
        (_, Some(interval), _) => Pace::Interval(interval),
        (_, _, Some(Flood(period))) => Pace::Flood(period),
        _ => Pace::Parallel,
    };
    let plan = Plan {
        pace,
        n_sessions: options.n_mails as usize,
        concurrency: options.n_concurrent_connections as usize,
        n_workers: options.n_workers as usize,
    };
    // Ctrl-C ends a flood (or any run) early: no new session starts, the report follows
    // once the running ones end. A second Ctrl-C exits at once (status 130). The
    // conditional exit is registered first so that the first Ctrl-C only sets the flag.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&stop),
    )
    .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop)))
    .map_err(CheckError::Signal)?;
    let sizes = mails.iter().map(|mail| dot_stuffed_data(mail).len()).collect();
    let collector = Collector::new(
        options.report_periodically.is_some(),
        options.report_statistics_data.as_deref(),
        sizes,
    )
    .map_err(|error| CheckError::StatisticsData {
        path: options.report_statistics_data.clone().unwrap_or_default(),
        error,
    })?;
    let run_with = |session: &(dyn Fn(usize) -> _ + Sync)| {
        let done = AtomicBool::new(false);
        let started = Instant::now();
        std::thread::scope(|scope| {
            if let Some(interval) = options.report_periodically {
                let (collector, done) = (&collector, &done);
                scope.spawn(move || {
                    collector.report_periodically(interval, started, done, |line| {
                        if options.json {
                            eprintln!("{line}");
                        } else {
                            outln!("{line}");
                        }
                    });
                });
            }
            let elapsed = runner::run_sessions(&plan, &stop, session, |r| collector.add(r));
            done.store(true, Ordering::Relaxed);
            elapsed
        })
    };
    let (elapsed, mode, target) = match &options.milter {
        Some(spec) => {
            let spec = Spec::parse(spec).map_err(CheckError::MilterSpec)?;
            let target =
                MilterTarget::new(spec, &mails, options.helo_fqdn.as_deref(), options.timeout)?;
            (run_with(&|i| target.run_session(i)), "milter", target.description())
        }
        None => {
            let xclient = (options.connect_host.is_some() || options.connect_address.is_some())
                .then(|| {
                    xclient_command(
                        options.connect_host.as_deref(),
                        options.connect_address.as_deref(),
                    )
                });
            let settings = SmtpSettings {
                host: options.smtp_server.clone(),
                port: options.smtp_port,
                helo: options.helo_fqdn.clone().unwrap_or_else(program::hostname),
                starttls: options.starttls,
                xclient,
                auth: auth(options)?,
                timeout: options.timeout,
                reading_timeout: options.reading_timeout.unwrap_or(options.timeout),
            };
            let target = SmtpTarget::new(settings, &mails)?;
            (run_with(&|i| target.run_session(i)), "smtp", target.description())
        }
    };
    let (records, data_written) = collector.finish();
    let summary = Summary::new(records, elapsed);
    let info = RunInfo {
        mode,
        target,
        concurrency: plan.connections(),
        failure_responses: options.report_failure_responses,
    };
    if options.report_periodically.is_some() && !options.json {
        outln!();
    }
    if options.json {
        outln!("{}", json_report(&summary, &info));
    } else {
        out!("{}", text_report(&summary, &info));
    }
    Ok(Ran { had_errors: summary.error_count() > 0, data_written })
}

/// The credentials to authenticate with: --auth-user's, or --auth-map's for the server.
fn auth(options: &Options) -> Result<Option<Auth>, CheckError> {
    if let (Some(user), Some(password)) = (&options.auth_user, &options.auth_password) {
        let credentials = Credentials { user: user.clone(), password: password.clone() };
        return Ok(Some(Auth { credentials, mechanism: options.auth_mechanism.mechanism() }));
    }
    let Some(path) = &options.auth_map else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|error| CheckError::ReadAuthMap { path: path.clone(), error })?;
    let map =
        AuthMap::parse(&text).map_err(|error| CheckError::AuthMap { path: path.clone(), error })?;
    let host = options.smtp_server.trim_start_matches('[').trim_end_matches(']');
    Ok(map
        .lookup(host, options.smtp_port)
        .map(|credentials| Auth { credentials: credentials.clone(), mechanism: None }))
}

/// The mail files (directories expanded, in name order), or the generated mail.
fn load_mails(options: &Options) -> Result<Vec<Mail>, CheckError> {
    let envelope = EnvelopeOptions {
        from: options.from.as_deref(),
        force_from: options.force_from.as_deref(),
        recipients: &options.recipients,
        force_recipients: &options.force_recipients,
    };
    if options.mail_files.is_empty() {
        return Ok(vec![generated_mail(
            &envelope,
            options.n_headers as usize,
            options.body_size,
            options.n_additional_lines as usize,
        )]);
    }
    let mut mails = Vec::new();
    for path in &options.mail_files {
        for file in files_of(path)? {
            let bytes = std::fs::read(&file)
                .map_err(|error| CheckError::ReadMailFile { path: file.clone(), error })?;
            let mail = mail_from_file(&bytes, &envelope)
                .map_err(|error| CheckError::MailFile { path: file.clone(), error })?;
            mails.push(mail);
        }
    }
    if mails.is_empty() {
        return Err(CheckError::NoMailFiles);
    }
    Ok(mails)
}

/// `path` itself, or the regular files directly in it when it is a directory.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, CheckError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|error| CheckError::ReadMailDirectory { path: path.to_path_buf(), error })?;
    let mut files: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}
