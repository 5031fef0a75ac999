//! The man pages in packaging/man: their OPTIONS sections are what each program's
//! `--help` says (so they cannot drift from the clap definitions), and each page renders
//! without a warning.
//!
//! `packaging/man/update` (which runs this test with `MAN_PAGES_UPDATE=1`) rewrites the
//! generated sections from `--help`; without it, a difference fails the test and shows it.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use support::{require_program, source_path, TempDir};

/// The start and end of the generated part of a page's OPTIONS section.
const BEGIN: &str = ".\\\" BEGIN OPTIONS: generated from --help by packaging/man/update";
const END: &str = ".\\\" END OPTIONS";

/// Each page with an OPTIONS section, and the program whose `--help` it follows.
const PROGRAM_PAGES: [(&str, &str); 7] = [
    ("milter-manager.8", env!("CARGO_BIN_EXE_milter-manager")),
    ("milter-manager-ctl.8", env!("CARGO_BIN_EXE_milter-manager-ctl")),
    ("milter-manager-migrate-config.8", env!("CARGO_BIN_EXE_milter-manager-migrate-config")),
    ("milter-manager-log-analyzer.1", env!("CARGO_BIN_EXE_milter-manager-log-analyzer")),
    ("milter-test-client.1", env!("CARGO_BIN_EXE_milter-test-client")),
    ("milter-test-server.1", env!("CARGO_BIN_EXE_milter-test-server")),
    ("milter-performance-check.1", env!("CARGO_BIN_EXE_milter-performance-check")),
];

const ALL_PAGES: [&str; 6] = [
    "milter-manager.8",
    "milter-manager.toml.5",
    "milter-manager-ctl.8",
    "milter-test-client.1",
    "milter-test-server.1",
    "milter-performance-check.1",
];

/// One option as `--help` lists it.
#[derive(Debug, PartialEq)]
struct HelpOption {
    /// `-c` or None.
    short: Option<String>,
    /// `--config-dir`.
    long: String,
    /// `<CONFIG_DIR>`, `[<COLOR>]` or "".
    value: String,
    description: String,
}

/// The options of a clap `--help` text, in either of clap's layouts: the description on
/// the option's line (after two spaces or more) or on the lines below, indented deeper.
fn parse_help(help: &str) -> Vec<HelpOption> {
    let mut options: Vec<HelpOption> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        // The long layout (a program with `long_about`) puts a blank line between options;
        // the section ends at the next unindented line.
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            break;
        }
        let text = line.trim();
        if indent <= 6 && text.starts_with('-') {
            let (head, description) = match text.find("  ") {
                Some(at) => (&text[..at], text[at..].trim()),
                None => (text, ""),
            };
            let (names, value) = match head.find(' ') {
                Some(at) if !head[..at].ends_with(',') => (&head[..at], head[at..].trim()),
                _ => match head.rfind(' ') {
                    Some(at) if head[at + 1..].starts_with(['<', '[']) => {
                        (&head[..at], head[at..].trim())
                    }
                    _ => (head, ""),
                },
            };
            let (short, long) = match names.split_once(", ") {
                Some((short, long)) => (Some(short.to_string()), long.to_string()),
                None => (None, names.to_string()),
            };
            assert!(long.starts_with("--"), "cannot read the option line {line:?}");
            options.push(HelpOption {
                short,
                long,
                value: value.to_string(),
                description: description.to_string(),
            });
        } else {
            let option =
                options.last_mut().unwrap_or_else(|| panic!("text before any option: {line:?}"));
            if !option.description.is_empty() {
                option.description.push(' ');
            }
            option.description.push_str(text);
        }
    }
    assert!(!options.is_empty(), "no options found in:\n{help}");
    options
}

/// `-` as roff's minus sign (options are typed, so they must not become hyphens).
fn roff_option(name: &str) -> String {
    name.replace('-', "\\-")
}

