//! Memory per session stays bounded in the real milter-manager: an MTA pipelining a large
//! body while the child stalls, and a child replacing the body with a large one. The
//! worker (the manager itself, with `n_workers = 0`) must keep its peak resident size,
//! /proc/PID/status VmHWM, under [`RSS_BOUND`]; without back-pressure it holds the whole
//! body (or twice the replaced one).

use crate::support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use milter_manager::protocol::{
    Actions, Command, ConnectAddress, Deframer, Negotiation, Reply, Steps,
};
use support::{deadline, status_field, wait_for, ManagerProcess, TempDir};

/// The bound on the worker's peak resident size: the engine holds at most 4 MiB per
/// place (`Limits::pending_bytes`) and 5 MiB of body in memory; a debug build starts at
/// a few MiB.
const RSS_BOUND_KIB: u64 = 64 * 1024;
const CHUNK: usize = 65535;

/// Byte `offset` of a body: 0, 1, ..., 250, 0, ... so a lost or repeated chunk shows.
fn pattern_byte(offset: usize) -> u8 {
    u8::try_from(offset % 251).expect("under 251")
}

fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(pattern_byte).collect()
}

fn peak_kib(pid: u32) -> u64 {
    kib(pid, "VmHWM")
}

fn kib(pid: u32, name: &str) -> u64 {
    let field = status_field(pid, name);
    field.trim_end_matches(" kB").trim().parse().unwrap_or_else(|_| panic!("{name}: {field:?}"))
}

/// What a test child does.
enum Child {
    /// Stops at the first body chunk until `release` says go; reports the body it got.
    StallAtBody { reached: Sender<()>, release: Receiver<()>, got: Sender<(usize, bool)> },
    /// Replaces the body with `len` bytes of the pattern at end-of-message.
    ReplaceBody { len: usize },
    /// Adds `count` headers of `len`-byte values at end-of-message.
    AddHeaders { count: usize, len: usize },
}

/// A child milter on loopback; serves one connection.
fn start_child(mut role: Child) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the milter");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        serve(stream, &mut role);
    });
    port
}

fn send(stream: &mut TcpStream, reply: &Reply) -> bool {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes);
    stream.write_all(&bytes).is_ok()
}

fn serve(mut stream: TcpStream, role: &mut Child) {
    let mut deframer = Deframer::default();
    let mut buf = vec![0; 64 * 1024];
    let (mut body, mut body_ok, mut stalled) = (0usize, true, false);
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        deframer.push(&buf[..n]);
        let mut replies = Vec::new();
        while let Some(frame) = deframer.next_frame() {
            let frame = frame.expect("a frame from the manager");
            let reply = match frame.code {
                b'O' => {
                    let actions = match role {
                        Child::ReplaceBody { .. } => Actions::CHANGE_BODY,
                        Child::AddHeaders { .. } => Actions::ADD_HEADERS,
                        Child::StallAtBody { .. } => Actions::empty(),
                    };
                    Reply::Negotiate(Negotiation::new(6, actions, Steps::empty()))
                }
                b'D' | b'A' => continue,
                b'Q' => return,
                b'B' => {
                    if let Child::StallAtBody { reached, release, .. } = role {
                        if !stalled {
                            stalled = true;
                            let _ = reached.send(());
                            let _ = release.recv();
                        }
                    }
                    let chunk = &frame.data;
                    body_ok &= chunk.iter().enumerate().all(|(i, b)| *b == pattern_byte(body + i));
                    body += chunk.len();
                    Reply::Continue
                }
                b'E' => match role {
                    Child::StallAtBody { got, .. } => {
                        let _ = got.send((body, body_ok));
                        Reply::Accept
                    }
                    Child::ReplaceBody { len } => {
                        let len = *len;
                        let mut offset = 0;
                        while offset < len {
                            let n = CHUNK.min(len - offset);
                            let chunk = pattern(offset, n);
                            if !send(&mut stream, &Reply::ReplaceBody { chunk }) {
                                return;
                            }
                            offset += n;
                        }
                        Reply::Accept
                    }
                    Child::AddHeaders { count, len } => {
                        let value = vec![b'v'; *len];
                        for n in 0..*count {
                            let name = format!("X-Flood-{n}").into_bytes();
                            let header = Reply::AddHeader { name, value: value.clone() };
                            if !send(&mut stream, &header) {
                                return;
                            }
                        }
                        Reply::Accept
                    }
                },
                _ => Reply::Continue,
            };
            replies.push(reply);
        }
        for reply in &replies {
            if !send(&mut stream, reply) {
                return;
            }
        }
    }
}

/// The test's MTA: reads replies frame by frame.
struct Mta {
    stream: UnixStream,
    deframer: Deframer,
}

