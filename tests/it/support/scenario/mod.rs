//! Data-driven scenarios for the engine: a scripted MTA and scripted children around one
//! `engine::Session`, with every packet each side receives asserted.
//!
//! The language (one statement per line, `#` comments; see tests/fixtures/scenarios/README.md):
//!
//! ```text
//! scenario envelope-from: reject beats continue
//! children a b
//! set b fallback reject          # also: evaluation, timeout reading|writing|connection|end-of-message SECONDS
//! set manager fallback reject    # also: set chunk-size N, set body-memory N, set macro-memory N,
//!                                #   set modifications N, set modification-bytes N
//! refuse a                       # connecting to child a fails (refused)
//! refuse a emfile                # ... for want of a file descriptor (EMFILE)
//! stop a envelope-recipient <x@example.com>   # a condition stops a there (value optional)
//! stop-if-macro a envelope-from auth_type      # ... when the MTA sent that macro (non-empty)
//! stop-if-child b data a reject                # ... when child a's last verdict is reject
//! inject a envelope-from "{trusted}=yes"       # a condition adds a macro for a at that stage
//! macros                         # assert D packets too (otherwise they are not shown)
//! acks                           # assert early ACKs to children too (`a< ack`)
//! mta> M <a@example.com>         # the MTA sends a command
//! mta> raw 00 00 00 01 51        # the MTA sends raw bytes (hex, or text:...)
//! a< M <a@example.com>           # child a receives it
//! a> r                           # child a replies
//! mta< r                         # the MTA receives the reply
//! a< close                       # the manager closes child a's connection
//! a> close | a> raw 00 00 ...    # child a closes / sends raw bytes
//! wait 8                         # time passes (seconds)
//! finished | running             # the session is over / still running
//! log warn "answered" [COUNT]    # COUNT (default 1) warnings containing it since the last `log`
//! ```
//!
//! Before every input, everything the session sent must have been asserted.

pub(crate) mod packets;
pub(crate) mod text;

use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use milter_manager::conditions::{ConditionSet, DnsblVerdict, SessionCount};
use milter_manager::config::Config;
use milter_manager::engine::{
    ChildConfig, Conditions, ConnectFailure, Context, EngineConfig, Event, MemorySpill, Output,
    Session, Stage, Status,
};
use milter_manager::protocol::{Command, Deframer, Reply};
use milter_manager::status::FallbackStatus;

pub(crate) struct Scenario {
    pub name: String,
    pub file: String,
    pub line: usize,
    config: EngineConfig,
    names: Vec<String>,
    /// Children whose connect fails, with the error's errno.
    refused: Vec<(usize, i32)>,
    stops: Vec<Stop>,
    injections: Vec<(usize, Stage, Vec<u8>, Vec<u8>)>,
    show_macros: bool,
    /// Early ACKs to children are asserted (`a< ack`) rather than ignored.
    show_acks: bool,
    steps: Vec<(usize, Step)>,
    /// Conditions from a real configuration: TOML and Rhai text, and each child's
    /// applicable conditions. Used instead of the scripted stops when given.
    toml: String,
    rhai: String,
    applied: Vec<(usize, Vec<String>)>,
    n_sessions: usize,
    /// What the DNSBL lookups said about the client (`dnsbl listed`); the scenarios
    /// drive the engine, which sees CONNECT only after the lookups.
    dnsbl_listed: bool,
}

enum Step {
    MtaSends(Command),
    MtaRaw(Vec<u8>),
    MtaCloses,
    ChildSends(usize, Reply),
    ChildRaw(usize, Vec<u8>),
    ChildCloses(usize),
    Wait(Duration),
    ExpectMta(Reply),
    ExpectMtaClose,
    ExpectChild(usize, Command),
    ExpectChildClose(usize),
    ExpectChildAck(usize),
    ExpectFinished(bool),
    /// So many log lines of this level containing this text since the previous check.
    ExpectLog(log::Level, String, usize),
}

