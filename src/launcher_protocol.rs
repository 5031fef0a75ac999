//! Privilege mode, without I/O: the line protocol spoken with the launcher (the small root
//! process that starts child milters) and how a milter's `command` becomes an argument
//! vector.
//!
//! The protocol is one request line per connection and one answer line back:
//!
//! ```text
//! start NAME        ->  started PID | running PID | wait MS | error REASON
//! stop NAME         ->  stopped PID | error REASON
//! reload            ->  reloaded N | error REASON
//! ```
//!
//! `wait MS`: the milter is started again no sooner than in MS milliseconds (it was
//! started less than 3 s ago, ended soon after its last start, or was stopped and has not
//! ended yet); ask again then. `reload`: the
//! launcher reads the configuration files again (it takes no list of commands from the
//! unprivileged processes); N milters of it can be started.
//!
//! NAME is the rest of the line, so names with spaces work; a name cannot hold a line break.

use std::fmt;

use crate::config::CommandOptions;

/// The longest request or answer line the launcher reads; longer lines are refused.
pub const MAX_LINE: usize = 4096;

/// What a worker or the controller asks the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchRequest {
    /// Start the child milter NAME unless it is still running.
    Start(String),
    /// Stop the child milter NAME that the launcher started.
    Stop(String),
    /// Read the configuration files again.
    Reload,
}

/// The launcher's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchAnswer {
    Started(u32),
    /// Started earlier and still running: not started again.
    Running(u32),
    Stopped(u32),
    /// Back-off: ask again in this many milliseconds.
    Wait(u64),
    /// The configuration was read again: this many milters can be started.
    Reloaded(usize),
    Refused(String),
}

/// Why the launcher refuses a request line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{verb}: a milter name is missing")]
    MissingName { verb: String },
    #[error("unknown request {verb:?} (expected start NAME, stop NAME or reload)")]
    Unknown { verb: String },
}

/// An answer line the launcher should not have sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad launcher answer {line:?}")]
pub struct BadAnswer {
    pub line: String,
}

impl LaunchRequest {
    /// The request line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Self::Start(name) => format!("start {}\n", one_line(name)),
            Self::Stop(name) => format!("stop {}\n", one_line(name)),
            Self::Reload => "reload\n".into(),
        }
    }

    /// Reads a request line (with or without its newline).
    pub fn parse(line: &str) -> Result<Self, RequestError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (verb, name) = line.split_once(' ').unwrap_or((line, ""));
        if line == "reload" {
            return Ok(Self::Reload);
        }
        if name.is_empty() && matches!(verb, "start" | "stop") {
            return Err(RequestError::MissingName { verb: verb.to_string() });
        }
        match verb {
            "start" => Ok(Self::Start(name.to_string())),
            "stop" => Ok(Self::Stop(name.to_string())),
            _ => Err(RequestError::Unknown { verb: verb.to_string() }),
        }
    }
}

impl LaunchAnswer {
    /// The answer line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Self::Started(pid) => format!("started {pid}\n"),
            Self::Running(pid) => format!("running {pid}\n"),
            Self::Stopped(pid) => format!("stopped {pid}\n"),
            Self::Wait(ms) => format!("wait {ms}\n"),
            Self::Reloaded(n) => format!("reloaded {n}\n"),
            Self::Refused(reason) => format!("error {}\n", one_line(reason)),
        }
    }

    /// Reads an answer line (with or without its newline).
    pub fn parse(line: &str) -> Result<Self, BadAnswer> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = || BadAnswer { line: line.to_string() };
        let pid = || rest.parse::<u32>().map_err(|_| bad());
        match word {
            "started" => Ok(Self::Started(pid()?)),
            "running" => Ok(Self::Running(pid()?)),
            "stopped" => Ok(Self::Stopped(pid()?)),
            "wait" => rest.parse().map(LaunchAnswer::Wait).map_err(|_| bad()),
            "reloaded" => rest.parse().map(LaunchAnswer::Reloaded).map_err(|_| bad()),
            "error" => Ok(Self::Refused(rest.to_string())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for LaunchAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started(pid) => write!(f, "started (pid {pid})"),
            Self::Running(pid) => write!(f, "already running (pid {pid})"),
            Self::Stopped(pid) => write!(f, "stopped (pid {pid})"),
            Self::Wait(ms) => {
                write!(f, "not started now; started again in {ms} ms at the earliest")
            }
            Self::Reloaded(n) => {
                write!(f, "configuration read again: {n} milters can be started")
            }
            Self::Refused(reason) => f.write_str(reason),
        }
    }
}

