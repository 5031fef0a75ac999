//! One command: the first byte is its code, the rest its data. What decodes must encode
//! and decode again to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milter_manager::protocol::{Command, Deframer};

fuzz_target!(|data: &[u8]| {
    let Some((&code, body)) = data.split_first() else { return };
    let Ok(command) = Command::decode(code, body) else { return };
    let frame = command.to_frame();
    let mut deframer = Deframer::new(frame.len());
    deframer.push(&frame);
    let frame = deframer.next_frame().expect("a whole frame").expect("a valid frame");
    let again = Command::decode(frame.code, frame.data).expect("an encoded command decodes");
    assert_eq!(command, again);
});
