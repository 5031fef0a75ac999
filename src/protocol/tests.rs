//! Round trips of every command and reply, and decoding of random and mutated input.

use super::*;

fn all_commands() -> Vec<Command> {
    let b = |s: &str| s.as_bytes().to_vec();
    vec![
        Command::Negotiate(Negotiation::mta_default()),
        Command::Negotiate(Negotiation::new(2, Actions::V1, Steps::V1)),
        Command::DefineMacros {
            stage: b'C',
            macros: vec![(b("j"), b("mx.example.org")), (b("{daemon_name}"), b("smtpd"))],
        },
        Command::DefineMacros { stage: b'H', macros: vec![] },
        Command::DefineMacros { stage: b'L', macros: vec![(b("i"), b("4ABCD"))] },
        Command::Connect {
            hostname: b("localhost"),
            address: ConnectAddress::Inet { port: 33270, address: b("127.0.0.1") },
        },
        Command::Connect {
            hostname: b("[::1]"),
            address: ConnectAddress::Inet6 { port: 25, address: b("::1") },
        },
        Command::Connect {
            hostname: b("local"),
            address: ConnectAddress::Unix { port: 0, path: b("/run/s.sock") },
        },
        Command::Connect { hostname: b("unknown"), address: ConnectAddress::Unknown },
        Command::Helo { fqdn: b("client.example.net") },
        Command::EnvelopeFrom {
            address: b("<a@example.org>"),
            parameters: vec![b("SIZE=100"), b("BODY=8BITMIME")],
        },
        Command::EnvelopeFrom { address: b("<>"), parameters: vec![] },
        Command::EnvelopeRecipient {
            address: b("<b@example.net>"),
            parameters: vec![b("NOTIFY=NEVER")],
        },
        Command::Data,
        Command::Header { name: b("Subject"), value: b("folded\n\tsecond line") },
        Command::Header { name: b("X-Empty"), value: vec![] },
        Command::EndOfHeader,
        Command::Body { chunk: b"line\r\n\0with NUL\r\n".to_vec() },
        Command::Body { chunk: vec![0x42; MAX_DATA_SIZE] },
        Command::EndOfMessage { chunk: vec![] },
        Command::EndOfMessage { chunk: b("tail") },
        Command::Abort,
        Command::Unknown { command: b("XFOO bar") },
        Command::Quit,
        Command::QuitNewConnection,
    ]
}

fn all_replies() -> Vec<Reply> {
    let b = |s: &str| s.as_bytes().to_vec();
    let mut with_lists = Negotiation::new(6, Actions::ALL, Steps::SKIP | Steps::NR_HEADER);
    with_lists.macro_requests = vec![
        (MacroRequestStage::Known(MacroStage::Connect), b("j {daemon_name}")),
        (MacroRequestStage::Known(MacroStage::EndOfHeader), b("i")),
        (MacroRequestStage::Other(9), b("x")),
    ];
    vec![
        Reply::Negotiate(Negotiation::new(6, Actions::ADD_HEADERS, Steps::NO_HELO)),
        Reply::Negotiate(with_lists),
        Reply::Continue,
        Reply::Accept,
        Reply::Reject,
        Reply::TemporaryFailure,
        Reply::Discard,
        Reply::Skip,
        Reply::Progress,
        Reply::ConnectionFailure,
        Reply::Shutdown,
        Reply::ReplyCode { text: b("550-5.7.1 first\r\n550 5.7.1 second") },
        Reply::AddHeader { name: b("X-Added"), value: b("yes") },
        Reply::InsertHeader { index: 0, name: b("DKIM-Signature"), value: b(" v=1;\n\ta=rsa") },
        Reply::ChangeHeader { index: 2, name: b("Subject"), value: b("") },
        Reply::ChangeFrom { address: b("<new@example.org>"), parameters: None },
        Reply::ChangeFrom { address: b("<new@example.org>"), parameters: Some(b("RET=HDRS")) },
        Reply::AddRecipient { address: b("<c@example.net>") },
        Reply::AddRecipientWithParameters {
            address: b("<d@example.net>"),
            parameters: Some(b("NOTIFY=NEVER")),
        },
        Reply::AddRecipientWithParameters { address: b("<d@example.net>"), parameters: None },
        Reply::DeleteRecipient { address: b("<b@example.net>") },
        Reply::ReplaceBody { chunk: b"new\r\n\0body".to_vec() },
        Reply::Quarantine { reason: b("suspicious") },
    ]
}

