//! milter-manager-log-analyzer over recorded logs (ours and the original's format), a
//! growing log, a rotated set, standard input and damaged input: the numbers it stores are
//! checked exactly, and the site it writes has every chart.

use crate::support::{self, ManagerOptions, ManagerProcess, TempDir, TestClient, TEST_SERVER};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use milter_manager::tools::log_analyzer::layout::*;
use milter_manager::tools::log_analyzer::store::Store;

const ANALYZER: &str = env!("CARGO_BIN_EXE_milter-manager-log-analyzer");

fn fixture(name: &str) -> PathBuf {
    support::source_path(&format!("tests/fixtures/log-analyzer/{name}"))
}

/// Runs the analyzer (local time UTC, for classic syslog timestamps) on `logs`.
fn analyze(output: &Path, logs: &[&Path]) -> Output {
    analyze_in_zone(output, logs, "UTC")
}

/// Runs the analyzer on `logs`, with local time `zone` (a `TZ` value).
fn analyze_in_zone(output: &Path, logs: &[&Path], zone: &str) -> Output {
    let mut command = Command::new(ANALYZER);
    command.env("TZ", zone).arg("--output-directory").arg(output).stdin(Stdio::null());
    for log in logs {
        command.arg(format!("--log={}", log.display()));
    }
    command.output().expect("run milter-manager-log-analyzer")
}

fn analyze_stdin(output: &Path, input: &[u8]) -> Output {
    let mut child = Command::new(ANALYZER)
        .env("TZ", "UTC")
        .arg("--output-directory")
        .arg(output)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run milter-manager-log-analyzer");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_quiet_success(output: &Output) {
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{:?}: {}",
        output.status,
        stderr(output)
    );
}

fn store(output: &Path) -> Store {
    let bytes = std::fs::read(output.join("milter-manager-log-analyzer.store")).expect("a store");
    Store::decode(&bytes).expect("a readable store")
}

/// The nonzero counters named `names`, starting at `first`, over everything stored.
fn named(totals: &[u64], names: &[&'static str], first: usize) -> BTreeMap<&'static str, u64> {
    names
        .iter()
        .enumerate()
        .map(|(i, &name)| (name, totals[first + i]))
        .filter(|&(_, n)| n > 0)
        .collect()
}

fn statuses(store: &Store) -> BTreeMap<&'static str, u64> {
    named(&store.sessions.totals(300), &STATUSES, SESSION_STATUS)
}

fn stages(store: &Store) -> BTreeMap<&'static str, u64> {
    named(&store.sessions.totals(300), &STAGES, SESSION_STAGE)
}

fn modifications(store: &Store) -> BTreeMap<&'static str, u64> {
    named(&store.sessions.totals(300), &MODIFICATIONS, SESSION_MODIFICATION)
}

fn milters(store: &Store) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    store
        .milters()
        .map(|(name, archives)| {
            (name.to_string(), named(&archives.totals(300), &STATUSES, MILTER_STATUS))
        })
        .collect()
}