/// Line breaks would split one message into two lines of the protocol.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Why a milter's command cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandLineError {
    #[error("command is empty")]
    Empty,
    /// The words of `command_options` cannot be split (the splitter's words).
    #[error("command_options: {0}")]
    Options(String),
}

/// The argument vector of a milter's `command` with its `command_options`. No shell runs
/// it: a string of options is split into words with the shell's quoting rules only ('...',
/// "..." and backslash); variables, globs and redirections are not expanded. A milter that
/// needs a shell says so: `command = "/bin/sh"`, `command_options = ["-c", "..."]`.
pub fn command_line(
    command: &str,
    options: Option<&CommandOptions>,
) -> Result<Vec<String>, CommandLineError> {
    if command.trim().is_empty() {
        return Err(CommandLineError::Empty);
    }
    let mut argv = vec![command.to_string()];
    match options {
        None => {}
        Some(CommandOptions::Arguments(arguments)) => argv.extend(arguments.iter().cloned()),
        Some(CommandOptions::Line(line)) => argv.extend(
            shell_words::split(line)
                .map_err(|e| CommandLineError::Options(format!("{e} in {line:?}")))?,
        ),
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_names_keep_their_spaces() {
        for request in [
            LaunchRequest::Start("opendkim".into()),
            LaunchRequest::Stop("milter greylist".into()),
            LaunchRequest::Reload,
        ] {
            assert_eq!(LaunchRequest::parse(&request.encode()), Ok(request));
        }
        assert_eq!(LaunchRequest::Start("a\nb".into()).encode(), "start a b\n");
    }

    #[test]
    fn bad_requests_say_why() {
        let refusal = |line| LaunchRequest::parse(line).unwrap_err().to_string();
        assert_eq!(refusal("start"), "start: a milter name is missing");
        assert_eq!(
            refusal("exec /bin/sh"),
            "unknown request \"exec\" (expected start NAME, stop NAME or reload)"
        );
        let bad = LaunchAnswer::parse("started soon\n").unwrap_err();
        assert_eq!(bad.to_string(), "bad launcher answer \"started soon\"");
    }

    #[test]
    fn answers_round_trip() {
        for answer in [
            LaunchAnswer::Started(12),
            LaunchAnswer::Running(13),
            LaunchAnswer::Stopped(14),
            LaunchAnswer::Wait(700),
            LaunchAnswer::Reloaded(3),
            LaunchAnswer::Refused("milter \"x\" has no command".into()),
        ] {
            assert_eq!(LaunchAnswer::parse(&answer.encode()), Ok(answer));
        }
        assert!(LaunchAnswer::parse("started soon").is_err());
        assert!(LaunchAnswer::parse("hello").is_err());
    }

    #[test]
    fn a_command_line_is_the_command_and_its_options() {
        let line = CommandOptions::Line("start --now".into());
        assert_eq!(
            command_line("/etc/init.d/x", Some(&line)).unwrap(),
            ["/etc/init.d/x", "start", "--now"]
        );
        let list = CommandOptions::Arguments(vec!["a b".into(), "c".into()]);
        assert_eq!(command_line("/bin/x", Some(&list)).unwrap(), ["/bin/x", "a b", "c"]);
        assert_eq!(command_line("/bin/x", None).unwrap(), ["/bin/x"]);
        assert_eq!(command_line(" ", None), Err(CommandLineError::Empty));
        assert_eq!(CommandLineError::Empty.to_string(), "command is empty");
        let bad = CommandOptions::Line("'x".into());
        assert_eq!(
            command_line("/bin/x", Some(&bad)).unwrap_err().to_string(),
            "command_options: missing closing quote in \"'x\""
        );
    }

    #[test]
    fn command_options_are_split_by_the_shell_quoting_rules() {
        let line = CommandOptions::Line(
            r#"-p inet:8891@[127.0.0.1]  'a b' "c \"d\" \$e" f\ g h'i'j ''"#.into(),
        );
        assert_eq!(
            command_line("/bin/x", Some(&line)).unwrap(),
            ["/bin/x", "-p", "inet:8891@[127.0.0.1]", "a b", "c \"d\" $e", "f g", "hij", ""]
        );
    }
}