impl Mta {
    fn connect(manager: &ManagerProcess) -> Self {
        let stream = UnixStream::connect(&manager.socket).expect("connect to the manager");
        stream.set_read_timeout(Some(support::TIMEOUT)).unwrap();
        Self { stream, deframer: Deframer::default() }
    }

    fn send(&mut self, command: &Command) {
        let mut bytes = Vec::new();
        command.encode(&mut bytes);
        self.stream.write_all(&bytes).expect("write to the manager");
    }

    /// The next reply's code and data.
    fn reply(&mut self) -> (u8, Vec<u8>) {
        let mut buf = vec![0; 64 * 1024];
        loop {
            if let Some(frame) = self.deframer.next_frame() {
                let frame = frame.expect("a frame from the manager");
                return (frame.code, frame.data.to_vec());
            }
            let n = self.stream.read(&mut buf).expect("read the manager's reply");
            assert!(n > 0, "the manager closed the connection");
            self.deframer.push(&buf[..n]);
        }
    }

    /// Negotiates and goes through the envelope to the message.
    fn start_message(&mut self) {
        self.send(&Command::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())));
        assert_eq!(self.reply().0, b'O');
        let address = ConnectAddress::Inet { port: 25, address: b"192.0.2.1".to_vec() };
        let envelope = [
            Command::Connect { hostname: b"client.example".to_vec(), address },
            Command::Helo { fqdn: b"client.example".to_vec() },
            Command::EnvelopeFrom { address: b"<a@example.com>".to_vec(), parameters: vec![] },
            Command::EnvelopeRecipient { address: b"<b@example.com>".to_vec(), parameters: vec![] },
            Command::Data,
        ];
        for command in &envelope {
            self.send(command);
            assert_eq!(self.reply().0, b'c', "the answer to {}", command.name());
        }
    }
}

fn start_manager(dir: &TempDir, port: u16) -> ManagerProcess {
    ManagerProcess::start(
        dir,
        &format!(
            "[manager]\nn_workers = 0\n\n\
             [milter.\"child\"]\nconnection_spec = \"inet:{port}@[127.0.0.1]\"\n\
             reading_timeout = 120\nend_of_message_timeout = 120\n"
        ),
    )
}

#[test]
fn a_body_pipelined_while_the_child_stalls_waits_in_the_socket_and_arrives_whole() {
    const BODY: usize = 128 * 1024 * 1024;
    let dir = TempDir::new("memory-pipelined");
    let (reached_tx, reached) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (got_tx, got) = mpsc::channel();
    let port =
        start_child(Child::StallAtBody { reached: reached_tx, release: release_rx, got: got_tx });
    let manager = start_manager(&dir, port);
    let pid = manager.process.id();
    let mut mta = Mta::connect(&manager);
    mta.start_message();

    // The whole body and end-of-message, without waiting for any answer.
    let written = Arc::new(AtomicUsize::new(0));
    let mut writer_stream = mta.stream.try_clone().unwrap();
    let writer = {
        let written = Arc::clone(&written);
        thread::spawn(move || {
            let mut offset = 0;
            while offset < BODY {
                let n = CHUNK.min(BODY - offset);
                let mut bytes = Vec::new();
                Command::Body { chunk: pattern(offset, n) }.encode(&mut bytes);
                writer_stream.write_all(&bytes).expect("write a body chunk");
                offset += n;
                written.store(offset, Ordering::SeqCst);
            }
            let mut bytes = Vec::new();
            Command::EndOfMessage { chunk: Vec::new() }.encode(&mut bytes);
            writer_stream.write_all(&bytes).expect("write end-of-message");
        })
    };
    reached.recv_timeout(support::TIMEOUT).expect("the child got the first body chunk");
    // Until the MTA's writes block (or, without back-pressure, all of it was taken).
    let mut last = (0, Instant::now());
    wait_for(deadline(), || {
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        writer.is_finished() || last.1.elapsed() > Duration::from_secs(2)
    });
    let peak_while_stalled = peak_kib(pid);
    let taken = written.load(Ordering::SeqCst);
    assert!(
        peak_while_stalled < RSS_BOUND_KIB,
        "the worker peaked at {peak_while_stalled} KiB while the child stalled (bound \
         {RSS_BOUND_KIB} KiB); the MTA had written {taken} bytes"
    );
    assert!(taken < BODY / 2, "the manager took {taken} bytes of the body while the child stalled");

    release.send(()).unwrap();
    let mut answers = Vec::new();
    loop {
        let (code, _) = mta.reply();
        answers.push(code);
        if code != b'c' {
            break;
        }
    }
    writer.join().unwrap();
    let (body, intact) = got.recv_timeout(support::TIMEOUT).expect("the child's report");
    assert_eq!((body, intact), (BODY, true), "what the child got, and whether in order");
    assert_eq!(answers.len(), BODY.div_ceil(CHUNK) + 1);
    assert_eq!(answers.last(), Some(&b'a'));
    let peak = peak_kib(pid);
    assert!(peak < RSS_BOUND_KIB, "the worker peaked at {peak} KiB (bound {RSS_BOUND_KIB} KiB)");
    mta.send(&Command::Quit);
}

