//! milter-test-server: an MTA simulator. It connects to a milter, drives it through one
//! SMTP session the way Postfix would, and prints the milter's verdict and the time taken.

use milter_manager::{out, outln, program};

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use milter_manager::message::MailError;
use milter_manager::message::{Change, Message};
use milter_manager::protocol::{Actions, ConnectAddress, MacroStage, Negotiation, Steps};
use milter_manager::spec::{Spec, SpecError};
use milter_manager::text::escape;
use milter_manager::tools::test_server::{Script, SessionError, TestServerSession, Timeouts};
use program::milter_connection::{drive, ConnectError, Connection, DriveError};

#[derive(Parser, Debug)]
#[command(
    name = "milter-test-server",
    version,
    about = "Drive a milter through a simulated SMTP session and print its verdict"
)]
struct Options {
    /// The milter to test: unix:PATH, inet:PORT[@HOST|@[ADDRESS]], inet6:...
    #[arg(short = 's', long = "connection-spec", default_value = "inet:10025@localhost")]
    connection_spec: String,
    /// The MTA's name, sent as {daemon_name}.
    #[arg(long, default_value = "milter-test-server")]
    name: String,
    /// Protocol version to offer: 2, 3, 4 or 6 (Postfix's), or 7 or 8 (the original tool's
    /// default), which offer what 6 does: only the version field of the negotiate packet
    /// differs, and milters answer 6 at most.
    #[arg(long = "negotiate-version", default_value_t = 6)]
    negotiate_version: u32,
    /// Client host name sent at connect.
    #[arg(long = "connect-host", default_value = "mx.example.net")]
    connect_host: String,
    /// Client address sent at connect, as a connection spec (inet:PORT@[ADDRESS], unix:PATH) or `unknown`.
    #[arg(long = "connect-address", default_value = "inet:50443@[192.0.2.1]")]
    connect_address: String,
    /// HELO name.
    #[arg(long = "helo-fqdn", default_value = "mx.example.net")]
    helo_fqdn: String,
    /// Envelope sender, optionally followed by ESMTP parameters ("<a@b> SIZE=10").
    #[arg(short = 'f', long = "from", visible_alias = "envelope-from")]
    from: Option<String>,
    /// Envelope recipient; repeat for more.
    #[arg(short = 'r', long = "recipient", visible_alias = "envelope-recipient")]
    recipients: Vec<String>,
    /// A header as NAME:VALUE; repeat for more.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// A body chunk; repeat for more (each is sent as its own chunk).
    #[arg(long = "body")]
    bodies: Vec<String>,
    /// Take headers and body (and From:/To: as the envelope if not given) from an RFC 5322 file.
    #[arg(long = "mail-file")]
    mail_file: Option<PathBuf>,
    /// Send this SMTP command line as an unknown command after HELO.
    #[arg(long)]
    unknown: Option<String>,
    /// {auth_authen}
    #[arg(long = "authenticated-name")]
    authenticated_name: Option<String>,
    /// {auth_type}
    #[arg(long = "authenticated-type")]
    authenticated_type: Option<String>,
    /// {auth_author}
    #[arg(long = "authenticated-author")]
    authenticated_author: Option<String>,
    /// Extra macro NAME:VALUE for connect; repeatable.
    #[arg(long = "connect-macro")]
    connect_macros: Vec<String>,
    /// Extra macro NAME:VALUE for HELO; repeatable.
    #[arg(long = "helo-macro")]
    helo_macros: Vec<String>,
    /// Extra macro NAME:VALUE for MAIL FROM; repeatable.
    #[arg(long = "envelope-from-macro")]
    envelope_from_macros: Vec<String>,
    /// Extra macro NAME:VALUE for RCPT TO; repeatable.
    #[arg(long = "envelope-recipient-macro")]
    envelope_recipient_macros: Vec<String>,
    /// Extra macro NAME:VALUE for DATA; repeatable.
    #[arg(long = "data-macro")]
    data_macros: Vec<String>,
    /// Extra macro NAME:VALUE for end-of-header; repeatable.
    #[arg(long = "end-of-header-macro")]
    end_of_header_macros: Vec<String>,
    /// Extra macro NAME:VALUE for end-of-message; repeatable.
    #[arg(long = "end-of-message-macro")]
    end_of_message_macros: Vec<String>,
    /// Send the message this many times on the one connection.
    #[arg(long = "n-messages", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    n_messages: u32,
    /// Print the message as the milter left it, with + and - marking its changes.
    #[arg(long = "output-message")]
    output_message: bool,
    /// Color --output-message's changes (added green, removed red): yes, no, or auto (when
    /// standard output is a terminal; the default).
    #[arg(long, num_args = 0..=1, default_missing_value = "auto", value_parser = ["yes", "no", "auto"])]
    color: Option<String>,
    /// Run this many sessions at once, each on its own connection; each is printed whole,
    /// in order, after "session: N".
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    threads: u32,
    /// Seconds for connecting and the negotiation reply.
    #[arg(long = "connection-timeout", default_value_t = 300.0)]
    connection_timeout: f64,
    /// Seconds for each reply but end-of-message.
    #[arg(long = "reading-timeout", default_value_t = 10.0)]
    reading_timeout: f64,
    /// Seconds for each write.
    #[arg(long = "writing-timeout", default_value_t = 10.0)]
    writing_timeout: f64,
    /// Seconds for the end-of-message reply.
    #[arg(long = "end-of-message-timeout", default_value_t = 300.0)]
    end_of_message_timeout: f64,
    /// Sets all four timeouts.
    #[arg(long = "all-timeouts")]
    all_timeouts: Option<f64>,
    /// Print every reply of the milter.
    #[arg(short = 'v', long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("milter-test-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why no verdict could be printed; main prints it after the program's name.
#[derive(Debug, thiserror::Error)]
enum ServerError {
    #[error(transparent)]
    Spec(SpecError),
    #[error(
        "--negotiate-version {0}: protocol versions are 2, 3, 4 and 6 (7 and 8 offer what 6 does)"
    )]
    NegotiateVersion(u32),
    /// `option`: the option's name without the dashes.
    #[error("--{option} {value}: a timeout is a positive number of seconds")]
    Timeout { option: &'static str, value: f64 },
    #[error("cannot read --mail-file {}: {error}", path.display())]
    ReadMailFile { path: PathBuf, error: std::io::Error },
    #[error("--mail-file {}: {error}", path.display())]
    MailFile { path: PathBuf, error: MailError },
    #[error("--header {0:?}: expected NAME:VALUE")]
    HeaderWithoutColon(String),
    #[error("--header {0:?}: the name is empty")]
    HeaderWithoutName(String),
    /// `stage`: the stage's name, which names the option (--connect-macro, ...).
    #[error("--{stage}-macro {pair:?}: expected NAME:VALUE")]
    MacroWithoutColon { stage: &'static str, pair: String },
    #[error("--connect-address: {0}")]
    ConnectAddress(SpecError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{}", error.message_at(spec))]
    Drive { spec: Spec, error: DriveError },
    #[error(transparent)]
    Session(SessionError),
    #[error("{failed} of {of} sessions failed")]
    SessionsFailed { failed: u32, of: u32 },
}

fn run(options: &Options) -> Result<(), ServerError> {
    let spec = Spec::parse(&options.connection_spec).map_err(ServerError::Spec)?;
    let script = build_script(options)?;
    let color = match options.color.as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => std::io::stdout().is_terminal(),
    };
    let printer =
        Printer { verbose: options.verbose, output_message: options.output_message, color };
    if options.threads == 1 {
        // Printed as it comes, so --verbose shows the replies while the session runs.
        return run_session(&spec, script, &printer, &mut |text| out!("{text}"));
    }
    // Each session's text is kept and printed whole, in order, once all are done.
    let outcomes: Vec<(String, Result<(), ServerError>)> = std::thread::scope(|scope| {
        let sessions: Vec<_> = (0..options.threads)
            .map(|_| {
                let (spec, script, printer) = (&spec, script.clone(), &printer);
                scope.spawn(move || {
                    let mut text = String::new();
                    let result = run_session(spec, script, printer, &mut |t| text.push_str(t));
                    (text, result)
                })
            })
            .collect();
        sessions.into_iter().map(|s| s.join().expect("a session thread panicked")).collect()
    });
    let mut failed = 0;
    for (i, (text, result)) in outcomes.into_iter().enumerate() {
        outln!("session: {}", i + 1);
        out!("{text}");
        if let Err(error) = result {
            eprintln!("milter-test-server: session {}: {error}", i + 1);
            failed += 1;
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(ServerError::SessionsFailed { failed: n, of: options.threads }),
    }
}

/// How a session is printed.
struct Printer {
    verbose: bool,
    output_message: bool,
    /// ANSI colors on --output-message's changed lines.
    color: bool,
}

/// One session on a connection of its own; its text goes to `out` as it comes.
fn run_session(
    spec: &Spec,
    script: Script,
    printer: &Printer,
    out: &mut dyn FnMut(&str),
) -> Result<(), ServerError> {
    let timeouts = script.timeouts;
    let started = Instant::now();
    let mut connection = Connection::open(spec, timeouts.connection)?;
    connection.set_write_timeout(timeouts.writing)?;
    let mut session = TestServerSession::new(script, started);
    drive(&mut session, &mut connection, |session| {
        for line in session.take_log() {
            if printer.verbose {
                out(&format!("reply: {line}\n"));
            }
        }
    })
    .map_err(|error| ServerError::Drive { spec: spec.clone(), error })?;
    let elapsed = started.elapsed();
    if let Some(error) = session.error() {
        return Err(ServerError::Session(error.clone()));
    }
    let mut text = String::new();
    report(&mut text, &session, printer);
    writeln!(text, "elapsed-time: {:.6} seconds", elapsed.as_secs_f64()).expect("to a String");
    out(&text);
    Ok(())
}

fn report(out: &mut String, session: &TestServerSession, printer: &Printer) {
    if let Some(verdict) = session.session_verdict() {
        writeln!(out, "status: {verdict}").expect("to a String");
        return;
    }
    for (i, result) in session.messages().iter().enumerate() {
        if session.messages().len() > 1 {
            writeln!(out, "message: {}", i + 1).expect("to a String");
        }
        for (recipient, verdict) in &result.rejected_recipients {
            let recipient = escape(&recipient[..]);
            writeln!(out, "recipient: <{}> {verdict}", recipient.trim_matches(['<', '>']))
                .expect("to a String");
        }
        writeln!(out, "status: {}", result.verdict).expect("to a String");
        if printer.output_message {
            print_message(out, &result.message, printer.color);
        }
    }
}

/// `text` on its own line, green (added) or red (removed) when colored.
fn colored_line(out: &mut String, color: bool, marker: &str, text: &str) {
    let code = match marker.trim_end() {
        "+" if color => "32",
        "-" if color => "31",
        _ => "",
    };
    if code.is_empty() {
        writeln!(out, "{marker}{text}")
    } else {
        writeln!(out, "\x1b[{code}m{marker}{text}\x1b[0m")
    }
    .expect("to a String");
}

/// Prints the message with `+ ` before what milters added, `- ` before what they removed
/// and two spaces before the rest.
fn print_message(out: &mut String, message: &Message, color: bool) {
    let separator_line = "------------------------------\n";
    let line = |out: &mut String, marker: &str, text: String| {
        for part in text.split('\n') {
            colored_line(out, color, &format!("{marker} "), part);
        }
    };
    let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    out.push_str(separator_line);
    if let Some(old) = &message.original_sender {
        line(out, "-", format!("envelope-from: {}", show(old)));
        line(
            out,
            "+",
            format!(
                "envelope-from: {}{}",
                show(&message.sender),
                parameters(&message.sender_parameters)
            ),
        );
    } else {
        line(out, " ", format!("envelope-from: {}", show(&message.sender)));
    }
    for recipient in &message.recipients {
        let marker = marker_of(&recipient.change);
        line(
            out,
            marker,
            format!(
                "envelope-recipient: {}{}",
                show(&recipient.address),
                parameters(&recipient.parameters)
            ),
        );
    }
    out.push_str(separator_line);
    for header in &message.headers {
        let separator = if header.value.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            ":"
        } else {
            ": "
        };
        if let Change::Changed { old } = &header.change {
            line(out, "-", format!("{}{separator}{}", show(&header.name), show(old)));
            line(out, "+", format!("{}{separator}{}", show(&header.name), show(&header.value)));
        } else {
            line(
                out,
                marker_of(&header.change),
                format!("{}{separator}{}", show(&header.name), show(&header.value)),
            );
        }
    }
    out.push('\n');
    let body_lines = |out: &mut String, marker: &str, body: &[u8]| {
        let text = show(body);
        let text = text.strip_suffix("\r\n").unwrap_or(&text);
        for part in text.split("\r\n") {
            colored_line(out, color, marker, part);
        }
    };
    match &message.original_body {
        Some(old) => {
            body_lines(out, "- ", old);
            body_lines(out, "+ ", &message.body);
        }
        None => body_lines(out, "", &message.body),
    }
    if let Some(reason) = &message.quarantine_reason {
        out.push_str(separator_line);
        writeln!(out, "quarantine: {}", show(reason)).expect("to a String");
    }
}

fn marker_of(change: &Change) -> &'static str {
    match change {
        Change::Original | Change::Changed { .. } => " ",
        Change::Added => "+",
        Change::Deleted => "-",
    }
}

