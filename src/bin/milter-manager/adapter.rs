//! Runs engine sessions on the workers runtime: connection keys to child numbers and back,
//! and the DNSBL lookups' connection to a name server beside them.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use milter_manager::conditions::script::ManagerScripts;
use milter_manager::conditions::{
    ConditionSet, ConnectGate, DnsblVerdict, LookupAction, SessionCount,
};
use milter_manager::engine::{ConnectFailure, EngineConfig, Output, Session};
use milter_manager::metrics::{record_session, ChildOutcome};
use supervisor::{SessionBoard, SharedCounters};
use workers::{Action, ConnKey, Endpoint, PeerAddr};

use crate::client_watch::{ClientWatch, TableCache};
use crate::maintenance::Maintenance;

/// One configuration generation: the engine's view, where each child listens, and the
/// applicable conditions.
pub(crate) struct Generation {
    pub engine: Arc<EngineConfig>,
    pub endpoints: Vec<Endpoint>,
    pub conditions: Rc<ConditionSet>,
    /// `manager.connection_check_interval` (zero: no checks).
    pub connection_check_interval: Duration,
    /// The connection checkers of the Rhai files (and whether the built-in one runs).
    pub scripts: Rc<ManagerScripts>,
    /// Per child: privilege mode may start it (it has a `command`).
    pub launchable: Vec<bool>,
    pub maintenance: Maintenance,
    /// Per child: its row of the status counters (`CounterSlots`), found by its name.
    pub counter_slots: Vec<Option<usize>>,
}

/// The sessions of every worker, as the stress conditions count them.
pub(crate) struct BoardCount(pub Rc<SessionBoard>);

impl SessionCount for BoardCount {
    fn n_sessions(&self) -> usize {
        self.0.total()
    }
}

/// Starts engine sessions. Sessions are counted on the board by the worker's admission
/// (`worker::BoardAdmission`), not here.
pub(crate) struct Factory {
    /// The generation new sessions get; replaced by an in-process reload, while sessions
    /// already running keep theirs.
    pub current: Rc<RefCell<Rc<Generation>>>,
    /// Log tags: sessions and their children get consecutive numbers.
    pub next_tag: u64,
    /// The socket tables read for client checks, shared by the worker's sessions.
    pub tables: Rc<RefCell<TableCache>>,
    /// Sessions done and the children's final statuses, for the controller's status.
    pub counters: Rc<SharedCounters>,
    /// Sessions of this worker that ended, for `manager.maintenance_interval` (the manual
    /// counts session ends).
    pub sessions: u64,
    /// Sessions of this worker not finished yet.
    pub in_flight: usize,
}

impl workers::SessionFactory for Factory {
    type Session = ManagerSession;

    fn new_session(&mut self, peer: &PeerAddr, now: Instant) -> ManagerSession {
        let generation = Rc::clone(&self.current.borrow());
        self.in_flight += 1;
        let tag = self.next_tag;
        self.next_tag += 1 + generation.endpoints.len() as u64;
        log::debug!("[{tag}] session from {peer:?}");
        let verdict = DnsblVerdict::default();
        // Only when a milter uses a DNSBL condition is CONNECT held for the lookups. The
        // query ids only have to tell this session's own queries apart.
        let gate = generation.conditions.dnsbl().map(|setup| {
            // The low 16 bits of the tag: ids only tell this session's queries apart.
            let first_id = (tag & 0xffff) as u16;
            ConnectGate::new(Rc::clone(setup), verdict.clone(), tag, first_id << 4)
        });
        let conditions = Box::new(generation.conditions.session_with(verdict));
        let engine = Session::new(Arc::clone(&generation.engine), conditions, tag, now);
        let client_watch = ClientWatch::new(
            generation.connection_check_interval,
            &self.tables,
            &generation.scripts,
        );
        let counters = Rc::clone(&self.counters);
        ManagerSession { engine, gate, generation, client_watch, counters }
    }

    fn session_finished(&mut self, session: ManagerSession, _now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // What the session held is freed first, so that it can go back to the system.
        drop(session);
        self.sessions += 1;
        let maintained = self.current.borrow().maintenance.after_session(self.sessions);
        if self.in_flight == 0 && !maintained {
            crate::maintenance::when_idle();
        }
    }
}

pub(crate) struct ManagerSession {
    engine: Session,
    /// Holds the MTA's CONNECT back while its client is looked up in the DNSBLs.
    gate: Option<ConnectGate>,
    generation: Rc<Generation>,
    client_watch: Option<ClientWatch>,
    counters: Rc<SharedCounters>,
}

