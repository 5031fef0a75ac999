//! The controller's protocol, without I/O: one request line per connection, one answer.
//!
//! ```text
//! status | configuration | reload | stop-child NAME
//! ```
//!
//! An answer is `ok` on its first line and the text after it, or one line `error: REASON`;
//! the controller closes the connection after it.
//!
//! The status counts come from counters shared by the worker processes; their layout
//! ([`Counters`]) is defined here so that the workers and the controller agree on it.

use std::fmt::{self, Write};

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
}

impl ControlRequest {
    pub fn parse(line: &str) -> Result<ControlRequest, String> {
        let line = line.trim_end_matches(['\n', '\r']).trim();
        let (verb, argument) = match line.split_once(char::is_whitespace) {
            Some((verb, rest)) => (verb, rest.trim()),
            None => (line, ""),
        };
        let no_argument = |request: ControlRequest| {
            if argument.is_empty() {
                Ok(request)
            } else {
                Err(format!("{verb} takes no argument"))
            }
        };
        match verb {
            "status" => no_argument(ControlRequest::Status),
            "configuration" => no_argument(ControlRequest::Configuration),
            "reload" => no_argument(ControlRequest::Reload),
            "stop-child" if argument.is_empty() => Err("stop-child: a milter name is missing".into()),
            "stop-child" => Ok(ControlRequest::StopChild(argument.to_string())),
            "" => Err("empty request".into()),
            _ => Err(format!(
                "unknown request {verb:?} (expected status, configuration, reload or stop-child NAME)"
            )),
        }
    }

    /// The request line, newline included.
    pub fn encode(&self) -> String {
        match self {
            ControlRequest::Status => "status\n".into(),
            ControlRequest::Configuration => "configuration\n".into(),
            ControlRequest::Reload => "reload\n".into(),
            ControlRequest::StopChild(name) => format!("stop-child {}\n", name.replace('\n', " ")),
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
pub fn parse_answer(answer: &str) -> Result<String, String> {
    if let Some(body) = answer.strip_prefix("ok\n") {
        return Ok(body.to_string());
    }
    if answer == "ok" {
        return Ok(String::new());
    }
    match answer.strip_prefix("error: ") {
        Some(reason) => Err(reason.trim_end().to_string()),
        None if answer.is_empty() => {
            Err("the controller closed the connection without an answer".into())
        }
        None => Err(format!("unexpected answer {:?}", answer.lines().next().unwrap_or(""))),
    }
}

/// A child milter's final status in a session, as its statistics log line names it.
pub const FINAL_STATUSES: [&str; 6] =
    ["pass", "accept", "skip", "temporary-failure", "reject", "discard"];

/// The layout of the counters the workers share: the sessions done, then one row of
/// [`FINAL_STATUSES`] per child milter position of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters;

impl Counters {
    /// Child milters counted; later ones are not (a configuration with more is unusual).
    pub const MAX_CHILDREN: usize = 256;
    /// How many counters the layout needs.
    pub const LEN: usize = 1 + Self::MAX_CHILDREN * FINAL_STATUSES.len();
    pub const SESSIONS_DONE: usize = 0;

    /// The counter of child `child` ending with `status` (a name of [`FINAL_STATUSES`]).
    pub fn child_status(child: usize, status: &str) -> Option<usize> {
        if child >= Self::MAX_CHILDREN {
            return None;
        }
        let column = FINAL_STATUSES.iter().position(|s| *s == status)?;
        Some(1 + child * FINAL_STATUSES.len() + column)
    }
}

/// One worker process as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLine {
    pub index: u32,
    pub pid: u32,
}

/// What `status` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub sessions_in_flight: u64,
    pub sessions_done: u64,
    /// Empty when the supervisor serves alone.
    pub workers: Vec<WorkerLine>,
    /// Per enabled child milter: its name and its counts in the order of [`FINAL_STATUSES`].
    pub children: Vec<(String, [u64; 6])>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sessions-in-flight: {}", self.sessions_in_flight)?;
        writeln!(f, "sessions-done: {}", self.sessions_done)?;
        writeln!(f, "workers: {}", self.workers.len())?;
        for worker in &self.workers {
            writeln!(f, "  worker {}: pid {}", worker.index, worker.pid)?;
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
            ControlRequest::StopChild("x".into()),
        ] {
            assert_eq!(ControlRequest::parse(&request.encode()), Ok(request));
        }
    }

    #[test]
    fn bad_requests_say_why() {
        assert_eq!(ControlRequest::parse("status now"), Err("status takes no argument".into()));
        assert_eq!(
            ControlRequest::parse("stop-child"),
            Err("stop-child: a milter name is missing".into())
        );
        assert!(ControlRequest::parse("shutdown")
            .unwrap_err()
            .starts_with("unknown request \"shutdown\""));
        assert_eq!(ControlRequest::parse(""), Err("empty request".into()));
    }

    #[test]
    fn answers_are_ok_with_a_body_or_one_error_line() {
        assert_eq!(parse_answer(&ok_answer("a\nb")), Ok("a\nb\n".into()));
        assert_eq!(parse_answer(&ok_answer("")), Ok(String::new()));
        assert_eq!(parse_answer(&error_answer("no\nway")), Err("no way".into()));
        assert!(parse_answer("").unwrap_err().contains("without an answer"));
        assert!(parse_answer("what\n").unwrap_err().contains("unexpected answer"));
    }

    #[test]
    fn every_child_status_has_its_own_counter() {
        let mut seen = std::collections::HashSet::new();
        for child in 0..Counters::MAX_CHILDREN {
            for status in FINAL_STATUSES {
                let index = Counters::child_status(child, status).unwrap();
                assert!(index > Counters::SESSIONS_DONE && index < Counters::LEN);
                assert!(seen.insert(index));
            }
        }
        assert_eq!(Counters::child_status(Counters::MAX_CHILDREN, "pass"), None);
        assert_eq!(Counters::child_status(0, "continue"), None);
    }

    #[test]
    fn the_status_lists_workers_and_milters() {
        let report = StatusReport {
            sessions_in_flight: 1,
            sessions_done: 3,
            workers: vec![WorkerLine { index: 0, pid: 100 }],
            children: vec![("a".into(), [1, 2, 0, 0, 0, 0])],
        };
        assert_eq!(
            report.to_string(),
            "sessions-in-flight: 1\nsessions-done: 3\nworkers: 1\n  worker 0: pid 100\n\
             milters: 1\n  \"a\": pass=1 accept=2 skip=0 temporary-failure=0 reject=0 discard=0\n"
        );
    }
}
