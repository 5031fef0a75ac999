//! Back-pressure: what a session holds stays bounded when a peer does not keep up, and
//! nothing is lost or reordered once it does. The harness plays the runtime: it keeps
//! each peer's queue, reports it, and reads the MTA only while the session wants.

use super::*;
use crate::engine::{ChildConfig, Limits, MemorySpill, NoConditions};
use crate::protocol::{Actions, ConnectAddress, Steps};

const LIMIT: usize = 1024 * 1024;
const READ: usize = 64 * 1024;
const CHUNK: usize = 65535;

/// One peer as the runtime sees it: bytes queued for it, and those it has read.
#[derive(Default)]
struct Peer {
    queued: Vec<u8>,
    read: Vec<u8>,
    reading: bool,
}

impl Peer {
    fn take(&mut self, bytes: Vec<u8>) {
        self.queued.extend(bytes);
        if self.reading {
            self.read.append(&mut self.queued);
        }
    }

    /// The frames it read and has not taken yet.
    fn frames(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut deframer = Deframer::default();
        deframer.push(&std::mem::take(&mut self.read));
        let mut frames = Vec::new();
        while let Some(frame) = deframer.next_frame() {
            let frame = frame.unwrap();
            frames.push((frame.code, frame.data.to_vec()));
        }
        frames
    }
}

struct Runtime {
    session: Session,
    now: Instant,
    mta: Peer,
    children: Vec<Peer>,
    /// The MTA's bytes not yet read from its socket.
    unread: Vec<u8>,
    /// The most the session reported holding, by place.
    peak: PendingBytes,
    /// Queues are reported to the session, as the workers runtime does when one changed.
    reports: bool,
}

impl Runtime {
    /// A session through its envelope, with a child for each of `child_steps`.
    fn new(mta_steps: Steps, child_steps: &[Steps]) -> Self {
        let names = ["a", "b"];
        let config = EngineConfig {
            children: names[..child_steps.len()].iter().map(|n| ChildConfig::new(n)).collect(),
            spill: Arc::new(MemorySpill),
            max_body_memory: 1024 * 1024,
            limits: Limits { pending_bytes: LIMIT, ..Limits::default() },
            ..EngineConfig::default()
        };
        let now = Instant::now();
        let session = Session::new(Arc::new(config), Box::new(NoConditions), 1, now);
        let mut runtime = Self {
            session,
            now,
            mta: Peer { reading: true, ..Peer::default() },
            children: child_steps
                .iter()
                .map(|_| Peer { reading: true, ..Peer::default() })
                .collect(),
            unread: Vec::new(),
            peak: PendingBytes::default(),
            reports: true,
        };
        runtime.mta_sends(&Command::Negotiate(Negotiation::new(6, Actions::ALL, mta_steps)));
        for (i, steps) in child_steps.iter().enumerate() {
            runtime.child_frames(i);
            let answer = Negotiation::new(6, Actions::ALL, *steps);
            runtime.child_replies(i, &[Reply::Negotiate(answer)]);
        }
        assert_eq!(runtime.mta_codes(), b"O");
        let address = ConnectAddress::Inet { port: 25, address: b"192.0.2.1".to_vec() };
        let envelope = [
            Command::Connect { hostname: b"client.example".to_vec(), address },
            Command::EnvelopeFrom { address: b"<a@example.com>".to_vec(), parameters: vec![] },
            Command::EnvelopeRecipient { address: b"<b@example.com>".to_vec(), parameters: vec![] },
            Command::Data,
        ];
        for command in envelope {
            runtime.mta_sends(&command);
            for i in 0..child_steps.len() {
                runtime.child_frames(i);
                runtime.child_replies(i, &[Reply::Continue]);
            }
            assert_eq!(runtime.mta_codes(), b"c");
        }
        runtime
    }

    /// The MTA writes `command`; the runtime reads what the session wants.
    fn mta_sends(&mut self, command: &Command) {
        command.encode(&mut self.unread);
        self.pump();
    }

    fn child_replies(&mut self, i: usize, replies: &[Reply]) {
        let mut bytes = Vec::new();
        for reply in replies {
            reply.encode(&mut bytes);
        }
        for piece in bytes.chunks(READ) {
            self.session.handle_child_data(i, piece, self.now);
            self.pump();
        }
    }

    /// Reads the MTA while the session wants it, and moves every output to its peer's
    /// queue, reporting the queues as the workers runtime does.
    fn pump(&mut self) {
        loop {
            while let Some(output) = self.session.poll_output() {
                match output {
                    Output::ToMta(bytes) => {
                        self.mta.take(bytes);
                        if self.reports {
                            self.session.handle_mta_queued(self.mta.queued.len(), self.now);
                        }
                    }
                    Output::ToChild { child, bytes } => {
                        self.children[child].take(bytes);
                        let queued = self.children[child].queued.len();
                        if self.reports {
                            self.session.handle_child_queued(child, queued, self.now);
                        }
                    }
                    Output::Connect { child, .. } => {
                        self.session.handle_child_connected(child, Ok(()), self.now)
                    }
                    _ => {}
                }
                self.note_peak();
            }
            if self.unread.is_empty() || !self.session.wants_mta_data() {
                return;
            }
            let n = self.unread.len().min(READ);
            let bytes: Vec<u8> = self.unread.drain(..n).collect();
            self.session.handle_mta_data(&bytes, self.now);
            self.note_peak();
        }
    }

