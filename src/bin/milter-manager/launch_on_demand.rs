//! Privilege mode in a session: when a child milter that has a `command` cannot be reached
//! because nothing listens (connection refused, or no socket file), the session asks the
//! launcher to start it (once per session) and tries the connection again every
//! [`RETRY_INTERVAL`] until it answers or the child's connection timeout, which the engine
//! keeps, runs out. Only then does the child count as its fallback status. A launcher that
//! answers `wait` (started too recently, ended soon after its last start, or still
//! stopping) is asked again when the pause is over, still within the connection timeout.
//!
//! Sans-IO like the engine: the request to the launcher is one more outbound connection
//! with a one-line exchange (`milter_manager::launcher_protocol`), a retry is a timer and a new
//! `Connect`. The engine sees a child that is still connecting.

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use milter_manager::control_protocol::Counters;
use milter_manager::launcher_protocol::{LaunchAnswer, LaunchRequest, MAX_LINE};
use workers::{Action, ConnKey, Endpoint, PeerAddr};

use crate::adapter::{child_of, key_of, Factory, Generation, ManagerSession};

/// How often a launched child's connection is tried again.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// How long the launcher may take to accept the request.
const LAUNCHER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection keys from here on talk to the launcher, one per child.
const LAUNCHER_KEYS: u32 = 0x8000_0000;

/// Makes [`LaunchingSession`]s; without a launcher the sessions are the manager's own.
pub(crate) struct LaunchingFactory {
    pub inner: Factory,
    /// The launcher's socket; `None`: privilege mode is off.
    pub launcher: Option<Rc<Endpoint>>,
}

impl workers::SessionFactory for LaunchingFactory {
    type Session = LaunchingSession;

    fn new_session(&mut self, peer: &PeerAddr, now: Instant) -> LaunchingSession {
        let inner = self.inner.new_session(peer, now);
        let generation = Rc::clone(inner.generation());
        let children = vec![Retry::default(); generation.endpoints.len()];
        LaunchingSession {
            inner,
            generation,
            launcher: self.launcher.clone(),
            children,
            actions: VecDeque::new(),
        }
    }

    fn session_finished(&mut self, session: LaunchingSession, now: Instant) {
        self.inner.session_finished(session.inner, now);
    }
}

/// Where one child is in the launch-and-retry dance of a session.
#[derive(Debug, Clone, Default)]
struct Retry {
    /// The launcher was asked during this session (it is asked once).
    asked: bool,
    /// A refused connection was kept from the engine: the child is being retried.
    retrying: bool,
    /// When to connect again.
    retry_at: Option<Instant>,
    /// The launcher's answer so far.
    answer: Vec<u8>,
    answered: bool,
    /// The launcher said to ask again then (its back-off).
    ask_at: Option<Instant>,
}

pub(crate) struct LaunchingSession {
    inner: ManagerSession,
    generation: Rc<Generation>,
    launcher: Option<Rc<Endpoint>>,
    children: Vec<Retry>,
    actions: VecDeque<Action>,
}

fn launcher_key(child: usize) -> ConnKey {
    ConnKey(LAUNCHER_KEYS + u32::try_from(child).expect("a child index under 2^30"))
}

fn launcher_child(conn: ConnKey) -> Option<usize> {
    conn.0.checked_sub(LAUNCHER_KEYS).map(|child| child as usize)
}

/// Nobody listens there (yet): a launched milter may still be starting.
fn nobody_listens(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound)
}

impl LaunchingSession {
    fn name(&self, child: usize) -> &str {
        &self.generation.engine.children[child].name
    }

    /// Whether a failed connect to `child` is kept from the engine and retried.
    fn may_launch(&self, child: usize, error: &io::Error) -> bool {
        self.launcher.is_some()
            && self.generation.launchable.get(child).copied().unwrap_or(false)
            && nobody_listens(error)
    }

