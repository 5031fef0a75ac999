//! milter-performance-check: a load generator. It runs many sessions, several at a time,
//! either straight against a milter (milter mode, acting as a Postfix-like MTA) or
//! through an MTA over SMTP (SMTP mode, as the original tool does), and reports
//! throughput, latency percentiles and how the sessions ended.
//!
//! Exit status: 0 when every session completed (a rejected mail is a completed session),
//! 1 when any session failed (or the target's address cannot be found), 2 for bad usage.

use milter_manager::{out, outln, program};

mod failure;
mod milter_mode;
mod runner;
mod smtp_mode;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use milter_manager::message::MailError;
use milter_manager::program::ResolveError;
use milter_manager::spec::{Spec, SpecError};
use milter_manager::tools::performance::{
    generated_mail, json_report, mail_from_file, text_report, Mail, RunInfo, Summary,
};

use milter_mode::MilterTarget;
use smtp_mode::{SmtpTarget, SmtpTargetError};

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
    /// The name given with EHLO/HELO [default: this host's name over SMTP, mx.example.net
    /// to a milter].
    #[arg(long = "helo-fqdn", value_name = "NAME")]
    helo_fqdn: Option<String>,
    /// How many mails to send; each is one session on its own connection.
    #[arg(long = "n-mails", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    n_mails: u32,
    /// How many sessions run at the same time.
    #[arg(long = "n-concurrent-connections", value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    n_concurrent_connections: u32,
    /// Envelope sender [default: the mail file's From:, else sender@example.com].
    #[arg(short = 'f', long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Envelope recipient; repeat for more [default: the mail file's To:, else
    /// receiver@example.com].
    #[arg(short = 'r', long = "recipient", value_name = "ADDRESS")]
    recipients: Vec<String>,
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
    /// Seconds to wait for each connection, write and reply.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    timeout: Duration,
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
        Ok(summary_had_errors) => ExitCode::from(u8::from(summary_had_errors)),
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

/// Clap's first line, without its "error: " prefix.
fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or("invalid arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Runs the check and prints the report; true if any session failed.
fn run(options: &Options) -> Result<bool, CheckError> {
    let mails = load_mails(options)?;
    let n_mails = options.n_mails as usize;
    // More threads than sessions would only wait.
    let concurrency = (options.n_concurrent_connections as usize).min(n_mails);
    let ((records, elapsed), info) = match &options.milter {
        Some(spec) => {
            let spec = Spec::parse(spec).map_err(CheckError::MilterSpec)?;
            let target =
                MilterTarget::new(spec, &mails, options.helo_fqdn.as_deref(), options.timeout)?;
            let info = RunInfo { mode: "milter", target: target.description(), concurrency };
            (runner::run_sessions(n_mails, concurrency, |i| target.run_session(i)), info)
        }
        None => {
            let helo = options.helo_fqdn.clone().unwrap_or_else(program::hostname);
            let target = SmtpTarget::new(
                &options.smtp_server,
                options.smtp_port,
                helo,
                &mails,
                options.timeout,
            )?;
            let info = RunInfo { mode: "smtp", target: target.description(), concurrency };
            (runner::run_sessions(n_mails, concurrency, |i| target.run_session(i)), info)
        }
    };
    let summary = Summary::new(records, elapsed);
    if options.json {
        outln!("{}", json_report(&summary, &info));
    } else {
        out!("{}", text_report(&summary, &info));
    }
    Ok(summary.error_count() > 0)
}

/// The mail files (directories expanded, in name order), or the generated mail.
fn load_mails(options: &Options) -> Result<Vec<Mail>, CheckError> {
    if options.mail_files.is_empty() {
        return Ok(vec![generated_mail(
            options.from.as_deref(),
            &options.recipients,
            options.n_headers as usize,
            options.body_size,
        )]);
    }
    let mut mails = Vec::new();
    for path in &options.mail_files {
        for file in files_of(path)? {
            let bytes = std::fs::read(&file)
                .map_err(|error| CheckError::ReadMailFile { path: file.clone(), error })?;
            let mail = mail_from_file(&bytes, options.from.as_deref(), &options.recipients)
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
