//! The proxy itself, without I/O: one MTA session fanned out to the child milters.
//!
//! A [`Session`] is fed the MTA's bytes, the children's bytes, connection results and the
//! time; it answers with [`Output`]s (bytes for the MTA or a child, connections to open or
//! close) and the next deadline. The binary moves those between sockets; the tests feed
//! them directly.
//!
//! Semantics, in short (details at the functions that implement them):
//! - negotiation: every child is offered the MTA's options; the MTA gets the merge;
//! - envelope commands (connect, helo, MAIL, RCPT, DATA, unknown) go to every applicable
//!   child at once and their verdicts are folded by precedence
//!   (accept < skip < continue < temporary failure < reject < discard);
//! - message commands (headers, end of header, body, end of message) go to one child at a
//!   time, each next child seeing the message as the earlier ones left it; the MTA gets the
//!   modifications after the last child;
//! - a child that fails (refused connection, timeout, garbage, closed socket) answers its
//!   `fallback_status` from then on;
//! - what a session holds is bounded ([`Limits`]): past `pending_bytes` of MTA input it
//!   asks not to be read ([`Session::wants_mta_data`]), and past it in a peer's output
//!   (its own plus what the runtime reports holding) it produces no more until that
//!   drains; large bodies go to a spill file and out again a batch at a time.

mod body;
mod child;
mod event;
mod negotiate;
mod session;
mod stage;
mod statistics;
mod status;
mod tally;
mod timers;

use std::sync::Arc;
use std::time::Duration;

pub use body::{Body, MemorySpill, NoSpill, ReportedOnce, SpillFactory, SpillFile};
pub use event::{ChildView, Conditions, Context, Event, MacroList, NoConditions};
pub use negotiate::{check_child_answer, merge_answers, offer_for_children, AnswerError};
pub use session::{ConnectFailure, Output, PendingBytes, Session};
pub use stage::Stage;
pub use status::{Fold, Status, Verdict};
pub use tally::ChildTally;

use crate::status::FallbackStatus;

/// How long the MTA may stay silent between commands (libmilter's default).
pub const MTA_IDLE_TIMEOUT: Duration = Duration::from_secs(7210);
/// How long a new MTA connection may take to make its option offer
/// (`manager.negotiation_timeout`'s default).
pub const MTA_NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Body bytes kept in memory per message before they go to a spill file.
pub const DEFAULT_MAX_BODY_MEMORY: usize = 5 * 1024 * 1024;
/// Bytes of MTA macros (names and values) a session keeps; past it the session fails.
/// Real MTAs send a few hundred bytes per stage.
pub const DEFAULT_MAX_MACRO_BYTES: usize = 1024 * 1024;
/// Header and recipient modifications one child may send in one end-of-message, and
/// their bytes (names, values, addresses, parameters). A replaced body is not counted: it
/// is stored like the MTA's body, spilling to a file.
pub const DEFAULT_MAX_MODIFICATIONS: usize = 10_000;
pub const DEFAULT_MAX_MODIFICATION_BYTES: usize = 10 * 1024 * 1024;
/// Bytes a session holds waiting in one place (the MTA's input not yet handled, the output
/// for the MTA, the output for one child) before it stops taking more there. Above the
/// largest frame (1 MiB) plus one read (64 KiB): a partial frame never stops the reading
/// that would complete it.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// What one session may hold in memory besides the body (which spills to a file). The
/// children's modifications are configuration items (`manager.max_child_modifications`,
/// `max_child_modification_bytes`); the rest are constants no real peer comes near.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The MTA's stored macros, names and values; past it the session fails.
    pub macro_bytes: usize,
    /// One child's modifications in one end-of-message; past either, the child fails.
    pub modifications: usize,
    pub modification_bytes: usize,
    /// Back-pressure: past this many bytes of MTA input waiting, the session asks not to
    /// be given more ([`Session::wants_mta_data`]); past it in the output for the MTA or a
    /// child, it stops producing output until that output drains to half of it.
    pub pending_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            macro_bytes: DEFAULT_MAX_MACRO_BYTES,
            modifications: DEFAULT_MAX_MODIFICATIONS,
            modification_bytes: DEFAULT_MAX_MODIFICATION_BYTES,
            pending_bytes: DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

