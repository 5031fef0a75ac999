//! `manager.connection_check_interval`: while a session waits on its children, check every
//! interval whether the SMTP client is still connected to the MTA, from the kernel's
//! socket tables (the built-in check) and with the `manager.define_connection_checker`
//! scripts, and tell the engine when it is not.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use milter_manager::client_link::{client_link, ClientLink};
use milter_manager::conditions::script::{ManagerScripts, ScriptAddress};
use milter_manager::engine::Session;
use milter_manager::protocol::parse_ip_text;

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
    /// The scripted checkers, and whether the built-in check runs.
    scripts: Rc<ManagerScripts>,
}

impl ClientWatch {
    /// `None` when checking is off (an interval of 0).
    pub(crate) fn new(
        interval: Duration,
        tables: &Rc<RefCell<TableCache>>,
        scripts: &Rc<ManagerScripts>,
    ) -> Option<Self> {
        (!interval.is_zero()).then(|| Self {
            interval,
            tables: Rc::clone(tables),
            next_check: None,
            seen: false,
            scripts: Rc::clone(scripts),
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
        let gone = (self.scripts.uses_builtin_checker() && self.builtin_says_gone(engine, now))
            || self.a_script_says_gone(engine);
        if gone {
            engine.handle_client_disconnected(now);
            self.follow(engine, now);
        }
    }

    /// The kernel's socket tables no longer show the client's connection.
    fn builtin_says_gone(&mut self, engine: &Session, now: Instant) -> bool {
        let Some(client) = engine.client_address() else { return false };
        let link = {
            let mut tables = self.tables.borrow_mut();
            client_link(tables.texts(now).iter().map(String::as_str), client)
        };
        match link {
            ClientLink::Connected => {
                self.seen = true;
                false
            }
            ClientLink::Closed => true,
            ClientLink::Absent => self.seen,
        }
    }

    /// A scripted checker answered false. One that fails is logged and counts as saying
    /// connected: a broken script must not end sessions.
    fn a_script_says_gone(&self, engine: &Session) -> bool {
        let checkers = &self.scripts.connection_checkers;
        if checkers.is_empty() {
            return false;
        }
        let client = engine.client_address().map_or(ScriptAddress::Unknown, |address| {
            ScriptAddress::Inet { ip: address.ip(), port: address.port() }
        });
        let server = server_address(
            engine.macro_value("daemon_addr").or_else(|| engine.macro_value("if_addr")),
            engine.macro_value("daemon_port"),
        );
        let tag = engine.tag();
        checkers.iter().any(|checker| match checker.is_connected(client.clone(), server.clone()) {
            Ok(connected) => {
                if !connected {
                    log::info!(
                        "[{tag}] connection checker {:?} ({}) says the SMTP client is gone",
                        checker.name,
                        checker.function.origin()
                    );
                }
                !connected
            }
            Err(error) => {
                log::warn!(
                    "[{tag}] [connection-checker][error] {:?}: {error}; counted as connected",
                    checker.name
                );
                false
            }
        })
    }
}

/// The MTA's side of the SMTP connection from its macros (`{daemon_addr}`, or Sendmail's
/// `{if_addr}`, and `{daemon_port}`; port 0 when not sent), unknown without an address.
fn server_address(address: Option<Vec<u8>>, port: Option<Vec<u8>>) -> ScriptAddress {
    let ip = address.and_then(|text| parse_ip_text(&String::from_utf8_lossy(&text)));
    let port = port.and_then(|text| String::from_utf8_lossy(&text).trim().parse().ok());
    match ip {
        Some(ip) => ScriptAddress::Inet { ip, port: port.unwrap_or(0) },
        None => ScriptAddress::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_address_comes_from_the_mtas_macros() {
        let text = |t: &str| Some(t.as_bytes().to_vec());
        assert_eq!(
            server_address(text("192.0.2.25"), text("25")).to_spec(),
            "inet:25@[192.0.2.25]"
        );
        assert_eq!(
            server_address(text("IPv6:2001:db8::25"), None).to_spec(),
            "inet6:0@[2001:db8::25]"
        );
        assert_eq!(server_address(text("garbage"), text("25")), ScriptAddress::Unknown);
        assert_eq!(server_address(None, None), ScriptAddress::Unknown);
    }
}