    fn start_retrying(&mut self, child: usize, now: Instant) {
        let tag = self.inner.tag();
        let name = self.name(child).to_string();
        let Some(launcher) = self.launcher.clone() else { return };
        let retry = &mut self.children[child];
        retry.retrying = true;
        retry.retry_at = Some(now + RETRY_INTERVAL);
        if retry.asked {
            return;
        }
        log::info!("[{tag}] {name}: not running; asking the launcher to start it");
        self.ask_launcher(child, launcher, name);
    }

    fn ask_launcher(&mut self, child: usize, launcher: Rc<Endpoint>, name: String) {
        let retry = &mut self.children[child];
        retry.asked = true;
        retry.answered = false;
        retry.answer.clear();
        retry.ask_at = None;
        let conn = launcher_key(child);
        self.actions.push_back(Action::Connect {
            conn,
            endpoint: (*launcher).clone(),
            write_timeout: Some(LAUNCHER_WRITE_TIMEOUT),
            reuse: None,
        });
        let request = LaunchRequest::Start(name).encode().into_bytes();
        self.actions.push_back(Action::Send { conn, bytes: request });
    }

    fn stop_retrying(&mut self, child: usize) {
        let retry = &mut self.children[child];
        retry.retrying = false;
        retry.retry_at = None;
        retry.ask_at = None;
        // A retry queued in the same turn must not outlive the engine's decision.
        let key = key_of(child);
        self.actions
            .retain(|action| !matches!(action, Action::Connect { conn, .. } if *conn == key));
    }

    /// The launch failed for good: the engine hears it as a failed connection.
    fn give_up(&mut self, child: usize, reason: String, now: Instant) {
        if !self.children[child].retrying {
            return;
        }
        self.stop_retrying(child);
        let error = io::Error::other(reason);
        workers::Session::handle_connected(&mut self.inner, key_of(child), Err(error), now);
    }

    fn launcher_read(&mut self, child: usize, bytes: &[u8], now: Instant) {
        let retry = &mut self.children[child];
        if retry.answered {
            return;
        }
        retry.answer.extend_from_slice(bytes);
        let Some(end) = retry.answer.iter().position(|b| *b == b'\n') else {
            if retry.answer.len() > MAX_LINE {
                retry.answered = true;
                self.actions.push_back(Action::Close { conn: launcher_key(child) });
                self.give_up(child, "the launcher's answer is too long".into(), now);
            }
            return;
        };
        retry.answered = true;
        let line = String::from_utf8_lossy(&retry.answer[..end]).into_owned();
        self.actions.push_back(Action::Close { conn: launcher_key(child) });
        let tag = self.inner.tag();
        let name = self.name(child).to_string();
        match LaunchAnswer::parse(&line) {
            Ok(LaunchAnswer::Refused(reason)) => {
                self.give_up(child, format!("the launcher refused to start it: {reason}"), now)
            }
            Ok(LaunchAnswer::Wait(ms)) if self.children[child].retrying => {
                log::info!(
                    "[{tag}] {name}: launcher: not started now (started too recently, ended \
                     soon after its start, or still stopping); asking again in {ms} ms"
                );
                self.children[child].ask_at = Some(now + Duration::from_millis(ms));
            }
            Ok(answer) => {
                if let LaunchAnswer::Started(_) = answer {
                    self.inner.count(Counters::LAUNCHER_STARTS);
                }
                log::info!("[{tag}] {name}: launcher: {answer}")
            }
            Err(error) => self.give_up(child, format!("launcher: {error}"), now),
        }
    }
}

