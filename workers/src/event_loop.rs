//! The loop itself: set-up, waiting on mio, dispatching readiness and due timers, and
//! deciding when a stop request has run its course.

use std::io;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Interest, Poll, Token};

use crate::conn::Connection;
use crate::kept::KeptPool;
use crate::listener::AcceptListener;
use crate::session_slot::SessionSlot;
use crate::stop::{StopEvent, StopSources};
use crate::timers::{TimerKind, Timers};
use crate::{Admission, Exit, Listener, Session, SessionFactory, WorkerConfig};
use slab::Slab;

pub(crate) const LISTENER_TOKEN: Token = Token(0);
const SIGNALS_TOKEN: Token = Token(1);
const PARENT_TOKEN: Token = Token(2);
/// Connection `i` of the connection slab is registered as `Token(FIRST_CONN_TOKEN + i)`.
const FIRST_CONN_TOKEN: usize = 3;

/// One buffer serves every read of the process, so steady-state reads never allocate.
const READ_BUFFER_SIZE: usize = 64 * 1024;
const EVENTS_CAPACITY: usize = 1024;

pub(crate) fn conn_token(index: usize) -> Token {
    Token(FIRST_CONN_TOKEN + index)
}

/// The parts of [`WorkerConfig`] the loop consults after set-up.
pub(crate) struct Limits {
    pub(crate) max_sessions: Option<usize>,
    pub(crate) accept_pause: Duration,
    pub(crate) shutdown_deadline: Duration,
}

/// Progress of a stop request.
#[derive(Default)]
pub(crate) struct StopState {
    pub(crate) requested: bool,
    /// When sessions still running get dropped (None: the deadline overflowed `Instant`).
    pub(crate) deadline: Option<Instant>,
    pub(crate) signals_seen: usize,
    /// A second stop signal arrived: leave without waiting for anything.
    pub(crate) immediate: bool,
}

pub(crate) struct EventLoop<F: SessionFactory> {
    pub(crate) poll: Poll,
    pub(crate) factory: F,
    pub(crate) limits: Limits,
    /// None once a stop was requested: the listener is closed in this process.
    pub(crate) listener: Option<AcceptListener>,
    pub(crate) listener_registered: bool,
    pub(crate) accept_paused_until: Option<Instant>,
    /// Asked before each accept; see [`crate::Admission`].
    pub(crate) admission: Option<Box<dyn Admission>>,
    /// The accept pause comes from a refused admission (not a resource error), so a session
    /// finishing here ends it early.
    pub(crate) paused_for_admission: bool,
    /// Called on SIGHUP (see [`WorkerConfig::on_hangup`]).
    on_hangup: Option<Box<dyn FnMut()>>,
    /// Called on SIGUSR1 (see [`WorkerConfig::on_reopen_logs`]).
    on_reopen_logs: Option<Box<dyn FnMut()>>,
    pub(crate) stop_sources: StopSources,
    pub(crate) stop: StopState,
    pub(crate) sessions: Slab<SessionSlot<F::Session>>,
    pub(crate) conns: Slab<Connection>,
    pub(crate) timers: Timers,
    pub(crate) read_buf: Box<[u8]>,
    /// Connections left unread that their session wants read again (slab index, serial).
    pub(crate) reads_to_resume: Vec<(usize, u64)>,
    /// Connections kept for reuse.
    pub(crate) kept: KeptPool,
    next_serial: u64,
}

impl<F: SessionFactory> EventLoop<F> {
    pub(crate) fn new(listener: Listener, factory: F, config: WorkerConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = AcceptListener::from_std(listener)?;
        poll.registry().register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let mut stop_sources = StopSources::new(
            config.handle_signals,
            config.on_hangup.is_some(),
            config.on_reopen_logs.is_some(),
            config.parent_watch,
        )?;
        stop_sources.register(poll.registry(), SIGNALS_TOKEN, PARENT_TOKEN)?;
        Ok(Self {
            poll,
            factory,
            limits: Limits {
                max_sessions: config.max_sessions,
                accept_pause: config.accept_pause,
                shutdown_deadline: config.shutdown_deadline,
            },
            listener: Some(listener),
            listener_registered: true,
            accept_paused_until: None,
            admission: config.admission,
            on_hangup: config.on_hangup,
            on_reopen_logs: config.on_reopen_logs,
            paused_for_admission: false,
            stop_sources,
            stop: StopState::default(),
            sessions: Slab::new(),
            conns: Slab::new(),
            timers: Timers::default(),
            read_buf: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            reads_to_resume: Vec::new(),
            kept: KeptPool::new(config.max_kept_connections),
            next_serial: 0,
        })
    }

