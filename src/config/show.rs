//! `--show-config`: the effective configuration as a TOML file that loads back to the same
//! configuration, every item preceded by a comment saying where its value came from.

use std::fmt::Write;

use super::origin::Origin;
use super::schema::{self, Item};
use super::values::quote;
use super::Config;
use crate::conditions::{BUILT_IN_ALIASES, BUILT_IN_CONDITIONS};

const HEADER: &str = "\
# The effective milter-manager configuration (milter-manager --show-config).
# Each item is preceded by where its value came from: a file and line, \"default\" or
# \"command line\". Items not set are shown commented out. Saved as a file, this text loads
# back to the same configuration.
";

pub(super) fn show(config: &Config) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    // The platform default was loaded already: its milters are in the list below.
    out.push_str("load_default = false\n");
    fixed_section(&mut out, config, "package", &config.package, schema::PACKAGE);
    fixed_section(&mut out, config, "security", &config.security, schema::SECURITY);
    fixed_section(&mut out, config, "manager", &config.manager, schema::MANAGER);
    fixed_section(&mut out, config, "controller", &config.controller, schema::CONTROLLER);
    fixed_section(&mut out, config, "log", &config.log, schema::LOG);
    fixed_section(&mut out, config, "s25r", &config.s25r, schema::S25R);
    fixed_section(
        &mut out,
        config,
        "remote_network",
        &config.remote_network,
        schema::REMOTE_NETWORK,
    );
    fixed_section(&mut out, config, "trust", &config.trust, schema::TRUST);
    fixed_section(&mut out, config, "stress", &config.stress, schema::STRESS);
    fixed_section(&mut out, config, "dnsbl", &config.dnsbl, schema::DNSBL);
    let accounts = &config.restrict_accounts;
    fixed_section(&mut out, config, "restrict_accounts", accounts, schema::RESTRICT_ACCOUNTS);
    conditions(&mut out, config);
    for milter in &config.milters {
        let header = format!("{}.{}", schema::MILTER_TABLE, quote(&milter.name));
        section(&mut out, &header, milter, schema::MILTER, |k| {
            config.origins.milter_item(&milter.name, k)
        });
    }
    out
}

/// The applicable conditions and the manager's script hooks, as comments: a Rhai file's
/// code cannot be shown, so where each one is defined is. One line per condition, in the
/// form the manual greps for (`--show-config | grep define_applicable_condition`).
fn conditions(out: &mut String, config: &Config) {
    out.push_str(
        "\n# Applicable conditions (built in, or defined in the Rhai file and line named):\n",
    );
    let mut line = |name: &str, description: &str, origin: &str| {
        let _ = writeln!(
            out,
            "# define_applicable_condition({}) # {description} ({origin})",
            quote(name)
        );
    };
    for (name, description) in BUILT_IN_CONDITIONS {
        let aliases: Vec<String> = BUILT_IN_ALIASES
            .iter()
            .filter(|(_, builtin)| *builtin == name)
            .map(|(alias, _)| quote(alias))
            .collect();
        let also = if aliases.is_empty() {
            String::new()
        } else {
            format!("; also {}", aliases.join(", "))
        };
        line(name, description, &format!("built in{also}"));
    }
    for condition in &config.conditions {
        let description = condition.description.as_deref().unwrap_or("no description");
        line(&condition.name, description, &condition.origin);
    }
    let scripts = &config.manager_scripts;
    if scripts.maintained.is_empty() && scripts.connection_checkers.is_empty() {
        return;
    }
    out.push_str("\n# Manager script hooks (Rhai):\n");
    for callback in &scripts.maintained {
        let _ = writeln!(out, "# manager.maintained ({})", callback.origin());
    }
    for checker in &scripts.connection_checkers {
        let _ = writeln!(
            out,
            "# manager.define_connection_checker({}) ({})",
            quote(&checker.name),
            checker.function.origin()
        );
    }
    if scripts.uses_builtin_checker() {
        out.push_str("# the built-in connection check runs too\n");
    }
}

fn fixed_section<T>(out: &mut String, config: &Config, name: &str, target: &T, items: &[Item<T>]) {
    section(out, name, target, items, |key| config.origins.get(name, key));
}