/// Text for a roff paragraph: backslashes escaped, options' dashes made minus signs, no
/// line starting with a control character.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    let mut out = String::new();
    let mut previous = ' ';
    let mut in_option = false;
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        // A dash that starts a word and is followed by a letter or a dash starts an
        // option; every dash of it is a minus sign.
        if c == '-'
            && !previous.is_alphanumeric()
            && chars.peek().is_some_and(|n| n.is_ascii_alphanumeric() || *n == '-')
        {
            in_option = true;
        } else if !(c.is_ascii_alphanumeric() || c == '-') {
            in_option = false;
        }
        if c == '-' && in_option {
            out.push_str("\\-");
        } else {
            out.push(c);
        }
        previous = c;
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// `<NAME>` as italic NAME; `[<NAME>]` as [italic NAME].
fn roff_value(value: &str) -> String {
    value.replace('<', "\\fI").replace('>', "\\fR")
}

/// The generated OPTIONS entries for these options.
fn options_section(options: &[HelpOption]) -> String {
    let mut out = String::new();
    for option in options {
        out.push_str(".TP\n");
        if let Some(short) = &option.short {
            out.push_str(&format!("\\fB{}\\fR, ", roff_option(short)));
        }
        out.push_str(&format!("\\fB{}\\fR", roff_option(&option.long)));
        if !option.value.is_empty() {
            out.push_str(&format!(" {}", roff_value(&option.value)));
        }
        out.push('\n');
        assert!(
            !option.description.is_empty(),
            "{} has no help text: give it a doc comment",
            option.long
        );
        out.push_str(&roff_text(&option.description));
        out.push('\n');
    }
    out
}

fn page_path(page: &str) -> PathBuf {
    source_path("packaging/man").join(page)
}

/// The page with its generated part replaced by `generated`.
fn with_generated(page: &str, text: &str, generated: &str) -> String {
    let begin = text.find(BEGIN).unwrap_or_else(|| panic!("{page}: no line {BEGIN:?}"));
    let body = begin + text[begin..].find('\n').expect("a line end") + 1;
    let end = text[body..].find(END).unwrap_or_else(|| panic!("{page}: no line {END:?}")) + body;
    format!("{}{generated}{}", &text[..body], &text[end..])
}

fn help_of(program: &str) -> String {
    let out = Command::new(program).arg("--help").output().expect("run --help");
    assert!(out.status.success(), "{program} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn options_sections_are_what_help_lists() {
    let update = std::env::var_os("MAN_PAGES_UPDATE").is_some();
    let mut stale = Vec::new();
    for (page, program) in PROGRAM_PAGES {
        let path = page_path(page);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected =
            with_generated(page, &text, &options_section(&parse_help(&help_of(program))));
        if expected == text {
            continue;
        }
        if update {
            std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            stale.push(format!("{page}: its OPTIONS differ from --help; expected:\n{expected}"));
        }
    }
    assert!(stale.is_empty(), "run packaging/man/update\n{}", stale.join("\n"));
}

#[test]
fn every_listed_option_is_in_its_page_and_no_other() {
    for (page, program) in PROGRAM_PAGES {
        let text = std::fs::read_to_string(page_path(page)).expect("read the page");
        let begin = text.find(BEGIN).expect("the begin marker");
        let end = text.find(END).expect("the end marker");
        let section = &text[begin..end];
        let listed: Vec<String> =
            parse_help(&help_of(program)).into_iter().map(|o| o.long).collect();
        let in_page: Vec<String> = section
            .lines()
            .filter(|line| line.starts_with("\\fB"))
            .filter_map(|line| line.split("\\fB").last())
            .map(|name| name.split("\\fR").next().unwrap_or("").replace("\\-", "-"))
            .collect();
        assert_eq!(in_page, listed, "{page}: the options of its OPTIONS section and of --help");
    }
}

/// `parse_help` reads both of clap's layouts.
#[test]
fn help_parser_reads_both_layouts() {
    let long = "Options:\n  -c, --config-dir <DIR>\n          Directory [default: /etc]\n      --daemon\n          Run in\n          the background\n\n";
    let short = "Options:\n      --milter <SPEC>   Drive it\n  -h, --help          Print help\n";
    assert_eq!(
        parse_help(long),
        [
            HelpOption {
                short: Some("-c".into()),
                long: "--config-dir".into(),
                value: "<DIR>".into(),
                description: "Directory [default: /etc]".into()
            },
            HelpOption {
                short: None,
                long: "--daemon".into(),
                value: String::new(),
                description: "Run in the background".into()
            },
        ]
    );
    assert_eq!(parse_help(short)[0].value, "<SPEC>");
    assert_eq!(parse_help(short)[1].short.as_deref(), Some("-h"));
    assert_eq!(
        roff_text("see --log-level=all, a well-known -"),
        "see \\-\\-log\\-level=all, a well-known -"
    );
}

#[test]
fn pages_render_without_warnings() {
    require_program("/usr/bin/groff", "groff-base");
    require_program("/usr/bin/mandoc", "mandoc");
    let dir = TempDir::new("man");
    for page in ALL_PAGES {
        let path = page_path(page);
        // groff: every warning category, output discarded; warnings go to stderr.
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("run groff");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "groff on {page}:\n{warnings}");
        // mandoc's linter knows the man(7) conventions (sections, dates, escapes).
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .expect("run mandoc");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && report.is_empty(), "mandoc -T lint on {page}:\n{report}");
    }
}

