//! Kept connections (`Action::Keep`, `Action::Connect { reuse }`): a later session gets the
//! very connection an earlier one kept; one the peer closed, one idle too long, one over
//! the bounds, and every one at a stop are closed instead.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use workers::{
    run, Action, ConnKey, Endpoint, Exit, Listener, PeerAddr, Session, SessionFactory, WorkerConfig,
};

const CHILD: ConnKey = ConnKey(1);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const KEY: &[u8] = b"upstream";

fn socket_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("workers-kept-{}-{n}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// How each session got its upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    New,
    Reused(Vec<u8>),
}

/// Per session: connects upstream (asking for a kept connection), forwards what the
/// client sends, and on the client's EOF keeps the upstream connection with a memo naming
/// the session.
struct Borrower {
    actions: Vec<Action>,
    number: usize,
    idle_timeout: Duration,
    max_per_key: usize,
    got: Arc<Mutex<Vec<Got>>>,
    finished: bool,
}

impl Session for Borrower {
    fn handle_read(&mut self, conn: ConnKey, bytes: &[u8], _: Instant) {
        if conn == ConnKey::PEER {
            self.actions.push(Action::Send { conn: CHILD, bytes: bytes.to_vec() });
        }
    }
    fn handle_connected(&mut self, _: ConnKey, result: io::Result<()>, _: Instant) {
        result.expect("the upstream listens");
        self.got.lock().unwrap().push(Got::New);
    }
    fn handle_reused(&mut self, _: ConnKey, memo: Vec<u8>, _: Instant) {
        self.got.lock().unwrap().push(Got::Reused(memo));
    }
    fn handle_closed(&mut self, conn: ConnKey, _: Option<io::Error>, _: Instant) {
        if conn == ConnKey::PEER {
            self.actions.push(Action::Keep {
                conn: CHILD,
                key: KEY.to_vec(),
                memo: format!("session {}", self.number).into_bytes(),
                idle_timeout: self.idle_timeout,
                max_per_key: self.max_per_key,
            });
            self.finished = true;
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            return None;
        }
        Some(self.actions.remove(0))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_finished(&self) -> bool {
        self.finished && self.actions.is_empty()
    }
}

struct Borrowers {
    upstream: PathBuf,
    sessions: usize,
    idle_timeout: Duration,
    max_per_key: usize,
    got: Arc<Mutex<Vec<Got>>>,
}

impl SessionFactory for Borrowers {
    type Session = Borrower;
    fn new_session(&mut self, _: &PeerAddr, _: Instant) -> Borrower {
        self.sessions += 1;
        let connect = Action::Connect {
            conn: CHILD,
            endpoint: Endpoint::Unix(self.upstream.clone()),
            write_timeout: Some(IO_TIMEOUT),
            reuse: Some(KEY.to_vec()),
        };
        Borrower {
            actions: vec![connect],
            number: self.sessions,
            idle_timeout: self.idle_timeout,
            max_per_key: self.max_per_key,
            got: Arc::clone(&self.got),
            finished: false,
        }
    }
}

/// The upstream: each accepted connection is read in a thread; what it read and when it
/// saw EOF are reported on a channel.
struct Upstream {
    path: PathBuf,
    events: mpsc::Receiver<(usize, Option<Vec<u8>>)>,
    accepted: Arc<AtomicUsize>,
    /// The server side of each connection, to close them from the test.
    streams: Arc<Mutex<Vec<UnixStream>>>,
}

impl Upstream {
    fn start() -> Self {
        let path = socket_path("upstream");
        let listener = UnixListener::bind(&path).unwrap();
        let (sender, events) = mpsc::channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (Arc::clone(&accepted), Arc::clone(&streams));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let number = count.fetch_add(1, Ordering::SeqCst);
                kept.lock().unwrap().push(stream.try_clone().unwrap());
                let sender = sender.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = sender.send((number, None));
                                return;
                            }
                            Ok(n) => {
                                let _ = sender.send((number, Some(buf[..n].to_vec())));
                            }
                        }
                    }
                });
            }
        });
        Self { path, events, accepted, streams }
    }

    /// The next thing a connection did: bytes (`Some`) or EOF (`None`).
    fn next(&self) -> (usize, Option<Vec<u8>>) {
        self.events.recv_timeout(IO_TIMEOUT).expect("the upstream heard something")
    }
}