#[derive(Debug, PartialEq)]
enum Seen {
    Command(Command),
    Reply(Reply),
    Close,
    /// The manager acknowledged the child's bytes at once.
    Ack,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(c) => write!(f, "{}", describe_command(c)),
            Self::Reply(r) => write!(f, "{}", describe_reply(r)),
            Self::Close => f.write_str("close"),
            Self::Ack => f.write_str("ack"),
        }
    }
}

fn describe_command(command: &Command) -> String {
    match command {
        Command::Body { chunk } => format!("B {}", text::show(chunk)),
        Command::Header { name, value } => format!("L {} {}", text::show(name), text::show(value)),
        other => format!("{other:?}"),
    }
}

fn describe_reply(reply: &Reply) -> String {
    match reply {
        Reply::ReplaceBody { chunk } => format!("b {}", text::show(chunk)),
        other => format!("{other:?}"),
    }
}

/// Parses every scenario of a file.
pub(crate) fn parse(source: &str, file: &str) -> Result<Vec<Scenario>, String> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    // A `rhai` or `toml` block being read: its kind, the line it starts on, its text.
    let mut block: Option<(String, usize, String)> = None;
    for (index, raw) in source.lines().enumerate() {
        let line = index + 1;
        let at = |e: String| format!("{file}:{line}: {e}");
        if let Some((kind, start, text)) = &mut block {
            if raw.trim() != "end" {
                text.push_str(raw);
                text.push('\n');
                continue;
            }
            let scenario = scenarios.last_mut().ok_or_else(|| at("a block outside".into()))?;
            let target = if kind == "rhai" { &mut scenario.rhai } else { &mut scenario.toml };
            // Blank lines up to the block keep its lines the file's, so that an error's
            // line can be found in the scenario file.
            let missing = start.saturating_sub(target.lines().count());
            target.push_str(&"\n".repeat(missing));
            target.push_str(text);
            block = None;
            continue;
        }
        let tokens = text::tokens(raw).map_err(at)?;
        let Some(first) = tokens.first() else { continue };
        let keyword = String::from_utf8_lossy(first).into_owned();
        if keyword == "scenario" {
            let name = raw.trim_start()["scenario".len()..].trim().to_string();
            scenarios.push(Scenario {
                name,
                file: file.to_string(),
                line,
                config: EngineConfig { spill: Arc::new(MemorySpill), ..EngineConfig::default() },
                names: Vec::new(),
                refused: Vec::new(),
                stops: Vec::new(),
                injections: Vec::new(),
                show_macros: false,
                show_acks: false,
                steps: Vec::new(),
                toml: String::new(),
                rhai: String::new(),
                applied: Vec::new(),
                n_sessions: 1,
                dnsbl_listed: false,
            });
            continue;
        }
        if keyword == "rhai" || keyword == "toml" {
            block = Some((keyword, line, String::new()));
            continue;
        }
        let scenario =
            scenarios.last_mut().ok_or_else(|| at("a statement before any scenario".into()))?;
        scenario.statement(&keyword, &tokens[1..], line).map_err(at)?;
    }
    Ok(scenarios)
}

fn word(token: &[u8]) -> String {
    String::from_utf8_lossy(token).into_owned()
}

/// The bytes of `raw`: hexadecimal bytes, or `text:...` for literal text.
fn raw_bytes(args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for hex in args {
        let hex = word(hex);
        if let Some(text) = hex.strip_prefix("text:") {
            bytes.extend_from_slice(text.as_bytes());
            continue;
        }
        bytes.push(u8::from_str_radix(&hex, 16).map_err(|_| format!("bad hex byte {hex:?}"))?);
    }
    Ok(bytes)
}

impl Scenario {
    fn child(&self, name: &str) -> Result<usize, String> {
        self.names.iter().position(|n| n == name).ok_or_else(|| format!("no child named {name:?}"))
    }

