//! "DNSBL Listed" and "Not DNSBL Listed" in the real milter-manager: the client of a
//! session is looked up over TCP in a DNS server run by the test, and the two child
//! milters (milter-test-client) see the session or not.

use crate::support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{
    deadline, read_lossy, run, wait_for, ChildGuard, ManagerProcess, TempDir, TestClient,
    TEST_SERVER,
};

/// The zone the test's DNS server serves, and the one client address it lists.
const ZONE: &str = "bl.test";
const LISTED: &str = "192.0.2.2";
const UNLISTED: &str = "192.0.2.3";

/// A DNS server over TCP on 127.0.0.1: answers 127.0.0.2 for `2.2.0.192.bl.test` and
/// NXDOMAIN for any other name, once `answering` is true (until then it reads the queries
/// and keeps them waiting). Records every question it reads.
struct FakeDns {
    port: u16,
    questions: Arc<Mutex<Vec<String>>>,
    answering: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl FakeDns {
    fn start(answering: bool) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the DNS server");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let dns = Self {
            port,
            questions: Arc::default(),
            answering: Arc::new(AtomicBool::new(answering)),
            stop: Arc::default(),
        };
        let (questions, answering, stop) =
            (dns.questions.clone(), dns.answering.clone(), dns.stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (questions, answering, stop) =
                            (questions.clone(), answering.clone(), stop.clone());
                        thread::spawn(move || serve(stream, &questions, &answering, &stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        dns
    }

    fn questions(&self) -> Vec<String> {
        self.questions.lock().unwrap().clone()
    }

    fn answer_from_now_on(&self) {
        self.answering.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection: pipelined queries, each answered in turn.
fn serve(
    mut stream: TcpStream,
    questions: &Mutex<Vec<String>>,
    answering: &AtomicBool,
    stop: &AtomicBool,
) {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut inbox = Vec::new();
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => inbox.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        while inbox.len() >= 2 {
            let length = usize::from(u16::from_be_bytes([inbox[0], inbox[1]]));
            if inbox.len() < 2 + length {
                break;
            }
            let query: Vec<u8> = inbox.drain(..2 + length).skip(2).collect();
            let name = question(&query);
            questions.lock().unwrap().push(name.clone());
            while !answering.load(Ordering::SeqCst) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let listed = name == format!("2.2.0.192.{ZONE}");
            if stream.write_all(&answer(&query, listed)).is_err() {
                return;
            }
        }
    }
}

fn question(query: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut at = 12;
    while at < query.len() && query[at] != 0 {
        let length = usize::from(query[at]);
        labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + length]).into_owned());
        at += 1 + length;
    }
    labels.join(".")
}

/// The framed answer: one A record 127.0.0.2, or NXDOMAIN.
fn answer(query: &[u8], listed: bool) -> Vec<u8> {
    let mut message = query[..2].to_vec();
    message.extend_from_slice(if listed { &[0x81, 0x80] } else { &[0x81, 0x83] });
    message.extend_from_slice(&[0, 1, 0, u8::from(listed), 0, 0, 0, 0]);
    message.extend_from_slice(&query[12..]);
    if listed {
        message.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2]);
    }
    let mut framed = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    framed.extend(message);
    framed
}

/// milter-manager with two children: `listed-only` ("DNSBL Listed") and `unlisted-only`
/// ("Not DNSBL Listed"), asking the test's DNS server.
struct Setup {
    _dirs: Vec<TempDir>,
    dir: TempDir,
    listed_only: TestClient,
    unlisted_only: TestClient,
    manager: ManagerProcess,
}

impl Setup {
    fn start(name: &str, dns: &FakeDns, timeout: u32) -> Self {
        let dir = TempDir::new(name);
        let dirs = vec![TempDir::new(&format!("{name}-a")), TempDir::new(&format!("{name}-b"))];
        let listed_only = TestClient::start_unix(&dirs[0], &[]);
        let unlisted_only = TestClient::start_unix(&dirs[1], &[]);
        let config = format!(
            "[dnsbl]\ndefault_services = false\nservices = [\"{ZONE}=127.0.0.2\"]\n\
             name_servers = [\"127.0.0.1:{}\"]\ntimeout = {timeout}\n\n\
             [milter.\"listed-only\"]\nconnection_spec = \"{}\"\n\
             applicable_conditions = [\"DNSBL Listed\"]\n\n\
             [milter.\"unlisted-only\"]\nconnection_spec = \"{}\"\n\
             applicable_conditions = [\"Not DNSBL Listed\"]\n",
            dns.port, listed_only.spec, unlisted_only.spec
        );
        let manager = ManagerProcess::start(&dir, &config);
        Self { _dirs: dirs, dir, listed_only, unlisted_only, manager }
    }

    fn log(&self) -> String {
        self.manager.log()
    }

