use std::collections::BTreeMap;

use super::super::{convert, Conversion};
use super::*;
use crate::config::Config;

/// Files in memory, by path.
struct Files(BTreeMap<String, String>);

impl Source for Files {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(path).cloned())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.0
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }
}

fn files(entries: &[(&str, &str)]) -> Files {
    Files(entries.iter().map(|(name, text)| (format!("/orig/{name}"), text.to_string())).collect())
}

fn converted(entries: &[(&str, &str)]) -> Conversion {
    convert("/orig", &files(entries)).unwrap()
}

fn error(entries: &[(&str, &str)]) -> String {
    convert("/orig", &files(entries)).unwrap_err().to_string()
}

fn file<'a>(conversion: &'a Conversion, name: &str) -> &'a str {
    &conversion.files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

fn findings(conversion: &Conversion) -> Vec<String> {
    conversion.findings.iter().map(ToString::to_string).collect()
}

/// Writes the conversion and loads it with the configuration's own loader over an empty
/// machine.
fn load(conversion: &Conversion) -> Config {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &conversion.files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let root = dir.path().join("machine");
    std::fs::create_dir(&root).unwrap();
    // The files are this process's: it is the user the loader trusts besides root.
    let owner = nix::unistd::geteuid().as_raw();
    Config::load_under(dir.path(), &root, owner).unwrap_or_else(|e| panic!("{e}\n{conversion:#?}"))
}

#[test]
fn items_become_toml_with_the_line_they_came_from() {
    let conversion = converted(&[(
        "milter-manager.conf",
        "# -*- ruby -*-\nsecurity.privilege_mode = true\nmanager.unix_socket_mode = 0600\n\
         manager.connection_spec = \"inet:10025@[127.0.0.1]\"\nmanager.connection_spec = \
         \"unix:/run/m.sock\"\nlog.level = \"all\"\nmanager.fallback_status = :reject\n",
    )]);
    let main = file(&conversion, "milter-manager.toml");
    assert!(
        main.contains(
            "[security]\n# converted from /orig/milter-manager.conf:2\nprivilege_mode = true\n"
        ),
        "{main}"
    );
    assert!(
        main.contains("# converted from /orig/milter-manager.conf:5\nconnection_spec = \"unix:/run/m.sock\"\n"),
        "{main}"
    );
    assert!(main.contains("unix_socket_mode = 0o600\n"), "{main}");
    assert!(main.contains("load_default = false\n"), "{main}");
    assert!(findings(&conversion).is_empty());
    let config = load(&conversion);
    // --show-config and late errors name the original line as well as the converted one.
    let origin = config.origin("manager.connection_spec").to_string();
    assert!(
        origin.ends_with("milter-manager.toml:21, converted from /orig/milter-manager.conf:5"),
        "{origin}"
    );
    assert_eq!(config.manager.unix_socket_mode, 0o600);
    assert_eq!(config.manager.fallback_status.name(), "reject");
}

#[test]
fn follows_the_loads_in_order_and_skips_the_shipped_conditions() {
    let conversion = converted(&[
        (
            "milter-manager.conf",
            "load(\"applicable-conditions/*.conf\")\nload_default\n\
             load_if_exist(\"milter-manager.local.conf\")\nload_if_exist(\"absent.conf\")\n\
             manager.n_workers = 2\n",
        ),
        ("applicable-conditions/s25r.conf", "this is not read at all ((("),
        ("applicable-conditions/mine.conf", "define_applicable_condition(\"Mine\") do |c|\nend\n"),
        ("milter-manager.local.conf", "manager.n_workers = 4\nmanager.daemon = true\n"),
    ]);
    let main = file(&conversion, "milter-manager.toml");
    assert!(
        main.contains("# converted from /orig/milter-manager.conf:5\nn_workers = 2\n"),
        "{main}"
    );
    assert!(main.contains("# converted from /orig/milter-manager.conf:2\nload_default = true\n"));
    assert!(file(&conversion, "migrated.rhai").contains("define_applicable_condition(\"Mine\""));
    let config = load(&conversion);
    assert!(config.manager.daemon);
}

