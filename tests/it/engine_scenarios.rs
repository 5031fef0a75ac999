//! The engine's scenario suite: every `tests/fixtures/scenarios/*.scn` file, each scenario
//! run on its own; all failures are reported together. `SCENARIO=text cargo test --test
//! engine_scenarios` runs only the scenarios whose name contains `text`.
//!
//! Besides the files, `precedence_matrix` generates one scenario per pair of verdicts at
//! each envelope stage, checked against the explicit table `FOLD`.

use crate::support::scenario;

use std::fmt::Write as _;
use std::path::Path;

/// The scenarios of `scenarios` selected by the `SCENARIO` filter, run; the failures.
fn run_all(scenarios: &[scenario::Scenario]) -> (usize, Vec<String>) {
    let filter = std::env::var("SCENARIO").ok();
    let mut count = 0;
    let mut failures = Vec::new();
    for scenario in scenarios {
        if filter.as_deref().is_some_and(|f| !scenario.name.contains(f)) {
            continue;
        }
        count += 1;
        if let Err(error) = scenario.run() {
            failures.push(format!(
                "scenario {:?} ({}:{}):\n    {error}",
                scenario.name, scenario.file, scenario.line
            ));
        }
    }
    (count, failures)
}

fn run_file(path: &Path) -> (usize, Vec<String>) {
    let source = std::fs::read_to_string(path).unwrap();
    let label = format!("tests/fixtures/scenarios/{}", path.file_name().unwrap().to_string_lossy());
    match scenario::parse(&source, &label) {
        Ok(scenarios) => run_all(&scenarios),
        Err(error) => (0, vec![error]),
    }
}

fn assert_passed(total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn scenario_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for file in &files {
        let (count, file_failures) = run_file(file);
        total += count;
        failures.extend(file_failures);
    }
    assert_passed(total, &failures);
    if std::env::var_os("SCENARIO").is_none() {
        assert!(
            total >= 110,
            "only {total} scenarios; the suite is meant to cover the engine broadly"
        );
    }
}

// ----- the precedence matrix -------------------------------------------------------------

/// The verdicts, in increasing precedence: accept, skip, continue, temporary failure,
/// reject, discard.
const STATUSES: [&str; 6] = ["a", "s", "c", "t", "r", "d"];

/// What the MTA hears when child `a` answers the row's verdict and child `b` the column's
/// (skip is told as continue at envelope stages).
const FOLD: [[&str; 6]; 6] = [
    //  b: a    s    c    t    r    d
    ["a", "c", "c", "t", "r", "d"], // a: accept
    ["c", "c", "c", "t", "r", "d"], // a: skip
    ["c", "c", "c", "t", "r", "d"], // a: continue
    ["t", "t", "t", "t", "r", "d"], // a: temporary failure
    ["r", "r", "r", "r", "r", "d"], // a: reject
    ["d", "d", "d", "d", "d", "d"], // a: discard
];

/// An envelope stage: its name, its command, and the commands that lead to it.
struct EnvelopeStage {
    name: &'static str,
    command: &'static str,
    before: &'static [&'static str],
}

const STAGES: [EnvelopeStage; 6] = [
    EnvelopeStage { name: "connect", command: "C mx.example.net 4 192.0.2.1 25", before: &[] },
    EnvelopeStage {
        name: "helo",
        command: "H mx.example.net",
        before: &["C mx.example.net 4 192.0.2.1 25"],
    },
    EnvelopeStage {
        name: "envelope-from",
        command: "M <from@example.org>",
        before: &["C mx.example.net 4 192.0.2.1 25", "H mx.example.net"],
    },
    EnvelopeStage {
        name: "envelope-recipient",
        command: "R <to@example.com>",
        before: &["C mx.example.net 4 192.0.2.1 25", "H mx.example.net", "M <from@example.org>"],
    },
    EnvelopeStage {
        name: "data",
        command: "T",
        before: &[
            "C mx.example.net 4 192.0.2.1 25",
            "H mx.example.net",
            "M <from@example.org>",
            "R <to@example.com>",
        ],
    },
    EnvelopeStage {
        name: "unknown",
        command: "U \"XFOO bar\"",
        before: &["C mx.example.net 4 192.0.2.1 25", "H mx.example.net"],
    },
];

