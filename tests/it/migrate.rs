//! milter-manager-migrate-config: converting the original's Ruby configuration. The
//! fixtures (tests/fixtures/migrate/*, the manual's examples) are converted and compared
//! with what is expected; a site's directory with local overrides and conditions of its
//! own converts into one that `milter-manager --check-config` accepts, with a report
//! naming what needs a hand; bad input leaves nothing behind.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{run, source_path, write_file, TempDir, MANAGER, TIMEOUT};

const MIGRATE: &str = env!("CARGO_BIN_EXE_milter-manager-migrate-config");

fn migrate(dir: &TempDir, name: &str, original: &Path, output: &Path) -> support::Finished {
    run(dir, name, Command::new(MIGRATE).arg(original).arg(output), TIMEOUT)
}

/// `milter-manager --check-config` of `config` over an empty machine (a conf.d file
/// points detection at it), as the admin would run it after converting.
fn check_config(dir: &TempDir, name: &str, config: &Path) -> support::Finished {
    let machine = dir.join(&format!("{name}-machine"));
    std::fs::create_dir_all(&machine).unwrap();
    write_file(
        &config.join("conf.d/00-machine.toml"),
        &format!("[package]\noptions = \"root={}\"\n", machine.display()),
    );
    run(
        dir,
        name,
        Command::new(MANAGER).arg("--config-dir").arg(config).arg("--check-config"),
        TIMEOUT,
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every fixture converts to its expected files, report and exit status, and the result
/// passes --check-config.
#[test]
fn the_manuals_examples_convert_to_the_expected_files() {
    let fixtures = source_path("tests/fixtures/migrate");
    let update = std::env::var_os("MIGRATE_FIXTURES_UPDATE").is_some();
    let dir = TempDir::new("migrate-fixtures");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "no fixtures in {}", fixtures.display());
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let original = case.join("original");
        let output = dir.join(&name);
        let out = migrate(&dir, &name, &original, &output);
        let placeholder = |text: &str| {
            text.replace(&original.display().to_string(), "ORIGINAL")
                .replace(&output.display().to_string(), "OUTPUT")
        };
        let mut actual: Vec<(String, String)> = files_in(&output)
            .into_iter()
            .map(|file| {
                let text = std::fs::read_to_string(output.join(&file)).unwrap();
                (file, placeholder(&text))
            })
            .collect();
        actual.push(("report".into(), placeholder(&out.stderr)));
        actual.push(("status".into(), format!("{}\n", out.status.code().unwrap_or(-1))));
        let expected_dir = case.join("expected");
        if update {
            let _ = std::fs::remove_dir_all(&expected_dir);
            for (file, text) in &actual {
                write_file(&expected_dir.join(file), text);
            }
        }
        let expected_files = files_in(&expected_dir);
        let actual_files: Vec<String> = actual.iter().map(|(file, _)| file.clone()).collect();
        let mut sorted = actual_files.clone();
        sorted.sort();
        assert_eq!(sorted, expected_files, "{name}: the files written");
        for (file, text) in &actual {
            let expected = std::fs::read_to_string(expected_dir.join(file)).unwrap();
            assert_eq!(
                *text, expected,
                "{name}/{file} differs (MIGRATE_FIXTURES_UPDATE=1 rewrites)"
            );
        }
        let check = check_config(&dir, &format!("{name}-check"), &output);
        assert!(check.status.success(), "{name}: {}", check.describe());
    }
}