/// `[header]`, then each item's origin comment and value.
fn section<T>(
    out: &mut String,
    header: &str,
    target: &T,
    items: &[Item<T>],
    origin: impl Fn(&str) -> Origin,
) {
    let _ = write!(out, "\n[{header}]\n");
    for item in items {
        let _ = writeln!(out, "# {}", origin(item.key));
        match (item.show)(target).to_toml() {
            Some(value) => {
                let _ = writeln!(out, "{} = {value}", item.key);
            }
            None => {
                let _ = writeln!(out, "# {} = (not set)", item.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TestDir;
    use super::*;

    /// The text without the origin comments, which name the file the values came from
    /// (the test files are absolute paths).
    fn without_origins(text: &str) -> String {
        let is_origin = |line: &&str| {
            *line == "# default" || *line == "# command line" || line.starts_with("# /")
        };
        text.lines().filter(|line| !is_origin(line)).collect::<Vec<_>>().join("\n")
    }

    const RICH: &str = r#"
[package]
platform = "redhat"
options = "prefix=/etc,name=value"

[security]
privilege_mode = true
effective_user = "milter-manager"
effective_group = "milter-manager"

[manager]
connection_spec = "unix:/run/milter-manager/milter-manager.sock"
unix_socket_mode = "0600"
unix_socket_group = "postfix"
remove_unix_socket_on_create = false
remove_unix_socket_on_close = false
daemon = true
pid_file = "/run/milter-manager/milter-manager.pid"
maintenance_interval = 0
suspend_time_on_unacceptable = 10
max_connections = 10
max_file_descriptors = 65535
custom_configuration_directory = "/var/lib/milter-manager"
fallback_status = "reject"
fallback_status_at_disconnect = "discard"
event_loop_backend = "libev"
n_workers = 10
packet_buffer_size = 4096
chunk_size = 4096
max_pending_finished_sessions = 3
connection_check_interval = 5
report_memory_statistics = true
max_body_memory = 1048576
max_spill_size = 0
max_child_modifications = 20
max_child_modification_bytes = 0
temporary_directory = "/var/tmp"

[controller]
connection_spec = "inet:10026@localhost"
unix_socket_mode = 0o600
unix_socket_group = "adm"
remove_unix_socket_on_create = false
remove_unix_socket_on_close = false

[log]
level = "error|warning|statistics"
path = "/var/log/milter-manager.log"
use_syslog = false
syslog_facility = "local3"

[dnsbl]
services = ["bl.example=127.0.0.2", "zen.example=127.0.0.10/31", "any.example"]
default_services = false
name_servers = ["192.0.2.53", "[::1]:5353"]
timeout = 2.5

[milter."spamass-milter"]
connection_spec = "unix:/run/spamass.sock"
description = "tricky \"quotes\" \\ and\ttabs and é"
enabled = true
fallback_status = "temporary-failure"
evaluation_mode = true
applicable_conditions = ["S25R", "Remote Network"]
command = "/etc/init.d/spamass-milter"
command_options = ["start", "--now"]
user_name = "nobody"
connection_timeout = 60
writing_timeout = 15.5
reading_timeout = 0.25
end_of_message_timeout = 600.0

[milter.clamav]
enabled = false
command_options = "start"

[milter."with.dot"]
connection_spec = "inet6:8891@[::1]"
"#;

    #[test]
    fn shown_text_loads_back_to_the_same_configuration() {
        let dir = TestDir::new("show-round-trip");
        let original = Config::load_file_under(
            &dir.write("milter-manager.toml", RICH),
            &dir.machine(),
            dir.owner(),
        )
        .unwrap();
        let shown = original.show();
        assert!(shown.starts_with("# The effective"), "{shown}");
        assert!(shown.contains("\nload_default = false\n"));
        let printed = dir.write("printed.toml", &shown);
        let reloaded = Config::load_file_under(&printed, &dir.machine(), dir.owner())
            .unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(reloaded, original);
        let shown_again = reloaded.show();
        assert_ne!(shown_again, shown, "the origins name another file");
        assert_eq!(without_origins(&shown_again), without_origins(&shown));
        let milter_names: Vec<&str> = reloaded.milters.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(milter_names, ["spamass-milter", "clamav", "with.dot"]);
    }

    #[test]
    fn defaults_round_trip_with_unset_items_commented_out() {
        let dir = TestDir::new("show-defaults");
        let shown = Config::default().show();
        assert!(shown.contains("# default\n# pid_file = (not set)\n"), "{shown}");
        assert!(shown.contains("# default\nunix_socket_mode = 0o660\n"), "{shown}");
        assert!(shown.contains("# default\nconnection_spec = \"inet:10025@[127.0.0.1]\"\n"));
        let reloaded = Config::load_file_under(
            &dir.write("printed.toml", &shown),
            &dir.machine(),
            dir.owner(),
        )
        .unwrap();
        assert_eq!(reloaded, Config::default());
        assert_eq!(without_origins(&reloaded.show()), without_origins(&shown));
    }

    #[test]
    fn the_defined_conditions_are_found_by_grepping_define_applicable_condition() {
        let dir = TestDir::new("show-conditions");
        dir.write(
            "milter-manager.toml",
            "include = [\"mine.rhai\"]\n[milter.a]\nconnection_spec = \"inet:1\"\n",
        );
        let script = dir.write(
            "mine.rhai",
            "\ndefine_applicable_condition(\"Mine\", |condition| {\n\
             \x20 condition.description = \"only mine\";\n});\n\
             manager.maintained(|| 1);\n\
             manager.define_connection_checker(\"netstat-check\", |context| true);\n",
        );
        let config = dir.load().unwrap();
        let shown = config.show();
        let grepped: Vec<&str> =
            shown.lines().filter(|l| l.contains("define_applicable_condition")).collect();
        let here = script.display();
        assert_eq!(
            grepped[0],
            "# define_applicable_condition(\"S25R\") # Selective SMTP Rejection: only clients \
             whose host name looks dynamic (built in)",
            "{shown}"
        );
        assert!(grepped.contains(
            &"# define_applicable_condition(\"Authenticated\") # Only senders who authenticated \
              (SMTP AUTH) (built in; also \"Authentication\")"
        ));
        assert_eq!(
            grepped.last().unwrap(),
            &format!("# define_applicable_condition(\"Mine\") # only mine ({here}:2)")
        );
        assert!(shown.contains(&format!("# manager.maintained ({here}:5)\n")), "{shown}");
        assert!(shown.contains(&format!(
            "# manager.define_connection_checker(\"netstat-check\") ({here}:6)\n"
        )));
        // Still a file that loads: the conditions and hooks are comments.
        let printed = dir.write("printed.toml", &shown);
        let reloaded = Config::load_file_under(&printed, &dir.machine(), dir.owner())
            .unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(reloaded.milters, config.milters);
    }

    #[test]
    fn every_item_has_an_origin_comment_naming_its_line() {
        let dir = TestDir::new("show-origins");
        let path = dir.write(
            "milter-manager.toml",
            "[manager]\nn_workers = 3\n\n[milter.a]\nconnection_spec = \"inet:1\"\n",
        );
        let mut config = Config::load_file_under(&path, &dir.machine(), dir.owner()).unwrap();
        config
            .apply_overrides(&super::super::Overrides { daemon: Some(true), ..Default::default() })
            .unwrap();
        let shown = config.show();
        let here = path.display();
        assert!(shown.contains(&format!("# {here}:2\nn_workers = 3\n")), "{shown}");
        assert!(shown.contains(&format!("# {here}:5\nconnection_spec = \"inet:1\"\n")), "{shown}");
        assert!(shown.contains("# command line\ndaemon = true\n"), "{shown}");
        assert!(shown.contains(&format!("[milter.\"a\"]\n# {here}:5\n")), "{shown}");
        // Every item line (set or not) comes right after its origin comment.
        let lines: Vec<&str> = shown.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_item = line.contains(" = ") && !line.starts_with("load_default");
            if is_item {
                let comment = lines[i - 1];
                assert!(
                    comment == "# default"
                        || comment == "# command line"
                        || comment.starts_with("# detected: ")
                        || comment.starts_with(&format!("# {here}:")),
                    "{line} follows {comment}"
                );
            }
        }
    }
}
