//! The controller's protocol, without I/O: one request line per connection, one answer.
//!
//! ```text
//! status | configuration | reload | stop-child NAME | metrics
//! ```
//!
//! An answer is `ok` on its first line and the text after it, or one line `error: REASON`;
//! the controller closes the connection after it.
//!
//! The status counts come from counters shared by the worker processes; their layout
//! ([`Counters`]) is `crate::metrics::layout`'s, so that the workers and the controller
//! agree on it. A
//! milter's row is found by its name ([`CounterSlots`]), so a reload that reorders, adds or
//! removes milters keeps every milter's counts.

use std::fmt::{self, Write};

use crate::config::Config;
use crate::text::{escape, unescape};

/// The longest request line the controller reads.
pub const MAX_REQUEST: usize = 4096;

/// What the controller is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// Sessions in flight and done, the final statuses per child milter, the workers.
    Status,
    /// The running configuration as `--show-config` prints it.
    Configuration,
    /// Reload the configuration, as SIGHUP does.
    Reload,
    /// Stop a child milter the launcher started.
    StopChild(String),
    /// The counters in the Prometheus text format, as `GET /metrics` answers them.
    Metrics,
}

/// Why a request line is refused; the controller answers it as `error: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{verb} takes no argument")]
    UnexpectedArgument { verb: String },
    #[error("stop-child: a milter name is missing")]
    MissingName,
    #[error("empty request")]
    Empty,
    #[error(
        "unknown request {verb:?} (expected status, configuration, reload, metrics or \
         stop-child NAME)"
    )]
    Unknown { verb: String },
}

/// Why an answer carries no body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The controller's `error:` answer: its reason, verbatim.
    #[error("{0}")]
    Refused(String),
    #[error("the controller closed the connection without an answer")]
    NoAnswer,
    #[error("unexpected answer {first_line:?}")]
    Unexpected { first_line: String },
}

impl ControlRequest {
    pub fn parse(line: &str) -> Result<Self, RequestError> {
        let line = line.trim_end_matches(['\n', '\r']).trim();
        let (verb, argument) = match line.split_once(char::is_whitespace) {
            Some((verb, rest)) => (verb, rest.trim()),
            None => (line, ""),
        };
        let no_argument = |request: Self| {
            if argument.is_empty() {
                Ok(request)
            } else {
                Err(RequestError::UnexpectedArgument { verb: verb.to_string() })
            }
        };
        match verb {
            "status" => no_argument(Self::Status),
            "configuration" => no_argument(Self::Configuration),
            "reload" => no_argument(Self::Reload),
            "metrics" => no_argument(Self::Metrics),
            "stop-child" if argument.is_empty() => Err(RequestError::MissingName),
            "stop-child" => Ok(Self::StopChild(argument.to_string())),
            "" => Err(RequestError::Empty),
            _ => Err(RequestError::Unknown { verb: verb.to_string() }),
        }
    }

    /// The request line, newline included.
    pub fn encode(&self) -> String {
        match self {
            Self::Status => "status\n".into(),
            Self::Configuration => "configuration\n".into(),
            Self::Reload => "reload\n".into(),
            Self::Metrics => "metrics\n".into(),
            Self::StopChild(name) => format!("stop-child {}\n", name.replace('\n', " ")),
        }
    }
}

/// A successful answer with `body`.
pub fn ok_answer(body: &str) -> String {
    let mut answer = String::from("ok\n");
    answer.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        answer.push('\n');
    }
    answer
}

/// A refusal: one line.
pub fn error_answer(reason: &str) -> String {
    format!("error: {}\n", reason.replace('\n', " "))
}

/// Splits an answer into its body (ok) or its reason (error).
pub fn parse_answer(answer: &str) -> Result<String, AnswerError> {
    if let Some(body) = answer.strip_prefix("ok\n") {
        return Ok(body.to_string());
    }
    if answer == "ok" {
        return Ok(String::new());
    }
    match answer.strip_prefix("error: ") {
        Some(reason) => Err(AnswerError::Refused(reason.trim_end().to_string())),
        None if answer.is_empty() => Err(AnswerError::NoAnswer),
        None => Err(AnswerError::Unexpected {
            first_line: answer.lines().next().unwrap_or("").to_string(),
        }),
    }
}

pub use crate::metrics::{Counters, FINAL_STATUSES};

/// Which row of the shared counters belongs to which milter name: a name keeps its slot
/// for the life of the process, whatever reloads do to the list. Kept by the process that
/// loads configurations (before it forks the workers that count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSlots {
    names: Vec<String>,
}

impl CounterSlots {
    /// The slot of `name`, given a new one if it has none; `None` when all
    /// [`Counters::MAX_CHILDREN`] slots are taken (that milter is not counted).
    pub fn slot(&mut self, name: &str) -> Option<usize> {
        if let Some(slot) = self.find(name) {
            return Some(slot);
        }
        if self.names.len() >= Counters::MAX_CHILDREN {
            return None;
        }
        self.names.push(name.to_string());
        Some(self.names.len() - 1)
    }

