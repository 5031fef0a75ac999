//! The platform default file and the milters detected on the machine.

use super::*;

#[test]
fn load_default_defines_the_detected_milters_and_later_files_change_them() {
    let dir = TestDir::new("detected");
    let root = dir.path().join("root");
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib/systemd/system/opendkim.service",
        "[Unit]\nDescription=OpenDKIM Milter\n[Service]\n\
         ExecStart=/usr/sbin/opendkim -x /etc/opendkim.conf\n",
    );
    write("etc/opendkim.conf", "Socket inet:8891@localhost\n");
    write("etc/systemd/system/multi-user.target.wants/opendkim.service", "");
    write(
        "lib/systemd/system/spamass-milter.service",
        "[Service]\nExecStart=/usr/sbin/spamass-milter\n",
    );
    dir.write(
        MAIN_FILE,
        &format!(
            "load_default = true\ninclude_optional = [\"local.toml\"]\n\
             [package]\nplatform = \"debian\"\noptions = \"root={}\"\n",
            root.display()
        ),
    );
    dir.write("local.toml", "[milter.opendkim]\nfallback_status = \"temporary-failure\"\n");
    let config = load(&dir).unwrap();
    let names: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["opendkim"], "notes: {:?}", config.notes);
    let milter = &config.milters[0];
    assert_eq!(milter.connection_spec.as_ref().unwrap().to_string(), "inet:8891@localhost");
    assert!(milter.enabled);
    assert_eq!(milter.fallback_status, crate::status::FallbackStatus::TemporaryFailure);
    assert_eq!(
        config.origin("milter.opendkim.connection_spec"),
        Origin::Detected { source: "/lib/systemd/system/opendkim.service".into() }
    );
    assert_eq!(file_name(&config, "milter.opendkim.fallback_status"), "local.toml:2");
    assert!(
        config.notes.iter().any(|n| n.contains("spamass-milter")),
        "spamass-milter without a socket is explained: {:?}",
        config.notes
    );
}

/// A machine (under the test directory's `machine/`) with opendkim and spamass-milter
/// installed and enabled, and the shipped layout of files reading it.
fn machine_with_two_milters(dir: &TestDir) {
    let root = dir.machine();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib/systemd/system/opendkim.service",
        "[Service]\nExecStart=/usr/sbin/opendkim -x /etc/opendkim.conf\n",
    );
    write("etc/opendkim.conf", "Socket inet:8891@localhost\n");
    write(
        "lib/systemd/system/spamass-milter.service",
        "[Service]\nExecStart=/usr/sbin/spamass-milter -p /run/spamass.sock\n",
    );
    dir.write(
        MAIN_FILE,
        "include = [\"conf.d/*.toml\"]\nload_default = true\n\
         include_optional = [\"milter-manager.local.toml\"]\n",
    );
    dir.write("defaults/debian.toml", "[manager]\nmax_connections = 7\n");
}

