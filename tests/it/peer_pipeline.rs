//! Headers sent ahead (`src/engine/session/pipeline.rs`) with a real libmilter milter:
//! pymilter, second in the chain, gets a message's stored headers in one write, refuses
//! the first, and libmilter drops the ones sent behind it unanswered. The manager must tell
//! the MTA the refusal, replace that connection, and filter the session's next message
//! through pymilter as usual. OpenDKIM's miltertest is the MTA.

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::postfix::Pymilter;
use support::{free_tcp_port, run, ManagerProcess, TempDir};

use crate::peer_reuse::{config, metric, wait_for_metric};

#[test]
fn a_refusal_at_a_header_sent_ahead_leaves_the_next_message_filtered() {
    support::require_program("/usr/bin/miltertest", "miltertest");
    let dir = TempDir::new("pipeline-refusal");
    let client = support::TestClient::start_tcp(&dir, &[]);
    let pymilter = Pymilter::start_on(&dir, free_tcp_port(), "continue");
    let children = [("client", client.port()), ("pymilter", pymilter.port())];
    for reuse in [true, false] {
        let run_dir = TempDir::new(&format!("pipeline-refusal-{reuse}"));
        let manager = ManagerProcess::start(&run_dir, &config(&run_dir, &children, reuse));
        let script = support::source_path("tests/peers/miltertest_header_refusal.lua");
        let mut command = Command::new("/usr/bin/miltertest");
        command.arg("-D").arg(format!("socket={}", manager.spec())).arg("-s").arg(&script);
        let run = run(&run_dir, "miltertest", &mut command, Duration::from_secs(60));
        assert!(
            run.status.success() && run.stdout.ends_with("done\n"),
            "{}\n--- manager log:\n{}",
            run.describe(),
            manager.log()
        );
        let log = manager.log();
        assert!(
            log.contains("pymilter answered reject with commands sent behind it"),
            "the refusal came with commands sent behind it:\n{log}"
        );
        assert_eq!(wait_for_metric(&run_dir, "reconnections", "pymilter", 1), 1, "{log}");
        for milter in ["client", "pymilter"] {
            assert_eq!(metric(&run_dir, "fallbacks", milter), 0, "{log}");
            assert_eq!(metric(&run_dir, "timeouts", milter), 0, "{log}");
        }
    }
}
