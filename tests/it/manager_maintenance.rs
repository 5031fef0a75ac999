//! `manager.maintained` in the real milter-manager: the Rhai callbacks run at each
//! maintenance (every `maintenance_interval` sessions of a worker); one that fails is
//! logged with its file and line and the manager goes on serving.

use crate::support;

use std::process::{Command, Stdio};

use support::{deadline, wait_for, write_file, ManagerProcess, TempDir, TEST_SERVER};

/// One whole session through the manager, as the MTA; its report.
fn run_session(manager: &ManagerProcess) -> String {
    let output = Command::new(TEST_SERVER)
        .args(["-s", &manager.spec()])
        .stdin(Stdio::null())
        .output()
        .expect("run milter-test-server");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "the session failed: {report}\n--- log:\n{}", manager.log());
    report
}

#[test]
fn maintained_callbacks_run_at_each_maintenance_and_a_failing_one_is_only_logged() {
    let dir = TempDir::new("maintained");
    let hooks = dir.join("conf/hooks.rhai");
    write_file(
        &hooks,
        "manager.maintained(|| print(\"maintained!\"));\n\
         manager.maintained(|| {\n\
         \x20 throw \"broken on purpose\";\n\
         });\n",
    );
    let manager = ManagerProcess::start(
        &dir,
        "include = [\"hooks.rhai\"]\n[manager]\nmaintenance_interval = 1\nn_workers = 1\n",
    );
    let failure =
        format!("[maintain][error] manager.maintained: {}:3: broken on purpose", hooks.display());
    for round in 1..=2 {
        run_session(&manager);
        let ran = wait_for(deadline(), || {
            let log = manager.log();
            log.matches("script: maintained!").count() == round
                && log.matches(&failure).count() == round
        });
        assert!(ran, "round {round}: no maintenance logged\n--- log:\n{}", manager.log());
    }
}