fn parameters(parameters: &[Vec<u8>]) -> String {
    parameters.iter().map(|p| format!(" {}", String::from_utf8_lossy(p))).collect()
}

/// The versions a negotiation may offer: those that exist (there is no 5), and 7 and 8 as
/// the original tool offers (8 by default); a milter answers the lower of its own and the
/// offer, so a newer offer gets a version 6 session.
const OFFERABLE_VERSIONS: [u32; 6] = [2, 3, 4, 6, 7, 8];

fn build_script(options: &Options) -> Result<Script, ServerError> {
    if !OFFERABLE_VERSIONS.contains(&options.negotiate_version) {
        return Err(ServerError::NegotiateVersion(options.negotiate_version));
    }
    let seconds = |option: &'static str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(ServerError::Timeout { option, value })
        }
    };
    let all = options.all_timeouts.map(|t| seconds("all-timeouts", t)).transpose()?;
    let timeouts = Timeouts {
        connection: all
            .map_or_else(|| seconds("connection-timeout", options.connection_timeout), Ok)?,
        writing: all.map_or_else(|| seconds("writing-timeout", options.writing_timeout), Ok)?,
        reading: all.map_or_else(|| seconds("reading-timeout", options.reading_timeout), Ok)?,
        end_of_message: all.map_or_else(
            || seconds("end-of-message-timeout", options.end_of_message_timeout),
            Ok,
        )?,
    };
    let mut script = Script {
        offer: Negotiation::new(
            options.negotiate_version,
            Actions::ALL,
            Steps::ALL.intersection(Steps::for_version(options.negotiate_version)),
        ),
        daemon_name: options.name.clone(),
        mta_hostname: program::hostname(),
        connect_host: options.connect_host.clone().into_bytes(),
        connect_address: connect_address(&options.connect_address)?,
        helo_fqdn: Some(options.helo_fqdn.clone().into_bytes()),
        n_messages: options.n_messages,
        timeouts,
        unknown_command: options.unknown.clone().map(String::into_bytes),
        auth_name: options.authenticated_name.clone().map(String::into_bytes),
        auth_type: options.authenticated_type.clone().map(String::into_bytes),
        auth_author: options.authenticated_author.clone().map(String::into_bytes),
        ..Script::default()
    };
    if let Some(path) = &options.mail_file {
        let bytes = std::fs::read(path)
            .map_err(|error| ServerError::ReadMailFile { path: path.clone(), error })?;
        let (headers, body) = milter_manager::message::parse_mail(&bytes)
            .map_err(|error| ServerError::MailFile { path: path.clone(), error })?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| milter_manager::message::header_address(v))
        };
        if let Some(from) = find("From") {
            script.envelope_from = from;
        }
        if let Some(to) = find("To") {
            script.recipients = vec![to];
        }
        script.headers = headers;
        script.body = body;
    }
    if let Some(from) = &options.from {
        script.envelope_from = from.clone().into_bytes();
    }
    if !options.recipients.is_empty() {
        script.recipients = options.recipients.iter().map(|r| r.clone().into_bytes()).collect();
    }
    if !options.headers.is_empty() {
        script.headers = options
            .headers
            .iter()
            .map(|h| {
                let (name, value) =
                    h.split_once(':').ok_or_else(|| ServerError::HeaderWithoutColon(h.clone()))?;
                if name.is_empty() {
                    return Err(ServerError::HeaderWithoutName(h.clone()));
                }
                Ok((
                    name.as_bytes().to_vec(),
                    value.strip_prefix(' ').unwrap_or(value).as_bytes().to_vec(),
                ))
            })
            .collect::<Result<_, ServerError>>()?;
    }
    if !options.bodies.is_empty() {
        script.body_chunks = options.bodies.iter().map(|b| b.clone().into_bytes()).collect();
    }
    // Each option is named after its stage: --connect-macro, --helo-macro, ...
    for (stage, list) in [
        (MacroStage::Connect, &options.connect_macros),
        (MacroStage::Helo, &options.helo_macros),
        (MacroStage::EnvelopeFrom, &options.envelope_from_macros),
        (MacroStage::EnvelopeRecipient, &options.envelope_recipient_macros),
        (MacroStage::Data, &options.data_macros),
        (MacroStage::EndOfHeader, &options.end_of_header_macros),
        (MacroStage::EndOfMessage, &options.end_of_message_macros),
    ] {
        for pair in list {
            let (name, value) = pair.split_once(':').ok_or_else(|| {
                ServerError::MacroWithoutColon { stage: stage.name(), pair: pair.clone() }
            })?;
            script.extra_macros.push((
                stage.command_code(),
                name.as_bytes().to_vec(),
                value.as_bytes().to_vec(),
            ));
        }
    }
    Ok(script)
}