fn map<const N: usize>(entries: [(&'static str, u64); N]) -> BTreeMap<&'static str, u64> {
    entries.into_iter().collect()
}

#[test]
fn the_originals_log_is_counted_exactly() {
    let dir = TempDir::new("analyzer-original");
    let log = fixture("original-mail.log");
    let out = analyze(dir.path(), &[&log]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The one cut line is told of, with its place.
    let expected = format!(
        "milter-manager-log-analyzer: skipped 1 unreadable statistics line(s), the first at {}, byte 1900\n",
        log.display()
    );
    assert_eq!(stderr(&out), expected);
    let store = store(dir.path());
    assert_eq!(
        statuses(&store),
        map([
            ("pass", 1),
            ("accept", 1),
            ("reject", 1),
            ("temporary-failure", 1),
            ("quarantine", 1),
            ("abort", 1)
        ])
    );
    assert_eq!(
        stages(&store),
        map([("connect", 1), ("envelope-recipient", 1), ("data", 1), ("end-of-message", 2)])
    );
    let totals = store.sessions.totals(300);
    assert_eq!((totals[SESSION_DISCONNECTED], totals[SESSION_STARTED]), (1, 5));
    assert_eq!(modifications(&store), map([("spam", 2), ("virus", 1)]));
    let milters = milters(&store);
    assert_eq!(milters["clamav"], map([("pass", 1), ("accept", 1), ("stop", 1)]));
    assert_eq!(milters["spamass"], map([("pass", 2), ("reject", 1)]));
    // Classic timestamps are local time (UTC here): the first session is in 10:00-10:05.
    let ten = 1_796_205_600; // 2026-12-02T10:00:00Z
    let row = store.sessions.ring(300).unwrap().row(ten).unwrap();
    assert_eq!(row[SESSION_STATUS + index_of(&STATUSES, "pass")], 1);
    assert_eq!(row[SESSION_STATUS..SESSION_STATUS + STATUSES.len()].iter().sum::<u32>(), 2);
}

#[test]
fn classic_timestamps_across_a_daylight_saving_change_keep_their_times() {
    // Central European time as a POSIX rule (no tzdata needed): +1, and +2 from the last
    // Sunday of March, 02:00 local, which was 2026-03-29T01:00Z.
    let zone = "CET-1CEST,M3.5.0,M10.5.0/3";
    let dir = TempDir::new("analyzer-dst");
    let log = dir.join("mail.log");
    let line = |time: &str, status: &str| {
        format!(
            "Mar 29 {time} mx milter-manager[1]: [statistics] \
             [session][end][end-of-message][{status}][0.1](1)\n"
        )
    };
    std::fs::write(&log, [line("01:30:00", "pass"), line("03:30:00", "reject")].concat()).unwrap();
    let output = dir.join("site");
    assert_quiet_success(&analyze_in_zone(&output, &[&log], zone));
    let store = store(&output);
    let ring = store.sessions.ring(300).unwrap();
    let midnight = 1_774_742_400; // 2026-03-29T00:00:00Z
    let count = |time: i64, status: &str| {
        ring.row(time).map_or(0, |row| row[SESSION_STATUS + index_of(&STATUSES, status)])
    };
    // 01:30 CET is 00:30Z; 03:30 CEST is 01:30Z, not 02:30Z as December's offset would say.
    assert_eq!(count(midnight + 1800, "pass"), 1);
    assert_eq!(count(midnight + 5400, "reject"), 1);
    assert_eq!(count(midnight + 9000, "reject"), 0);
}

#[test]
fn our_log_files_and_syslog_lines_are_counted_exactly() {
    let dir = TempDir::new("analyzer-ours");
    let out = analyze(dir.path(), &[&fixture("ours.log"), &fixture("ours-rfc3339.log")]);
    assert_quiet_success(&out);
    let store = store(dir.path());
    assert_eq!(
        statuses(&store),
        map([
            ("pass", 3),
            ("accept", 1),
            ("reject", 1),
            ("temporary-failure", 1),
            ("quarantine", 1)
        ])
    );
    assert_eq!(
        stages(&store),
        map([("helo", 1), ("envelope-from", 1), ("end-of-message", 3), ("quit", 1)])
    );
    assert_eq!(modifications(&store), map([("dkim-pass", 1)]));
    let milters = milters(&store);
    assert_eq!(milters["opendkim"], map([("pass", 4), ("accept", 1), ("temporary-failure", 1)]));
    assert_eq!(milters["spam-checker"], map([("pass", 3), ("reject", 1)]));
    // The RFC 3339 line at 11:10:02+01:00 is in the 5 minutes from 10:10Z.
    let ten_ten = 1_796_205_600 + 600;
    let row = store.sessions.ring(300).unwrap().row(ten_ten).unwrap();
    assert_eq!(row[SESSION_STATUS + index_of(&STATUSES, "temporary-failure")], 1);
}

#[test]
fn the_managers_own_log_is_counted() {
    let dir = TempDir::new("analyzer-live");
    let first_dir = TempDir::new("analyzer-live-a");
    let second_dir = TempDir::new("analyzer-live-b");
    let first = TestClient::start_unix(&first_dir, &[]);
    let second = TestClient::start_tcp(&second_dir, &[]);
    let config = format!(
        "[manager]\n\n[milter.\"first\"]\nconnection_spec = \"{}\"\n\n[milter.\"second\"]\nconnection_spec = \"{}\"\n",
        first.spec, second.spec
    );
    let manager = ManagerProcess::start_with(&dir, &config, &ManagerOptions::default());
    for i in 0..3 {
        let mut command = Command::new(TEST_SERVER);
        command.args([
            "-s",
            &manager.spec(),
            "--from",
            "<a@example.org>",
            "--recipient",
            "<b@example.com>",
        ]);
        let out = support::run(&dir, &format!("server-{i}"), &mut command, Duration::from_secs(20));
        assert!(out.status.success(), "{}", out.describe());
    }
    let ended = || manager.log().matches("[statistics] [session][end][").count() == 3;
    assert!(support::wait_for(support::deadline(), ended), "{}", manager.log());
    let output = dir.join("site");
    assert_quiet_success(&analyze(&output, &[&manager.log]));
    let store = store(&output);
    assert_eq!(statuses(&store), map([("pass", 3)]));
    // The MTA's QUIT is the last stage of a session that went through.
    assert_eq!(stages(&store), map([("quit", 3)]));
    let milters = milters(&store);
    assert_eq!(milters["first"], map([("pass", 3)]));
    assert_eq!(milters["second"], map([("pass", 3)]));
}

/// Session end lines of our log format at `minute` past 10:00 on 2026-12-02.
fn session_lines(minutes: std::ops::Range<u32>, status: &str) -> String {
    minutes
        .map(|minute| {
            format!(
                "[2026-12-02T10:{minute:02}:00.000Z]: [info] other\n\
                 [2026-12-02T10:{minute:02}:00.000Z]: [statistics] [session][end][data][{status}][0.5]({minute})\n"
            )
        })
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_growing_log_is_read_once_and_incrementally() {
    let dir = TempDir::new("analyzer-growing");
    let log = dir.join("mail.log");
    let output = dir.join("site");
    append(&log, &session_lines(0..10, "pass"));
    assert_quiet_success(&analyze(&output, &[&log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 10)]));
    let store_file = output.join("milter-manager-log-analyzer.store");
    let before = std::fs::read(&store_file).unwrap();

    // Nothing new: nothing added.
    assert_quiet_success(&analyze(&output, &[&log]));
    assert_eq!(std::fs::read(&store_file).unwrap(), before);

    // New lines, the last one still being written.
    append(&log, &session_lines(10..15, "reject"));
    append(&log, "[2026-12-02T10:20:00.000Z]: [statistics] [session][end][data][accept][0.5](20)");
    assert_quiet_success(&analyze(&output, &[&log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 10), ("reject", 5)]));
    append(&log, "\n");
    assert_quiet_success(&analyze(&output, &[&log]));
    assert_quiet_success(&analyze(&output, &[&log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 10), ("reject", 5), ("accept", 1)]));
}

fn gzip(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&bytes).unwrap();
    encoder.finish().unwrap();
}

#[test]
fn a_rotated_set_is_read_in_order_without_counting_twice() {
    let dir = TempDir::new("analyzer-rotated");
    let output = dir.join("site");
    let (log, log1, log2) =
        (dir.join("mail.log"), dir.join("mail.log.1"), dir.join("mail.log.2.gz"));
    append(&log, &session_lines(0..4, "pass"));
    assert_quiet_success(&analyze(&output, &[&log, &log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 4)]));

    // Rotated: mail.log is now mail.log.1 and went on a little before the new one began.
    std::fs::rename(&log, &log1).unwrap();
    append(&log1, &session_lines(4..6, "pass"));
    append(&log, &session_lines(6..9, "reject"));
    assert_quiet_success(&analyze(&output, &[&log, &log1]));
    assert_eq!(statuses(&store(&output)), map([("pass", 6), ("reject", 3)]));

    // Rotated again: mail.log.1 compressed to mail.log.2.gz, another inode.
    gzip(&log1, &log2);
    std::fs::remove_file(&log1).unwrap();
    std::fs::rename(&log, &log1).unwrap();
    append(&log, &session_lines(9..11, "accept"));
    assert_quiet_success(&analyze(&output, &[&log, &log1, &log2]));
    assert_eq!(statuses(&store(&output)), map([("pass", 6), ("reject", 3), ("accept", 2)]));

    // The same set again, a file named twice: idempotent.
    assert_quiet_success(&analyze(&output, &[&log2, &log1, &log, &log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 6), ("reject", 3), ("accept", 2)]));
}

