use std::fs;
use std::path::Path;

use crate::config::testdir::TestDir;
use crate::config::{Config, ConfigError, Origin, MAIN_FILE};

fn load(dir: &TestDir, script: &str) -> Result<Config, ConfigError> {
    dir.write(MAIN_FILE, "include = [\"x.rhai\"]\n");
    dir.write("x.rhai", script);
    dir.load()
}

#[test]
fn the_settings_of_the_built_ins_from_a_script() {
    let dir = TestDir::new("script-settings");
    let config = load(
        &dir,
        "s25r.add_whitelist(\"mx.example.com\");\n\
         s25r.add_blacklist(\"/^dyn-/\");\n\
         s25r.add_whitelist(|host| host == \"x\");\n\
         s25r.check_only_ipv4 = false;\n\
         remote_network.add_local_address(\"160.29.167.0/24\");\n\
         remote_network.add_remote_address(\"2001:db8::1\");\n\
         trust.clear();\n\
         trust.add_envelope_from_domain(\"example.com\");\n\
         trust.load_envelope_from_domains(\"trusted.txt\");\n\
         stress.threshold_n_connections = 40;\n\
         if stress.threshold_n_connections != 40 { throw \"not read back\"; }\n\
         dnsbl.clear();\n\
         dnsbl.add_service(\"bl.example\");\n\
         dnsbl.add_service(\"zen.example\", \"127.0.0.10/31\");\n\
         dnsbl.name_servers = [\"192.0.2.53\", \"127.0.0.1:5353\"];\n\
         dnsbl.timeout = 2;\n\
         let servers = dnsbl.name_servers;\n\
         if dnsbl.timeout != 2.0 || servers.len() != 2 { throw \"dnsbl\"; }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.s25r.whitelist, ["mx.example.com"]);
    assert_eq!(config.s25r.blacklist, ["/^dyn-/"]);
    assert_eq!(config.s25r.whitelist_functions.len(), 1);
    assert!(!config.s25r.check_only_ipv4);
    assert_eq!(config.remote_network.local_addresses, ["160.29.167.0/24"]);
    assert_eq!(config.remote_network.remote_addresses, ["2001:db8::1"]);
    assert!(!config.trust.default_envelope_from_domains);
    assert_eq!(config.trust.envelope_from_domains, ["example.com"]);
    let file = dir.path().join("trusted.txt").display().to_string();
    assert_eq!(config.trust.envelope_from_domain_files, [file]);
    assert_eq!(config.stress.threshold_n_connections, Some(40));
    assert!(!config.dnsbl.default_services);
    assert_eq!(config.dnsbl.services, ["bl.example", "zen.example=127.0.0.10/31"]);
    assert_eq!(config.dnsbl.name_servers, ["192.0.2.53", "127.0.0.1:5353"]);
    assert_eq!(config.dnsbl.timeout, 2.0);
    let script = dir.path().join("x.rhai");
    assert_eq!(
        config.origin("dnsbl.name_servers"),
        Origin::File { path: script.clone(), line: 15 }
    );
    assert_eq!(
        config.origin("stress.threshold_n_connections"),
        Origin::File { path: script.clone(), line: 10 }
    );
    assert_eq!(
        config.origin("remote_network.local_addresses"),
        Origin::File { path: script, line: 5 }
    );
}

#[test]
fn bad_values_in_a_script_name_the_line_and_the_item() {
    let dir = TestDir::new("script-errors");
    let cases = [
        (
            "\nremote_network.add_local_address(\"192.0.2.0/33\");",
            "2: remote_network.local_addresses: ",
        ),
        ("s25r.add_whitelist(\"/[/\");", "1: s25r.whitelist: "),
        ("s25r.add_whitelist(42);", "1: s25r.add_whitelist: expected a host name"),
        ("stress.threshold_n_connections = -1;", "1: stress.threshold_n_connections: "),
        ("\ndnsbl.add_service(\"bl..example\");", "2: dnsbl.services: invalid DNSBL zone"),
        ("dnsbl.add_service(\"bl.example\", \"yes\");", "1: dnsbl.services: invalid expected"),
        ("dnsbl.name_servers = [\"ns.example\"];", "1: dnsbl.name_servers: invalid name server"),
        ("dnsbl.timeout = 600;", "1: dnsbl.timeout: must be a number of seconds"),
        ("define_milter(\"\");", "1: a milter needs a name"),
        ("remove_milter(\"nope\");", "1: no milter named \"nope\" to remove"),
        (
            "let m = define_milter(\"a\");\nm.reading_timeout = \"soon\";",
            "2: milter.a.reading_timeout: ",
        ),
        (
            "let c = define_applicable_condition(\"c\");\nc.description = 1;",
            "2: a description is a string",
        ),
        (
            "let m = define_milter(\"a\");\nm.command = |x| x;",
            "2: milter.a.command: expected a string, a number, true or false, or an array, \
             found Fn",
        ),
        (
            "let m = define_milter(\"a\");\nm.command_options = [\"a\", #{}];",
            "2: milter.a.command_options: expected a string, a number, true or false, or an \
             array, found map",
        ),
        (
            "let m = define_milter(\"a\");\nm.connection_timeout = -3;",
            "2: milter.a.connection_timeout: must be a number of seconds above 0 and at most \
             86400",
        ),
        (
            "let m = define_milter(\"a\");\nm.applicable_conditions = [\"S25R\", 1];",
            "2: milter.a.applicable_conditions: expected an array of strings, found an \
             integer in it",
        ),
        ("loop { }", "1: stopped after"),
    ];
    for (script, wanted) in cases {
        let error = load(&dir, script).unwrap_err().to_string();
        let prefix = format!("{}:", dir.path().join("x.rhai").display());
        assert!(error.starts_with(&prefix), "{script}: {error}");
        assert!(error[prefix.len()..].starts_with(wanted), "{script}: {error}");
    }
}

#[test]
fn milters_from_a_script_have_every_item() {
    let dir = TestDir::new("script-milter");
    let config = load(
        &dir,
        "define_milter(\"clamav\", |milter| {\n\
         \x20 milter.connection_spec = \"unix:/run/clamav.sock\";\n\
         \x20 milter.description = \"virus scan\";\n\
         \x20 milter.fallback_status = \"temporary-failure\";\n\
         \x20 milter.evaluation_mode = true;\n\
         \x20 milter.applicable_conditions = [\"S25R\"];\n\
         \x20 milter.add_applicable_condition(\"Remote Network\");\n\
         \x20 milter.command = \"/usr/sbin/service\";\n\
         \x20 milter.command_options = [\"clamav-milter\", \"start\"];\n\
         \x20 milter.user_name = \"clamav\";\n\
         \x20 milter.connection_timeout = 10;\n\
         \x20 milter.writing_timeout = 1.5;\n\
         \x20 if milter.name != \"clamav\" || milter.writing_timeout != 1.5 { throw \"read back\"; }\n\
         });\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let milter = config.milter("clamav").unwrap();
    assert_eq!(milter.connection_spec.as_ref().unwrap().to_string(), "unix:/run/clamav.sock");
    assert_eq!(milter.applicable_conditions, ["S25R", "Remote Network"]);
    assert!(milter.evaluation_mode);
    assert_eq!(
        milter.command_options,
        Some(crate::config::CommandOptions::Arguments(vec![
            "clamav-milter".into(),
            "start".into()
        ]))
    );
    assert_eq!((milter.connection_timeout, milter.writing_timeout), (10.0, 1.5));
}

#[test]
fn the_shipped_examples_load() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples/conditions.rhai");
    let dir = TestDir::new("script-examples");
    let config =
        load(&dir, &fs::read_to_string(examples).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Unresolved Client", "No Mailing Lists", "Unsigned", "Suspicious", "Submission Flag"]
    );
}

#[test]
fn the_stress_threshold_read_is_the_one_in_use() {
    let dir = TestDir::new("script-stress-detected");
    dir.machine();
    // No Postfix on the machine: never stressed, 0.
    let config = load(&dir, "if stress.threshold_n_connections != 0 { throw \"none\"; }\n");
    config.unwrap_or_else(|e| panic!("{e}"));
    // Postfix's default smtpd limit (100): 3/4 of it, as the manual shows.
    dir.write("machine/etc/postfix/master.cf", "smtp inet n - y - - smtpd\n");
    let config = load(
        &dir,
        "let detected = stress.threshold_n_connections;\n\
         if detected != 75 { throw `detected ${detected}`; }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Reading it does not set it: the conditions still detect it themselves.
    assert_eq!(config.stress.threshold_n_connections, None);
    let config = load(&dir, "stress.threshold_n_connections = 10;\n").unwrap();
    assert_eq!(config.stress.threshold_n_connections, Some(10));
}

#[test]
fn manager_items_and_the_netstat_checker_as_the_manual_writes_them() {
    let dir = TestDir::new("script-manager");
    let config = load(&dir, "manager.use_netstat_connection_checker;\n").unwrap();
    assert_eq!(config.manager.connection_check_interval, 5);
    assert!(config.manager_scripts.builtin_checker_requested);
    let script = dir.path().join("x.rhai");
    assert_eq!(
        config.origin("manager.connection_check_interval"),
        Origin::File { path: script.clone(), line: 1 }
    );
    let config = load(
        &dir,
        "manager.use_netstat_connection_checker(1);\n\
         if manager.connection_check_interval != 1 { throw \"read back\"; }\n\
         manager.maintenance_interval = 10;\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.manager.connection_check_interval, 1);
    assert_eq!(config.manager.maintenance_interval, 10);
    let config = load(&dir, "manager.use_netstat_connection_checker();\n").unwrap();
    assert_eq!(config.manager.connection_check_interval, 5);
    for (script, wanted) in [
        ("manager.use_netstat_connection_checker(0);", "1: manager.use_netstat_connection_checker: the interval is a number of seconds above 0, found 0"),
        ("\nmanager.n_workers = \"many\";", "2: manager.n_workers: "),
        ("manager.define_connection_checker(\"\", |c| true);", "1: manager.define_connection_checker: a checker needs a name"),
    ] {
        let error = load(&dir, script).unwrap_err().to_string();
        let prefix = format!("{}:", script_path(&dir));
        assert!(error.starts_with(&format!("{prefix}{wanted}")), "{script}: {error}");
    }
}

fn script_path(dir: &TestDir) -> String {
    dir.path().join("x.rhai").display().to_string()
}

#[test]
fn maintained_callbacks_and_connection_checkers_are_kept_for_the_workers() {
    let dir = TestDir::new("script-hooks");
    let config = load(
        &dir,
        "manager.maintained(|| print(\"maintained!\"));\n\
         manager.maintained(|| throw \"broken\");\n\
         manager.define_connection_checker(\"local only\", |context| {\n\
         \x20 context.smtp_client_address.local\n\
         });\n\
         manager.define_connection_checker(\"server\", |context| \
         context.smtp_server_address.to_s == \"inet:25@[192.0.2.25]\");\n\
         manager.define_connection_checker(\"answer\", |context| 1);\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let scripts = &config.manager_scripts;
    let file = script_path(&dir);
    assert_eq!(scripts.run_maintained(), [format!("manager.maintained: {file}:2: broken")]);
    // Scripted checkers replace the built-in one unless it is asked for.
    assert!(!scripts.uses_builtin_checker());
    let names: Vec<&str> = scripts.connection_checkers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["local only", "server", "answer"]);
    let inet = |text: &str| crate::conditions::script::ScriptAddress::Inet {
        ip: text.parse().unwrap(),
        port: 25,
    };
    let [local, server, answer] = &scripts.connection_checkers[..] else { panic!() };
    assert_eq!(local.is_connected(inet("192.168.1.1"), inet("192.0.2.25")), Ok(true));
    assert_eq!(local.is_connected(inet("198.51.100.1"), inet("192.0.2.25")), Ok(false));
    assert_eq!(server.is_connected(inet("198.51.100.1"), inet("192.0.2.25")), Ok(true));
    let error = answer.is_connected(inet("198.51.100.1"), inet("192.0.2.25")).unwrap_err();
    assert_eq!(
        error.0,
        format!("{file}:7: returned i64 where true (connected) or false was expected")
    );
}

#[test]
fn a_runaway_connection_checker_is_cut_off_at_the_stoppers_limit() {
    let dir = TestDir::new("script-checker-runaway");
    let config = load(
        &dir,
        "manager.use_netstat_connection_checker;\n\
         manager.define_connection_checker(\"loop\", |context| {\n  loop { }\n});\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.manager_scripts.uses_builtin_checker());
    let checker = &config.manager_scripts.connection_checkers[0];
    let error = checker
        .is_connected(
            crate::conditions::script::ScriptAddress::Unknown,
            crate::conditions::script::ScriptAddress::Unknown,
        )
        .unwrap_err();
    assert!(error.0.starts_with(&format!("{}:2: stopped after", script_path(&dir))), "{error}");
}
