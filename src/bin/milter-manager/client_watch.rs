//! `manager.connection_check_interval`: while a session waits on its children, check every
//! interval whether the SMTP client is still connected to the MTA, from the kernel's
//! socket tables, and tell the engine when it is not.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use milter_manager::client_link::{client_link, ClientLink};
use milter_manager::engine::Session;

const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// How long one reading of the tables serves every session of the worker: checks fall
/// due together, and a busy MTA host has long tables.
const TABLES_LIFETIME: Duration = Duration::from_millis(500);

/// The worker's last reading of the socket tables.
#[derive(Default)]
pub(crate) struct TableCache {
    read_at: Option<Instant>,
    texts: Vec<String>,
}

impl TableCache {
    pub(crate) fn shared() -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self::default()))
    }

    fn texts(&mut self, now: Instant) -> &[String] {
        if self.read_at.is_none_or(|at| now.duration_since(at) >= TABLES_LIFETIME) {
            // A table that cannot be read (no IPv6, not Linux) reads as empty: the client
            // is then never judged gone by its absence, only by a table that shows it.
            self.texts = TABLES
                .iter()
                .map(|path| std::fs::read_to_string(path).unwrap_or_default())
                .collect();
            self.read_at = Some(now);
        }
        &self.texts
    }
}

/// One session's checks.
pub(crate) struct ClientWatch {
    interval: Duration,
    tables: Rc<RefCell<TableCache>>,
    next_check: Option<Instant>,
    /// The client's connection was in the tables once: its absence now means it ended
    /// (before, absence may only mean the MTA runs on another host).
    seen: bool,
}

impl ClientWatch {
    /// `None` when checking is off (an interval of 0).
    pub(crate) fn new(interval: Duration, tables: &Rc<RefCell<TableCache>>) -> Option<Self> {
        (!interval.is_zero()).then(|| Self {
            interval,
            tables: Rc::clone(tables),
            next_check: None,
            seen: false,
        })
    }

    /// After every event of the session: a check is due `interval` after the session
    /// started waiting on its children, and none while it does not wait.
    pub(crate) fn follow(&mut self, engine: &Session, now: Instant) {
        if !engine.is_waiting_on_children() {
            self.next_check = None;
        } else if self.next_check.is_none() {
            self.next_check = Some(now + self.interval);
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next_check
    }

    /// Checks the client if a check is due, and tells the engine if it left.
    pub(crate) fn check_if_due(&mut self, engine: &mut Session, now: Instant) {
        if self.next_check.is_none_or(|at| at > now) {
            return;
        }
        self.next_check = Some(now + self.interval);
        let Some(client) = engine.client_address() else { return };
        let link = {
            let mut tables = self.tables.borrow_mut();
            client_link(tables.texts(now).iter().map(String::as_str), client)
        };
        let gone = match link {
            ClientLink::Connected => {
                self.seen = true;
                false
            }
            ClientLink::Closed => true,
            ClientLink::Absent => self.seen,
        };
        if gone {
            engine.handle_client_disconnected(now);
            self.follow(engine, now);
        }
    }
}