/// The "done when": a site's directory with milter-manager.conf, a local file and
/// a condition of its own converts with one command; the report names exactly what needs
/// a hand, with FILE:LINE; the manager accepts the result and names the original lines.
#[test]
fn a_sites_configuration_converts_into_one_the_manager_runs() {
    let dir = TempDir::new("migrate-site");
    let original = dir.join("etc-milter-manager");
    write_file(
        &original.join("milter-manager.conf"),
        "# -*- ruby -*-\n\
         load(\"applicable-conditions/*.conf\")\n\
         load_default\n\
         load_if_exist(\"milter-manager.local.conf\")\n",
    );
    write_file(
        &original.join("applicable-conditions/s25r.conf"),
        "# the original's own: not read\nnot ruby ((\n",
    );
    write_file(
        &original.join("applicable-conditions/office.conf"),
        "define_applicable_condition(\"Not From Office\") do |condition|\n\
         \x20 condition.description = \"skip mail the office sends\"\n\
         \x20 condition.define_envelope_from_stopper do |context, from|\n\
         \x20   /@office\\.example\\.com>\\z/i =~ from\n\
         \x20 end\n\
         \x20 condition.define_connect_stopper do |context, host, socket_address|\n\
         \x20   Time.now.hour < 8\n\
         \x20 end\n\
         end\n",
    );
    write_file(
        &original.join("milter-manager.local.conf"),
        "define_applicable_condition(\"No Lists\") do |condition|\n\
         \x20 condition.define_header_stopper do |context, name, value|\n\
         \x20   name.downcase == \"list-id\"\n\
         \x20 end\n\
         end\n\
         manager.connection_spec = \"inet:10030@[127.0.0.1]\"\n\
         manager.n_workers = 2\n\
         security.effective_user = \"milter-manager\"\n\
         s25r.add_whitelist(\"mx.partner.example\")\n\
         define_milter(\"clamav-milter\") do |milter|\n\
         \x20 milter.connection_spec = \"unix:/run/clamav/clamav-milter.ctl\"\n\
         \x20 milter.add_applicable_condition(\"Not From Office\")\n\
         \x20 milter.add_applicable_condition(\"Authentication\")\n\
         \x20 milter.add_applicable_condition(\"No Lists\")\n\
         end\n\
         manager.maintained do\n\
         \x20 Milter::Logger.info(\"maintained!\")\n\
         end\n",
    );
    let output = dir.join("converted");
    let out = migrate(&dir, "migrate", &original, &output);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let o = original.display();
    let report: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(report, [
        format!(
            "{o}/applicable-conditions/office.conf:6: define_connect_stopper of condition \"Not \
             From Office\" is not translated (Ruby's Time); until it is written in Rhai, \
             the condition applies the milter"
        ),
        format!("{o}/milter-manager.local.conf:16: manager.maintained runs Ruby code; not translated"),
        format!(
            "converted {o} into {}: 2 item(s) to review, listed above",
            output.display()
        ),
    ]);

    let check = check_config(&dir, "check", &output);
    assert!(check.status.success(), "{}", check.describe());
    assert!(
        check.stdout.contains("milter \"clamav-milter\": enabled, unix:/run/clamav/clamav-milter.ctl, applies to: Not From Office, Authenticated, No Lists"),
        "{}",
        check.describe()
    );
    let main = std::fs::read_to_string(output.join("milter-manager.toml")).unwrap();
    assert!(
        main.contains(&format!(
            "# converted from {o}/milter-manager.local.conf:6\nconnection_spec = \"inet:10030@[127.0.0.1]\"\n"
        )),
        "{main}"
    );
    let rhai = std::fs::read_to_string(output.join("migrated.rhai")).unwrap();
    assert!(rhai.contains("from.regex_match(\"(?i)@office\\\\.example\\\\.com>\\\\z\")"), "{rhai}");
    assert!(rhai.contains("//   Time.now.hour < 8"), "{rhai}");
    assert!(rhai.contains("        name.to_lower() == \"list-id\"\n"), "{rhai}");

    // The same command again: the output is there, nothing is overwritten.
    let again = migrate(&dir, "again", &original, &output);
    assert_eq!(again.status.code(), Some(2), "{}", again.describe());
    assert!(again.stderr.contains("exists already"), "{}", again.describe());
}

