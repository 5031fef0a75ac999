use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use super::*;
use crate::test_dir::TestDir;
use crate::{bind, BindTarget, ListenOptions};

/// Answers every line with itself and the context; `reload` waits for the reload.
struct Echo;

impl ControlHandler for Echo {
    fn answer(&mut self, line: &str, context: &ControlContext) -> ControlAnswer {
        if line == "reload" {
            return ControlAnswer::AfterReload;
        }
        let workers: Vec<String> =
            context.workers.iter().map(|w| format!("worker {} pid {}", w.index, w.pid)).collect();
        ControlAnswer::Now(format!(
            "{line} from {}: {}\n",
            context.supervisor_pid,
            workers.join(", ")
        ))
    }

    fn reloaded(&mut self, outcome: &ReloadOutcome) -> String {
        format!("generation {}: {:?}\n", outcome.generation, outcome.result)
    }
}

#[test]
fn each_connection_gets_the_handlers_answer_to_its_line_then_eof() {
    let dir = TestDir::new("control");
    let path = dir.path().join("control.sock");
    let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
    let mut control = ControlSocket::new(bound, Box::new(Echo)).unwrap();
    let worker = RunningWorker { index: 0, pid: 70, generation: 1 };
    let context = ControlContext { supervisor_pid: 7, generation: 1, workers: vec![worker] };
    let mut first = UnixStream::connect(&path).unwrap();
    let mut second = UnixStream::connect(&path).unwrap();
    first.write_all(b"status\r\nignored\n").unwrap();
    second.write_all(b"configuration").unwrap();
    second.shutdown(std::net::Shutdown::Write).unwrap();
    control.service(&context);
    for (stream, expected) in [
        (&mut first, "status from 7: worker 0 pid 70\n"),
        (&mut second, "configuration from 7: worker 0 pid 70\n"),
    ] {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, expected);
    }
    assert_eq!(control.next_deadline(), None, "both clients are done");
    // A client that has not finished its line waits, with a deadline.
    let _slow = UnixStream::connect(&path).unwrap();
    control.service(&context);
    assert!(control.next_deadline().is_some());
    drop(control);
    assert!(!path.exists(), "the socket file goes with the control socket");
}

#[test]
fn a_reload_is_answered_with_its_outcome_once_it_is_done() {
    let dir = TestDir::new("control-reload");
    let path = dir.path().join("control.sock");
    let bound = bind(&BindTarget::Unix(path.clone()), &ListenOptions::default()).unwrap();
    let mut control = ControlSocket::new(bound, Box::new(Echo)).unwrap();
    let context = ControlContext { supervisor_pid: 7, generation: 1, workers: Vec::new() };
    let mut client = UnixStream::connect(&path).unwrap();
    client.write_all(b"reload\n").unwrap();
    control.service(&context);
    assert!(control.take_reload_request(), "the caller is asked to reload");
    assert!(!control.take_reload_request(), "once");
    client.set_nonblocking(true).unwrap();
    let mut early = [0u8; 16];
    assert_eq!(
        client.read(&mut early).unwrap_err().kind(),
        io::ErrorKind::WouldBlock,
        "no answer before the reload is done"
    );
    let outcome = ReloadOutcome {
        generation: 2,
        result: Ok(vec![(0, 71)]),
        workers_wanted: 1,
        report: String::new(),
    };
    control.reloaded(&outcome);
    control.service(&context);
    client.set_nonblocking(false).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "generation 2: Ok([(0, 71)])\n");
}

#[test]
fn reload_outcomes_travel_as_one_datagram() {
    for outcome in [
        ReloadOutcome {
            generation: 3,
            result: Ok(vec![(0, 10), (1, 11)]),
            workers_wanted: 2,
            report: "note a\nnote b\n".into(),
        },
        ReloadOutcome {
            generation: 1,
            result: Ok(Vec::new()),
            workers_wanted: 0,
            report: String::new(),
        },
        ReloadOutcome {
            generation: 1,
            result: Err("conf/milter-manager.toml:3: bad".into()),
            workers_wanted: 0,
            report: "x".into(),
        },
    ] {
        assert_eq!(ReloadOutcome::decode(&outcome.encode()), Some(outcome));
    }
    assert_eq!(ReloadOutcome::decode(b"x\nok 1\n"), None);
}
