//! Small milters and servers written in the tests: a TCP server with a thread per
//! connection, and a milter session that answers each command as a closure says.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use milter_manager::protocol::{
    Actions, Command as MilterCommand, Deframer, Negotiation, Reply, Steps,
};

/// Starts `serve` on a thread for every connection to a fresh port of 127.0.0.1; the
/// connection's number (0, 1, ...) is passed along. The listener lives as long as the
/// test process, which is fine for a test.
pub(crate) fn serve_tcp(serve: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = listener.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        let counter = AtomicUsize::new(0);
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let number = counter.fetch_add(1, Ordering::SeqCst);
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(stream, number));
        }
    });
    port
}

/// A milter session: `answer` gives the replies to each command (macros, abort and quit
/// get none); it ends at QUIT or when the MTA closes.
pub(crate) fn milter_session(stream: TcpStream, answer: impl Fn(&MilterCommand) -> Vec<Reply>) {
    serve_milter(stream, |command| Some(answer(command)))
}

/// [`milter_session`] with a stateful `answer` that may also hang up (`None`).
pub(crate) fn serve_milter(
    mut stream: TcpStream,
    mut answer: impl FnMut(&MilterCommand) -> Option<Vec<Reply>>,
) {
    let mut deframer = Deframer::default();
    let mut buffer = [0; 65536];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        deframer.push(&buffer[..n]);
        let mut out = Vec::new();
        let mut quit = false;
        while let Some(frame) = deframer.next_frame() {
            let frame = frame.expect("a valid frame");
            let command = MilterCommand::decode(frame.code, frame.data).expect("a valid command");
            quit |= command == MilterCommand::Quit;
            let replies = match command {
                MilterCommand::DefineMacros { .. } | MilterCommand::Abort | MilterCommand::Quit => {
                    vec![]
                }
                MilterCommand::Negotiate(_) => {
                    vec![Reply::Negotiate(Negotiation::new(6, Actions::ALL, Steps::empty()))]
                }
                ref other => match answer(other) {
                    Some(replies) => replies,
                    None => return,
                },
            };
            for reply in replies {
                reply.encode(&mut out);
            }
        }
        if stream.write_all(&out).is_err() || quit {
            return;
        }
    }
}