impl workers::Session for LaunchingSession {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], now: Instant) {
        match launcher_child(conn) {
            Some(child) => self.launcher_read(child, bytes, now),
            None => self.inner.handle_read(conn, bytes, now),
        }
    }

    fn handle_connected(&mut self, conn: ConnKey, result: io::Result<()>, now: Instant) {
        if let Some(child) = launcher_child(conn) {
            if let Err(error) = result {
                self.give_up(child, format!("cannot reach the launcher: {error}"), now);
            }
            return;
        }
        if let (Some(child), Err(error)) = (child_of(conn), &result) {
            if self.may_launch(child, error) {
                log::debug!("[{}] {}: {error}; retrying", self.inner.tag(), self.name(child));
                return self.start_retrying(child, now);
            }
        }
        if let Some(child) = child_of(conn) {
            self.stop_retrying(child);
        }
        self.inner.handle_connected(conn, result, now)
    }

    fn handle_reused(&mut self, conn: ConnKey, memo: Vec<u8>, now: Instant) {
        if let Some(child) = child_of(conn) {
            self.stop_retrying(child);
        }
        self.inner.handle_reused(conn, memo, now)
    }

    fn handle_closed(&mut self, conn: ConnKey, error: Option<io::Error>, now: Instant) {
        match launcher_child(conn) {
            Some(child) if !self.children[child].answered => {
                self.children[child].answered = true;
                let reason = match error {
                    Some(error) => format!("the launcher connection failed: {error}"),
                    None => "the launcher closed the connection without an answer".into(),
                };
                self.give_up(child, reason, now);
            }
            Some(_) => {}
            None => self.inner.handle_closed(conn, error, now),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for child in 0..self.children.len() {
            let retry = &self.children[child];
            if retry.ask_at.is_some_and(|at| at <= now) {
                match (retry.retrying, self.launcher.clone()) {
                    (true, Some(launcher)) => {
                        let name = self.name(child).to_string();
                        self.ask_launcher(child, launcher, name);
                    }
                    _ => self.children[child].ask_at = None,
                }
            }
            let retry = &mut self.children[child];
            if retry.retry_at.is_some_and(|at| at <= now) {
                retry.retry_at = None;
                self.actions.push_back(Action::Connect {
                    conn: key_of(child),
                    endpoint: self.generation.endpoints[child].clone(),
                    write_timeout: Some(self.generation.engine.children[child].timeouts.writing),
                    reuse: None,
                });
            }
        }
        if self.inner.poll_timeout().is_some_and(|at| at <= now) {
            self.inner.handle_timeout(now);
        }
    }

    fn handle_queued(&mut self, conn: ConnKey, queued: usize, now: Instant) {
        if launcher_child(conn).is_none() {
            self.inner.handle_queued(conn, queued, now);
        }
    }

    fn wants_read(&self, conn: ConnKey) -> bool {
        launcher_child(conn).is_some() || self.inner.wants_read(conn)
    }

    fn reclaim(&mut self, spent: Vec<u8>) {
        self.inner.reclaim(spent);
    }

    fn poll_action(&mut self) -> Option<Action> {
        // The engine's first: its closing a child (a connection timeout) cancels a retry
        // queued in the same turn.
        let Some(action) = self.inner.poll_action() else {
            return self.actions.pop_front();
        };
        // The engine connecting afresh or closing a child ends any retry of ours.
        if let Action::Connect { conn, .. } | Action::Close { conn } | Action::Keep { conn, .. } =
            &action
        {
            if let Some(child) = child_of(*conn) {
                self.stop_retrying(child);
            }
        }
        Some(action)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let retries =
            self.children.iter().flat_map(|retry| retry.retry_at.into_iter().chain(retry.ask_at));
        retries.chain(self.inner.poll_timeout()).min()
    }

    fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::Arc;

    use milter_manager::conditions::ConditionSet;
    use milter_manager::config::{Config, Milter};
    use milter_manager::control_protocol::Counters;
    use milter_manager::engine::{ChildConfig, EngineConfig};
    use milter_manager::protocol::{Command, Negotiation};
    use supervisor::{SessionBoard, SharedCounters};
    use workers::{Session as _, SessionFactory as _};

    use crate::adapter::BoardCount;
    use crate::client_watch::TableCache;

    const CHILD: ConnKey = ConnKey(1);

    /// A session of a manager with one launchable child, after the MTA's negotiation.
    fn session(now: Instant) -> LaunchingSession {
        session_counted(now).0
    }

    /// [`session`], and the counters it counts in.
    fn session_counted(now: Instant) -> (LaunchingSession, Rc<SharedCounters>) {
        let board = Rc::new(SessionBoard::new(1).unwrap());
        let counters = Rc::new(SharedCounters::new(Counters::LEN).unwrap());
        let mut config = Config::default();
        config.milters.push(Milter::new("client"));
        let sessions = Rc::new(BoardCount(Rc::clone(&board)));
        let mut child = ChildConfig::new("client");
        child.timeouts.connection = Duration::from_secs(1);
        let generation = Generation {
            engine: Arc::new(EngineConfig { children: vec![child], ..EngineConfig::default() }),
            endpoints: vec![Endpoint::Unix("/nowhere/child.sock".into())],
            conditions: Rc::new(ConditionSet::new(&config, sessions).unwrap()),
            connection_check_interval: Duration::ZERO,
            scripts: Rc::default(),
            launchable: vec![true],
            maintenance: crate::maintenance::Maintenance::of(&config),
            counter_slots: vec![Some(0)],
        };
        let inner = Factory {
            current: Rc::new(RefCell::new(Rc::new(generation))),
            next_tag: 1,
            tables: TableCache::shared(),
            counters: Rc::clone(&counters),
            sessions: 0,
            in_flight: 0,
        };
        let launcher = Some(Rc::new(Endpoint::Unix("/run/launcher.sock".into())));
        let mut factory = LaunchingFactory { inner, launcher };
        let mut session = factory.new_session(&PeerAddr::Unix(None), now);
        let mut negotiate = Vec::new();
        Command::Negotiate(Negotiation::mta_default()).encode(&mut negotiate);
        session.handle_read(ConnKey::PEER, &negotiate, now);
        (session, counters)
    }

    fn drain(session: &mut LaunchingSession) -> Vec<String> {
        std::iter::from_fn(|| session.poll_action()).map(|action| format!("{action:?}")).collect()
    }

    fn refused() -> io::Result<()> {
        Err(io::ErrorKind::ConnectionRefused.into())
    }

    #[test]
    fn a_refused_child_is_launched_once_and_retried_until_it_answers() {
        let start = Instant::now();
        let (mut session, counters) = session_counted(start);
        let actions = drain(&mut session);
        assert!(actions[0].starts_with("Connect { conn: ConnKey(1)"), "{actions:?}");

        session.handle_connected(CHILD, refused(), start);
        let actions = drain(&mut session);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(actions[0].contains("ConnKey(2147483648)") && actions[0].contains("launcher.sock"));
        let request = format!("{:?}", b"start client\n".to_vec());
        assert!(actions[1].contains(&request), "{actions:?}");
        let retry_at = start + RETRY_INTERVAL;
        assert_eq!(session.poll_timeout(), Some(retry_at));

        assert_eq!(counters.get(Counters::LAUNCHER_STARTS), 0);
        session.handle_read(launcher_key(0), b"started 42\n", start);
        let actions = drain(&mut session);
        assert_eq!(actions, ["Close { conn: ConnKey(2147483648) }"]);
        assert_eq!(counters.get(Counters::LAUNCHER_STARTS), 1, "for the metrics");

        // Still refused: tried again later, without a second request to the launcher.
        session.handle_timeout(retry_at);
        let actions = drain(&mut session);
        assert!(actions[0].starts_with("Connect { conn: ConnKey(1)"), "{actions:?}");
        session.handle_connected(CHILD, refused(), retry_at);
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.poll_timeout(), Some(retry_at + RETRY_INTERVAL));

        // Connected at last: the engine negotiates with it.
        let later = retry_at + RETRY_INTERVAL;
        session.handle_timeout(later);
        drain(&mut session);
        session.handle_connected(CHILD, Ok(()), later);
        let actions = drain(&mut session);
        assert!(actions[0].starts_with("Send { conn: ConnKey(1)"), "{actions:?}");
        assert!(session.poll_timeout().is_some_and(|at| at > later + RETRY_INTERVAL));
    }

    #[test]
    fn a_refusal_of_the_launcher_makes_the_child_fail_at_once() {
        let start = Instant::now();
        let mut session = session(start);
        drain(&mut session);
        session.handle_connected(CHILD, refused(), start);
        drain(&mut session);
        session.handle_read(launcher_key(0), b"error milter \"client\" has no command\n", start);
        let actions = drain(&mut session);
        // The engine gave up on the child: the MTA gets the negotiation answer now.
        assert!(actions.iter().any(|a| a.starts_with("Send { conn: ConnKey(0)")), "{actions:?}");
        assert_eq!(session.poll_timeout().filter(|at| *at <= start + RETRY_INTERVAL), None);
    }

    #[test]
    fn a_launcher_backing_off_is_asked_again_when_the_pause_is_over() {
        let start = Instant::now();
        let mut session = session(start);
        drain(&mut session);
        session.handle_connected(CHILD, refused(), start);
        drain(&mut session);
        session.handle_read(launcher_key(0), b"wait 300\n", start);
        let actions = drain(&mut session);
        assert_eq!(actions, ["Close { conn: ConnKey(2147483648) }"], "the child is not given up");
        let asked_again = start + Duration::from_millis(300);
        let mut now = start;
        let mut requests = 0;
        while let Some(at) = session.poll_timeout().filter(|at| *at <= asked_again) {
            now = at;
            session.handle_timeout(now);
            for action in drain(&mut session) {
                if action.starts_with("Connect { conn: ConnKey(1)") {
                    session.handle_connected(CHILD, refused(), now);
                    drain(&mut session);
                } else if action.contains("2147483648") {
                    requests += 1;
                }
            }
        }
        assert_eq!(now, asked_again);
        assert_eq!(requests, 2, "a new connection to the launcher and its request");
        session.handle_read(launcher_key(0), b"started 43\n", now);
        assert_eq!(drain(&mut session), ["Close { conn: ConnKey(2147483648) }"]);
    }

    #[test]
    fn without_a_launcher_a_refused_child_fails_at_once() {
        let start = Instant::now();
        let mut session = session(start);
        session.launcher = None;
        drain(&mut session);
        session.handle_connected(CHILD, refused(), start);
        let actions = drain(&mut session);
        assert!(actions.iter().any(|a| a.starts_with("Send { conn: ConnKey(0)")), "{actions:?}");
        assert!(!actions.iter().any(|a| a.contains("2147483648")), "{actions:?}");
    }

    #[test]
    fn the_child_connection_timeout_ends_the_retries() {
        let start = Instant::now();
        let mut session = session(start);
        drain(&mut session);
        session.handle_connected(CHILD, refused(), start);
        drain(&mut session);
        session.handle_read(launcher_key(0), b"started 42\n", start);
        drain(&mut session);
        let mut now = start;
        let mut connects = 0;
        while let Some(at) = session.poll_timeout() {
            if at > start + Duration::from_secs(5) {
                break;
            }
            now = at;
            session.handle_timeout(now);
            for action in drain(&mut session) {
                if action.starts_with("Connect { conn: ConnKey(1)") {
                    connects += 1;
                    session.handle_connected(CHILD, refused(), now);
                    drain(&mut session);
                }
            }
        }
        // About ten retries in the 1 s connection timeout, then the fallback.
        assert!((5..=11).contains(&connects), "{connects} retries");
        assert!(now >= start + Duration::from_secs(1) && now < start + Duration::from_secs(2));
    }

    #[test]
    fn launcher_keys_do_not_collide_with_child_keys() {
        for child in [0, 1, 255] {
            assert_eq!(launcher_child(launcher_key(child)), Some(child));
            assert_eq!(launcher_child(key_of(child)), None);
        }
        assert_eq!(launcher_child(ConnKey::PEER), None);
    }

    #[test]
    fn only_a_missing_listener_is_worth_a_launch() {
        assert!(nobody_listens(&io::ErrorKind::ConnectionRefused.into()));
        assert!(nobody_listens(&io::ErrorKind::NotFound.into()));
        assert!(!nobody_listens(&io::ErrorKind::PermissionDenied.into()));
        assert!(!nobody_listens(&io::ErrorKind::TimedOut.into()));
    }
}