    fn note_peak(&mut self) {
        let now = self.session.pending_bytes();
        self.peak.mta_input = self.peak.mta_input.max(now.mta_input);
        self.peak.to_mta = self.peak.to_mta.max(now.to_mta);
        self.peak.to_children = self.peak.to_children.max(now.to_children);
    }

    /// The MTA starts reading again: what was queued is written.
    fn drain_mta(&mut self) {
        self.mta.reading = true;
        self.mta.read.append(&mut self.mta.queued);
        self.session.handle_mta_queued(0, self.now);
        self.pump();
    }

    /// Child `i` starts reading again.
    fn drain_child(&mut self, i: usize) {
        let child = &mut self.children[i];
        child.reading = true;
        child.read.append(&mut child.queued);
        self.session.handle_child_queued(i, 0, self.now);
        self.pump();
    }

    fn child_frames(&mut self, i: usize) -> Vec<(u8, Vec<u8>)> {
        self.children[i].frames().into_iter().filter(|(code, _)| *code != b'D').collect()
    }

    fn mta_codes(&mut self) -> Vec<u8> {
        self.mta.frames().into_iter().map(|(code, _)| code).collect()
    }
}

/// Bytes 0, 1, ..., 250, 0, ... (every value but a few, NUL included), so a lost or
/// repeated chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..=250u8).cycle().take(len).collect()
}

#[test]
fn a_pipelined_body_waits_in_the_socket_while_the_child_does_not_answer() {
    let mut runtime = Runtime::new(Steps::empty(), &[Steps::empty()]);
    let body = pattern(24 * 1024 * 1024);
    for chunk in body.chunks(CHUNK) {
        Command::Body { chunk: chunk.to_vec() }.encode(&mut runtime.unread);
    }
    Command::EndOfMessage { chunk: Vec::new() }.encode(&mut runtime.unread);
    runtime.pump();

    // The child has the first chunk and does not answer: the session took one limit's
    // worth (and one read) of the MTA's 24 MiB, and left the rest unread.
    assert!(!runtime.session.wants_mta_data());
    let held = runtime.session.pending_bytes().mta_input;
    assert!((LIMIT..LIMIT + READ).contains(&held), "{held} bytes of MTA input held");
    assert!(runtime.unread.len() > body.len() - 2 * LIMIT);

    // It answers each chunk as it comes: every byte arrives, in order, and the MTA hears
    // each chunk answered and the end of the message.
    let mut got = Vec::new();
    loop {
        let frames = runtime.child_frames(0);
        assert!(!frames.is_empty(), "the child got nothing more after {} bytes", got.len());
        let mut done = false;
        for (code, data) in frames {
            match code {
                b'B' => got.extend(data),
                b'E' => done = true,
                other => panic!("the child got {:?}", other as char),
            }
        }
        runtime.child_replies(0, &[if done { Reply::Accept } else { Reply::Continue }]);
        if done {
            break;
        }
    }
    assert!(got == body, "the child got {} bytes, not the {} sent", got.len(), body.len());
    let codes = runtime.mta_codes();
    assert_eq!(codes.len(), body.len().div_ceil(CHUNK) + 1);
    assert_eq!(codes.last(), Some(&b'a'));
    assert!(runtime.peak.mta_input < LIMIT + READ, "{:?}", runtime.peak);
}

#[test]
fn a_child_that_stops_reading_gets_no_more_than_the_limit_queued() {
    // b answers no body chunk, so the body would go to it at once: as the MTA sends it,
    // and, after a, the whole stored body in one go.
    for a_first in [false, true] {
        let steps: &[Steps] =
            if a_first { &[Steps::empty(), Steps::NR_BODY] } else { &[Steps::NR_BODY] };
        let b = steps.len() - 1;
        let mut runtime = Runtime::new(Steps::NR_BODY, steps);
        runtime.children[b].reading = false;
        let body = pattern(16 * 1024 * 1024);
        for chunk in body.chunks(CHUNK) {
            Command::Body { chunk: chunk.to_vec() }.encode(&mut runtime.unread);
        }
        Command::EndOfMessage { chunk: Vec::new() }.encode(&mut runtime.unread);
        runtime.pump();
        if a_first {
            // a takes the message chunk by chunk, then hands it to b.
            loop {
                let frames = runtime.child_frames(0);
                let done = frames.iter().any(|(code, _)| *code == b'E');
                runtime.child_replies(0, &[if done { Reply::Continue } else { Reply::Skip }]);
                if done {
                    break;
                }
            }
        }

        let pending = runtime.session.pending_bytes();
        assert!(pending.to_children >= LIMIT, "{pending:?}");
        assert!(runtime.peak.to_children < LIMIT + 2 * CHUNK, "{:?}", runtime.peak);
        assert!(runtime.peak.mta_input < LIMIT + READ, "{:?}", runtime.peak);

        runtime.drain_child(b);
        let mut got = Vec::new();
        let mut ended = false;
        for (code, data) in runtime.child_frames(b) {
            match code {
                b'B' => got.extend(data),
                b'E' => ended = true,
                other => panic!("the child got {:?}", other as char),
            }
        }
        assert!(ended && got == body, "b got {} of {} bytes", got.len(), body.len());
        runtime.child_replies(b, &[Reply::Accept]);
        let codes = runtime.mta_codes();
        // a's continue and b's accept fold to continue.
        let verdict = if a_first { b'c' } else { b'a' };
        assert_eq!(codes.last(), Some(&verdict));
        assert!(runtime.peak.to_children < LIMIT + 2 * CHUNK, "{:?}", runtime.peak);
    }
}