fn connect_address(text: &str) -> Result<ConnectAddress, ServerError> {
    if text == "unknown" {
        return Ok(ConnectAddress::Unknown);
    }
    let spec = Spec::parse(text).map_err(ServerError::ConnectAddress)?;
    Ok(match spec {
        Spec::Unix { path, .. } => {
            ConnectAddress::Unix { port: 0, path: path.to_string_lossy().into_owned().into_bytes() }
        }
        Spec::Inet { family, port, host } => {
            let address = match host {
                milter_manager::spec::Host::Any => {
                    if family == milter_manager::spec::Family::Inet {
                        "0.0.0.0".into()
                    } else {
                        "::".into()
                    }
                }
                milter_manager::spec::Host::Name(name) => name,
                milter_manager::spec::Host::Address(address) => address.to_string(),
            };
            match family {
                milter_manager::spec::Family::Inet => {
                    ConnectAddress::Inet { port, address: address.into_bytes() }
                }
                milter_manager::spec::Family::Inet6 => {
                    ConnectAddress::Inet6 { port, address: address.into_bytes() }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_of(args: &[&str]) -> Result<Script, String> {
        let options = Options::try_parse_from(["milter-test-server"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        build_script(&options).map_err(|e| e.to_string())
    }

    #[test]
    fn stage_macros_carry_the_command_letter_of_their_stage() {
        let script = script_of(&[
            "--connect-macro=c:1",
            "--helo-macro=h:2",
            "--envelope-from-macro=m:3",
            "--envelope-recipient-macro=r:4",
            "--data-macro=t:5",
            "--end-of-header-macro=n:6",
            "--end-of-message-macro=e:7",
        ])
        .unwrap();
        let shown: Vec<String> = script
            .extra_macros
            .iter()
            .map(|(stage, name, value)| {
                format!(
                    "{}{}={}",
                    *stage as char,
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                )
            })
            .collect();
        assert_eq!(shown, ["Cc=1", "Hh=2", "Mm=3", "Rr=4", "Tt=5", "Nn=6", "Ee=7"]);
    }

    #[test]
    fn a_macro_without_a_value_names_its_option() {
        assert_eq!(
            script_of(&["--end-of-header-macro", "novalue"]).unwrap_err(),
            "--end-of-header-macro \"novalue\": expected NAME:VALUE"
        );
        assert_eq!(
            script_of(&["--envelope-recipient-macro", "x"]).unwrap_err(),
            "--envelope-recipient-macro \"x\": expected NAME:VALUE"
        );
    }
}