    fn test_server(&self, name: &str, client: &str) -> Command {
        let mut command = Command::new(TEST_SERVER);
        command
            .args(["-s", &self.manager.spec()])
            .args(["--connect-address", client])
            // Longer than any lookup here may hold the answer to CONNECT.
            .args(["--reading-timeout", "120"])
            .args(["--from", "<sender@example.org>", "--recipient", "<rcpt@example.com>"])
            .stdin(Stdio::null())
            .stdout(File::create(self.dir.join(&format!("{name}.stdout"))).unwrap())
            .stderr(File::create(self.dir.join(&format!("{name}.stderr"))).unwrap());
        command
    }

    /// Runs one session from `client` to the end; it must pass.
    fn session(&self, name: &str, client: &str) {
        let mut command = self.test_server(name, client);
        let out = run(&self.dir, name, &mut command, Duration::from_secs(30));
        assert!(
            out.stdout.contains("status: pass"),
            "{}\n--- log:\n{}",
            out.describe(),
            self.log()
        );
    }

    /// Whether a child saw the CONNECT of `client` (a stopped child is quit before it).
    fn saw(client: &TestClient, address: &str) -> bool {
        client.report().contains(&format!("address=<{address}>"))
    }
}

#[test]
fn dnsbl_listed_applies_a_milter_to_listed_clients_only() {
    let dns = FakeDns::start(true);
    let setup = Setup::start("manager-dnsbl", &dns, 5);

    let listed = format!("inet:4242@[{LISTED}]");
    setup.session("listed", &listed);
    assert!(Setup::saw(&setup.listed_only, &listed), "{}", setup.listed_only.report());
    assert!(!Setup::saw(&setup.unlisted_only, &listed), "{}", setup.unlisted_only.report());
    assert!(setup.log().contains("[dnsbl] 192.0.2.2 is listed by bl.test (127.0.0.2)"));

    let unlisted = format!("inet:4243@[{UNLISTED}]");
    setup.session("unlisted", &unlisted);
    assert!(!Setup::saw(&setup.listed_only, &unlisted), "{}", setup.listed_only.report());
    assert!(Setup::saw(&setup.unlisted_only, &unlisted), "{}", setup.unlisted_only.report());

    // IPv6 and local clients are not looked up: they count as not listed.
    let ipv6 = "inet6:4244@[2001:db8::1]";
    setup.session("ipv6", ipv6);
    let local = format!("unix:{}", setup.dir.join("smtpd.sock").display());
    setup.session("local", &local);
    for client in [ipv6, &local] {
        assert!(!Setup::saw(&setup.listed_only, client), "{}", setup.listed_only.report());
        assert!(Setup::saw(&setup.unlisted_only, client), "{}", setup.unlisted_only.report());
    }
    assert_eq!(dns.questions(), ["2.2.0.192.bl.test", "3.2.0.192.bl.test"]);
    assert!(!setup.log().contains("counts as not listed"), "{}", setup.log());
}

#[test]
fn a_silent_name_server_makes_the_client_not_listed_after_the_timeout() {
    let dns = FakeDns::start(false);
    let setup = Setup::start("manager-dnsbl-silent", &dns, 1);
    let listed = format!("inet:4242@[{LISTED}]");
    let started = Instant::now();
    setup.session("silent", &listed);
    // The session waited for the lookup, then went on as for an unlisted client.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(dns.questions(), ["2.2.0.192.bl.test"]);
    assert!(!Setup::saw(&setup.listed_only, &listed), "{}", setup.listed_only.report());
    assert!(Setup::saw(&setup.unlisted_only, &listed), "{}", setup.unlisted_only.report());
    let log = setup.log();
    assert!(
        log.contains("[dnsbl] 192.0.2.2 counts as not listed by bl.test: no answer within 1 s"),
        "{log}"
    );
}

#[test]
fn a_pending_lookup_does_not_hold_up_other_sessions() {
    let dns = FakeDns::start(false);
    let setup = Setup::start("manager-dnsbl-pending", &dns, 60);
    let listed = format!("inet:4242@[{LISTED}]");
    let mut waiting =
        ChildGuard::spawn("milter-test-server", &mut setup.test_server("waiting", &listed));
    assert!(
        wait_for(deadline(), || !dns.questions().is_empty()),
        "the lookup never reached the DNS server\n{}",
        setup.log()
    );
    // The one process of the manager serves a session from a local client meanwhile.
    let local = format!("unix:{}", setup.dir.join("smtpd.sock").display());
    setup.session("meanwhile", &local);
    assert!(Setup::saw(&setup.unlisted_only, &local), "{}", setup.unlisted_only.report());
    assert!(waiting.exited().is_none(), "the first session is still waiting for DNS");
    assert!(!Setup::saw(&setup.listed_only, &listed) && !Setup::saw(&setup.unlisted_only, &listed));

    dns.answer_from_now_on();
    let status = waiting.wait_until(deadline());
    let stdout = read_lossy(&setup.dir.join("waiting.stdout"));
    assert!(status.success() && stdout.contains("status: pass"), "{stdout}\n{}", setup.log());
    assert!(Setup::saw(&setup.listed_only, &listed), "{}", setup.listed_only.report());
    assert!(!Setup::saw(&setup.unlisted_only, &listed), "{}", setup.unlisted_only.report());
}