    fn statement(&mut self, keyword: &str, args: &[Vec<u8>], line: usize) -> Result<(), String> {
        let step = match keyword {
            "children" => {
                for name in args {
                    let name = word(name);
                    self.config.children.push(ChildConfig::new(&name));
                    self.names.push(name);
                }
                return Ok(());
            }
            "set" => return self.setting(args),
            "refuse" => {
                let child = self.child(&word(args.first().ok_or("refuse whom?")?))?;
                let errno = match args.get(1).map(|arg| word(arg)).as_deref() {
                    None => libc::ECONNREFUSED,
                    Some("emfile") => libc::EMFILE,
                    Some(other) => return Err(format!("refuse with what? {other:?}")),
                };
                self.refused.push((child, errno));
                return Ok(());
            }
            "stop" => {
                let child = self.child(&word(args.first().ok_or("stop whom?")?))?;
                let stage = stage_named(&word(args.get(1).ok_or("stop at which stage?")?))?;
                let when = When::Value(args.get(2).cloned());
                self.stops.push(Stop { child, stage, when });
                return Ok(());
            }
            "stop-if-macro" => {
                let child = self.child(&word(args.first().ok_or("stop whom?")?))?;
                let stage = stage_named(&word(args.get(1).ok_or("stop at which stage?")?))?;
                let name = word(args.get(2).ok_or("which macro?")?);
                self.stops.push(Stop { child, stage, when: When::Macro(name) });
                return Ok(());
            }
            "stop-if-child" => {
                let child = self.child(&word(args.first().ok_or("stop whom?")?))?;
                let stage = stage_named(&word(args.get(1).ok_or("stop at which stage?")?))?;
                let other = word(args.get(2).ok_or("which other child?")?);
                self.child(&other)?;
                let status = status_named(&word(args.get(3).ok_or("which status?")?))?;
                self.stops.push(Stop { child, stage, when: When::ChildStatus(other, status) });
                return Ok(());
            }
            "inject" => {
                let child = self.child(&word(args.first().ok_or("inject for whom?")?))?;
                let stage = stage_named(&word(args.get(1).ok_or("at which stage?")?))?;
                let pair = args.get(2).ok_or("inject what? NAME=VALUE")?;
                let eq = pair.iter().position(|&b| b == b'=').ok_or("macros are NAME=VALUE")?;
                self.injections.push((child, stage, pair[..eq].to_vec(), pair[eq + 1..].to_vec()));
                return Ok(());
            }
            "macros" => {
                self.show_macros = true;
                return Ok(());
            }
            "acks" => {
                self.show_acks = true;
                return Ok(());
            }
            "apply" => {
                let child = self.child(&word(args.first().ok_or("apply to whom?")?))?;
                let names = args[1..].iter().map(|a| word(a)).collect();
                self.applied.push((child, names));
                return Ok(());
            }
            "dnsbl" => {
                self.dnsbl_listed = match word(args.first().ok_or("dnsbl listed or unlisted?")?) {
                    ref w if w == "listed" => true,
                    ref w if w == "unlisted" => false,
                    other => return Err(format!("dnsbl {other}? (listed or unlisted)")),
                };
                return Ok(());
            }
            "sessions" => {
                let count = word(args.first().ok_or("how many sessions?")?);
                self.n_sessions = count.parse().map_err(|_| "bad number of sessions")?;
                return Ok(());
            }
            "wait" => Step::Wait(Duration::from_secs_f64(
                word(args.first().ok_or("wait how long?")?).parse().map_err(|_| "bad seconds")?,
            )),
            "log" => {
                let level = match word(args.first().ok_or("log which level?")?).as_str() {
                    "error" => log::Level::Error,
                    "warn" => log::Level::Warn,
                    "info" => log::Level::Info,
                    "debug" => log::Level::Debug,
                    other => return Err(format!("unknown log level {other:?}")),
                };
                let text = word(args.get(1).ok_or("log containing what?")?);
                let count = match args.get(2) {
                    Some(count) => word(count).parse().map_err(|_| "bad count of log lines")?,
                    None => 1,
                };
                Step::ExpectLog(level, text, count)
            }
            "finished" => Step::ExpectFinished(true),
            "running" => Step::ExpectFinished(false),
            "mta>" => match args.first().map(|a| word(a)).as_deref() {
                Some("close") => Step::MtaCloses,
                Some("raw") => Step::MtaRaw(raw_bytes(&args[1..])?),
                _ => Step::MtaSends(packets::command(args)?),
            },
            "mta<" => match args.first().map(|a| word(a)).as_deref() {
                Some("close") => Step::ExpectMtaClose,
                _ => Step::ExpectMta(packets::reply(args)?),
            },
            other => {
                if let Some(name) = other.strip_suffix('>') {
                    let child = self.child(name)?;
                    match args.first().map(|a| word(a)).as_deref() {
                        Some("close") => Step::ChildCloses(child),
                        Some("raw") => Step::ChildRaw(child, raw_bytes(&args[1..])?),
                        _ => Step::ChildSends(child, packets::reply(args)?),
                    }
                } else if let Some(name) = other.strip_suffix('<') {
                    let child = self.child(name)?;
                    match args.first().map(|a| word(a)).as_deref() {
                        Some("close") => Step::ExpectChildClose(child),
                        Some("ack") => Step::ExpectChildAck(child),
                        _ => Step::ExpectChild(child, packets::command(args)?),
                    }
                } else {
                    return Err(format!("unknown statement {other:?}"));
                }
            }
        };
        self.steps.push((line, step));
        Ok(())
    }