fn is_refusal(status: &str) -> bool {
    matches!(status, "t" | "r" | "d")
}

/// What a child's own verdict does to it: it leaves the session (connect, helo) or the
/// message (MAIL and DATA on accept or refusal; RCPT on accept or discard only).
fn leaves(stage: &str, status: &str) -> (bool, bool) {
    let done = status == "a" || is_refusal(status);
    let session = matches!(stage, "connect" | "helo") && done;
    let message = match stage {
        "envelope-from" | "data" => done,
        "envelope-recipient" => matches!(status, "a" | "d"),
        _ => false,
    };
    (session, message)
}

/// Whether the folded verdict ends the message for everyone.
fn ends_message(stage: &str, folded: &str) -> bool {
    match stage {
        "envelope-from" | "data" => folded != "c",
        "envelope-recipient" => matches!(folded, "a" | "d"),
        _ => false,
    }
}

/// One scenario of the matrix, as scenario text.
fn precedence_scenario(stage: &EnvelopeStage, a: usize, b: usize) -> String {
    let (x, y) = (STATUSES[a], STATUSES[b]);
    let folded = FOLD[a][b];
    let mut s = String::new();
    let mut line = |text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line(&format!("scenario precedence at {}: a {x}, b {y} -> {folded}", stage.name));
    line("children a b");
    for l in ["mta> O 6 all all", "a< O 6 all all", "b< O 6 all all"] {
        line(l);
    }
    for l in ["a> O 6 all none", "b> O 6 all none", "mta< O 6 all no-reply-header"] {
        line(l);
    }
    for command in stage.before {
        line(&format!("mta> {command}"));
        line(&format!("a< {command}"));
        line(&format!("b< {command}"));
        for l in ["a> c", "b> c", "mta< c"] {
            line(l);
        }
    }
    line(&format!("mta> {}", stage.command));
    line(&format!("a< {}", stage.command));
    line(&format!("b< {}", stage.command));
    let in_message = matches!(stage.name, "envelope-from" | "envelope-recipient" | "data");
    // Per child: still connected, message still open.
    let mut state = Vec::new();
    for (name, status) in [("a", x), ("b", y)] {
        line(&format!("{name}> {status}"));
        let (leaves_session, leaves_message) = leaves(stage.name, status);
        if leaves_session {
            line(&format!("{name}< Q"));
            line(&format!("{name}< close"));
        } else if leaves_message {
            line(&format!("{name}< A"));
        }
        state.push((name, !leaves_session, in_message && !leaves_message && !leaves_session));
    }
    line(&format!("mta< {folded}"));
    if ends_message(stage.name, folded) {
        for (name, _, open) in &mut state {
            if *open {
                line(&format!("{name}< A"));
                *open = false;
            }
        }
    }
    line("mta> Q");
    for (name, connected, open) in state {
        if open {
            line(&format!("{name}< A"));
        }
        if connected {
            line(&format!("{name}< Q"));
            line(&format!("{name}< close"));
        }
    }
    line("finished");
    s
}

#[test]
fn precedence_matrix() {
    let mut text = String::new();
    for stage in &STAGES {
        for a in 0..STATUSES.len() {
            for b in 0..STATUSES.len() {
                let _ = writeln!(text, "{}", precedence_scenario(stage, a, b));
            }
        }
    }
    let scenarios = scenario::parse(&text, "precedence-matrix (generated)").unwrap();
    assert_eq!(scenarios.len(), STAGES.len() * 36);
    let (total, failures) = run_all(&scenarios);
    assert_passed(total, &failures);
}
