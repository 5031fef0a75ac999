//! Single values in both their forms, unsetting, and the errors a user sees.

use super::*;
use crate::config::CommandOptions;

#[test]
fn a_missing_main_file_names_it() {
    let dir = TestDir::new("no-main");
    let error = load(&dir).unwrap_err();
    let main = dir.path().join(MAIN_FILE);
    assert!(error.to_string().starts_with(&format!("{}: cannot read the file: ", main.display())));
}

#[test]
fn modes_and_command_options_in_both_forms() {
    let dir = TestDir::new("forms");
    dir.write(
        MAIN_FILE,
        "[manager]\nunix_socket_mode = 0o600\n[controller]\nunix_socket_mode = \"0640\"\n\
         [milter.a]\nconnection_spec = \"inet:1\"\ncommand_options = \"start --now\"\n\
         [milter.b]\nconnection_spec = \"inet:2\"\ncommand_options = [\"start\", \"--now\"]\n",
    );
    let config = load(&dir).unwrap();
    assert_eq!(config.manager.unix_socket_mode, 0o600);
    assert_eq!(config.controller.unix_socket_mode, 0o640);
    assert_eq!(
        config.milter("a").unwrap().command_options,
        Some(CommandOptions::Line("start --now".into()))
    );
    assert_eq!(
        config.milter("b").unwrap().command_options,
        Some(CommandOptions::Arguments(vec!["start".into(), "--now".into()]))
    );
}

#[test]
fn an_empty_string_unsets_an_optional_item() {
    let dir = TestDir::new("unset");
    dir.write(
        MAIN_FILE,
        "include = [\"b.toml\"]\n[manager]\npid_file = \"/run/a.pid\"\n[controller]\nconnection_spec = \"inet:1\"\n",
    );
    dir.write("b.toml", "[manager]\npid_file = \"\"\n[controller]\nconnection_spec = \"\"\n");
    let config = load(&dir).unwrap();
    assert_eq!(config.manager.pid_file, None);
    assert_eq!(config.controller.connection_spec, None);
}

/// Each error names the file, the line and the key.
#[test]
fn errors_name_the_file_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[milter.opendkim]\nenabled = true\nconnection_spec = \"inet:x\"\n",
            "3: milter.opendkim.connection_spec: ",
            "invalid connection spec \"inet:x\": port \"x\" is not a number",
        ),
        (
            "[manager]\nfallback_status = \"continue\"\n",
            "2: manager.fallback_status: ",
            "unknown status \"continue\"",
        ),
        (
            "[milter.a]\nconnection_spec = \"inet:1\"\nfallback_status = \"pass\"\n",
            "3: milter.a.fallback_status: ",
            "unknown status \"pass\"",
        ),
        ("[manager]\n\nn_worker = 3\n", "3: manager.n_worker: ", "did you mean \"n_workers\"?"),
        (
            "[milter.a]\nconection_spec = \"inet:1\"\n",
            "2: milter.a.conection_spec: ",
            "did you mean \"connection_spec\"?",
        ),
        ("[managr]\n", "1: ", "unknown table or key \"managr\"; did you mean \"manager\"?"),
        ("[manager]\nn_workers = 1001\n", "2: manager.n_workers: ", "from 0 to 1000"),
        ("[manager]\nchunk_size = 0\n", "2: manager.chunk_size: ", "from 1 to 65535"),
        ("[manager]\nchunk_size = 65536\n", "2: manager.chunk_size: ", "from 1 to 65535"),
        (
            "[manager]\nunix_socket_mode = 0o10000\n",
            "2: manager.unix_socket_mode: ",
            "at most 0o7777",
        ),
        (
            "[manager]\nunix_socket_mode = 660\n",
            "2: manager.unix_socket_mode: ",
            "not an octal number",
        ),
        (
            "[manager]\nevent_loop_backend = \"epoll\"\n",
            "2: manager.event_loop_backend: ",
            "\"glib\", \"libev\"",
        ),
        (
            "[manager]\ndaemon = \"yes\"\n",
            "2: manager.daemon: ",
            "expected true or false, found a string",
        ),
        ("[package]\nplatform = \"gentoo\"\n", "2: package.platform: ", "unknown value \"gentoo\""),
        ("[log]\nlevel = \"loud\"\n", "2: log.level: ", "unknown log level \"loud\""),
        (
            "[dnsbl]\nservices = [\"bl.example=yes\"]\n",
            "2: dnsbl.services: ",
            "invalid expected DNSBL answer \"yes\" for bl.example",
        ),
        (
            "[dnsbl]\n\nservices = [\"bl example\"]\n",
            "3: dnsbl.services: ",
            "invalid DNSBL zone \"bl example\"",
        ),
        (
            "[dnsbl]\nname_servers = [\"ns.example\"]\n",
            "2: dnsbl.name_servers: ",
            "invalid name server \"ns.example\"",
        ),
        ("[dnsbl]\ntimeout = 61\n", "2: dnsbl.timeout: ", "at most 60"),
        ("[dnsbl]\ntimeout = 0\n", "2: dnsbl.timeout: ", "above 0"),
        (
            "[log]\nsyslog_facility = \"email\"\n",
            "2: log.syslog_facility: ",
            "unknown value \"email\"",
        ),
        ("[manager\nn_workers = 1\n", "1: ", "invalid TOML: "),
        ("[manager]\nn_workers = 1\nn_workers = 2\n", "3: ", "invalid TOML: "),
        (
            "[milter.x]\ndescription = \"no socket\"\n",
            "1: milter.x.connection_spec: ",
            "milter \"x\" is enabled but has no connection_spec",
        ),
        ("[milter.\"\"]\nconnection_spec = \"inet:1\"\n", "1: milter.: ", "a milter needs a name"),
        (
            "[milter.a]\nconnection_spec = \"inet:1\"\nreading_timeout = 0\n",
            "3: milter.a.reading_timeout: ",
            "above 0",
        ),
        (
            "[milter.a]\nconnection_spec = \"inet:1\"\nwriting_timeout = nan\n",
            "3: milter.a.writing_timeout: ",
            "above 0",
        ),
        (
            "[milter.a]\nconnection_spec = \"inet:1\"\napplicable_conditions = [\"\"]\n",
            "3: milter.a.applicable_conditions: ",
            "empty",
        ),
        ("milter = 3\n", "1: milter: ", "expected a table"),
        ("[milter]\na = 3\n", "2: milter.a: ", "expected a table"),
        ("[controller]\nn_workers = 2\n", "2: controller.n_workers: ", "belongs in [manager]"),
        ("load_default = \"yes\"\n", "1: load_default: ", "expected true or false"),
        ("include = [1]\n", "1: include: ", "expected a string, found an integer"),
    ];
    for (text, location, message) in cases {
        let dir = TestDir::new("errors");
        let path = dir.write(MAIN_FILE, text);
        let error = load(&dir).expect_err(text).to_string();
        let prefix = format!("{}:{location}", path.display());
        assert!(error.starts_with(&prefix), "{text:?}: {error:?} does not start with {prefix:?}");
        assert!(error.contains(message), "{text:?}: {error:?} does not say {message:?}");
        assert!(!error.contains('\n'), "{error:?}");
    }
}

#[test]
fn a_disabled_milter_needs_no_socket() {
    let dir = TestDir::new("disabled");
    dir.write(MAIN_FILE, "[milter.x]\nenabled = false\n");
    assert!(!load(&dir).unwrap().milter("x").unwrap().enabled);
}