    fn setting(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        let target = word(args.first().ok_or("set what?")?);
        let value = |i: usize| -> Result<String, String> {
            args.get(i).map(|a| word(a)).ok_or_else(|| "missing value".to_string())
        };
        match target.as_str() {
            "chunk-size" => self.config.chunk_size = value(1)?.parse().map_err(|_| "bad size")?,
            "body-memory" => {
                self.config.max_body_memory = value(1)?.parse().map_err(|_| "bad size")?
            }
            "macro-memory" => {
                self.config.limits.macro_bytes = value(1)?.parse().map_err(|_| "bad size")?
            }
            "modifications" => {
                self.config.limits.modifications = value(1)?.parse().map_err(|_| "bad count")?
            }
            "modification-bytes" => {
                self.config.limits.modification_bytes = value(1)?.parse().map_err(|_| "bad size")?
            }
            "manager" => match value(1)?.as_str() {
                "fallback" => {
                    self.config.fallback_status = value(2)?.parse().map_err(|e| format!("{e}"))?
                }
                other => return Err(format!("unknown manager setting {other}")),
            },
            name => {
                let child = self.child(name)?;
                let config = &mut self.config.children[child];
                match value(1)?.as_str() {
                    "fallback" => {
                        let status = value(2)?.parse::<FallbackStatus>();
                        config.fallback_status = status.map_err(|e| format!("{e}"))?
                    }
                    "evaluation" => config.evaluation_mode = true,
                    "timeout" => {
                        let seconds: f64 = value(3)?.parse().map_err(|_| "bad seconds")?;
                        let duration = Duration::from_secs_f64(seconds);
                        match value(2)?.as_str() {
                            "connection" => config.timeouts.connection = duration,
                            "writing" => config.timeouts.writing = duration,
                            "reading" => config.timeouts.reading = duration,
                            "end-of-message" => config.timeouts.end_of_message = duration,
                            other => return Err(format!("unknown timeout {other}")),
                        }
                    }
                    other => return Err(format!("unknown child setting {other}")),
                }
            }
        }
        Ok(())
    }

