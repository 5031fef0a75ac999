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
