//! End-to-end tests of the worker loop: `run()` in a test thread, real sockets, and small
//! sessions defined here. A pipe stands in for the parent; dropping its write end is the stop
//! request.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use workers::{
    run, Action, Admission, ConnKey, Endpoint, Exit, Listener, PeerAddr, Session, SessionFactory,
    WorkerConfig,
};

const CHILD: ConnKey = ConnKey(1);
/// Only a safety net against hanging tests; no assertion depends on it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn unique_socket_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("workers-{}-{n}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A worker loop running in a test thread.
struct Worker {
    parent: Option<mio::unix::pipe::Sender>,
    thread: JoinHandle<io::Result<Exit>>,
}

impl Worker {
    /// `config` is called in the worker's thread: a `WorkerConfig` may hold hooks that
    /// cannot cross threads.
    fn start<F, C>(listener: Listener, factory: F, config: C) -> Self
    where
        F: SessionFactory + Send + 'static,
        C: FnOnce() -> WorkerConfig + Send + 'static,
    {
        let (parent, watch) = mio::unix::pipe::new().expect("pipe");
        let thread = thread::spawn(move || {
            let config = WorkerConfig {
                handle_signals: false,
                parent_watch: Some(OwnedFd::from(watch)),
                ..config()
            };
            run(listener, factory, config)
        });
        Self { parent: Some(parent), thread }
    }

    /// Closes the parent's end of the pipe and waits for `run` to return.
    fn stop(mut self) -> Exit {
        drop(self.parent.take());
        self.thread.join().expect("worker thread panicked").expect("run failed")
    }
}

fn unix_listener(name: &str) -> (Listener, PathBuf) {
    let path = unique_socket_path(name);
    let listener = UnixListener::bind(&path).expect("bind unix listener");
    (Listener::Unix(listener), path)
}

fn unix_client(path: &PathBuf) -> UnixStream {
    let client = UnixStream::connect(path).expect("connect to the worker");
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    client
}

fn read_to_eof(mut stream: impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read until EOF");
    got
}

/// Waits until `condition` holds (the loop runs in another thread).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + IO_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < give_up, "gave up waiting until {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn patterned(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 31 + seed * 7) % 251).unwrap()).collect()
}

/// What every test session needs: a queue of actions, a deadline and a finished flag.
#[derive(Default)]
struct Outbox {
    actions: VecDeque<Action>,
    deadline: Option<Instant>,
    finished: bool,
}

impl Outbox {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        self.actions.push_back(Action::Send { conn, bytes: bytes.to_vec() });
    }
    fn close(&mut self, conn: ConnKey) {
        self.actions.push_back(Action::Close { conn });
    }
}

/// Implements the polling half of [`Session`] by delegating to an `outbox` field.
macro_rules! polled_through_outbox {
    () => {
        fn poll_action(&mut self) -> Option<Action> {
            self.outbox.actions.pop_front()
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.outbox.deadline
        }
        fn is_finished(&self) -> bool {
            self.outbox.finished
        }
    };
}

/// Counts sessions for factories: started, finished, and the most in flight at once.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    finished: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Counts {
    fn session_started(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }
    fn session_finished(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

/// A factory that makes sessions with `make` and keeps [`Counts`].
struct CountingFactory<S, M> {
    counts: Arc<Counts>,
    make: M,
    _session: std::marker::PhantomData<fn() -> S>,
}

impl<S, M> CountingFactory<S, M>
where
    S: Session,
    M: FnMut(&PeerAddr, Instant) -> S,
{
    fn new(make: M) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let factory =
            Self { counts: Arc::clone(&counts), make, _session: std::marker::PhantomData };
        (factory, counts)
    }
}

impl<S, M> SessionFactory for CountingFactory<S, M>
where
    S: Session,
    M: FnMut(&PeerAddr, Instant) -> S,
{
    type Session = S;
    fn new_session(&mut self, peer: &PeerAddr, now: Instant) -> S {
        self.counts.session_started();
        (self.make)(peer, now)
    }
    fn session_finished(&mut self, _session: S, _now: Instant) {
        self.counts.session_finished();
    }
}