    /// The conditions of the scenario's configuration (`toml`, `rhai`, `apply`), if it has
    /// one. A configuration that does not load fails the scenario.
    fn configured_conditions(&self) -> Option<Box<dyn Conditions>> {
        if self.toml.is_empty() && self.rhai.is_empty() && self.applied.is_empty() {
            return None;
        }
        let scratch = scratch_dir(&self.name);
        let dir = scratch.path();
        let mut main = String::new();
        if !self.rhai.is_empty() {
            std::fs::write(dir.join("conditions.rhai"), &self.rhai).expect("write the script");
            main.push_str("include = [\"conditions.rhai\"]\n");
        }
        main.push_str(&self.toml);
        for (index, name) in self.names.iter().enumerate() {
            main.push_str(&format!(
                "\n[milter.{name:?}]\nconnection_spec = \"inet:1@127.0.0.1\"\n"
            ));
            if let Some((_, names)) = self.applied.iter().find(|(child, _)| *child == index) {
                main.push_str(&format!("applicable_conditions = {names:?}\n"));
            }
        }
        std::fs::write(dir.join("milter-manager.toml"), main).expect("write the configuration");
        // Over an empty machine: no scenario depends on the host's files.
        let machine = dir.join("machine");
        std::fs::create_dir_all(&machine).expect("create the scenario's machine");
        // The files are the test's own: their owner is the serving user.
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(dir).expect("the scenario's directory"),
        );
        let config = Config::load_under(dir, &machine, owner)
            .unwrap_or_else(|e| panic!("{}:{}: the configuration: {e}", self.file, self.line));
        let set = ConditionSet::new(&config, Rc::new(FixedCount(self.n_sessions)))
            .unwrap_or_else(|e| panic!("{}:{}: the conditions: {e}", self.file, self.line));
        let verdict = DnsblVerdict::default();
        verdict.set(self.dnsbl_listed);
        Some(Box::new(Rc::new(set).session_with(verdict)))
    }

    /// Runs the scenario; the error names the line that failed and why.
    pub(crate) fn run(&self) -> Result<(), String> {
        let mut run = Run::new(self);
        for (line, step) in &self.steps {
            run.step(step).map_err(|e| format!("{}:{line}: {e}", self.file))?;
        }
        run.check_nothing_pending().map_err(|e| format!("{}: at the end: {e}", self.file))
    }
}

/// A fixed number of sessions, for the stress conditions.
struct FixedCount(usize);

impl SessionCount for FixedCount {
    fn n_sessions(&self) -> usize {
        self.0
    }
}

/// A fresh directory for one scenario's configuration files, removed when dropped.
fn scratch_dir(name: &str) -> tempfile::TempDir {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    tempfile::Builder::new()
        .prefix(&format!("scenario-{slug}-"))
        .tempdir()
        .expect("create a scratch directory")
}

fn stage_named(name: &str) -> Result<Stage, String> {
    Ok(match name {
        "connect" => Stage::Connect,
        "helo" => Stage::Helo,
        "envelope-from" => Stage::EnvelopeFrom,
        "envelope-recipient" => Stage::EnvelopeRecipient,
        "data" => Stage::Data,
        "header" => Stage::Header,
        "end-of-header" => Stage::EndOfHeader,
        "body" => Stage::Body,
        "end-of-message" => Stage::EndOfMessage,
        other => return Err(format!("unknown stage {other:?}")),
    })
}

fn status_named(name: &str) -> Result<Status, String> {
    Ok(match name {
        "accept" => Status::Accept,
        "skip" => Status::Skip,
        "continue" => Status::Continue,
        "temporary-failure" => Status::TemporaryFailure,
        "reject" => Status::Reject,
        "discard" => Status::Discard,
        other => return Err(format!("unknown status {other:?}")),
    })
}

/// A scripted condition: stop `child` at `stage` when ...
#[derive(Clone)]
struct Stop {
    child: usize,
    stage: Stage,
    when: When,
}

#[derive(Clone)]
enum When {
    /// ... always, or when the event's main value is this.
    Value(Option<Vec<u8>>),
    /// ... when the MTA sent this macro with a value.
    Macro(String),
    /// ... when that child's last verdict is this.
    ChildStatus(String, Status),
}

struct ScriptedConditions {
    stops: Vec<Stop>,
    injections: Vec<(usize, Stage, Vec<u8>, Vec<u8>)>,
}

impl Conditions for ScriptedConditions {
    fn extra_macros(
        &mut self,
        child: usize,
        stage: Stage,
        _context: &Context<'_>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.injections
            .iter()
            .filter(|(c, s, _, _)| *c == child && *s == stage)
            .map(|(_, _, name, value)| (name.clone(), value.clone()))
            .collect()
    }

