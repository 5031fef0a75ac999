//! One engine session driven by arbitrary MTA and child byte streams on a virtual clock.
//! The first byte picks the number of children (1 to 3), which of them refuse the
//! connection, whether their connections are kept for reuse (bit 7) and whether a connect
//! with nothing kept gets a kept connection with the record's bytes as its memo anyway (bit
//! 6); then each record is an operation byte, a length byte and that many bytes: bytes
//! from the MTA or from a child, a close of either, or the clock moving on. A connection
//! the session keeps (at `K` from the MTA) is given back at its next connect.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use milter_manager::engine::{
    ChildConfig, ConnectFailure, ConnectionReuse, EngineConfig, MemorySpill, NoConditions, Output,
    Session,
};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let n_children = usize::from(setup % 3) + 1;
    let refused = setup >> 2;
    let reuse = (setup & 0x80 != 0)
        .then_some(ConnectionReuse { max_idle: 4, idle_timeout: Duration::from_secs(60) });
    let odd_memos = setup & 0x40 != 0;
    let child_config = |i| ChildConfig { reuse, ..ChildConfig::new(&format!("child{i}")) };
    let config = EngineConfig {
        children: (0..n_children).map(child_config).collect(),
        chunk_size: 64,
        max_body_memory: 256,
        spill: Arc::new(MemorySpill),
        ..EngineConfig::default()
    };
    let mut now = Instant::now();
    let mut session = Session::new(Arc::new(config), Box::new(NoConditions), 1, now);
    // Per child: the key and memo of the connection it kept last.
    let mut kept: Vec<Option<(Vec<u8>, Vec<u8>)>> = vec![None; n_children];
    while let Some((&op, tail)) = rest.split_first() {
        let Some((&len, tail)) = tail.split_first() else { break };
        let (bytes, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let child = usize::from(op >> 4) % n_children;
        match op % 8 {
            0..=2 => session.handle_mta_data(bytes, now),
            3..=5 => session.handle_child_data(child, bytes, now),
            6 => match len % 4 {
                0 => session.handle_mta_closed(now),
                _ => session.handle_child_closed(child, None, now),
            },
            _ => {
                // The clock moves on by up to about 4 hours, in 1/16-second to 64-second steps.
                let step = u64::from(len) << (op >> 4);
                now += Duration::from_millis(step * 62);
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
            }
        }
        while let Some(output) = session.poll_output() {
            if let Output::KeepChild { child, key, memo } = output {
                kept[child] = Some((key, memo));
                continue;
            }
            if let Output::Connect { child, reuse: Some(key) } = &output {
                let child = *child;
                match kept[child].take() {
                    Some((kept_key, memo)) if &kept_key == key => {
                        session.handle_child_reused(child, &memo, now);
                        continue;
                    }
                    _ if odd_memos => {
                        session.handle_child_reused(child, bytes, now);
                        continue;
                    }
                    _ => {}
                }
            }
            if let Output::Connect { child, .. } = output {
                let result = if refused & (1 << child) != 0 {
                    // Both kinds of failure, by the child's parity.
                    Err(if child % 2 == 0 {
                        ConnectFailure::Unreachable(std::io::Error::from_raw_os_error(111))
                    } else {
                        ConnectFailure::OutOfDescriptors(std::io::Error::from_raw_os_error(24))
                    })
                } else {
                    Ok(())
                };
                session.handle_child_connected(child, result, now);
            }
        }
        if session.is_finished() {
            break;
        }
    }
});
