//! The codec against real traffic: every frame Postfix 3.7 and libmilter (pymilter)
//! exchanged in the captured sessions decodes, and encodes back to the same bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use milter_manager::protocol::{Command, Deframer, Reply, MAX_DATA_SIZE};

struct Transcript {
    name: String,
    /// (from the MTA?, whole frame)
    frames: Vec<(bool, Vec<u8>)>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn transcripts() -> Vec<Transcript> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postfix");
    let mut transcripts = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixture directory") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "frames") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let frames = text
            .lines()
            .filter_map(|line| {
                let (direction, data) = line.split_once(' ')?;
                match direction {
                    ">" => Some((true, hex(data))),
                    "<" => Some((false, hex(data))),
                    _ => None,
                }
            })
            .collect();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        transcripts.push(Transcript { name, frames });
    }
    transcripts.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(transcripts.len() >= 10, "the captured fixtures are present");
    transcripts
}

#[test]
fn every_captured_frame_round_trips() {
    let mut counts: BTreeMap<(bool, char), usize> = BTreeMap::new();
    for transcript in transcripts() {
        // Feed each direction as one stream, as a socket would deliver it.
        for from_mta in [true, false] {
            let stream: Vec<u8> = transcript
                .frames
                .iter()
                .filter(|(d, _)| *d == from_mta)
                .flat_map(|(_, f)| f.clone())
                .collect();
            let expected: Vec<&Vec<u8>> =
                transcript.frames.iter().filter(|(d, _)| *d == from_mta).map(|(_, f)| f).collect();
            let mut deframer = Deframer::new(MAX_DATA_SIZE);
            deframer.push(&stream);
            let mut seen = 0;
            while let Some(frame) = deframer.next_frame() {
                let frame = frame.unwrap_or_else(|e| panic!("{}: {e}", transcript.name));
                let encoded = if from_mta {
                    let command = Command::decode(frame.code, frame.data)
                        .unwrap_or_else(|e| panic!("{}: frame {seen}: {e}", transcript.name));
                    command.to_frame()
                } else {
                    let reply = Reply::decode(frame.code, frame.data)
                        .unwrap_or_else(|e| panic!("{}: frame {seen}: {e}", transcript.name));
                    reply.to_frame()
                };
                assert_eq!(
                    &encoded, expected[seen],
                    "{}: frame {seen} re-encodes differently",
                    transcript.name
                );
                *counts.entry((from_mta, frame.code as char)).or_default() += 1;
                seen += 1;
            }
            assert_eq!(seen, expected.len(), "{}: all frames decoded", transcript.name);
            assert!(!deframer.has_partial_frame());
        }
    }
    // The fixtures cover every command Postfix sends and every reply libmilter can make.
    for code in "ODCHMRTLNBEAUQ".chars() {
        assert!(counts.contains_key(&(true, code)), "no captured command {code}");
    }
    for code in "Ocartdysphime+2-bq".chars() {
        assert!(counts.contains_key(&(false, code)), "no captured reply {code}");
    }
}

#[test]
fn postfix_sends_full_body_chunks_of_65535_bytes() {
    let transcript =
        transcripts().into_iter().find(|t| t.name == "large-body").expect("large-body fixture");
    let bodies: Vec<usize> = transcript
        .frames
        .iter()
        .filter(|(from_mta, frame)| *from_mta && frame[4] == b'B')
        .map(|(_, frame)| {
            let length = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            assert_eq!(length as usize, frame.len() - 4);
            match Command::decode(b'B', &frame[5..]).unwrap() {
                Command::Body { chunk } => chunk.len(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(bodies.len() >= 4, "{bodies:?}");
    assert!(bodies[..3].iter().all(|&n| n == MAX_DATA_SIZE), "{bodies:?}");
    // The milter's replaced body also came back in more than one packet.
    let replaced =
        transcript.frames.iter().filter(|(from_mta, f)| !*from_mta && f[4] == b'b').count();
    assert!(replaced >= 2);
}