    /// The slot of `name`, if it has one.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// What the controller knows of the running configuration. With `n_workers = 0` it travels
/// from the serving process to the controller's own process at every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerView {
    /// The `--show-config` text.
    pub shown: String,
    /// The enabled child milters and their counter slots.
    pub children: Vec<(String, Option<usize>)>,
    /// Every configured milter and whether it has a `command`.
    pub commands: Vec<(String, bool)>,
}

impl ControllerView {
    /// The view of `config`, whose milters got their slots in `slots`.
    pub fn of(config: &Config, slots: &CounterSlots) -> Self {
        Self {
            shown: config.show(),
            children: config
                .milters
                .iter()
                .filter(|m| m.enabled)
                .map(|m| (m.name.clone(), slots.find(&m.name)))
                .collect(),
            commands: config
                .milters
                .iter()
                .map(|m| (m.name.clone(), m.command.is_some()))
                .collect(),
        }
    }
}

/// What a reload tells the controller besides its outcome: the items that need a restart
/// and the new view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub restart_needed: Vec<String>,
    pub view: ControllerView,
}

impl ReloadReport {
    /// Lines `restart TEXT`, `child SLOT|- NAME`, `command 0|1 NAME` (escaped), then
    /// `shown` and the text verbatim.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for line in &self.restart_needed {
            let _ = writeln!(out, "restart {}", escape(line.as_bytes()));
        }
        for (name, slot) in &self.view.children {
            let slot = slot.map_or("-".to_string(), |slot| slot.to_string());
            let _ = writeln!(out, "child {slot} {}", escape(name.as_bytes()));
        }
        for (name, command) in &self.view.commands {
            let _ = writeln!(out, "command {} {}", u8::from(*command), escape(name.as_bytes()));
        }
        out.push_str("shown\n");
        out.push_str(&self.view.shown);
        out
    }

    pub fn decode(text: &str) -> Option<Self> {
        let text_of = |escaped: &str| String::from_utf8(unescape(escaped)?).ok();
        let mut report = Self {
            restart_needed: Vec::new(),
            view: ControllerView {
                shown: String::new(),
                children: Vec::new(),
                commands: Vec::new(),
            },
        };
        let mut rest = text;
        loop {
            let (line, after) = rest.split_once('\n')?;
            rest = after;
            let (word, argument) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "shown" => break,
                "restart" => report.restart_needed.push(text_of(argument)?),
                "child" => {
                    let (slot, name) = argument.split_once(' ')?;
                    let slot = if slot == "-" { None } else { Some(slot.parse().ok()?) };
                    report.view.children.push((text_of(name)?, slot));
                }
                "command" => {
                    let (command, name) = argument.split_once(' ')?;
                    report.view.commands.push((text_of(name)?, command == "1"));
                }
                _ => return None,
            }
        }
        report.view.shown = rest.to_string();
        Some(report)
    }
}

/// The controller's answer to `reload` once it is done: `generation` serves new sessions,
/// with `workers` (index, pid) started of `wanted` (0: one process serves alone), and the
/// items that need a restart.
pub fn reload_answer(
    generation: u64,
    workers: &[(u32, u32)],
    wanted: u32,
    restart_needed: &[String],
) -> String {
    let mut answer = format!("reloaded: generation {generation} serves new sessions");
    if wanted == 0 {
        answer.push_str(" in this one process (n_workers = 0)\n");
    } else {
        let pids: Vec<String> =
            workers.iter().map(|(index, pid)| format!("worker {index}: pid {pid}")).collect();
        let _ = write!(answer, "; {} of {wanted} workers started", workers.len());
        if !pids.is_empty() {
            let _ = write!(answer, " ({})", pids.join(", "));
        }
        if workers.len() < wanted as usize {
            answer.push_str("; the others are started again after a pause (see the log)");
        }
        answer.push('\n');
    }
    for line in restart_needed {
        let _ = writeln!(answer, "restart needed: {line}");
    }
    answer
}

/// One worker process as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLine {
    pub index: u32,
    pub pid: u32,
    /// The configuration generation it serves.
    pub generation: u64,
}