fn milter_names(config: &Config) -> Vec<&str> {
    config.milters.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn load_default_false_in_a_later_file_wins() {
    let dir = TestDir::new("load-default-off");
    machine_with_two_milters(&dir);
    let config = load(&dir).unwrap();
    assert_eq!(milter_names(&config), ["opendkim", "spamass-milter"]);
    assert_eq!(config.manager.max_connections, 7);
    assert_eq!(
        config.milter("spamass-milter").unwrap().applicable_conditions,
        ["Remote Network", "Unauthenticated", "No Stress"]
    );

    // conf.d is read before the default's place in milter-manager.toml.
    let conf_d = dir.write("conf.d/10-no-default.toml", "\nload_default = false\n");
    let config = load(&dir).unwrap();
    assert_eq!(milter_names(&config), Vec::<&str>::new());
    assert_eq!(config.manager.max_connections, 0, "the default file is not read either");
    let note = format!(
        "{}:2: load_default = false: no platform default, no detected milter",
        conf_d.display()
    );
    assert!(config.notes.contains(&note), "{:?}", config.notes);
    std::fs::remove_file(conf_d).unwrap();

    // milter-manager.local.toml is read after it: loading starts again without it,
    // and the local file's own settings still count.
    dir.write(
        "milter-manager.local.toml",
        "load_default = false\n[milter.mine]\nconnection_spec = \"inet:1\"\n",
    );
    let config = load(&dir).unwrap();
    assert_eq!(milter_names(&config), ["mine"]);
    assert_eq!(config.manager.max_connections, 0);
    assert!(config.notes.iter().any(|n| n.contains("load_default = false")));
}

#[test]
fn later_files_remove_and_change_the_detected_milters() {
    let dir = TestDir::new("detected-later");
    machine_with_two_milters(&dir);
    dir.write(
        "milter-manager.local.toml",
        "remove_milters = [\"opendkim\"]\n\
         [milter.spamass-milter]\napplicable_conditions = [\"Authentication\"]\n",
    );
    let config = load(&dir).unwrap();
    assert_eq!(milter_names(&config), ["spamass-milter"]);
    let spamass = config.milter("spamass-milter").unwrap();
    assert_eq!(spamass.applicable_conditions, ["Authentication"]);
    assert_eq!(
        file_name(&config, "milter.spamass-milter.applicable_conditions"),
        "milter-manager.local.toml:3"
    );
    assert_eq!(
        config.origin("milter.spamass-milter.connection_spec"),
        Origin::Detected { source: "/lib/systemd/system/spamass-milter.service".into() }
    );
}

#[test]
fn the_platform_is_detected_when_no_file_sets_it() {
    let dir = TestDir::new("platform");
    machine_with_two_milters(&dir);
    dir.write("defaults/redhat.toml", "[manager]\nmax_connections = 9\n");
    let root = dir.machine();
    std::fs::write(root.join("etc/os-release"), "ID=\"rocky\"\nID_LIKE=\"rhel fedora\"\n").unwrap();
    let config = load(&dir).unwrap();
    assert_eq!(config.package.platform, "redhat");
    assert_eq!(config.manager.max_connections, 9, "defaults/redhat.toml is read");
    assert_eq!(milter_names(&config), ["spamass-milter", "opendkim"], "Red Hat's order");
    let source = "/etc/os-release: ID=rocky".to_string();
    assert_eq!(config.origin("package.platform"), Origin::Detected { source });
    assert!(config
        .show()
        .contains("# detected: /etc/os-release: ID=rocky\nplatform = \"redhat\"\n"));

    // A file's platform wins over the machine's.
    dir.write("conf.d/platform.toml", "[package]\nplatform = \"debian\"\n");
    let config = load(&dir).unwrap();
    assert_eq!(config.package.platform, "debian");
    assert_eq!(config.manager.max_connections, 7);
}

#[test]
fn a_detected_condition_that_does_not_exist_is_left_out_with_a_note() {
    let dir = TestDir::new("detected-unknown-condition");
    machine_with_two_milters(&dir);
    let mut config = load(&dir).unwrap();
    let spamass = config.milters.iter_mut().find(|m| m.name == "spamass-milter").unwrap();
    spamass.applicable_conditions.push("Gone Away".into());
    config.settle_detected_conditions();
    let spamass = config.milter("spamass-milter").unwrap();
    assert_eq!(spamass.applicable_conditions, ["Remote Network", "Unauthenticated", "No Stress"]);
    let note = "/lib/systemd/system/spamass-milter.service: spamass-milter: no applicable \
                condition \"Gone Away\"; the milter is kept without it";
    assert!(config.notes.iter().any(|n| n == note), "{:?}", config.notes);

    // The same name in a file of the admin's is an error naming the file and line.
    dir.write(
        "milter-manager.local.toml",
        "[milter.spamass-milter]\nenabled = true\napplicable_conditions = [\"Gone Away\"]\n",
    );
    let config = load(&dir).unwrap();
    let sessions = std::rc::Rc::new(NoSessions);
    let error = crate::conditions::ConditionSet::new(&config, sessions).err().unwrap();
    let local = dir.path().join("milter-manager.local.toml");
    assert!(
        error.to_string().starts_with(&format!(
            "{}:3: milter.spamass-milter.applicable_conditions: milter \"spamass-milter\": \
             unknown applicable condition \"Gone Away\"",
            local.display()
        )),
        "{error}"
    );
}

struct NoSessions;

impl crate::conditions::SessionCount for NoSessions {
    fn n_sessions(&self) -> usize {
        0
    }
}