// ---------------------------------------------------------------------------------------
// 1. Echo
// ---------------------------------------------------------------------------------------

/// Echoes what the peer sends; finished when the peer closes.
#[derive(Default)]
struct Echo {
    outbox: Outbox,
}

impl Session for Echo {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], _now: Instant) {
        self.outbox.send(conn, bytes);
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

#[test]
fn echoes_a_megabyte_to_many_concurrent_clients_byte_exact() {
    const CLIENTS: usize = 16;
    const PAYLOAD: usize = 1024 * 1024;
    let (listener, path) = unix_listener("echo");
    let (factory, counts) = CountingFactory::new(|_: &PeerAddr, _| Echo::default());
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|seed| {
            let path = path.clone();
            thread::spawn(move || {
                let payload = patterned(PAYLOAD, seed);
                let mut client = unix_client(&path);
                // The loop buffers what the client does not read yet, so writing everything
                // before reading cannot deadlock; it forces partial writes on the loop side.
                client.write_all(&payload).unwrap();
                let mut echoed = vec![0; PAYLOAD];
                client.read_exact(&mut echoed).unwrap();
                echoed == payload
            })
        })
        .collect();
    for client in clients {
        assert!(client.join().unwrap(), "echo differs from what was sent");
    }
    wait_until("every echo session finished", || counts.finished() == CLIENTS);

    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(counts.started(), CLIENTS);
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// 2. Proxy to a child connection
// ---------------------------------------------------------------------------------------

/// What a proxy session saw of its child connection.
#[derive(Default)]
struct ProxyLog {
    connected: Vec<Result<(), io::ErrorKind>>,
}

/// Connects to `upstream` at once, queues a greeting for it before the connect completes,
/// and forwards bytes both ways; if the upstream cannot be reached it tells the peer and
/// closes.
struct Proxy {
    outbox: Outbox,
    log: Arc<Mutex<ProxyLog>>,
}

impl Proxy {
    fn new(upstream: Endpoint, log: Arc<Mutex<ProxyLog>>) -> Self {
        let mut outbox = Outbox::default();
        outbox.actions.push_back(Action::Connect {
            conn: CHILD,
            endpoint: upstream,
            write_timeout: None,
            reuse: None,
        });
        outbox.send(CHILD, b"greeting;");
        Self { outbox, log }
    }
}

impl Session for Proxy {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], _now: Instant) {
        let to = if conn == ConnKey::PEER { CHILD } else { ConnKey::PEER };
        self.outbox.send(to, bytes);
    }
    fn handle_connected(&mut self, conn: ConnKey, result: io::Result<()>, _now: Instant) {
        assert_eq!(conn, CHILD);
        if result.is_err() {
            self.outbox.send(ConnKey::PEER, b"upstream unavailable");
            self.outbox.close(ConnKey::PEER);
            self.outbox.finished = true;
        }
        self.log.lock().unwrap().connected.push(result.map_err(|e| e.kind()));
    }
    fn handle_closed(&mut self, conn: ConnKey, _: Option<io::Error>, _: Instant) {
        let other = if conn == ConnKey::PEER { CHILD } else { ConnKey::PEER };
        self.outbox.close(other);
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

/// Serves one connection: answers every read with its upper-case version, until EOF.
fn serve_uppercase(mut stream: impl Read + Write) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs a proxy worker against `upstream`, sends `request` through it and reads `reply_len`
/// bytes back.
fn proxy_round_trip(upstream: Endpoint) {
    let (listener, path) = unix_listener("proxy");
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let session_log = Arc::clone(&log);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| {
        Proxy::new(upstream.clone(), Arc::clone(&session_log))
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let mut client = unix_client(&path);
    client.write_all(b"hello, child").unwrap();
    let expected = b"GREETING;HELLO, CHILD";
    let mut got = vec![0; expected.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, expected);
    drop(client);

    wait_until("the proxy session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(log.lock().unwrap().connected, vec![Ok(())]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn proxies_through_a_tcp_child_connection() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = upstream.accept().unwrap();
        serve_uppercase(stream);
    });
    proxy_round_trip(Endpoint::Tcp(addr));
    server.join().unwrap();
}

#[test]
fn proxies_through_a_unix_child_connection() {
    let path = unique_socket_path("upstream");
    let upstream = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = upstream.accept().unwrap();
        serve_uppercase(stream);
    });
    proxy_round_trip(Endpoint::Unix(path.clone()));
    server.join().unwrap();
    let _ = std::fs::remove_file(path);
}