#[test]
fn milters_before_the_default_are_tables_and_after_it_change_detected_ones() {
    let conversion = converted(&[(
        "milter-manager.conf",
        "define_milter(\"clamav\") do |milter|\n  milter.connection_spec = \"unix:/c.sock\"\n  \
             milter.applicable_conditions = [\"Authentication\"]\n  milter.connection_timeout = \
             60\nend\nload_default\ndefine_milter(\"clamav\") do |m|\n  \
             m.add_applicable_condition(\"S25R\")\nend\ndefine_milter(\"milter-greylist\") do \
             |milter|\n  milter.add_applicable_condition(\"Remote Network\")\nend\n\
             remove_milter(\"spamass-milter\")\n",
    )]);
    let main = file(&conversion, "milter-manager.toml");
    assert!(main.contains("[milter.\"clamav\"]\n"), "{main}");
    assert!(main.contains("applicable_conditions = [\"Authenticated\", \"S25R\"]\n"), "{main}");
    assert!(main.contains("connection_timeout = 60.0\n"), "{main}");
    let after = file(&conversion, "migrated-after-default.rhai");
    assert!(after.contains("if \"milter-greylist\" in defined_milters() {"), "{after}");
    assert!(
        after.contains("if \"spamass-milter\" in defined_milters() { remove_milter"),
        "{after}"
    );
    let config = load(&conversion);
    let clamav = config.milter("clamav").unwrap();
    assert_eq!(clamav.applicable_conditions, ["Authenticated", "S25R"]);
    assert!(config.milter("milter-greylist").is_none());
}

#[test]
fn a_loop_over_the_milters_is_unrolled_before_the_default_and_rhai_after() {
    let conversion = converted(&[(
        "milter-manager.conf",
        "define_milter(\"a\") do |milter|\n  milter.connection_spec = \"inet:1@localhost\"\nend\n\
         defined_milters.each do |name|\n  define_milter(name) do |milter|\n    \
         milter.enabled = false\n  end\nend\nload_default\ndefined_milters.each do |name|\n  \
         define_milter(name) do |milter|\n    milter.evaluation_mode = true\n  end\nend\n",
    )]);
    let main = file(&conversion, "milter-manager.toml");
    assert!(
        main.contains("# converted from /orig/milter-manager.conf:6\nenabled = false\n"),
        "{main}"
    );
    assert!(file(&conversion, "migrated-after-default.rhai")
        .contains("for name in defined_milters() {"));
    let config = load(&conversion);
    let a = config.milter("a").unwrap();
    assert!(!a.enabled && a.evaluation_mode);
}

#[test]
fn builtin_settings_become_lists_and_blocks_become_rhai() {
    let conversion = converted(&[(
        "milter-manager.conf",
        "s25r.add_whitelist(/\\.google\\.com\\z/)\ns25r.add_blacklist(\"black.example.com\")\n\
         s25r.add_whitelist do |host|\n  host == \"mx.example.net\"\nend\n\
         remote_network.add_local_address(\"2001:2f8:c2:201::/64\")\n\
         remote_network.add_remote_address(\"192.0.2.1\")\n\
         trust.add_envelope_from_domain(\"example.com\")\nstress.threshold_n_connections = 75\n\
         dnsbl.add_service(\"bl.example\")\nmanager.use_netstat_connection_checker\n\
         manager.report_memory_statistics\n",
    )]);
    assert!(findings(&conversion).is_empty(), "{:?}", findings(&conversion));
    let rhai = file(&conversion, "migrated.rhai");
    assert!(
        rhai.contains("s25r.add_whitelist(|host| {\n    host == \"mx.example.net\"\n});"),
        "{rhai}"
    );
    let config = load(&conversion);
    assert!(config.s25r.whitelist.contains(&"/\\.google\\.com\\z/".to_string()));
    assert_eq!(config.s25r.blacklist, ["black.example.com"]);
    assert_eq!(config.remote_network.remote_addresses, ["192.0.2.1"]);
    assert_eq!(config.trust.envelope_from_domains, ["example.com"]);
    assert_eq!(config.stress.threshold_n_connections, Some(75));
    assert_eq!(config.manager.connection_check_interval, 5);
    assert!(config.manager.report_memory_statistics);
}