fn deframe_one(bytes: &[u8]) -> (u8, Vec<u8>) {
    let mut deframer = Deframer::default();
    deframer.push(bytes);
    let frame = deframer.next_frame().expect("a whole frame").expect("valid framing");
    let result = (frame.code, frame.data.to_vec());
    assert!(deframer.next_frame().is_none(), "exactly one frame");
    result
}

#[test]
fn every_command_round_trips() {
    let commands = all_commands();
    let codes: std::collections::BTreeSet<u8> = commands.iter().map(Command::code).collect();
    assert_eq!(codes.len(), 15, "every command letter is covered");
    for command in commands {
        let bytes = command.to_frame();
        let (code, data) = deframe_one(&bytes);
        let decoded = Command::decode(code, &data).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert_eq!(decoded, command);
        assert_eq!(decoded.to_frame(), bytes);
    }
}

#[test]
fn every_reply_round_trips() {
    let replies = all_replies();
    let codes: std::collections::BTreeSet<u8> = replies.iter().map(Reply::code).collect();
    assert_eq!(codes.len(), 20, "every reply code is covered");
    for reply in replies {
        let bytes = reply.to_frame();
        let (code, data) = deframe_one(&bytes);
        let decoded = Reply::decode(code, &data).unwrap_or_else(|e| panic!("{reply:?}: {e}"));
        assert_eq!(decoded, reply);
        assert_eq!(decoded.to_frame(), bytes);
    }
}

#[test]
fn known_wire_bytes() {
    // Postfix's CONNECT for a client on 127.0.0.1 port 33270 (0x81f6).
    let bytes = b"\0\0\0\x18Clocalhost\x004\x81\xf6127.0.0.1\0";
    let (code, data) = deframe_one(bytes);
    assert_eq!(
        Command::decode(code, &data).unwrap(),
        Command::Connect {
            hostname: b"localhost".to_vec(),
            address: ConnectAddress::Inet { port: 33270, address: b"127.0.0.1".to_vec() }
        }
    );
    // A protocol-6 MTA's offer.
    let offer = Command::Negotiate(Negotiation::mta_default()).to_frame();
    assert_eq!(offer, b"\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff");
}

