//! The loop's record of one connection: its socket, its connect progress, its queued output
//! and who receives its events.

use std::time::{Duration, Instant};

use crate::output::Output;
use crate::stream::Stream;
use crate::{ConnKey, Endpoint};

/// Who hears about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A live session, under the key it uses for the connection.
    Session { index: usize, key: ConnKey },
    /// Nobody: the session closed the connection or finished. The loop only flushes what is
    /// queued (bounded by the linger) and then drops it; no more events are delivered.
    Closing,
    /// Kept for reuse by a later session (see `kept`), until `until` (its idle timeout).
    Kept { until: Instant },
}

pub(crate) enum ConnState {
    /// Connected; bytes flow both ways.
    Open,
    /// A non-blocking connect is in flight; writability will tell how it ended.
    Connecting,
    /// The connect would have blocked before it started (full backlog, no ephemeral port):
    /// no socket yet, another attempt is scheduled.
    RetryingConnect { endpoint: Endpoint, first_attempt: Instant, delay: Duration },
}

pub(crate) struct Connection {
    /// Distinguishes this connection from later ones reusing its token, so timers and stale
    /// events cannot touch a stranger.
    pub(crate) serial: u64,
    pub(crate) owner: Owner,
    pub(crate) stream: Option<Stream>,
    pub(crate) state: ConnState,
    pub(crate) output: Output,
    /// Whether the socket is registered for writability: always for TCP, otherwise only
    /// while output waits or a connect is in flight (see [`Stream::keeps_writable_interest`]).
    pub(crate) wants_writable: bool,
    /// How long queued output may make no progress before the connection fails.
    pub(crate) write_timeout: Option<Duration>,
    /// When queued output last made progress (or was queued on an idle connection).
    pub(crate) write_progress: Instant,
    /// A `WriteStall` timer is scheduled.
    pub(crate) stall_timer_armed: bool,
    /// Not read because its session did not want to (see [`crate::Session::wants_read`]).
    pub(crate) reading_paused: bool,
    /// The queued bytes last reported to the session.
    pub(crate) reported_queue: usize,
    /// Where it goes, for a connection asked for with `reuse`: it may only be kept for a
    /// later connect to the same place.
    pub(crate) endpoint: Option<Endpoint>,
}

impl Connection {
    pub(crate) fn accepted(serial: u64, owner: Owner, stream: Stream) -> Self {
        Self {
            serial,
            owner,
            wants_writable: stream.keeps_writable_interest(),
            stream: Some(stream),
            state: ConnState::Open,
            output: Output::default(),
            write_timeout: None,
            write_progress: Instant::now(),
            stall_timer_armed: false,
            reading_paused: false,
            reported_queue: 0,
            endpoint: None,
        }
    }

    pub(crate) fn outbound(
        serial: u64,
        owner: Owner,
        stream: Option<Stream>,
        state: ConnState,
    ) -> Self {
        // A connect in flight is watched for writability, which is how it ends.
        let wants_writable = !matches!(state, ConnState::Open)
            || stream.as_ref().is_some_and(Stream::keeps_writable_interest);
        Self {
            serial,
            owner,
            stream,
            state,
            output: Output::default(),
            wants_writable,
            write_timeout: None,
            write_progress: Instant::now(),
            stall_timer_armed: false,
            reading_paused: false,
            reported_queue: 0,
            endpoint: None,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, ConnState::Open)
    }

    /// While kept for reuse: when it is closed unless taken (its `KeptIdle` timer).
    pub(crate) fn kept_until(&self) -> Option<Instant> {
        match self.owner {
            Owner::Kept { until } => Some(until),
            _ => None,
        }
    }

    /// The owner of a connection the loop is only flushing before it drops it.
    pub(crate) fn is_closing(&self) -> bool {
        self.owner == Owner::Closing
    }
}