#[test]
fn a_condition_keeps_its_stoppers_translated_or_marked_for_review() {
    let conversion = converted(&[(
        "milter-manager.conf",
        "define_applicable_condition(\"Local HELO\") do |condition|\n  condition.description = \
         \"skip localhost\"\n  condition.define_helo_stopper do |context, helo|\n    helo == \
         \"localhost.localdomain\"\n  end\n  condition.define_connect_stopper do |context, host, \
         address|\n    Time.now.hour < 8\n  end\nend\ndefine_milter(\"m\") do |milter|\n  \
         milter.connection_spec = \"inet:1@localhost\"\n  \
         milter.add_applicable_condition(\"Local HELO\")\n  \
         milter.add_applicable_condition(\"Nowhere\")\nend\n",
    )]);
    assert_eq!(findings(&conversion), [
        "/orig/milter-manager.conf:6: define_connect_stopper of condition \"Local HELO\" is not \
         translated (Ruby's Time); until it is written in Rhai, the condition applies the \
         milter",
        "/orig/milter-manager.conf:13: no applicable condition \"Nowhere\" is defined",
    ]);
    let rhai = file(&conversion, "migrated.rhai");
    assert!(rhai.contains("        //   Time.now.hour < 8\n        false\n"), "{rhai}");
    assert!(rhai.contains("condition.define_helo_stopper(|context, helo| {\n        helo == \"localhost.localdomain\"\n    });"), "{rhai}");
}

#[test]
fn what_cannot_be_read_is_one_line_naming_file_and_line() {
    assert_eq!(error(&[]), "/orig/milter-manager.conf: cannot read the file: no such file");
    assert_eq!(
        error(&[("milter-manager.conf", "\nmanager.n_worker = 3\n")]),
        "/orig/milter-manager.conf:2: unknown item manager.n_worker; see the original's manual \
         for the items it has"
    );
    assert_eq!(
        error(&[("milter-manager.conf", "define_milter(\"a\") do |milter|\n")]),
        "/orig/milter-manager.conf:1: unterminated block: no end for this do"
    );
    assert!(error(&[("milter-manager.conf", "<?xml version=\"1.0\"?>\n<configuration/>")])
        .starts_with("/orig/milter-manager.conf:1: not Ruby the converter reads"));
    assert_eq!(
        error(&[("milter-manager.conf", "load(\"other.conf\")")]),
        "/orig/milter-manager.conf:1: cannot load /orig/other.conf: no such file"
    );
    assert_eq!(
        error(&[
            ("milter-manager.conf", "load(\"a.conf\")"),
            ("a.conf", "\nload(\"milter-manager.conf\")")
        ]),
        "/orig/a.conf:2: /orig/milter-manager.conf loads itself again (a cycle)"
    );
    assert_eq!(
        error(&[("milter-manager.conf", "manager.daemon = \"yes\"")]),
        "/orig/milter-manager.conf:1: manager.daemon: expected true or false, found a string"
    );
}

#[test]
fn garbage_never_panics_the_converter() {
    let words = [
        "define_milter(\"a\")",
        "define_applicable_condition(\"c\")",
        "do",
        "|m|",
        "|c, h|",
        "end",
        "m.enabled = true",
        "m.add_applicable_condition(\"S25R\")",
        "load_default",
        "remove_milter(\"a\")",
        "defined_milters.each",
        "c.define_connect_stopper",
        "case h",
        "when /x/",
        "if",
        "else",
        "true",
        "false",
        "\n",
        "s25r.add_whitelist",
        "(",
        ")",
        "[",
        "]",
        "\"s\"",
        "0660",
        "manager.n_workers =",
        "load(\"x.conf\")",
        "restrict_accounts_by_list",
        "milters:",
        ",",
        "nil",
        "{",
        "}",
        "h ==",
        "=~",
        "!",
    ];
    let mut seed = 11u64;
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..(seed % 30) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(words[(seed >> 33) as usize % words.len()]);
            text.push(' ');
        }
        let _ = convert("/orig", &files(&[("milter-manager.conf", &text), ("x.conf", &text)]));
    }
}
