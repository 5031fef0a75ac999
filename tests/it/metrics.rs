//! The metrics through the real binaries: a manager with two workers and two child
//! milters (one answers, one cannot be reached) counts a known number of sessions; the
//! page at `controller.metrics_connection_spec` and `milter-manager-ctl metrics` say the
//! same exact counts, `promtool` accepts the text, the counts survive a worker killed
//! with SIGKILL, and the HTTP server refuses what it does not serve and keeps serving.
//! The munin plugin (packaging/munin/milter_manager) reads the same numbers.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::milter::{milter_session, serve_tcp};
use support::{
    ctl, deadline, free_tcp_port, kill, require_program, run, source_path, wait_for,
    ManagerProcess, TempDir, CTL, TEST_SERVER,
};

use milter_manager::protocol::{Command as MilterCommand, Reply};

/// One session through the manager.
fn session(dir: &TempDir, manager: &ManagerProcess) {
    let mut command = Command::new(TEST_SERVER);
    command.args(["-s", &manager.spec(), "--from", "<a@example.org>", "-r", "<b@example.com>"]);
    let finished = run(dir, "test-server", &mut command, Duration::from_secs(60));
    assert!(finished.status.success(), "milter-test-server failed: {}", finished.stderr);
}

/// Sends `request` to the metrics port as it is and reads the whole answer.
fn http(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics page");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    String::from_utf8(answer).expect("a text answer")
}