#[test]
fn a_log_copied_then_truncated_is_read_once() {
    let dir = TempDir::new("analyzer-copytruncate");
    let output = dir.join("site");
    let (log, log1) = (dir.join("mail.log"), dir.join("mail.log.1"));
    append(&log, &session_lines(0..4, "pass"));
    assert_quiet_success(&analyze(&output, &[&log]));
    append(&log, &session_lines(4..5, "pass"));
    // logrotate's copytruncate: a copy (another inode), then the same inode emptied.
    std::fs::copy(&log, &log1).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &session_lines(5..7, "reject"));
    assert_quiet_success(&analyze(&output, &[&log1, &log]));
    assert_eq!(statuses(&store(&output)), map([("pass", 5), ("reject", 2)]));
}

#[test]
fn standard_input_read_twice_counts_once() {
    let dir = TempDir::new("analyzer-stdin");
    let output = dir.join("site");
    let first = session_lines(0..5, "pass");
    assert_quiet_success(&analyze_stdin(&output, first.as_bytes()));
    let more = format!("{first}{}", session_lines(5..7, "reject"));
    assert_quiet_success(&analyze_stdin(&output, more.as_bytes()));
    assert_quiet_success(&analyze_stdin(&output, more.as_bytes()));
    assert_eq!(statuses(&store(&output)), map([("pass", 5), ("reject", 2)]));
    // Compressed (zcat-less cron lines): the same lines and one more.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(format!("{more}{}", session_lines(7..8, "accept")).as_bytes()).unwrap();
    assert_quiet_success(&analyze_stdin(&output, &encoder.finish().unwrap()));
    assert_eq!(statuses(&store(&output)), map([("pass", 5), ("reject", 2), ("accept", 1)]));
}