/// A file that is not Ruby, an unknown item, an unterminated block: one line with
/// FILE:LINE, exit status 2, and no output directory, partial or not.
#[test]
fn bad_input_says_where_and_leaves_nothing_behind() {
    let dir = TempDir::new("migrate-bad");
    for (name, text, message) in [
        ("xml", "<?xml version=\"1.0\"?>\n<configuration/>\n", ":1: not Ruby the converter reads"),
        (
            "unknown",
            "manager.n_workers = 2\nmanager.n_worker = 3\n",
            ":2: unknown item manager.n_worker",
        ),
        (
            "unterminated",
            "define_milter(\"a\") do |milter|\n  milter.enabled = true\n",
            ":1: unterminated block: no end for this do",
        ),
    ] {
        let original = dir.join(name);
        write_file(&original.join("milter-manager.conf"), text);
        let output = dir.join(&format!("{name}-out"));
        let out = migrate(&dir, name, &original, &output);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", out.describe());
        let expected = format!("{}/milter-manager.conf{message}", original.display());
        assert!(
            out.stderr.starts_with(&format!("milter-manager-migrate-config: {expected}")),
            "{name}: {}",
            out.describe()
        );
        assert!(out.stderr.trim_end().ends_with("; nothing written"), "{}", out.describe());
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
        assert!(!output.exists(), "{name}: {} was written", output.display());
        let leftovers: Vec<String> =
            files_in(dir.path()).into_iter().filter(|f| f.contains("migrating")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A converted configuration drives real sessions as the equivalent written by hand does:
/// the same child milters apply to the same mail. The two conditions are the manual's
/// forms: an envelope-from regexp and the case/when over the host of its S25R example.
#[test]
fn a_converted_configuration_decides_as_the_hand_written_one() {
    const RUBY_CONDITIONS: &str = "define_applicable_condition(\"Not From Office\") do |c|\n\
        \x20 c.define_envelope_from_stopper do |context, from|\n\
        \x20   /@office\\.example\\.com>\\z/i =~ from\n\
        \x20 end\n\
        end\n\
        define_applicable_condition(\"Unresolved Only\") do |c|\n\
        \x20 c.define_connect_stopper do |context, host, socket_address|\n\
        \x20   case host\n\
        \x20   when \"unknown\", /\\A\\[.+\\]\\z/\n\
        \x20     false\n\
        \x20   else\n\
        \x20     true\n\
        \x20   end\n\
        \x20 end\n\
        end\n";
    const RHAI_BY_HAND: &str = "define_applicable_condition(\"Not From Office\", |c| {\n\
        \x20 c.define_envelope_from_stopper(|context, from| from.to_lower().ends_with(\"@office.example.com>\"));\n\
        });\n\
        define_applicable_condition(\"Unresolved Only\", |c| {\n\
        \x20 c.define_connect_stopper(|context, host, address| !(host == \"unknown\" || (host.starts_with(\"[\") && host.ends_with(\"]\"))));\n\
        });\n";
    // (client host, envelope sender) of each session.
    const SESSIONS: [(&str, &str); 4] = [
        ("mx.example.net", "<a@office.example.com>"),
        ("mx.example.net", "<b@example.org>"),
        ("[192.0.2.1]", "<C@Office.Example.COM>"),
        ("unknown", "<d@example.org>"),
    ];

    /// For each session, whether milters "a" and "b" saw its recipient, and the verdict.
    fn applied(name: &str, converted: bool) -> Vec<(bool, bool, String)> {
        let dir = TempDir::new(name);
        let client_dirs = [TempDir::new(&format!("{name}-a")), TempDir::new(&format!("{name}-b"))];
        let a = support::TestClient::start_unix(&client_dirs[0], &[]);
        let b = support::TestClient::start_unix(&client_dirs[1], &[]);
        let config = if converted {
            let original = dir.join("original");
            write_file(
                &original.join("milter-manager.conf"),
                &format!(
                    "{RUBY_CONDITIONS}define_milter(\"a\") do |milter|\n\
                     \x20 milter.connection_spec = \"{}\"\n\
                     \x20 milter.add_applicable_condition(\"Not From Office\")\n\
                     end\n\
                     define_milter(\"b\") do |milter|\n\
                     \x20 milter.connection_spec = \"{}\"\n\
                     \x20 milter.applicable_conditions = [\"Unresolved Only\"]\n\
                     end\n",
                    a.spec, b.spec
                ),
            );
            let out = migrate(&dir, "migrate", &original, &dir.join("conf"));
            assert_eq!(out.status.code(), Some(0), "{}", out.describe());
            std::fs::read_to_string(dir.join("conf/milter-manager.toml")).unwrap()
        } else {
            write_file(&dir.join("conf/conditions.rhai"), RHAI_BY_HAND);
            format!(
                "include = [\"conditions.rhai\"]\n\
                 [milter.a]\nconnection_spec = \"{}\"\napplicable_conditions = [\"Not From Office\"]\n\
                 [milter.b]\nconnection_spec = \"{}\"\napplicable_conditions = [\"Unresolved Only\"]\n",
                a.spec, b.spec
            )
        };
        // Ready once it says so: the socket file exists before it listens.
        let options =
            support::ManagerOptions { ready_line: Some("listening on"), ..Default::default() };
        let manager = support::ManagerProcess::start_with(&dir, &config, &options);
        let mut seen = Vec::new();
        for (index, (host, from)) in SESSIONS.iter().enumerate() {
            let recipient = format!("<rcpt-{index}@example.com>");
            let mut command = Command::new(support::TEST_SERVER);
            command
                .args(["-s", &manager.spec(), "--connect-host", host, "--from", from])
                .args(["--recipient", &recipient]);
            let out = run(&dir, &format!("session-{index}"), &mut command, TIMEOUT);
            assert!(out.status.success(), "{}\n{}", out.describe(), manager.log());
            let verdict = out.stdout.lines().next().unwrap_or_default().to_string();
            seen.push((a.report().contains(&recipient), b.report().contains(&recipient), verdict));
        }
        seen
    }

    let by_hand = applied("migrate-sessions-hand", false);
    let converted = applied("migrate-sessions-converted", true);
    let applied: Vec<(bool, bool)> = by_hand.iter().map(|(a, b, _)| (*a, *b)).collect();
    assert_eq!(applied, [(false, false), (true, false), (false, true), (true, true)]);
    assert_eq!(converted, by_hand);
}