impl Drop for ManagerSession {
    fn drop(&mut self) {
        let engine = &self.engine;
        let children = self.generation.counter_slots.iter().enumerate().filter_map(|(i, slot)| {
            let tally = engine.child_tally(i)?;
            Some(ChildOutcome { slot: *slot, status: engine.child_final_status(i), tally })
        });
        let counters = &self.counters;
        record_session(
            &mut |index, amount| counters.add(index, amount),
            engine.end_state(),
            children,
        );
    }
}

/// The connection to the name server of the DNSBL lookups. Keys from here up are not
/// children's (the privilege-mode launcher's start at `0x8000_0000`).
const DNS: ConnKey = ConnKey(0x4000_0000);

/// Child `i` uses connection key `i + 1`; key 0 is the MTA.
pub(crate) fn child_of(conn: ConnKey) -> Option<usize> {
    (conn != ConnKey::PEER && conn.0 < DNS.0).then(|| conn.0 as usize - 1)
}

impl ManagerSession {
    pub(crate) fn generation(&self) -> &Rc<Generation> {
        &self.generation
    }

    pub(crate) fn tag(&self) -> u64 {
        self.engine.tag()
    }

    /// Adds 1 to a shared counter (`Counters`).
    pub(crate) fn count(&self, index: usize) {
        self.counters.increment(index);
    }

    /// Gives the engine what the gate let through.
    fn feed_engine(&mut self, now: Instant) {
        if let Some(gate) = &mut self.gate {
            let bytes = gate.take_for_engine();
            if !bytes.is_empty() {
                self.engine.handle_mta_data(&bytes, now);
            }
        }
        self.follow(now);
    }

    /// Keeps the client checks in step with the engine after each event.
    fn follow(&mut self, now: Instant) {
        if let Some(watch) = &mut self.client_watch {
            watch.follow(&self.engine, now);
        }
    }
}

pub(crate) fn key_of(child: usize) -> ConnKey {
    // A configuration names far fewer than 2^30 children (keys from 2^30 are the DNS's and
    // the launcher's).
    ConnKey(u32::try_from(child).expect("a child index under 2^30") + 1)
}