#[test]
fn reports_a_failed_connect_to_the_session() {
    let (listener, path) = unix_listener("proxy-nowhere");
    let nowhere = Endpoint::Unix(unique_socket_path("no-such-upstream"));
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let session_log = Arc::clone(&log);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| {
        Proxy::new(nowhere.clone(), Arc::clone(&session_log))
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let client = unix_client(&path);
    assert_eq!(read_to_eof(client), b"upstream unavailable");

    wait_until("the proxy session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(log.lock().unwrap().connected, vec![Err(io::ErrorKind::NotFound)]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn reports_a_refused_tcp_connect_to_the_session() {
    // Bind and drop to get a local port that nobody listens on.
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (listener, path) = unix_listener("proxy-refused");
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let session_log = Arc::clone(&log);
    let (factory, _counts) = CountingFactory::new(move |_: &PeerAddr, _| {
        Proxy::new(Endpoint::Tcp(closed_port), Arc::clone(&session_log))
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    assert_eq!(read_to_eof(unix_client(&path)), b"upstream unavailable");
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(log.lock().unwrap().connected, vec![Err(io::ErrorKind::ConnectionRefused)]);
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// 3. Timers
// ---------------------------------------------------------------------------------------

/// Waits for a far deadline, pulls it in to 50 ms when the peer says "soon", and answers
/// from `handle_timeout`.
struct Alarm {
    outbox: Outbox,
    timeouts: Arc<AtomicUsize>,
}

impl Session for Alarm {
    fn handle_read(&mut self, _: ConnKey, bytes: &[u8], now: Instant) {
        if bytes == b"soon" {
            self.outbox.deadline = Some(now + Duration::from_millis(50));
        }
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, now: Instant) {
        assert!(self.outbox.deadline.is_some_and(|deadline| deadline <= now));
        self.timeouts.fetch_add(1, Ordering::SeqCst);
        self.outbox.send(ConnKey::PEER, b"time is up");
        self.outbox.deadline = None;
        self.outbox.finished = true;
    }
    polled_through_outbox!();
}

#[test]
fn fires_the_deadline_the_session_currently_wants() {
    let (listener, path) = unix_listener("alarm");
    let timeouts = Arc::new(AtomicUsize::new(0));
    let session_timeouts = Arc::clone(&timeouts);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, now: Instant| {
        let outbox =
            Outbox { deadline: Some(now + Duration::from_secs(3600)), ..Outbox::default() };
        Alarm { outbox, timeouts: Arc::clone(&session_timeouts) }
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let mut client = unix_client(&path);
    client.write_all(b"soon").unwrap();
    assert_eq!(read_to_eof(client), b"time is up");

    wait_until("the alarm session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(timeouts.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// 4. Session cap
// ---------------------------------------------------------------------------------------

/// Answers "ok" 30 ms after the peer's first bytes, then finishes.
#[derive(Default)]
struct SlowReply {
    outbox: Outbox,
}

impl Session for SlowReply {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], now: Instant) {
        self.outbox.deadline.get_or_insert(now + Duration::from_millis(30));
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {
        self.outbox.send(ConnKey::PEER, b"ok");
        self.outbox.finished = true;
    }
    polled_through_outbox!();
}

#[test]
fn never_runs_more_sessions_than_the_cap_and_serves_everyone() {
    const CLIENTS: usize = 5;
    let (listener, path) = unix_listener("cap");
    let (factory, counts) = CountingFactory::new(|_: &PeerAddr, _| SlowReply::default());
    let config = || WorkerConfig { max_sessions: Some(2), ..WorkerConfig::default() };
    let worker = Worker::start(listener, factory, config);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || {
                let mut client = unix_client(&path);
                client.write_all(b"hi").unwrap();
                read_to_eof(client)
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), b"ok");
    }

    wait_until("every session finished", || counts.finished() == CLIENTS);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(counts.started(), CLIENTS);
    assert!(counts.max_in_flight.load(Ordering::SeqCst) <= 2);
    let _ = std::fs::remove_file(path);
}

/// A limit shared by several loops, as a count of places in one atomic.
struct SharedLimit {
    taken: Arc<AtomicUsize>,
    max: usize,
}

impl Admission for SharedLimit {
    fn try_reserve(&mut self) -> bool {
        let max = self.max;
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .is_ok()
    }
    fn release(&mut self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn two_loops_sharing_an_admission_limit_never_exceed_it_and_serve_everyone() {
    const CLIENTS: usize = 6;
    let (listener, path) = unix_listener("admission");
    let Listener::Unix(first) = listener else { unreachable!() };
    let second = Listener::Unix(first.try_clone().unwrap());
    let (factory, counts) = CountingFactory::new(|_: &PeerAddr, _| SlowReply::default());
    let other_factory = CountingFactory {
        counts: Arc::clone(&counts),
        make: |_: &PeerAddr, _| SlowReply::default(),
        _session: std::marker::PhantomData,
    };
    let taken = Arc::new(AtomicUsize::new(0));
    let config = |taken: &Arc<AtomicUsize>| {
        let taken = Arc::clone(taken);
        move || WorkerConfig {
            admission: Some(Box::new(SharedLimit { taken, max: 2 })),
            accept_pause: Duration::from_millis(20),
            ..WorkerConfig::default()
        }
    };
    let workers = [
        Worker::start(Listener::Unix(first), factory, config(&taken)),
        Worker::start(second, other_factory, config(&taken)),
    ];

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || {
                let mut client = unix_client(&path);
                client.write_all(b"hi").unwrap();
                read_to_eof(client)
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), b"ok");
    }

    wait_until("every session finished", || counts.finished() == CLIENTS);
    for worker in workers {
        assert_eq!(worker.stop(), Exit::Drained);
    }
    assert_eq!(counts.started(), CLIENTS);
    assert!(counts.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(taken.load(Ordering::SeqCst), 0, "every place was given back");
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// 5. Stop requests
// ---------------------------------------------------------------------------------------

/// Answers the peer's first bytes once released through `gate`.
struct Gated {
    outbox: Outbox,
    gate: Arc<AtomicUsize>,
}

impl Session for Gated {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], now: Instant) {
        // Check the gate every few milliseconds: the loop has nothing else to wake it.
        self.outbox.deadline = Some(now + Duration::from_millis(5));
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.gate.load(Ordering::SeqCst) > 0 {
            self.outbox.send(ConnKey::PEER, b"finally");
            self.outbox.close(ConnKey::PEER);
            self.outbox.deadline = None;
            self.outbox.finished = true;
        } else {
            self.outbox.deadline = Some(now + Duration::from_millis(5));
        }
    }
    polled_through_outbox!();
}

#[test]
fn a_stop_request_lets_the_session_in_flight_finish() {
    let (listener, path) = unix_listener("drain");
    let gate = Arc::new(AtomicUsize::new(0));
    let session_gate = Arc::clone(&gate);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| Gated {
        outbox: Outbox::default(),
        gate: Arc::clone(&session_gate),
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let mut client = unix_client(&path);
    client.write_all(b"request").unwrap();
    wait_until("the session started", || counts.started() == 1);

    let Worker { parent, thread } = worker;
    drop(parent); // the stop request

    // Once the stop is handled the listener is closed and new clients are refused. (A probe
    // that still got in becomes a session of its own, which ends as the probe hangs up.)
    wait_until("the listener is closed", || UnixStream::connect(&path).is_err());
    assert!(!thread.is_finished(), "run returned while a session was in flight");

    gate.store(1, Ordering::SeqCst);
    assert_eq!(read_to_eof(client), b"finally");
    let exit = thread.join().unwrap().unwrap();
    assert_eq!(exit, Exit::Drained);
    assert_eq!(counts.finished(), counts.started());
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_shutdown_deadline_drops_a_session_that_never_finishes() {
    let (listener, path) = unix_listener("deadline");
    let gate = Arc::new(AtomicUsize::new(0)); // never opened
    let session_gate = Arc::clone(&gate);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| Gated {
        outbox: Outbox::default(),
        gate: Arc::clone(&session_gate),
    });
    let config = || WorkerConfig {
        shutdown_deadline: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = Worker::start(listener, factory, config);

    let mut client = unix_client(&path);
    client.write_all(b"request").unwrap();
    wait_until("the session started", || counts.started() == 1);

    assert_eq!(worker.stop(), Exit::DeadlineExpired { dropped: 1 });
    assert_eq!(counts.finished(), 0);
    // The dropped session's connection is closed without an answer.
    assert_eq!(read_to_eof(client), b"");
    let _ = std::fs::remove_file(path);
}

#[test]
fn stops_at_once_when_idle() {
    let (listener, path) = unix_listener("idle");
    let (factory, counts) = CountingFactory::new(|_: &PeerAddr, _| Echo::default());
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(counts.started(), 0);
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// 6. Peer closes; the session closes
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Seen {
    Bytes(usize),
    Closed(Option<io::ErrorKind>),
}

/// Records what happens on its peer connection.
struct Recorder {
    outbox: Outbox,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Session for Recorder {
    fn handle_read(&mut self, _: ConnKey, bytes: &[u8], _: Instant) {
        self.seen.lock().unwrap().push(Seen::Bytes(bytes.len()));
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, error: Option<io::Error>, _: Instant) {
        self.seen.lock().unwrap().push(Seen::Closed(error.map(|e| e.kind())));
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

#[test]
fn delivers_every_byte_before_the_peer_close() {
    const CHUNKS: usize = 3;
    const CHUNK: usize = 100 * 1024;
    let (listener, path) = unix_listener("recorder");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let session_seen = Arc::clone(&seen);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| Recorder {
        outbox: Outbox::default(),
        seen: Arc::clone(&session_seen),
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let mut client = unix_client(&path);
    for seed in 0..CHUNKS {
        client.write_all(&patterned(CHUNK, seed)).unwrap();
    }
    drop(client);

    wait_until("the session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    let seen = seen.lock().unwrap();
    let (last, reads) = seen.split_last().expect("events were recorded");
    assert_eq!(*last, Seen::Closed(None));
    let total: usize = reads
        .iter()
        .map(|event| match event {
            Seen::Bytes(n) => *n,
            Seen::Closed(_) => panic!("a close before the last event: {seen:?}"),
        })
        .sum();
    assert_eq!(total, CHUNKS * CHUNK);
    let _ = std::fs::remove_file(path);
}

/// Sends a large answer to the first bytes, asks to close, and finishes at once.
#[derive(Default)]
struct Farewell {
    outbox: Outbox,
}

const FAREWELL_LEN: usize = 2 * 1024 * 1024;

impl Session for Farewell {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], _: Instant) {
        self.outbox.send(ConnKey::PEER, &patterned(FAREWELL_LEN, 9));
        self.outbox.close(ConnKey::PEER);
        // Sending on a connection already closed is dropped quietly.
        self.outbox.send(ConnKey::PEER, b"never seen");
        self.outbox.finished = true;
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

#[test]
fn a_finished_session_flushes_its_output_before_closing() {
    let (listener, path) = unix_listener("farewell");
    let (factory, counts) = CountingFactory::new(|_: &PeerAddr, _| Farewell::default());
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let mut client = unix_client(&path);
    client.write_all(b"bye").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // The session is gone by now, most of its answer still queued in the loop.
    wait_until("the session finished", || counts.finished() == 1);
    assert!(read_to_eof(client) == patterned(FAREWELL_LEN, 9));

    assert_eq!(worker.stop(), Exit::Drained);
    let _ = std::fs::remove_file(path);
}

#[test]
fn accepts_tcp_clients() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let session_peers = Arc::clone(&peers);
    let (factory, counts) = CountingFactory::new(move |peer: &PeerAddr, _| {
        session_peers.lock().unwrap().push(peer.clone());
        Echo::default()
    });
    let worker = Worker::start(Listener::Tcp(listener), factory, WorkerConfig::default);

    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let payload = patterned(256 * 1024, 3);
    client.write_all(&payload).unwrap();
    let mut echoed = vec![0; payload.len()];
    client.read_exact(&mut echoed).unwrap();
    assert!(echoed == payload);
    let local = client.local_addr().unwrap();
    drop(client);

    wait_until("the session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(*peers.lock().unwrap(), vec![PeerAddr::Tcp(local)]);
}

// ---------------------------------------------------------------------------------------
// Write timeout
// ---------------------------------------------------------------------------------------

/// Connects to an upstream that never reads, queues more than the socket buffers hold and
/// records how the child connection ended.
struct Stuffer {
    outbox: Outbox,
    closed_with: Arc<Mutex<Option<Option<io::ErrorKind>>>>,
}

impl Session for Stuffer {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], _: Instant) {}
    fn handle_connected(&mut self, _: ConnKey, result: io::Result<()>, _: Instant) {
        result.expect("the upstream accepts");
    }
    fn handle_closed(&mut self, conn: ConnKey, error: Option<io::Error>, _: Instant) {
        if conn == CHILD {
            *self.closed_with.lock().unwrap() = Some(error.map(|e| e.kind()));
            self.outbox.close(ConnKey::PEER);
            self.outbox.finished = true;
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

#[test]
fn a_peer_that_stops_reading_fails_the_write_timeout() {
    let upstream_path = unique_socket_path("deaf-upstream");
    let upstream = UnixListener::bind(&upstream_path).unwrap();
    // Accepts and holds the connection without ever reading from it.
    let holder = thread::spawn(move || upstream.accept().map(|(stream, _)| stream));
    let (listener, path) = unix_listener("stuffer");
    let closed_with = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&closed_with);
    let endpoint = Endpoint::Unix(upstream_path.clone());
    let (factory, _counts) = CountingFactory::new(move |_: &PeerAddr, _| {
        let mut outbox = Outbox::default();
        outbox.actions.push_back(Action::Connect {
            conn: CHILD,
            endpoint: endpoint.clone(),
            write_timeout: Some(Duration::from_millis(300)),
            reuse: None,
        });
        outbox.send(CHILD, &vec![0x55; 16 * 1024 * 1024]);
        Stuffer { outbox, closed_with: Arc::clone(&seen) }
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    let client = unix_client(&path);
    let started = Instant::now();
    wait_until("the child connection was closed", || closed_with.lock().unwrap().is_some());
    assert_eq!(*closed_with.lock().unwrap(), Some(Some(io::ErrorKind::TimedOut)));
    assert!(started.elapsed() >= Duration::from_millis(300), "not before the timeout");
    drop(client);
    drop(holder.join().unwrap());
    assert_eq!(worker.stop(), Exit::Drained);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(upstream_path);
}

// ---------------------------------------------------------------------------------------
// Back-pressure
// ---------------------------------------------------------------------------------------

/// Echoes, but wants no more input while `LIMIT` bytes of echo wait for the peer.
struct BoundedEcho {
    outbox: Outbox,
    queued: usize,
    most_queued: Arc<AtomicUsize>,
    reports: Arc<AtomicUsize>,
}

impl BoundedEcho {
    const LIMIT: usize = 1024 * 1024;

    fn factory() -> (impl SessionFactory<Session = Self>, Arc<Counts>, [Arc<AtomicUsize>; 2]) {
        let (most_queued, reports) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let shared = [Arc::clone(&most_queued), Arc::clone(&reports)];
        let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| Self {
            outbox: Outbox::default(),
            queued: 0,
            most_queued: Arc::clone(&most_queued),
            reports: Arc::clone(&reports),
        });
        (factory, counts, shared)
    }
}

impl Session for BoundedEcho {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], _now: Instant) {
        self.outbox.send(conn, bytes);
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn handle_queued(&mut self, _: ConnKey, queued: usize, _: Instant) {
        self.queued = queued;
        self.most_queued.fetch_max(queued, Ordering::SeqCst);
        self.reports.fetch_add(1, Ordering::SeqCst);
    }
    fn wants_read(&self, _: ConnKey) -> bool {
        self.queued < Self::LIMIT
    }
    polled_through_outbox!();
}

#[test]
fn a_session_that_wants_no_input_leaves_it_in_the_socket_until_it_does() {
    const PAYLOAD: usize = 32 * 1024 * 1024;
    let (listener, path) = unix_listener("bounded-echo");
    let (factory, counts, [most_queued, _]) = BoundedEcho::factory();
    let worker = Worker::start(listener, factory, WorkerConfig::default);

    let client = unix_client(&path);
    let payload = patterned(PAYLOAD, 3);
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (mut client, payload, written) =
            (client.try_clone().unwrap(), payload.clone(), Arc::clone(&written));
        thread::spawn(move || {
            for piece in payload.chunks(64 * 1024) {
                client.write_all(piece).unwrap();
                written.fetch_add(piece.len(), Ordering::SeqCst);
            }
        })
    };
    // The client reads nothing: its writes block once the echo waiting reached the limit
    // (without back-pressure the loop would take all of it).
    let mut last = (0, Instant::now());
    wait_until("the client's writes block", || {
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        writer.is_finished() || last.1.elapsed() > Duration::from_secs(2)
    });
    let taken = written.load(Ordering::SeqCst);
    assert!(taken < PAYLOAD / 2, "the loop took {taken} bytes while the peer read nothing");
    let most = most_queued.load(Ordering::SeqCst);
    assert!(most >= BoundedEcho::LIMIT, "the session was told {most} bytes were queued");
    assert!(most < BoundedEcho::LIMIT + 64 * 1024, "{most} bytes queued: past one read");

    // Reading lets everything through, in order.
    let mut echoed = vec![0; PAYLOAD];
    (&client).read_exact(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(echoed == payload, "the echo differs from what was sent");
    client.shutdown(Shutdown::Write).unwrap();
    wait_until("the session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    let _ = std::fs::remove_file(path);
}

#[test]
fn output_written_at_once_is_not_reported() {
    let (listener, path) = unix_listener("prompt-echo");
    let (factory, counts, [_, reports]) = BoundedEcho::factory();
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    let mut client = unix_client(&path);
    for round in 0..100 {
        let request = patterned(100, round);
        client.write_all(&request).unwrap();
        let mut echoed = vec![0; request.len()];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, request);
    }
    client.shutdown(Shutdown::Write).unwrap();
    wait_until("the session finished", || counts.finished() == 1);
    // A peer that keeps up costs the session no call.
    assert_eq!(reports.load(Ordering::SeqCst), 0);
    assert_eq!(worker.stop(), Exit::Drained);
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------
// Short reads: the loop does not read again after a read that left the socket empty
// ---------------------------------------------------------------------------------------

/// Starts a [`Recorder`] worker on `listener` only after `client` has sent `bytes` and
/// closed: the bytes and the EOF are both in the socket when the loop first sees it, so
/// they raise one readiness event, and no later event would report the EOF.
fn record_bytes_and_close_sent_together(listener: Listener, client: impl FnOnce()) -> Vec<Seen> {
    client();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let session_seen = Arc::clone(&seen);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| Recorder {
        outbox: Outbox::default(),
        seen: Arc::clone(&session_seen),
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    wait_until("the session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    seen
}

#[test]
fn a_unix_peer_that_sends_and_closes_at_once_gets_both_delivered() {
    let (listener, path) = unix_listener("send-and-close");
    let seen = record_bytes_and_close_sent_together(listener, || {
        unix_client(&path).write_all(b"hello").unwrap();
    });
    assert_eq!(seen, vec![Seen::Bytes(5), Seen::Closed(None)]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_tcp_peer_that_sends_and_closes_at_once_gets_both_delivered() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = record_bytes_and_close_sent_together(Listener::Tcp(listener), || {
        TcpStream::connect(addr).unwrap().write_all(b"hello").unwrap();
    });
    assert_eq!(seen, vec![Seen::Bytes(5), Seen::Closed(None)]);
}

/// What [`ChildRecorder`] saw of its child connection, in order.
#[derive(Debug, PartialEq)]
enum ChildSeen {
    Connected(Result<(), io::ErrorKind>),
    Bytes(Vec<u8>),
    Closed(Option<io::ErrorKind>),
}

/// Connects to an upstream and records what happens on that connection; finished when
/// the upstream closes.
struct ChildRecorder {
    outbox: Outbox,
    seen: Arc<Mutex<Vec<ChildSeen>>>,
}

impl Session for ChildRecorder {
    fn handle_read(&mut self, _: ConnKey, bytes: &[u8], _: Instant) {
        self.seen.lock().unwrap().push(ChildSeen::Bytes(bytes.to_vec()));
    }
    fn handle_connected(&mut self, _: ConnKey, result: io::Result<()>, _: Instant) {
        self.seen.lock().unwrap().push(ChildSeen::Connected(result.map_err(|e| e.kind())));
    }
    fn handle_closed(&mut self, conn: ConnKey, error: Option<io::Error>, _: Instant) {
        if conn == CHILD {
            self.seen.lock().unwrap().push(ChildSeen::Closed(error.map(|e| e.kind())));
            self.outbox.finished = true;
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    polled_through_outbox!();
}

#[test]
fn a_tcp_child_that_answers_and_closes_at_once_is_connected_then_read_to_its_close() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::Tcp(upstream.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (mut stream, _) = upstream.accept().unwrap();
        stream.write_all(b"ready").unwrap();
    });
    let (listener, path) = unix_listener("child-recorder");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let session_seen = Arc::clone(&seen);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, _| {
        let mut outbox = Outbox::default();
        let endpoint = endpoint.clone();
        outbox.actions.push_back(Action::Connect {
            conn: CHILD,
            endpoint,
            write_timeout: None,
            reuse: None,
        });
        ChildRecorder { outbox, seen: Arc::clone(&session_seen) }
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    let client = unix_client(&path);
    wait_until("the session finished", || counts.finished() == 1);
    server.join().unwrap();
    drop(client);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ChildSeen::Connected(Ok(())),
            ChildSeen::Bytes(b"ready".to_vec()),
            ChildSeen::Closed(None)
        ]
    );
    let _ = std::fs::remove_file(path);
}

/// Wants no input until its deadline, 20 ms after it started; records what it sees.
struct LateReader {
    outbox: Outbox,
    holding: bool,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Session for LateReader {
    fn handle_read(&mut self, _: ConnKey, bytes: &[u8], _: Instant) {
        self.seen.lock().unwrap().push(String::from_utf8_lossy(bytes).into_owned());
    }
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, error: Option<io::Error>, _: Instant) {
        self.seen.lock().unwrap().push(format!("closed {:?}", error.map(|e| e.kind())));
        self.outbox.finished = true;
    }
    fn handle_timeout(&mut self, _: Instant) {
        self.seen.lock().unwrap().push("timeout".to_owned());
        self.holding = false;
        self.outbox.deadline = None;
    }
    fn wants_read(&self, _: ConnKey) -> bool {
        !self.holding
    }
    polled_through_outbox!();
}

#[test]
fn a_read_resumed_without_a_new_event_gets_the_bytes_and_the_close() {
    let (listener, path) = unix_listener("late-reader");
    // Sent and closed before the loop runs: one readiness event, seen while the session
    // holds back; nothing new arrives when it resumes.
    unix_client(&path).write_all(b"hello").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let session_seen = Arc::clone(&seen);
    let (factory, counts) = CountingFactory::new(move |_: &PeerAddr, now: Instant| LateReader {
        outbox: Outbox { deadline: Some(now + Duration::from_millis(20)), ..Outbox::default() },
        holding: true,
        seen: Arc::clone(&session_seen),
    });
    let worker = Worker::start(listener, factory, WorkerConfig::default);
    wait_until("the session finished", || counts.finished() == 1);
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(*seen.lock().unwrap(), ["timeout", "hello", "closed None"]);
    let _ = std::fs::remove_file(path);
}
