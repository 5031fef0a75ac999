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