#[test]
fn malformed_packets_name_the_problem() {
    let cases: &[(u8, &[u8], bool, &str)] = &[
        (b'C', b"host", false, "connect packet: hostname is not NUL-terminated"),
        (b'C', b"host\0X", false, "invalid address family: 'X'"),
        (b'C', b"host\x004\x01", false, "connect packet ends before its port"),
        (b'O', b"\0\0\0\x06", false, "negotiate packet ends before its actions"),
        (b'O', b"\0\0\0\x06\0\0\0\0\0\0\0\0x", false, "1 unexpected trailing bytes"),
        (b'L', b"Subject\0", false, "ends before its header value"),
        (b'M', b"", false, "ends before its address"),
        (b'D', b"", false, "ends before its macro stage"),
        (b'D', b"Cj\0", false, "ends before its macro value"),
        (b'Z', b"", false, "unknown command code 'Z'"),
        (b'c', b"x", true, "continue packet has 1 unexpected trailing bytes"),
        (b'y', b"550 no nul", true, "reply text is not NUL-terminated"),
        (b'i', b"\0\0", true, "ends before its header index"),
        (0x00, b"", true, "unknown reply code 0x00"),
    ];
    for (code, data, is_reply, expected) in cases {
        let error = if *is_reply {
            Reply::decode(*code, data).unwrap_err()
        } else {
            Command::decode(*code, data).unwrap_err()
        };
        assert!(error.to_string().contains(expected), "{error} (expected {expected})");
    }
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// Whatever bytes arrive, decoding returns (never panics), and anything that decodes
/// encodes back to exactly the same frame: the codec has one spelling per packet.
fn check_stream(bytes: &[u8], as_replies: bool) {
    let mut deframer = Deframer::new(MAX_DATA_SIZE);
    deframer.push(bytes);
    while let Some(frame) = deframer.next_frame() {
        let Ok(frame) = frame else { break };
        let mut original = Vec::new();
        encode_frame(&mut original, frame.code, |o| o.extend_from_slice(frame.data));
        if as_replies {
            if let Ok(reply) = Reply::decode(frame.code, frame.data) {
                assert_eq!(reply.to_frame(), original, "{reply:?}");
            }
        } else if let Ok(command) = Command::decode(frame.code, frame.data) {
            assert_eq!(command.to_frame(), original, "{command:?}");
        }
    }
}

#[test]
fn random_input_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let codes: Vec<u8> = b"ODCHMRTLNBEAUQKcartdyspfhime+2-bq4Z\0".to_vec();
    for round in 0..20_000 {
        // Well-framed packets with random data, so decoding (not only framing) is reached.
        let code = codes[rng.below(codes.len())];
        let len = rng.below(40);
        let alphabet = b"\0\0\0ab4LU6\x01\xff";
        let data: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, code, |o| o.extend_from_slice(&data));
        check_stream(&bytes, round % 2 == 0);
        // And raw noise, which mostly fails framing.
        let noise: Vec<u8> = (0..rng.below(64)).map(|_| rng.next().to_le_bytes()[0]).collect();
        check_stream(&noise, round % 2 == 1);
    }
}

#[test]
fn mutated_valid_packets_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let commands: Vec<Vec<u8>> = all_commands()
        .iter()
        .filter(|c| !matches!(c, Command::Body { chunk } if chunk.len() > 100))
        .map(Command::to_frame)
        .collect();
    let replies: Vec<Vec<u8>> = all_replies().iter().map(Reply::to_frame).collect();
    for round in 0..20_000 {
        let as_replies = round % 2 == 0;
        let pool = if as_replies { &replies } else { &commands };
        let mut bytes = pool[rng.below(pool.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = 0,
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, rng.next().to_le_bytes()[0]),
            }
        }
        // Keep the length field consistent half of the time, so mutations reach decoding.
        if round % 4 < 2 && bytes.len() >= 5 {
            let len = u32::try_from(bytes.len() - 4).unwrap();
            bytes[..4].copy_from_slice(&len.to_be_bytes());
        }
        check_stream(&bytes, as_replies);
    }
}

#[test]
fn macro_stages_keep_their_indices_letters_and_names() {
    let shown: Vec<String> = MacroStage::ALL
        .iter()
        .map(|s| format!("{}:{}:{}", s.index(), s.command_code() as char, s.name()))
        .collect();
    assert_eq!(
        shown.join(" "),
        "0:C:connect 1:H:helo 2:M:envelope-from 3:R:envelope-recipient 4:T:data \
         5:E:end-of-message 6:N:end-of-header"
    );
    assert_eq!(MacroStage::from_index(6), Some(MacroStage::EndOfHeader));
    assert_eq!(MacroStage::from_index(7), None);
}

#[test]
fn macros_only_go_with_commands_that_take_them() {
    for stage in *b"CHMRTLNBEU" {
        assert!(Command::decode(b'D', &[stage, b'i', 0, b'1', 0]).is_ok(), "{}", stage as char);
    }
    for stage in [b'A', b'Q', b'O', b'D', b'Z', 0] {
        let error = Command::decode(b'D', &[stage]).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "define-macro packet: invalid macro stage: {} is not a command that macros go with",
                code_name(stage)
            )
        );
    }
}
