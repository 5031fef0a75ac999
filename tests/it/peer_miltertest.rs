//! milter-test-client driven by an independent MTA-side implementation: OpenDKIM's
//! `miltertest` (Debian package `miltertest`) runs `tests/peers/miltertest_session.lua`,
//! a whole SMTP session with macros, a folded header and a body. The script checks that
//! every step is answered with "continue"; this test checks that the client's report
//! shows exactly what the script sent.
//!
//! These tests fail, never skip, when miltertest is missing: `scripts/install-test-deps.sh`
//! installs it.

use crate::support;

use std::process::Command;

use support::{
    deadline, require_program, run, source_path, wait_for, TempDir, TestClient, TIMEOUT,
};

const MILTERTEST: &str = "/usr/bin/miltertest";

/// What milter-test-client reports for one run of miltertest_session.lua.
const EXPECTED_REPORT: &[&str] = &[
    "[1] negotiate: version=6 actions=add-headers|change-headers steps=skip",
    "[1] define-macro: stage=connect j=<mx.test> {daemon_name}=<test-mta>",
    // miltertest always sends port 12345 with the address given to mt.conninfo.
    "[1] connect: host=<client.test> address=<inet:12345@[127.0.0.1]>",
    "[1] define-macro: stage=helo {tls_version}=<TLSv1.3>",
    "[1] helo: fqdn=<client.example.org>",
    "[1] define-macro: stage=envelope-from i=<4XyZ1> {mail_addr}=<sender@example.org>",
    "[1] envelope-from: address=<<sender@example.org>> parameter=<SIZE=1024>",
    "[1] define-macro: stage=envelope-recipient {rcpt_addr}=<first@example.net>",
    "[1] envelope-recipient: address=<<first@example.net>>",
    "[1] define-macro: stage=envelope-recipient {rcpt_addr}=<second@example.net>",
    "[1] envelope-recipient: address=<<second@example.net>>",
    "[1] data",
    "[1] header: name=<From> value=<Sender <sender@example.org>>",
    "[1] header: name=<Subject> value=<miltertest session>",
    "[1] header: name=<X-Folded> value=<first line\\n\\tsecond line>",
    "[1] end-of-header",
    "[1] body: size=38 chunk=<Hello from miltertest.\\r\\nSecond line.\\r\\n>",
    "[1] end-of-message: size=0",
    "[1] quit",
];

/// Lines miltertest_session.lua prints when every step went through.
const EXPECTED_SCRIPT_OUTPUT: &[&str] = &[
    "ok: negotiate",
    "ok: macro connect",
    "ok: conninfo",
    "ok: macro helo",
    "ok: helo",
    "ok: macro mail",
    "ok: mailfrom",
    "ok: macro rcpt",
    "ok: rcptto first",
    "ok: macro rcpt",
    "ok: rcptto second",
    "ok: data",
    "ok: header From",
    "ok: header Subject",
    "ok: header X-Folded",
    "ok: eoh",
    "ok: body",
    "ok: eom",
    "ok: disconnect",
    "done",
];

fn lines(lines: &[&str]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Runs the session script against `client` (`-D name=value` selects the socket), then
/// stops the client and compares its report with what the script sent.
fn session_is_reported_exactly(dir: &TempDir, client: TestClient, define: &str) {
    let script = source_path("tests/peers/miltertest_session.lua");
    let mut command = Command::new(MILTERTEST);
    command.arg("-D").arg(define).arg("-s").arg(&script);
    let miltertest = run(dir, "miltertest", &mut command, TIMEOUT);
    // A Lua error would make miltertest exit 1 without a word; the script catches
    // errors and prints "FAIL: ..." instead, so stdout says which step went wrong.
    assert!(
        miltertest.status.success(),
        "miltertest failed\n{}\n--- client report so far:\n{}--- client log:\n{}",
        miltertest.describe(),
        client.report(),
        client.log()
    );
    assert_eq!(miltertest.stdout, lines(EXPECTED_SCRIPT_OUTPUT), "miltertest's output");

    // miltertest has sent QUIT and closed: wait until the client has taken it in, then
    // stop it (SIGTERM is a clean stop: exit status 0).
    wait_for(deadline(), || client.report().contains("[1] quit\n"));
    let log_before_stop = client.log();
    let (status, report) = client.stop();
    assert!(
        status.success(),
        "milter-test-client after SIGTERM: {status}\n--- log:\n{log_before_stop}"
    );
    assert_eq!(report, lines(EXPECTED_REPORT), "milter-test-client's report");
}

#[test]
fn miltertest_session_over_tcp_is_reported_exactly() {
    require_program(MILTERTEST, "miltertest");
    let dir = TempDir::new("miltertest-tcp");
    let client = TestClient::start_tcp(&dir, &[]);
    let port = client.port();
    session_is_reported_exactly(&dir, client, &format!("port={port}"));
}

#[test]
fn miltertest_session_over_unix_socket_is_reported_exactly() {
    require_program(MILTERTEST, "miltertest");
    let dir = TempDir::new("miltertest-unix");
    let client = TestClient::start_unix(&dir, &[]);
    let socket = client.spec.clone();
    session_is_reported_exactly(&dir, client, &format!("socket={socket}"));
}