#[test]
fn a_large_replaced_body_reaches_the_mta_whole_in_bounded_memory() {
    const REPLACED: usize = 50 * 1024 * 1024;
    let dir = TempDir::new("memory-replaced");
    let port = start_child(Child::ReplaceBody { len: REPLACED });
    let manager = start_manager(&dir, port);
    let pid = manager.process.id();
    let mut mta = Mta::connect(&manager);
    mta.start_message();
    mta.send(&Command::Body { chunk: b"the original body\r\n".to_vec() });
    assert_eq!(mta.reply().0, b'c');
    mta.send(&Command::EndOfMessage { chunk: Vec::new() });

    let mut got = 0;
    let mut intact = true;
    let last = loop {
        let (code, data) = mta.reply();
        if code != b'b' {
            break code;
        }
        intact &= data.iter().enumerate().all(|(i, b)| *b == pattern_byte(got + i));
        got += data.len();
    };
    assert_eq!((got, intact, last), (REPLACED, true, b'a'), "the new body's size, order, verdict");
    let peak = peak_kib(pid);
    assert!(peak < RSS_BOUND_KIB, "the worker peaked at {peak} KiB (bound {RSS_BOUND_KIB} KiB)");
    mta.send(&Command::Quit);
}

/// A session that held much (a child adding 9,000 headers of 1,000 bytes: 9 MB, under the
/// modification limit) gives its memory back to the system when it ends, so one bad
/// session does not leave the worker big.
#[test]
fn memory_a_session_held_goes_back_when_it_ends() {
    let dir = TempDir::new("memory-given-back");
    let port = start_child(Child::AddHeaders { count: 9_000, len: 1_000 });
    let manager = start_manager(&dir, port);
    let pid = manager.process.id();
    let before = kib(pid, "VmRSS");
    let out = support::run(
        &dir,
        "server",
        std::process::Command::new(support::TEST_SERVER).args(["-s", &manager.spec()]),
        support::TIMEOUT,
    );
    assert!(out.stdout.contains("status: accept"), "{}\n{}", out.describe(), manager.log());
    let finished = |log: &str| log.contains("a session finished; 0 sessions in flight");
    assert!(wait_for(deadline(), || finished(&manager.log())), "{}", manager.log());
    let (peak, after) = (peak_kib(pid), kib(pid, "VmRSS"));
    assert!(peak > before + 16 * 1024, "the session held much: {before} KiB, then {peak} KiB");
    assert!(
        after < before + 4 * 1024,
        "{before} KiB before the session, {peak} KiB at its peak, {after} KiB after it"
    );
}

/// An MTA flooding macros (1 MiB values for every stage, eight connections at once) gets
/// its sessions closed once the stored macros pass the limit, and the worker stays small.
#[test]
fn macro_floods_are_cut_off_and_the_worker_stays_small() {
    let dir = TempDir::new("memory-macros");
    // A child for every session: it answers continue to all.
    let port = support::milter::serve_tcp(|stream, _| {
        support::milter::milter_session(stream, |_| vec![Reply::Continue]);
    });
    let manager = start_manager(&dir, port);
    let pid = manager.process.id();
    let flooders: Vec<_> = (0..8)
        .map(|_| {
            let mut mta = Mta::connect(&manager);
            mta.send(&Command::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty())));
            assert_eq!(mta.reply().0, b'O');
            mta
        })
        .collect();
    let value = vec![b'm'; 1024 * 1024];
    for mut mta in flooders {
        let mut closed = false;
        for stage in *b"CHMRTLNE" {
            let mut bytes = Vec::new();
            let macros = vec![(format!("{{flood{stage}}}").into_bytes(), value.clone())];
            Command::DefineMacros { stage, macros }.encode(&mut bytes);
            // The manager may close the connection while the flood is still being written.
            if mta.stream.write_all(&bytes).is_err() {
                closed = true;
                break;
            }
        }
        if !closed {
            let mut buf = [0; 4096];
            closed = matches!(mta.stream.read(&mut buf), Ok(0) | Err(_));
        }
        assert!(closed, "the manager closed the flooding connection\n{}", manager.log());
    }
    let peak = peak_kib(pid);
    assert!(peak < RSS_BOUND_KIB, "the worker peaked at {peak} KiB (bound {RSS_BOUND_KIB} KiB)");
    assert!(manager.log().contains("macro"), "the log says why\n{}", manager.log());
}
