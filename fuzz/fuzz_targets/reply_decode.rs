//! One reply: the first byte is its code, the rest its data. What decodes must encode
//! and decode again to the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milter_manager::protocol::{Deframer, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&code, body)) = data.split_first() else { return };
    let Ok(reply) = Reply::decode(code, body) else { return };
    let _ = (reply.kind(), reply.name(), reply.is_modification(), reply.required_action());
    let frame = reply.to_frame();
    let mut deframer = Deframer::new(frame.len());
    deframer.push(&frame);
    let frame = deframer.next_frame().expect("a whole frame").expect("a valid frame");
    let again = Reply::decode(frame.code, frame.data).expect("an encoded reply decodes");
    assert_eq!(reply, again);
});