#[test]
fn bad_input_is_told_in_one_line_each_and_counting_goes_on() {
    let dir = TempDir::new("analyzer-bad");
    let output = dir.join("site");
    // A compressed log cut short.
    let whole = dir.join("whole.log");
    append(&whole, &session_lines(0..40, "pass"));
    let cut = dir.join("cut.log.1.gz");
    gzip(&whole, &cut);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // A log from the future and garbage.
    let odd = dir.join("odd.log");
    append(&odd, "[2999-01-01T00:00:00.000Z]: [statistics] [session][end][data][pass][0.5](1)\n");
    append(&odd, "[2026-12-02T11:00:00.000Z]: [statistics] [session][end][data][pass][oops](2)\n");
    append(&odd, "\u{0}\u{1}binary]: [statistics] \u{ff}\n");
    append(&odd, &session_lines(50..51, "reject"));
    let out = analyze(&output, &[&cut, &odd, &dir.join("missing.log")]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("cut.log.1.gz: compressed data truncated or damaged after byte"),
        "{text}"
    );
    assert!(lines[1].contains("cannot read") && lines[1].contains("missing.log"), "{text}");
    assert!(
        lines[2].contains(&format!(
            "skipped 2 unreadable statistics line(s), the first at {}, byte 76",
            odd.display()
        )),
        "{text}"
    );
    assert!(lines[3].contains("skipped 1 statistics line(s) dated in the future"), "{text}");
    let counted = statuses(&store(&output));
    assert_eq!(counted["reject"], 1);
    assert!(counted["pass"] > 0 && counted["pass"] < 40, "{counted:?}");
}