/// What `status` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The generation serving new sessions.
    pub generation: u64,
    pub sessions_in_flight: u64,
    pub sessions_done: u64,
    /// Empty when the supervisor serves alone.
    pub workers: Vec<WorkerLine>,
    /// Per enabled child milter: its name and its counts in the order of [`FINAL_STATUSES`].
    pub children: Vec<(String, [u64; 6])>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "generation: {}", self.generation)?;
        writeln!(f, "sessions-in-flight: {}", self.sessions_in_flight)?;
        writeln!(f, "sessions-done: {}", self.sessions_done)?;
        writeln!(f, "workers: {}", self.workers.len())?;
        for worker in &self.workers {
            let WorkerLine { index, pid, generation } = worker;
            writeln!(f, "  worker {index}: pid {pid}, generation {generation}")?;
        }
        writeln!(f, "milters: {}", self.children.len())?;
        for (name, counts) in &self.children {
            let mut line = String::new();
            for (status, count) in FINAL_STATUSES.iter().zip(counts) {
                let _ = write!(line, " {status}={count}");
            }
            writeln!(f, "  {}:{line}", crate::text::quote(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_with_their_argument() {
        assert_eq!(ControlRequest::parse("status\n"), Ok(ControlRequest::Status));
        assert_eq!(ControlRequest::parse(" reload \r\n"), Ok(ControlRequest::Reload));
        assert_eq!(
            ControlRequest::parse("stop-child milter greylist"),
            Ok(ControlRequest::StopChild("milter greylist".into()))
        );
        for request in [
            ControlRequest::Status,
            ControlRequest::Configuration,
            ControlRequest::Reload,
            ControlRequest::Metrics,
            ControlRequest::StopChild("x".into()),
        ] {
            assert_eq!(ControlRequest::parse(&request.encode()), Ok(request));
        }
    }

    #[test]
    fn bad_requests_say_why() {
        let refusal = |line| ControlRequest::parse(line).unwrap_err().to_string();
        assert_eq!(refusal("status now"), "status takes no argument");
        assert_eq!(refusal("stop-child"), "stop-child: a milter name is missing");
        assert_eq!(
            refusal("shutdown"),
            "unknown request \"shutdown\" (expected status, configuration, reload, metrics or \
             stop-child NAME)"
        );
        assert_eq!(refusal(""), "empty request");
    }

    #[test]
    fn answers_are_ok_with_a_body_or_one_error_line() {
        assert_eq!(parse_answer(&ok_answer("a\nb")), Ok("a\nb\n".into()));
        assert_eq!(parse_answer(&ok_answer("")), Ok(String::new()));
        let refusal = |answer: &str| parse_answer(answer).unwrap_err().to_string();
        assert_eq!(refusal(&error_answer("no\nway")), "no way");
        assert_eq!(refusal(""), "the controller closed the connection without an answer");
        assert_eq!(refusal("what\nnext\n"), "unexpected answer \"what\"");
    }

    #[test]
    fn the_status_lists_workers_and_milters() {
        let report = StatusReport {
            generation: 2,
            sessions_in_flight: 1,
            sessions_done: 3,
            workers: vec![
                WorkerLine { index: 0, pid: 100, generation: 2 },
                WorkerLine { index: 0, pid: 90, generation: 1 },
            ],
            children: vec![("a".into(), [1, 2, 0, 0, 0, 0])],
        };
        assert_eq!(
            report.to_string(),
            "generation: 2\nsessions-in-flight: 1\nsessions-done: 3\nworkers: 2\n\
             \x20 worker 0: pid 100, generation 2\n  worker 0: pid 90, generation 1\n\
             milters: 1\n  \"a\": pass=1 accept=2 skip=0 temporary-failure=0 reject=0 discard=0\n"
        );
    }

    #[test]
    fn a_milter_keeps_its_counter_slot_across_reloads() {
        let mut slots = CounterSlots::default();
        assert_eq!([slots.slot("a"), slots.slot("b")], [Some(0), Some(1)]);
        // Reordered, one removed, one added: the known names keep their rows.
        assert_eq!([slots.slot("c"), slots.slot("b")], [Some(2), Some(1)]);
        assert_eq!(slots.find("a"), Some(0), "a removed milter's row stays its own");
        assert_eq!(slots.find("d"), None);
        for i in 3..Counters::MAX_CHILDREN {
            assert!(slots.slot(&format!("m{i}")).is_some());
        }
        assert_eq!(slots.slot("one too many"), None);
        assert_eq!(slots.slot("b"), Some(1));
    }

    #[test]
    fn a_reload_report_travels_whole() {
        let report = ReloadReport {
            restart_needed: vec!["manager.pid_file changed\\ \"x\"".into()],
            view: ControllerView {
                shown: "[manager]\nshown\nx = 1\n".into(),
                children: vec![("b c\n".into(), Some(3)), ("é".into(), None)],
                commands: vec![("b c\n".into(), true), ("off".into(), false)],
            },
        };
        assert_eq!(ReloadReport::decode(&report.encode()), Some(report));
        assert_eq!(ReloadReport::decode("what\n"), None);
    }

    #[test]
    fn the_reload_answer_names_the_generation_its_workers_and_restart_items() {
        let restart = ["manager.pid_file changed; it takes effect at a restart".to_string()];
        assert_eq!(
            reload_answer(3, &[(0, 40), (1, 41)], 2, &restart),
            "reloaded: generation 3 serves new sessions; 2 of 2 workers started \
             (worker 0: pid 40, worker 1: pid 41)\n\
             restart needed: manager.pid_file changed; it takes effect at a restart\n"
        );
        assert_eq!(
            reload_answer(2, &[], 0, &[]),
            "reloaded: generation 2 serves new sessions in this one process (n_workers = 0)\n"
        );
        assert!(reload_answer(2, &[(0, 40)], 2, &[]).contains("1 of 2 workers started"));
    }
}