    pub(crate) fn run(mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let now = Instant::now();
            if let Some(exit) = self.exit_due(now) {
                return Ok(exit);
            }
            let timeout = self.next_wakeup().map(|at| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("waiting for events failed: {e}; the worker loop cannot go on");
                return Err(e);
            }
            for event in events.iter() {
                self.dispatch(event, Instant::now());
            }
            self.fire_due_timers(Instant::now());
            self.resume_reads(Instant::now());
        }
    }

    /// Reads the connections whose session wants them read again. What came while they
    /// were left unread raised no new event, and their peer may have closed meanwhile:
    /// each is read until the socket is empty.
    fn resume_reads(&mut self, now: Instant) {
        while let Some((conn_index, serial)) = self.reads_to_resume.pop() {
            self.read_ready(conn_index, serial, true, now);
        }
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    fn dispatch(&mut self, event: &Event, now: Instant) {
        match event.token() {
            LISTENER_TOKEN => self.accept_ready(now),
            SIGNALS_TOKEN => {
                let event = self.stop_sources.on_signals_ready();
                if let StopEvent::Signals { stops, hangup, user1 } = event {
                    if user1 {
                        if let Some(hook) = self.on_reopen_logs.as_mut() {
                            hook();
                        }
                    }
                    if hangup {
                        if let Some(hook) = self.on_hangup.as_mut() {
                            hook();
                        }
                    }
                    if stops > 0 {
                        self.on_stop_signals(stops, now);
                    }
                }
            }
            PARENT_TOKEN => {
                if self.stop_sources.on_parent_ready(self.poll.registry()) == StopEvent::ParentGone
                {
                    self.request_stop("the parent's watch pipe closed", now);
                }
            }
            Token(token) => self.conn_ready(token - FIRST_CONN_TOKEN, event, now),
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        [self.timers.next_deadline(), self.accept_paused_until, self.stop.deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn fire_due_timers(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            self.paused_for_admission = false;
            self.sync_listener(now);
        }
        while let Some((deadline, kind)) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Session { index, serial } => {
                    self.session_deadline_passed(index, serial, deadline, now)
                }
                TimerKind::Linger { index, serial } => self.linger_expired(index, serial),
                TimerKind::ConnectRetry { index, serial } => self.retry_connect(index, serial, now),
                TimerKind::WriteStall { index, serial } => {
                    self.write_stall_check(index, serial, now)
                }
                TimerKind::KeptIdle { index, serial } => self.kept_idle_check(index, serial, now),
            }
        }
        let (sessions, conns) = (&self.sessions, &self.conns);
        self.timers.compact_if_bloated(sessions.len() + conns.len(), |deadline, kind| match kind {
            TimerKind::Session { index, serial } => sessions
                .get(index)
                .is_some_and(|slot| slot.serial == serial && slot.armed_timeout == Some(deadline)),
            TimerKind::Linger { index, serial }
            | TimerKind::ConnectRetry { index, serial }
            | TimerKind::WriteStall { index, serial } => {
                conns.get(index).is_some_and(|conn| conn.serial == serial)
            }
            // A connection taken and kept again has a later entry: only the one it is
            // kept until counts, or every reuse would leave a live-looking entry behind.
            TimerKind::KeptIdle { index, serial } => conns
                .get(index)
                .is_some_and(|conn| conn.serial == serial && conn.kept_until() == Some(deadline)),
        });
    }

    fn on_stop_signals(&mut self, count: usize, now: Instant) {
        self.stop.signals_seen += count;
        self.request_stop("stop signal received", now);
        if self.stop.signals_seen >= 2 && !self.stop.immediate {
            log::warn!(
                "another stop signal received while draining; dropping {} sessions in flight now",
                self.sessions.len()
            );
            self.stop.immediate = true;
        }
    }

    /// The first request closes the listener in this process (other processes sharing it
    /// and the kernel backlog keep new clients) and starts the drain.
    fn request_stop(&mut self, reason: &str, now: Instant) {
        if self.stop.requested {
            return;
        }
        self.stop.requested = true;
        self.stop.deadline = now.checked_add(self.limits.shutdown_deadline);
        if let Some(mut listener) = self.listener.take() {
            if self.listener_registered {
                let _ = self.poll.registry().deregister(&mut listener);
            }
        }
        self.listener_registered = false;
        self.accept_paused_until = None;
        self.close_kept("the worker stops");
        let idle: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, slot)| slot.session.is_idle())
            .map(|(index, _)| index)
            .collect();
        for index in idle {
            self.finish_session(index, now);
        }
        log::info!(
            "{reason}: no longer accepting; draining {} sessions in flight (at most {:?})",
            self.sessions.len(),
            self.limits.shutdown_deadline
        );
    }

    /// Whether the drain is over: every session finished (and closing connections flushed),
    /// or the deadline passed, or a second signal said to hurry.
    fn exit_due(&self, now: Instant) -> Option<Exit> {
        if !self.stop.requested {
            return None;
        }
        let out_of_time =
            self.stop.immediate || self.stop.deadline.is_some_and(|deadline| now >= deadline);
        if self.sessions.is_empty() {
            if self.conns.is_empty() || out_of_time {
                if !self.conns.is_empty() {
                    log::debug!(
                        "dropping {} connections that still had output to flush",
                        self.conns.len()
                    );
                }
                log::info!("drained: every session finished");
                return Some(Exit::Drained);
            }
            return None;
        }
        if out_of_time {
            let dropped = self.sessions.len();
            log::warn!("stopping with {dropped} sessions still in flight; dropping them");
            return Some(Exit::DeadlineExpired { dropped });
        }
        None
    }
}