/// What a session needs to know, shared by every session of one configuration generation.
#[derive(Clone)]
pub struct EngineConfig {
    pub children: Vec<ChildConfig>,
    /// The answer when the manager itself cannot filter (no child, no spill file, ...).
    pub fallback_status: FallbackStatus,
    /// The answer to the MTA when the SMTP client left while children were deciding
    /// (`manager.fallback_status_at_disconnect`).
    pub fallback_status_at_disconnect: FallbackStatus,
    /// Largest body chunk sent to a child (1..=65535).
    pub chunk_size: usize,
    pub max_body_memory: usize,
    pub limits: Limits,
    pub mta_idle_timeout: Duration,
    /// From the connection to the MTA's first option offer. Shorter than the idle timeout:
    /// a connection that never negotiates would otherwise hold a place of
    /// `max_connections` for two hours.
    pub mta_negotiation_timeout: Duration,
    pub spill: Arc<dyn SpillFactory>,
    /// Body storage failures already logged (each cause once).
    pub store_failures: Arc<ReportedOnce>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            children: Vec::new(),
            fallback_status: FallbackStatus::Accept,
            fallback_status_at_disconnect: FallbackStatus::TemporaryFailure,
            chunk_size: crate::protocol::MAX_DATA_SIZE,
            max_body_memory: DEFAULT_MAX_BODY_MEMORY,
            limits: Limits::default(),
            mta_idle_timeout: MTA_IDLE_TIMEOUT,
            mta_negotiation_timeout: MTA_NEGOTIATION_TIMEOUT,
            spill: Arc::new(NoSpill),
            store_failures: Arc::default(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("children", &self.children)
            .field("fallback_status", &self.fallback_status)
            .field("chunk_size", &self.chunk_size)
            .field("max_body_memory", &self.max_body_memory)
            .finish_non_exhaustive()
    }
}

/// One enabled child milter.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildConfig {
    pub name: String,
    /// Its verdict when it cannot give one (refused, timed out, broke the protocol).
    pub fallback_status: FallbackStatus,
    /// Its verdicts are logged, never obeyed.
    pub evaluation_mode: bool,
    pub timeouts: ChildTimeouts,
    /// Its connections are kept for later sessions (`reuse_connection`), and within
    /// these bounds.
    pub reuse: Option<ConnectionReuse>,
}

impl ChildConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            fallback_status: FallbackStatus::Accept,
            evaluation_mode: false,
            timeouts: ChildTimeouts::default(),
            reuse: None,
        }
    }
}

/// How a child's connections are kept between sessions. The engine decides which
/// connection may be kept (the child ended its last message cleanly, see
/// `Session::quit_child`); the runtime keeps at most `max_idle` of them per process and
/// closes one idle for `idle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionReuse {
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

/// The four per-child timeouts of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildTimeouts {
    /// To connect (the negotiation answer that follows has the reading timeout).
    pub connection: Duration,
    /// How long bytes queued for the child may make no progress. The runtime enforces it
    /// (the engine cannot see writes) and reports a stalled child as a failed connection.
    pub writing: Duration,
    /// For the reply to any command but end-of-message.
    pub reading: Duration,
    /// For the end-of-message reply (progress packets restart it).
    pub end_of_message: Duration,
}

impl ChildTimeouts {
    /// How long the answer to a command of `stage` may take.
    pub fn for_reply(&self, stage: Stage) -> Duration {
        if stage == Stage::EndOfMessage {
            self.end_of_message
        } else {
            self.reading
        }
    }
}

impl Default for ChildTimeouts {
    fn default() -> Self {
        Self {
            connection: Duration::from_secs(297),
            writing: Duration::from_secs(7),
            reading: Duration::from_secs(7),
            end_of_message: Duration::from_secs(297),
        }
    }
}