/// `(section, key, value)` of every item `--show-config` prints, value as the page shows
/// it: `= VALUE`, or `(not set)`.
fn shown_items(show_config: &str) -> Vec<(String, String, String)> {
    let mut items = Vec::new();
    let mut section = String::new();
    for line in show_config.lines() {
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some(key) =
            line.strip_prefix("# ").and_then(|l| l.strip_suffix(" = (not set)"))
        {
            items.push((section.clone(), key.to_string(), "(not set)".to_string()));
        } else if !line.starts_with('#') && !section.is_empty() {
            if let Some((key, value)) = line.split_once(" = ") {
                items.push((section.clone(), key.to_string(), format!("= {value}")));
            }
        }
    }
    items
}

/// `(section, key, value)` of every item of milter-manager.toml(5), from its `.SS [section]`
/// subsections and `\fBkey\fR = value` tags.
fn page_items(page: &str) -> Vec<(String, String, String)> {
    let mut items = Vec::new();
    let mut section = String::new();
    for line in page.lines() {
        if let Some(name) = line.strip_prefix(".SS ") {
            section = name.to_string();
        } else if line.starts_with(".SH") {
            section.clear();
        } else if let (false, Some(rest)) = (section.is_empty(), line.strip_prefix("\\fB")) {
            let (key, value) = rest.split_once("\\fR ").expect("\\fBkey\\fR value");
            let value = value.replace("\\-", "-").replace("\\e", "\\");
            items.push((section.clone(), key.to_string(), value));
        }
    }
    items
}

/// The configuration page lists every item the configuration has, in its table, with its
/// default, as `milter-manager --show-config` prints them (nothing more, nothing less).
#[test]
fn configuration_page_lists_every_item_with_its_default() {
    let dir = TempDir::new("man-config");
    // The platform set (not detected) and no defaults, so nothing of the host is read.
    std::fs::write(
        dir.join("milter-manager.toml"),
        "load_default = false\n[package]\nplatform = \"debian\"\n[milter.\"NAME\"]\nconnection_spec = \"unix:/x\"\n",
    )
    .expect("write the configuration");
    let out = Command::new(env!("CARGO_BIN_EXE_milter-manager"))
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--show-config")
        .output()
        .expect("run --show-config");
    assert!(out.status.success(), "--show-config: {}", String::from_utf8_lossy(&out.stderr));
    let mut expected = shown_items(&String::from_utf8(out.stdout).expect("UTF-8"));
    for item in &mut expected {
        if item.0 == "[milter.\"NAME\"]" && item.1 == "connection_spec" {
            item.2 = "(required)".to_string();
        }
    }
    assert!(expected.len() > 60, "too few items read from --show-config: {expected:?}");
    let page = std::fs::read_to_string(page_path("milter-manager.toml.5")).expect("read the page");
    let listed = page_items(&page);
    let missing: Vec<_> = expected.iter().filter(|i| !listed.contains(i)).collect();
    let extra: Vec<_> = listed.iter().filter(|i| !expected.contains(i)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "milter-manager.toml.5 and --show-config differ\nmissing or different in the page: {missing:?}\nnot in --show-config: {extra:?}"
    );
    // The top-level keys, which --show-config prints only when set.
    for key in ["include", "load_default", "include_optional", "remove_milters"] {
        assert!(page.contains(&format!("\\fB{key}\\fR = ")), "milter-manager.toml.5 lacks {key}");
    }
}