#[test]
fn a_damaged_state_or_store_is_told_and_rebuilt_never_lost() {
    let dir = TempDir::new("analyzer-damaged");
    let output = dir.join("site");
    let log = dir.join("mail.log");
    append(&log, &session_lines(0..3, "pass"));
    assert_quiet_success(&analyze(&output, &[&log]));

    // A truncated state: positions are rebuilt, the store's watermark keeps the count.
    let state = output.join("milter-manager-log-analyzer.state");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, &text[..text.len() - 5]).unwrap();
    append(&log, &session_lines(3..4, "reject"));
    let out = analyze(&output, &[&log]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        format!("milter-manager-log-analyzer: state {}: truncated (no end line); rebuilding it (lines the store has counted are skipped)\n", state.display())
    );
    assert_eq!(statuses(&store(&output)), map([("pass", 3), ("reject", 1)]));

    // A state of another version.
    std::fs::write(&state, "milter-manager-log-analyzer state 99\nend\n").unwrap();
    let out = analyze(&output, &[&log]);
    assert!(stderr(&out).contains("not a state file of this version"), "{}", stderr(&out));
    assert_eq!(statuses(&store(&output)), map([("pass", 3), ("reject", 1)]));

    // A damaged store is kept aside, and counting starts again from the logs.
    let store_file = output.join("milter-manager-log-analyzer.store");
    let bytes = std::fs::read(&store_file).unwrap();
    std::fs::write(&store_file, &bytes[..bytes.len() / 2]).unwrap();
    let out = analyze(&output, &[&log]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("checksum mismatch; kept as"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(output.join("milter-manager-log-analyzer.store.bad")).unwrap(),
        &bytes[..bytes.len() / 2]
    );
    assert_eq!(statuses(&store(&output)), map([("pass", 3), ("reject", 1)]));
}

/// The texts of an SVG file (plotters writes each on a line of its own).
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    svg.split("<text")
        .skip(1)
        .filter_map(|text| {
            Some(text.split_once('>')?.1.split_once("</text>")?.0.trim().to_string())
        })
        .collect()
}