#[test]
fn a_replaced_body_goes_to_an_mta_that_does_not_read_a_limit_at_a_time() {
    let mut runtime = Runtime::new(Steps::empty(), &[Steps::empty()]);
    runtime.mta_sends(&Command::Body { chunk: b"original\r\n".to_vec() });
    runtime.child_frames(0);
    runtime.child_replies(0, &[Reply::Continue]);
    assert_eq!(runtime.mta_codes(), b"c");
    runtime.mta_sends(&Command::EndOfMessage { chunk: Vec::new() });
    assert_eq!(runtime.child_frames(0).len(), 1);

    runtime.mta.reading = false;
    let replaced = pattern(20 * 1024 * 1024);
    let mut replies: Vec<Reply> =
        replaced.chunks(CHUNK).map(|c| Reply::ReplaceBody { chunk: c.to_vec() }).collect();
    replies.push(Reply::Accept);
    runtime.child_replies(0, &replies);
    // The child's new body is stored (spilled); the MTA's queue holds one limit of it.
    let pending = runtime.session.pending_bytes();
    assert!(pending.to_mta >= LIMIT, "{pending:?}");
    assert!(runtime.peak.to_mta < LIMIT + 2 * CHUNK, "{:?}", runtime.peak);

    runtime.drain_mta();
    let frames = runtime.mta.frames();
    let (last, chunks) = frames.split_last().unwrap();
    assert_eq!(last.0, b'a');
    assert!(chunks.iter().all(|(code, _)| *code == b'b'));
    let got: Vec<u8> = chunks.iter().flat_map(|(_, data)| data.iter().copied()).collect();
    assert!(got == replaced, "the MTA got {} of {} bytes", got.len(), replaced.len());
    assert!(runtime.peak.to_mta < LIMIT + 2 * CHUNK, "{:?}", runtime.peak);
}

#[test]
fn progress_from_a_child_is_not_queued_for_an_mta_that_does_not_read() {
    let mut runtime = Runtime::new(Steps::empty(), &[Steps::empty()]);
    runtime.mta_sends(&Command::EndOfMessage { chunk: Vec::new() });
    assert_eq!(runtime.child_frames(0).len(), 1);
    runtime.mta.reading = false;
    // 2.5 MB of progress packets: the first limit's worth (and one read) keeps the MTA's
    // timer going; the rest would only pile up.
    runtime.child_replies(0, &vec![Reply::Progress; 500_000]);
    assert!(runtime.peak.to_mta < LIMIT + READ, "{:?}", runtime.peak);
    runtime.child_replies(0, &[Reply::Accept]);
    runtime.drain_mta();
    let codes = runtime.mta_codes();
    assert_eq!(codes.last(), Some(&b'a'));
    assert!(codes[..codes.len() - 1].iter().all(|&code| code == b'p'));
}

#[test]
fn output_written_at_once_goes_on_without_any_report() {
    // The workers runtime tells nothing of a batch it wrote whole: the session goes on by
    // itself once its buffers are handed out.
    let mut runtime = Runtime::new(Steps::NR_BODY, &[Steps::NR_BODY]);
    runtime.reports = false;
    let body = pattern(6 * LIMIT);
    for chunk in body.chunks(CHUNK) {
        Command::Body { chunk: chunk.to_vec() }.encode(&mut runtime.unread);
    }
    runtime.mta_sends(&Command::EndOfMessage { chunk: Vec::new() });
    let frames = runtime.child_frames(0);
    let got: Vec<u8> =
        frames.iter().filter(|(code, _)| *code == b'B').flat_map(|f| f.1.clone()).collect();
    assert!(got == body, "the child got {} of {} bytes", got.len(), body.len());
    assert_eq!(frames.last().map(|f| f.0), Some(b'E'));

    let replaced = pattern(6 * LIMIT);
    let mut replies: Vec<Reply> =
        replaced.chunks(CHUNK).map(|c| Reply::ReplaceBody { chunk: c.to_vec() }).collect();
    replies.push(Reply::Accept);
    runtime.child_replies(0, &replies);
    let frames = runtime.mta.frames();
    let got: Vec<u8> =
        frames.iter().filter(|(code, _)| *code == b'b').flat_map(|f| f.1.clone()).collect();
    assert!(got == replaced, "the MTA got {} of {} bytes", got.len(), replaced.len());
    assert_eq!(frames.last().map(|f| f.0), Some(b'a'));
}