impl workers::Session for ManagerSession {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], now: Instant) {
        match (conn, child_of(conn), &mut self.gate) {
            (DNS, _, Some(gate)) => {
                gate.handle_dns_data(bytes, now);
                self.feed_engine(now);
            }
            (ConnKey::PEER, _, Some(gate)) => {
                gate.push_mta(bytes, now);
                self.feed_engine(now);
            }
            (ConnKey::PEER, _, None) => self.engine.handle_mta_data(bytes, now),
            (_, Some(child), _) => self.engine.handle_child_data(child, bytes, now),
            _ => {}
        }
        self.follow(now);
    }

    fn handle_connected(&mut self, conn: ConnKey, result: io::Result<()>, now: Instant) {
        if let (DNS, Some(gate)) = (conn, &mut self.gate) {
            gate.handle_dns_connected(result, now);
            return self.feed_engine(now);
        }
        if let Some(child) = child_of(conn) {
            // The engine only words the error: give it the address and what to do. Out of
            // file descriptors, the child's address has nothing to do with it.
            let result = result.map_err(|e| {
                if workers::is_out_of_descriptors(&e) {
                    return ConnectFailure::OutOfDescriptors(e);
                }
                let endpoint = &self.generation.endpoints[child];
                let text = format!("{e} ({}){}", describe(endpoint), access_hint(&e, endpoint));
                ConnectFailure::Unreachable(io::Error::new(e.kind(), text))
            });
            self.engine.handle_child_connected(child, result, now);
        }
        self.follow(now);
    }

    fn handle_reused(&mut self, conn: ConnKey, memo: Vec<u8>, now: Instant) {
        if let Some(child) = child_of(conn) {
            self.engine.handle_child_reused(child, &memo, now);
        }
        self.follow(now);
    }

    fn handle_closed(&mut self, conn: ConnKey, error: Option<io::Error>, now: Instant) {
        if let Some(gate) = &mut self.gate {
            match conn {
                ConnKey::PEER => gate.handle_mta_closed(),
                DNS => {
                    gate.handle_dns_closed(error.map(|e| e.to_string()), now);
                    return self.feed_engine(now);
                }
                _ => {}
            }
        }
        match (conn, child_of(conn)) {
            (ConnKey::PEER, _) => self.engine.handle_mta_closed(now),
            (_, Some(child)) => self.engine.handle_child_closed(child, error, now),
            _ => {}
        }
        self.follow(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(gate) = &mut self.gate {
            gate.handle_timeout(now);
            self.feed_engine(now);
        }
        self.engine.handle_timeout(now);
        if let Some(watch) = &mut self.client_watch {
            watch.check_if_due(&mut self.engine, now);
        }
        self.follow(now);
    }

    fn handle_queued(&mut self, conn: ConnKey, queued: usize, now: Instant) {
        match (conn, child_of(conn)) {
            (ConnKey::PEER, _) => self.engine.handle_mta_queued(queued, now),
            (_, Some(child)) => self.engine.handle_child_queued(child, queued, now),
            _ => {}
        }
        self.follow(now);
    }

    /// Only the MTA is held back: a child's answers are bounded by the limits on
    /// modifications, and a replaced body is stored like the MTA's.
    fn wants_read(&self, conn: ConnKey) -> bool {
        if conn != ConnKey::PEER {
            return true;
        }
        let limit = self.generation.engine.limits.pending_bytes;
        self.engine.wants_mta_data() && self.gate.as_ref().is_none_or(|g| g.held_bytes() < limit)
    }

    fn reclaim(&mut self, spent: Vec<u8>) {
        self.engine.reclaim(spent);
    }

    fn poll_action(&mut self) -> Option<Action> {
        if let Some(action) = self.gate.as_mut().and_then(ConnectGate::poll_action) {
            let timeout = self.generation.conditions.dnsbl().map(|setup| setup.timeout);
            return Some(match action {
                LookupAction::Connect(server) => Action::Connect {
                    conn: DNS,
                    endpoint: Endpoint::Tcp(server),
                    write_timeout: timeout,
                    reuse: None,
                },
                LookupAction::Send(bytes) => Action::Send { conn: DNS, bytes },
                LookupAction::Close => Action::Close { conn: DNS },
            });
        }
        Some(match self.engine.poll_output()? {
            Output::ToMta(bytes) => Action::Send { conn: ConnKey::PEER, bytes },
            Output::ToChild { child, bytes } => Action::Send { conn: key_of(child), bytes },
            Output::Connect { child, reuse } => Action::Connect {
                conn: key_of(child),
                reuse,
                endpoint: self.generation.endpoints[child].clone(),
                write_timeout: Some(self.generation.engine.children[child].timeouts.writing),
            },
            Output::KeepChild { child, key, memo } => {
                // The engine keeps only children configured for reuse; closing is the safe
                // answer should that ever not hold.
                match self.generation.engine.children[child].reuse {
                    Some(reuse) => Action::Keep {
                        conn: key_of(child),
                        key,
                        memo,
                        idle_timeout: reuse.idle_timeout,
                        max_per_key: reuse.max_idle,
                    },
                    None => Action::Close { conn: key_of(child) },
                }
            }
            Output::CloseChild { child } => Action::Close { conn: key_of(child) },
            Output::AcknowledgeChild { child } => Action::Acknowledge { conn: key_of(child) },
            Output::CloseMta => Action::Close { conn: ConnKey::PEER },
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let gate = self.gate.as_ref().and_then(ConnectGate::deadline);
        let check = self.client_watch.as_ref().and_then(ClientWatch::deadline);
        [self.engine.poll_timeout(), gate, check].into_iter().flatten().min()
    }

    fn is_finished(&self) -> bool {
        self.engine.is_finished()
    }
}

fn describe(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Unix(path) => format!("unix:{}", path.display()),
        Endpoint::Tcp(address) => address.to_string(),
    }
}

/// `user "milter-manager"` (or `uid 999` when the system has no name for it): whom this
/// process serves as, for hints.
pub(crate) fn serving_user_words() -> String {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |user| format!("user {:?}", user.name))
}

/// What to do when a unix socket refuses this process: it serves as a user that is not
/// allowed in (the milter's socket, or its directory, belongs to the milter's group).
fn access_hint(error: &io::Error, endpoint: &Endpoint) -> String {
    if error.kind() != io::ErrorKind::PermissionDenied || !matches!(endpoint, Endpoint::Unix(_)) {
        return String::new();
    }
    let user = serving_user_words();
    format!(
        "; the manager serves as {user}: give it access to the socket and its directory \
         (e.g. add {user} to the socket's group)"
    )
}
