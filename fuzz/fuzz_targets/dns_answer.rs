//! The DNSBL answer parser: the first two bytes are the query id it expects, the rest
//! the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milter_manager::conditions::builtin::dnsbl::parse_response;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([data[0], data[1]]);
    if let Ok(listing) = parse_response(id, &data[2..]) {
        let _ = listing.is_listed_for(None);
    }
});