    fn stop(&mut self, child: usize, event: &Event<'_>, context: &Context<'_>) -> bool {
        let value: Option<&[u8]> = match event {
            Event::Connect { host, .. } => Some(host),
            Event::Helo { fqdn } => Some(fqdn),
            Event::EnvelopeFrom { address } | Event::EnvelopeRecipient { address } => Some(address),
            Event::Header { name, .. } => Some(name),
            Event::Body { chunk } => Some(chunk),
            _ => None,
        };
        self.stops.iter().any(|stop| {
            stop.child == child
                && stop.stage == event.stage()
                && match &stop.when {
                    When::Value(wanted) => wanted.as_deref().is_none_or(|w| Some(w) == value),
                    When::Macro(name) => context.macro_value(name).is_some_and(|v| !v.is_empty()),
                    When::ChildStatus(other, status) => {
                        context.child(other).is_some_and(|c| c.last_status == Some(*status))
                    }
                }
        })
    }
}

struct Run<'a> {
    scenario: &'a Scenario,
    session: Session,
    now: Instant,
    /// What each peer received and no statement asserted yet: index 0 is the MTA, then
    /// the children.
    pending: Vec<VecDeque<Seen>>,
    deframers: Vec<Deframer>,
}

impl<'a> Run<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        captured_log::install();
        captured_log::take();
        let now = Instant::now();
        let conditions: Box<dyn Conditions> = match scenario.configured_conditions() {
            Some(conditions) => conditions,
            None => Box::new(ScriptedConditions {
                stops: scenario.stops.clone(),
                injections: scenario.injections.clone(),
            }),
        };
        let session = Session::new(Arc::new(scenario.config.clone()), conditions, 1, now);
        let peers = scenario.names.len() + 1;
        Run {
            scenario,
            session,
            now,
            pending: (0..peers).map(|_| VecDeque::new()).collect(),
            deframers: (0..peers).map(|_| Deframer::default()).collect(),
        }
    }

    fn peer_name(&self, peer: usize) -> &str {
        if peer == 0 {
            "mta"
        } else {
            &self.scenario.names[peer - 1]
        }
    }

    fn check_nothing_pending(&self) -> Result<(), String> {
        for (peer, queue) in self.pending.iter().enumerate() {
            if let Some(seen) = queue.front() {
                return Err(format!(
                    "{} received {seen} (and {} more) that the scenario does not expect",
                    self.peer_name(peer),
                    queue.len() - 1
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::MtaSends(command) => {
                self.check_nothing_pending()?;
                self.session.handle_mta_data(&command.to_frame(), self.now);
            }
            Step::MtaRaw(bytes) => {
                self.check_nothing_pending()?;
                self.session.handle_mta_data(bytes, self.now);
            }
            Step::MtaCloses => {
                self.check_nothing_pending()?;
                self.session.handle_mta_closed(self.now);
            }
            Step::ChildSends(child, reply) => {
                self.check_nothing_pending()?;
                self.session.handle_child_data(*child, &reply.to_frame(), self.now);
            }
            Step::ChildRaw(child, bytes) => {
                self.check_nothing_pending()?;
                self.session.handle_child_data(*child, bytes, self.now);
            }
            Step::ChildCloses(child) => {
                self.check_nothing_pending()?;
                self.session.handle_child_closed(*child, None, self.now);
            }
            Step::Wait(duration) => {
                self.check_nothing_pending()?;
                self.now += *duration;
                if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.session.handle_timeout(self.now);
                }
            }
            Step::ExpectMta(reply) => return self.expect(0, Seen::Reply(reply.clone())),
            Step::ExpectMtaClose => return self.expect(0, Seen::Close),
            Step::ExpectChild(child, command) => {
                return self.expect(child + 1, Seen::Command(command.clone()))
            }
            Step::ExpectChildClose(child) => return self.expect(child + 1, Seen::Close),
            Step::ExpectChildAck(child) => return self.expect(child + 1, Seen::Ack),
            Step::ExpectLog(level, text, wanted) => {
                self.pump()?;
                let lines = captured_log::take();
                let matching = lines.iter().filter(|(l, line)| l == level && line.contains(text));
                let count = matching.count();
                if count != *wanted {
                    let logged: Vec<String> =
                        lines.iter().map(|(l, line)| format!("\n      {l} {line}")).collect();
                    return Err(format!(
                        "{count} {level} log lines contain {text:?}, the scenario expects \
                         {wanted}; \
                         logged since the previous check:{}",
                        logged.concat()
                    ));
                }
                return Ok(());
            }
            Step::ExpectFinished(wanted) => {
                self.pump()?;
                if self.session.is_finished() != *wanted {
                    return Err(format!(
                        "the session is {}",
                        if *wanted { "still running" } else { "finished" }
                    ));
                }
                return Ok(());
            }
        }
        self.pump()
    }

    fn expect(&mut self, peer: usize, wanted: Seen) -> Result<(), String> {
        self.pump()?;
        match self.pending[peer].pop_front() {
            Some(seen) if seen == wanted => Ok(()),
            Some(seen) => Err(format!(
                "{} received {seen}, the scenario expects {wanted}",
                self.peer_name(peer)
            )),
            None => Err(format!(
                "{} received nothing, the scenario expects {wanted}",
                self.peer_name(peer)
            )),
        }
    }

    /// Moves everything the session wants done into the peers' queues.
    fn pump(&mut self) -> Result<(), String> {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Connect { child, .. } => {
                    let refusal = self.scenario.refused.iter().find(|(c, _)| *c == child);
                    let result = match refusal {
                        Some((_, errno)) => {
                            let error = std::io::Error::from_raw_os_error(*errno);
                            Err(if workers::is_out_of_descriptors(&error) {
                                ConnectFailure::OutOfDescriptors(error)
                            } else {
                                ConnectFailure::Unreachable(error)
                            })
                        }
                        None => Ok(()),
                    };
                    self.session.handle_child_connected(child, result, self.now);
                }
                // Scenario children have no reuse configured: they are never kept.
                Output::CloseChild { child } | Output::KeepChild { child, .. } => {
                    self.pending[child + 1].push_back(Seen::Close)
                }
                Output::CloseMta => self.pending[0].push_back(Seen::Close),
                Output::AcknowledgeChild { child } if self.scenario.show_acks => {
                    self.pending[child + 1].push_back(Seen::Ack)
                }
                Output::AcknowledgeChild { .. } => {}
                Output::ToMta(bytes) => self.take_bytes(0, &bytes)?,
                Output::ToChild { child, bytes } => self.take_bytes(child + 1, &bytes)?,
            }
        }
        Ok(())
    }

    fn take_bytes(&mut self, peer: usize, bytes: &[u8]) -> Result<(), String> {
        let name = self.peer_name(peer).to_string();
        self.deframers[peer].push(bytes);
        while let Some(frame) = self.deframers[peer].next_frame() {
            let frame = frame.map_err(|e| format!("bad frame to {name}: {e}"))?;
            let seen = if peer == 0 {
                Seen::Reply(
                    Reply::decode(frame.code, frame.data)
                        .map_err(|e| format!("bad reply to the MTA: {e}"))?,
                )
            } else {
                let command = Command::decode(frame.code, frame.data)
                    .map_err(|e| format!("bad command to a child: {e}"))?;
                if !self.scenario.show_macros && matches!(command, Command::DefineMacros { .. }) {
                    continue;
                }
                Seen::Command(command)
            };
            self.pending[peer].push_back(seen);
        }
        Ok(())
    }
}

/// The log lines the session writes, kept per thread (scenarios run on the test's thread)
/// for the `log` statements.
mod captured_log {
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<(log::Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            let line = record.args().to_string();
            LINES.with(|lines| lines.borrow_mut().push((record.level(), line)));
        }

        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    pub(super) fn install() {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    }

    /// The lines logged on this thread since the last call.
    pub(super) fn take() -> Vec<(log::Level, String)> {
        LINES.with(|lines| std::mem::take(&mut *lines.borrow_mut()))
    }
}