struct Worker {
    parent: Option<mio::unix::pipe::Sender>,
    thread: JoinHandle<io::Result<Exit>>,
    path: PathBuf,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Worker {
    fn start(upstream: &Upstream, max_kept: usize, max_per_key: usize, idle: Duration) -> Self {
        let path = socket_path("worker");
        let listener = Listener::Unix(UnixListener::bind(&path).unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let factory = Borrowers {
            upstream: upstream.path.clone(),
            sessions: 0,
            idle_timeout: idle,
            max_per_key,
            got: Arc::clone(&got),
        };
        let (parent, watch) = mio::unix::pipe::new().unwrap();
        let thread = thread::spawn(move || {
            let config = WorkerConfig {
                handle_signals: false,
                parent_watch: Some(OwnedFd::from(watch)),
                max_kept_connections: max_kept,
                ..WorkerConfig::default()
            };
            run(listener, factory, config)
        });
        Self { parent: Some(parent), thread, path, got }
    }

    /// One client session: sends `bytes` and hangs up, then waits for the worker to
    /// have handled its end (the upstream reads `bytes`).
    fn session(&self, upstream: &Upstream, bytes: &[u8]) -> usize {
        let mut client = UnixStream::connect(&self.path).unwrap();
        client.write_all(bytes).unwrap();
        drop(client);
        let (connection, read) = upstream.next();
        assert_eq!(read.as_deref(), Some(bytes));
        connection
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn stop(mut self) -> Exit {
        drop(self.parent.take());
        self.thread.join().unwrap().unwrap()
    }
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn a_later_session_gets_the_connection_an_earlier_one_kept_with_its_memo() {
    let upstream = Upstream::start();
    let worker = Worker::start(&upstream, 8, 4, LONG);
    let first = worker.session(&upstream, b"one");
    let second = worker.session(&upstream, b"two");
    let third = worker.session(&upstream, b"three");
    assert_eq!((first, second, third), (0, 0, 0), "one connection served all three");
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(
        worker.got(),
        [Got::New, Got::Reused(b"session 1".to_vec()), Got::Reused(b"session 2".to_vec())]
    );
    // A stop closes what is kept.
    assert_eq!(worker.stop(), Exit::Drained);
    assert_eq!(upstream.next(), (0, None));
}

#[test]
fn a_kept_connection_the_peer_closed_is_not_given_out() {
    let upstream = Upstream::start();
    let worker = Worker::start(&upstream, 8, 4, LONG);
    worker.session(&upstream, b"one");
    upstream.streams.lock().unwrap()[0].shutdown(std::net::Shutdown::Both).unwrap();
    assert_eq!(upstream.next(), (0, None));
    // The loop sees the EOF on the kept connection in its own time.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(worker.session(&upstream, b"two"), 1, "a new connection");
    assert_eq!(worker.got(), [Got::New, Got::New]);
    worker.stop();
}

#[test]
fn a_kept_connection_is_closed_after_its_idle_timeout() {
    let upstream = Upstream::start();
    let worker = Worker::start(&upstream, 8, 4, Duration::from_millis(50));
    worker.session(&upstream, b"one");
    assert_eq!(upstream.next(), (0, None), "closed by the worker, unasked");
    assert_eq!(worker.session(&upstream, b"two"), 1);
    assert_eq!(worker.got(), [Got::New, Got::New]);
    worker.stop();
}

#[test]
fn connections_beyond_the_bounds_are_closed() {
    for (max_kept, max_per_key) in [(0, 4), (8, 0)] {
        let upstream = Upstream::start();
        let worker = Worker::start(&upstream, max_kept, max_per_key, LONG);
        worker.session(&upstream, b"one");
        assert_eq!(upstream.next(), (0, None), "not kept at {max_kept}/{max_per_key}");
        worker.stop();
    }
}

/// A session that is idle from the start and never finishes by itself.
struct Lingering;

impl Session for Lingering {
    fn handle_read(&mut self, _: ConnKey, _: &[u8], _: Instant) {}
    fn handle_connected(&mut self, _: ConnKey, _: io::Result<()>, _: Instant) {}
    fn handle_closed(&mut self, _: ConnKey, _: Option<io::Error>, _: Instant) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_action(&mut self) -> Option<Action> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_finished(&self) -> bool {
        false
    }
    fn is_idle(&self) -> bool {
        true
    }
}

struct Lingerers(mpsc::Sender<()>);

impl SessionFactory for Lingerers {
    type Session = Lingering;
    fn new_session(&mut self, _: &PeerAddr, _: Instant) -> Lingering {
        let _ = self.0.send(());
        Lingering
    }
}

#[test]
fn a_stop_ends_idle_sessions_instead_of_waiting_for_them() {
    let path = socket_path("idle");
    let listener = Listener::Unix(UnixListener::bind(&path).unwrap());
    let (started, sessions) = mpsc::channel();
    let (parent, watch) = mio::unix::pipe::new().unwrap();
    let thread = thread::spawn(move || {
        let config = WorkerConfig {
            handle_signals: false,
            parent_watch: Some(OwnedFd::from(watch)),
            shutdown_deadline: Duration::from_secs(3600),
            ..WorkerConfig::default()
        };
        run(listener, Lingerers(started), config)
    });
    let mut client = UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    sessions.recv_timeout(IO_TIMEOUT).unwrap();
    drop(parent);
    // Drained, not dropped at the (hour-long) deadline, and the client sees its EOF.
    assert_eq!(thread.join().unwrap().unwrap(), Exit::Drained);
    assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0);
}