#[test]
fn the_site_has_every_chart_with_title_axes_legend_and_table() {
    let dir = TempDir::new("analyzer-site");
    let output = dir.join("site");
    assert!(analyze(&output, &[&fixture("original-mail.log")]).status.success());
    // Drawn again from the store alone.
    let out = Command::new(ANALYZER)
        .arg("--no-update-db")
        .arg(format!("--output-directory={}", output.display()))
        .output()
        .unwrap();
    assert_quiet_success(&out);
    let html = std::fs::read_to_string(output.join("index.html")).unwrap();
    assert!(!html.contains("<script"));
    for range in ["day", "week", "month", "year"] {
        for (chart, title, unit, legend) in [
            (
                "sessions",
                "Sessions by final status",
                "sessions per minute",
                &["pass", "reject", "quarantine", "disconnected"][..],
            ),
            (
                "milter-0-clamav",
                "Child milter clamav: sessions by status",
                "sessions per minute",
                &["pass", "stop"],
            ),
            (
                "milter-1-spamass",
                "Child milter spamass: sessions by status",
                "sessions per minute",
                &["reject"],
            ),
            (
                "stages",
                "Sessions by the stage they ended in",
                "sessions per minute",
                &["connect", "end-of-message"],
            ),
            ("elapsed", "Session duration percentiles", "seconds", &["median", "99th percentile"]),
            (
                "modifications",
                "Headers added by child milters, by kind",
                "headers per minute",
                &["spam", "virus"],
            ),
        ] {
            let file = format!("{chart}.{range}.svg");
            let texts = svg_texts(&output.join(&file));
            let wanted_title = texts.iter().any(|text| text.starts_with(title));
            assert!(wanted_title, "{file}: no title {title:?} in {texts:?}");
            for wanted in [unit].iter().chain(legend) {
                assert!(
                    texts.iter().any(|text| text == wanted),
                    "{file}: no {wanted:?} in {texts:?}"
                );
            }
            assert!(html.contains(&format!("<img src=\"{file}\"")), "{file} not on the page");
        }
    }
    // A table of the data beside each chart.
    assert_eq!(html.matches("<table>").count(), 24);
    assert!(html.contains("<tr><th scope=\"row\">2026-12-02 10:00</th>"), "{html}");
}

/// Opens `page` in headless Chromium: the lines it logged to its console, and the
/// screenshot.
fn open_in_browser(dir: &TempDir, page: &Path) -> (Vec<String>, PathBuf) {
    support::require_program("/usr/bin/chromium", "chromium");
    let shot =
        dir.join(&format!("{}.png", page.file_stem().expect("a page name").to_string_lossy()));
    let profile = dir.join("chromium-profile");
    let mut command = Command::new("/usr/bin/chromium");
    command
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .args(["--window-size=1280,1600", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()));
    let out = support::run(dir, "chromium", &mut command, Duration::from_secs(120));
    assert!(out.status.success(), "{}", out.describe());
    // Chromium logs what the page wrote to its console as `INFO:CONSOLE:LINE] "..."`.
    let console = out.stderr.lines().filter(|l| l.contains(":CONSOLE")).map(String::from).collect();
    (console, shot)
}

/// The share of a screenshot's pixels that are not white.
fn inked(png_path: &Path) -> f64 {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).expect("the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("its pixels");
    let channels = frame.color_type.samples();
    let bytes = &pixels[..frame.buffer_size()];
    let total = bytes.len() / channels;
    let inked = bytes.chunks(channels).filter(|p| p.iter().take(3).any(|c| *c < 0xf0)).count();
    inked as f64 / total as f64
}

#[test]
fn the_page_loads_in_a_real_browser_without_errors_and_is_not_blank() {
    let dir = TempDir::new("analyzer-browser");
    let site = dir.join("site");
    assert_quiet_success(&analyze(&site, &[&fixture("ours.log")]));
    let index = site.join("index.html");
    // Every chart the page shows is there (a missing file would leave an empty frame).
    let html = std::fs::read_to_string(&index).unwrap();
    let sources: Vec<&str> =
        html.split("src=\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    assert!(sources.len() >= 4 * 5, "one chart per kind and period: {sources:?}");
    for source in &sources {
        assert!(site.join(source).is_file(), "{source} is shown but not written");
    }
    let (console, shot) = open_in_browser(&dir, &index);
    assert!(console.is_empty(), "the browser's console: {console:#?}");
    let share = inked(&shot);
    assert!(share > 0.02, "the screenshot is {:.2}% ink: blank", share * 100.0);

    // The same checks see a page that writes to the console, and one with nothing on it.
    let noisy = site.join("noisy.html");
    std::fs::write(&noisy, "<!DOCTYPE html><title>x</title><script>console.error('x')</script>")
        .unwrap();
    let (console, shot) = open_in_browser(&dir, &noisy);
    assert_eq!(console.len(), 1, "{console:#?}");
    assert!(inked(&shot) < 0.01, "a page with nothing on it is blank");
}