/// The body of `GET /metrics`, after checking the status line and content type.
fn scrape(port: u16) -> String {
    let answer = http(port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
    body.to_string()
}

/// The value of the sample `name{labels}` (exactly that line), or a panic showing the text.
fn value(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{sample}: {e}"))
}

/// The counts a test checks, as they should be after `n` sessions.
fn assert_counts(text: &str, n: u64) {
    assert_eq!(value(text, "milter_manager_sessions_done_total"), n);
    assert_eq!(value(text, "milter_manager_sessions_total{stage=\"quit\",status=\"accept\"}"), n);
    let good = |family: &str, rest: &str| format!("{family}{{milter=\"good\"{rest}}}");
    let down = |family: &str, rest: &str| format!("{family}{{milter=\"down\"{rest}}}");
    let statuses = "milter_manager_milter_sessions_total";
    assert_eq!(value(text, &good(statuses, ",status=\"accept\"")), n);
    assert_eq!(value(text, &good(statuses, ",status=\"pass\"")), 0);
    assert_eq!(value(text, &down(statuses, ",status=\"accept\"")), n, "its fallback status");
    assert_eq!(value(text, &good("milter_manager_milter_connect_failures_total", "")), 0);
    assert_eq!(value(text, &down("milter_manager_milter_connect_failures_total", "")), n);
    assert_eq!(value(text, &down("milter_manager_milter_fallbacks_total", "")), n);
    assert_eq!(value(text, &good("milter_manager_milter_fallbacks_total", "")), 0);
    assert_eq!(value(text, &down("milter_manager_milter_timeouts_total", "")), 0);
    let answers = "milter_manager_milter_answer_duration_seconds";
    for stage in ["negotiate", "connect", "helo", "envelope-from", "end-of-message"] {
        let count = format!("{answers}_count{{milter=\"good\",stage=\"{stage}\"}}");
        assert_eq!(value(text, &count), n, "{stage}");
        let inf = format!("{answers}_bucket{{milter=\"good\",stage=\"{stage}\",le=\"+Inf\"}}");
        assert_eq!(value(text, &inf), n, "{stage}");
    }
    assert!(!text.contains(&format!("{answers}_count{{milter=\"down\"")), "it never answered");
}

/// Runs `promtool check metrics` on `text`: its lint accepts it.
fn assert_promtool_accepts(text: &str) {
    require_program("/usr/bin/promtool", "prometheus");
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics refused it:\n{}{}\n--- text:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn counts_are_exact_survive_a_killed_worker_and_the_page_stays_bounded() {
    let dir = TempDir::new("metrics");
    let good = serve_tcp(|stream, _| {
        milter_session(stream, |command| match command {
            MilterCommand::EndOfMessage { .. } => vec![Reply::Accept],
            _ => vec![Reply::Continue],
        })
    });
    let config = format!(
        "[manager]\nn_workers = 2\n\
         [controller]\nconnection_spec = \"unix:{ctl}\"\n\
         metrics_connection_spec = \"inet:0@[127.0.0.1]\"\n\
         [milter.good]\nconnection_spec = \"inet:{good}@[127.0.0.1]\"\n\
         [milter.down]\nconnection_spec = \"inet:{down}@[127.0.0.1]\"\n",
        ctl = dir.join("ctl.sock").display(),
        down = free_tcp_port(),
    );
    let manager = ManagerProcess::start_until(&dir, &config, "supervising 2 workers");
    let port = metrics_port(&manager);
    let ctl_spec = format!("unix:{}", dir.join("ctl.sock").display());
    let ctl_metrics = || {
        let out = ctl(&dir, "ctl", &["-s", &ctl_spec, "metrics"]);
        assert!(out.status.success(), "milter-manager-ctl metrics: {}", out.stderr);
        out.stdout
    };

    for _ in 0..3 {
        session(&dir, &manager);
    }
    // A session is counted when the worker is done with it, a moment after the MTA is.
    assert!(wait_for(deadline(), || scrape(port).contains("sessions_done_total 3\n")));
    let page = scrape(port);
    assert_counts(&page, 3);
    assert_eq!(value(&page, "milter_manager_workers{generation=\"1\"}"), 2);
    assert_eq!(value(&page, "milter_manager_sessions_in_flight"), 0);
    assert_promtool_accepts(&page);
    let answered = ctl_metrics();
    assert_counts(&answered, 3);
    assert_promtool_accepts(&answered);

    let workers = manager.wait_for_workers(2);
    kill(workers[0], "KILL");
    assert!(
        wait_for(deadline(), || {
            let now = manager.workers();
            now.len() == 2 && !now.contains(&workers[0])
        }),
        "the killed worker was not replaced:\n{}",
        manager.log()
    );
    for _ in 0..2 {
        session(&dir, &manager);
    }
    assert!(wait_for(deadline(), || scrape(port).contains("sessions_done_total 5\n")));
    let page = scrape(port);
    assert_counts(&page, 5);
    assert_counts(&ctl_metrics(), 5);

    let status = |answer: &str| answer.lines().next().unwrap_or("").to_string();
    let mut too_large = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    too_large.resize(9 * 1024, b'a');
    assert_eq!(status(&http(port, &too_large)), "HTTP/1.1 413 Content Too Large");
    assert_eq!(status(&http(port, b"GET /other HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
    let post = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status(&post), "HTTP/1.1 405 Method Not Allowed");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    assert_eq!(status(&http(port, b"nonsense\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    assert_counts(&scrape(port), 5);

    assert_munin_plugin_reads(&manager, port);

    let reloaded = ctl(&dir, "reload", &["-s", &ctl_spec, "reload"]);
    assert!(reloaded.status.success(), "reload: {}", reloaded.stderr);
    let page = scrape(port);
    assert_eq!(value(&page, "milter_manager_reloads_total{result=\"ok\"}"), 1);
    assert_eq!(value(&page, "milter_manager_workers{generation=\"2\"}"), 2);
    assert_counts(&page, 5);
    manager.write_config(&format!("{config}[manager]\n"));
    let refused = ctl(&dir, "reload-bad", &["-s", &ctl_spec, "reload"]);
    assert!(!refused.status.success(), "a duplicate [manager] table must not load");
    let page = scrape(port);
    assert_eq!(value(&page, "milter_manager_reloads_total{result=\"failed\"}"), 1);
    assert_eq!(value(&page, "milter_manager_reloads_total{result=\"ok\"}"), 1);
}

/// The metrics page's port, from the manager's log line.
fn metrics_port(manager: &ManagerProcess) -> u16 {
    let log = manager.log();
    log.lines()
        .find_map(|line| line.split_once("metrics page at http://127.0.0.1:")?.1.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no metrics page in the log:\n{log}"))
}

/// Serving alone (`n_workers = 0`) and without a controller, the control process serves
/// the page: sessions are counted (a child that does not answer in time as a timeout),
/// and a reload (SIGHUP to the serving process) brings the new milters to the page.
#[test]
fn a_manager_serving_alone_serves_the_page_and_hears_of_reloads() {
    let dir = TempDir::new("metrics-alone");
    let answering = |stream, _| milter_session(stream, |_| vec![Reply::Continue]);
    let first = serve_tcp(answering);
    // It negotiates, then never answers CONNECT.
    let silent = serve_tcp(|stream, _| milter_session(stream, |_| vec![]));
    let config = format!(
        "[manager]\nn_workers = 0\n\
         [controller]\nmetrics_connection_spec = \"inet:0@[127.0.0.1]\"\n\
         [milter.first]\nconnection_spec = \"inet:{first}@[127.0.0.1]\"\n\
         [milter.silent]\nconnection_spec = \"inet:{silent}@[127.0.0.1]\"\n\
         reading_timeout = 0.2\n"
    );
    let mut manager = ManagerProcess::start_until(&dir, &config, "metrics page at");
    let port = metrics_port(&manager);
    session(&dir, &manager);
    let counted = "milter_manager_milter_sessions_total{milter=\"first\",status=\"pass\"} 1\n";
    assert!(wait_for(deadline(), || scrape(port).contains(counted)), "{}", scrape(port));
    let page = scrape(port);
    assert_eq!(value(&page, "milter_manager_sessions_done_total"), 1);
    assert_eq!(value(&page, "milter_manager_milter_timeouts_total{milter=\"silent\"}"), 1);
    assert_eq!(value(&page, "milter_manager_milter_fallbacks_total{milter=\"silent\"}"), 1);
    assert_eq!(value(&page, "milter_manager_milter_timeouts_total{milter=\"first\"}"), 0);
    assert!(!page.contains("milter_manager_workers{"), "no workers:\n{page}");
    assert!(page.contains("milter_manager_process_resident_memory_bytes{process=\"supervisor\"} "));
    assert_promtool_accepts(&page);

    let second = serve_tcp(answering);
    manager.write_config(&format!(
        "{config}[milter.second]\nconnection_spec = \"inet:{second}@[127.0.0.1]\"\n"
    ));
    manager.signal("HUP");
    let reloaded = "milter_manager_reloads_total{result=\"ok\"} 1\n";
    assert!(wait_for(deadline(), || scrape(port).contains(reloaded)), "{}", manager.log());
    session(&dir, &manager);
    let counted = "milter_manager_milter_sessions_total{milter=\"second\",status=\"pass\"} 1\n";
    assert!(wait_for(deadline(), || scrape(port).contains(counted)), "{}", scrape(port));
    assert_eq!(value(&scrape(port), "milter_manager_generation"), 2);
}

/// HTTP over a unix socket is refused by the configuration check, with the file's line.
#[test]
fn a_unix_metrics_spec_is_refused_by_the_configuration() {
    let dir = TempDir::new("metrics-unix");
    let conf = dir.join("conf");
    let file = conf.join("milter-manager.toml");
    support::write_file(&file, "[controller]\nmetrics_connection_spec = \"unix:/run/m.sock\"\n");
    let mut command = Command::new(support::MANAGER);
    command.arg("-c").arg(&conf).arg("--check-config");
    let out = run(&dir, "manager", &mut command, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "milter-manager: {}:2: controller.metrics_connection_spec: unix:/run/m.sock is not \
             an inet: address: HTTP is served over TCP (inet:PORT@[ADDRESS])\n",
            file.display()
        )
    );
}

/// The munin plugin passes shellcheck, and both ways of reading (milter-manager-ctl, the
/// page) give the counts of 5 sessions.
fn assert_munin_plugin_reads(manager: &ManagerProcess, port: u16) {
    require_program("/usr/bin/shellcheck", "shellcheck");
    let plugin = source_path("packaging/munin/milter_manager");
    let out = Command::new("shellcheck").arg("--severity=style").arg(&plugin).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let ctl_env = [("ctl", CTL.to_string()), ("config_dir", manager.conf.display().to_string())];
    for env in [ctl_env.to_vec(), vec![("url", url)]] {
        let run_plugin = |argument: &str| {
            let out = Command::new(&plugin).arg(argument).envs(env.iter().cloned()).output();
            let out = out.expect("run the munin plugin");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run_plugin("autoconf"), "yes\n");
        let config = run_plugin("config");
        for line in [
            "multigraph milter_manager_sessions",
            "temporary_failure.label temporary-failure",
            "multigraph milter_manager_milter_good",
            "connect_failures.type DERIVE",
        ] {
            assert!(config.lines().any(|l| l == line), "{line} missing from\n{config}");
        }
        let fetched = run_plugin("fetch");
        let graph = |name: &str| {
            let start = format!("multigraph {name}\n");
            let rest = &fetched[fetched.find(&start).unwrap_or_else(|| panic!("{fetched}"))..];
            let rest = &rest[start.len()..];
            rest[..rest.find("multigraph").unwrap_or(rest.len())].to_string()
        };
        let sessions = graph("milter_manager_sessions");
        assert!(sessions.starts_with("pass.value 0\naccept.value 5\nskip.value 0\n"), "{fetched}");
        assert!(graph("milter_manager_in_flight").contains("sessions.value 0\n"), "{fetched}");
        let good = graph("milter_manager_milter_good");
        assert!(
            good.contains("accept.value 5\n") && good.contains("fallbacks.value 0\n"),
            "{good}"
        );
        let down = graph("milter_manager_milter_down");
        assert!(down.contains("connect_failures.value 5\n"), "{down}");
        assert!(down.contains("fallbacks.value 5\n"), "{down}");
    }
}
