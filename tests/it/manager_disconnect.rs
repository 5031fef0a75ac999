//! `manager.connection_check_interval` in the real milter-manager: a child milter that
//! never answers MAIL FROM holds the session; while the SMTP client is connected to "the
//! MTA" (a TCP connection the test holds open on this host) the session waits; once the
//! client closes, the manager answers `fallback_status_at_disconnect`.

use crate::support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{deadline, read_lossy, wait_for, ChildGuard, ManagerProcess, TempDir, TEST_SERVER};

/// A milter that negotiates, answers "continue" to everything but MAIL FROM, which it
/// never answers. Serves connections until the test ends.
fn start_silent_at_mail() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the milter");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(mut stream: TcpStream) {
    loop {
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut frame = vec![0u8; u32::from_be_bytes(length) as usize];
        if stream.read_exact(&mut frame).is_err() || frame.is_empty() {
            return;
        }
        let reply: &[u8] = match frame[0] {
            b'O' => &[b'O', 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0],
            b'D' | b'A' | b'M' => continue,
            b'Q' => return,
            _ => b"c",
        };
        let mut packet = u32::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
        packet.extend_from_slice(reply);
        if stream.write_all(&packet).is_err() {
            return;
        }
    }
}

#[test]
fn a_client_that_leaves_while_a_child_decides_gets_the_status_at_disconnect() {
    let dir = TempDir::new("disconnect");
    let milter_port = start_silent_at_mail();
    let manager = ManagerProcess::start(
        &dir,
        &format!(
            "[manager]\nconnection_check_interval = 1\n\
             fallback_status_at_disconnect = \"reject\"\n\n\
             [milter.\"silent\"]\nconnection_spec = \"inet:{milter_port}@[127.0.0.1]\"\n\
             fallback_status = \"accept\"\nreading_timeout = 120\n"
        ),
    );

    // The SMTP connection: the test's listener plays the MTA's smtpd socket.
    let smtpd = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(smtpd.local_addr().unwrap()).unwrap();
    let (_server_side, _) = smtpd.accept().unwrap();
    let client_address = client.local_addr().unwrap();

    let stdout_path = dir.join("session.stdout");
    let mut session = Command::new(TEST_SERVER);
    session
        .args(["-s", &manager.spec()])
        .arg("--connect-address")
        .arg(format!("inet:{}@[127.0.0.1]", client_address.port()))
        .args(["--reading-timeout", "120"])
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(dir.join("session.stderr")).unwrap());
    let mut session = ChildGuard::spawn("milter-test-server", &mut session);

    // Three check intervals with the client connected: the session keeps waiting.
    let waited = Instant::now() + Duration::from_secs(3);
    assert!(
        !wait_for(waited, || session.exited().is_some()),
        "the session ended while its client was connected: {}\n--- log:\n{}",
        read_lossy(&stdout_path),
        manager.log()
    );
    assert!(!manager.log().contains("[session][disconnected]"));

    drop(client);
    let ended = wait_for(deadline(), || session.exited().is_some());
    let report = read_lossy(&stdout_path);
    let manager_log = manager.log();
    assert!(ended, "the session still waits after its client left\n--- log:\n{manager_log}");
    assert!(
        report.contains("status: reject"),
        "the MTA was not told fallback_status_at_disconnect:\n{report}\n--- log:\n{manager_log}"
    );
    assert!(
        manager_log
            .contains("the SMTP client disconnected while the children decided envelope-from")
            && manager_log.contains("[session][disconnected]"),
        "{manager_log}"
    );
}

/// `manager.define_connection_checker`: a Rhai checker that answers false for the client
/// ends a session waiting on a slow child with `fallback_status_at_disconnect`; a checker
/// that fails is logged with its line and counts as "connected".
#[test]
fn a_rhai_connection_checker_that_says_gone_ends_the_wait() {
    let dir = TempDir::new("checker");
    let milter_port = start_silent_at_mail();
    let checkers = dir.join("conf/checkers.rhai");
    support::write_file(
        &checkers,
        "manager.define_connection_checker(\"broken\", |context| {\n\
         \x20 throw \"broken on purpose\";\n\
         });\n\
         manager.define_connection_checker(\"not 192.0.2.7\", |context| {\n\
         \x20 context.smtp_client_address.to_ip_address != \"192.0.2.7\"\n\
         });\n",
    );
    let manager = ManagerProcess::start(
        &dir,
        &format!(
            "include = [\"checkers.rhai\"]\n\
             [manager]\nconnection_check_interval = 1\n\
             fallback_status_at_disconnect = \"reject\"\n\n\
             [milter.\"silent\"]\nconnection_spec = \"inet:{milter_port}@[127.0.0.1]\"\n\
             fallback_status = \"accept\"\nreading_timeout = 120\n"
        ),
    );
    let run = |client: &str| {
        let mut session = Command::new(TEST_SERVER);
        session
            .args(["-s", &manager.spec(), "--connect-address", client])
            .args(["--reading-timeout", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        ChildGuard::spawn("milter-test-server", &mut session)
    };

    // A client the checker keeps: three intervals later the session still waits.
    let mut kept = run("inet:4242@[192.0.2.8]");
    let waited = Instant::now() + Duration::from_secs(3);
    assert!(
        !wait_for(waited, || kept.exited().is_some()),
        "the session ended while the checker said connected\n--- log:\n{}",
        manager.log()
    );
    let broken = format!(
        "[connection-checker][error] \"broken\": {}:2: broken on purpose; counted as connected",
        checkers.display()
    );
    assert!(manager.log().contains(&broken), "{}", manager.log());

    // The client the checker says is gone: answered at the next check.
    let stdout_path = dir.join("gone.stdout");
    let mut session = Command::new(TEST_SERVER);
    session
        .args(["-s", &manager.spec(), "--connect-address", "inet:4242@[192.0.2.7]"])
        .args(["--reading-timeout", "120"])
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(Stdio::null());
    let mut gone = ChildGuard::spawn("milter-test-server", &mut session);
    let ended = wait_for(deadline(), || gone.exited().is_some());
    let report = read_lossy(&stdout_path);
    let manager_log = manager.log();
    assert!(ended, "the session still waits though its checker said gone\n--- log:\n{manager_log}");
    assert!(report.contains("status: reject"), "{report}\n--- log:\n{manager_log}");
    assert!(
        manager_log.contains(&format!(
            "connection checker \"not 192.0.2.7\" ({}:4) says the SMTP client is gone",
            checkers.display()
        )) && manager_log.contains("[session][disconnected]"),
        "{manager_log}"
    );
    assert!(kept.exited().is_none(), "the kept session ended too\n--- log:\n{manager_log}");
}
