//! The deframer fed one byte stream in pieces: the first byte sets the frame size limit,
//! then each piece is a length byte and that many bytes. Every frame it yields is decoded
//! both as a command and as a reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milter_manager::protocol::{Command, Deframer, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, mut rest)) = data.split_first() else { return };
    let mut deframer = Deframer::new(usize::from(limit) * 64);
    while let Some((&len, tail)) = rest.split_first() {
        let (piece, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        deframer.push(piece);
        while let Some(frame) = deframer.next_frame() {
            let Ok(frame) = frame else { return };
            let _ = Command::decode(frame.code, frame.data);
            let _ = Reply::decode(frame.code, frame.data);
        }
        assert!(deframer.buffered() <= data.len());
    }
});
