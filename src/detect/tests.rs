//! Detection on fake trees, one per platform, with opendkim, clamav-milter, spamass-milter
//! and rspamd installed, enabled and disabled; and the ways a detection can fail.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A directory standing for `/`, removed when dropped.
struct FakeRoot {
    dir: PathBuf,
}

impl FakeRoot {
    fn new() -> FakeRoot {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "milter-manager-detect-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        FakeRoot { dir }
    }

    fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    fn write(&self, path: &str, text: &str) -> &FakeRoot {
        let real = self.path(path);
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, text).unwrap();
        self
    }

    fn link(&self, path: &str, target: &str) -> &FakeRoot {
        let real = self.path(path);
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, real).unwrap();
        self
    }

    fn detect(&self, platform: &str, options: &str) -> Detection {
        detect(platform, &self.dir, &PackageOptions::parse(options).unwrap())
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SPAM_CONDITIONS: &[&str] = &["Remote Network", "Unauthenticated", "No Stress"];

/// The expected milter; `command` is the command and its options.
fn milter(
    name: &str,
    spec: &str,
    enabled: bool,
    command: &[&str],
    conditions: &[&str],
    source: &str,
    description: Option<&str>,
) -> DetectedMilter {
    DetectedMilter {
        name: name.to_string(),
        description: description.map(str::to_string),
        enabled,
        connection_spec: Spec::parse(spec).unwrap(),
        command: Some(command[0].to_string()),
        command_options: command[1..].iter().map(|word| word.to_string()).collect(),
        applicable_conditions: conditions.iter().map(|condition| condition.to_string()).collect(),
        source: source.to_string(),
    }
}

fn assert_milters(detection: &Detection, expected: &[DetectedMilter]) {
    assert_eq!(detection.notes, Vec::<String>::new());
    assert_eq!(detection.milters.len(), expected.len(), "{:#?}", detection.milters);
    for (got, expected) in detection.milters.iter().zip(expected) {
        assert_eq!(got, expected);
    }
}

fn only_note(detection: &Detection) -> &str {
    assert!(detection.milters.is_empty(), "{:#?}", detection.milters);
    assert_eq!(detection.notes.len(), 1, "{:#?}", detection.notes);
    &detection.notes[0]
}

const RSPAMD_CONF: &str = r#"# Stock top-level configuration
.include "$CONFDIR/common.conf"

options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
}

worker "normal" {
    bind_socket = "localhost:11333";
    .include "$CONFDIR/worker-normal.inc"
}

worker "rspamd_proxy" {
    bind_socket = "localhost:11332";
    .include "$CONFDIR/worker-proxy.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/worker-proxy.inc"
    .include(try=true; priority=10) "$LOCAL_CONFDIR/override.d/worker-proxy.inc"
}
"#;

const WORKER_PROXY_INC: &str = r#"# Proxy worker setup
milter = yes; # Enable milter mode
timeout = 120s;

upstream "local" {
  default = yes;
  hosts = "localhost";
}

count = 1; # Do not spawn too many processes of this type
spam_header = "X-Spam";
"#;

// Debian ------------------------------------------------------------------------------

fn debian_systemd_tree(enabled: bool) -> FakeRoot {
    let root = FakeRoot::new();
    root.write(
        "/lib/systemd/system/opendkim.service",
        "[Unit]\nDescription=OpenDKIM Milter\nAfter=network-online.target\n\n[Service]\n\
         Type=forking\nPIDFile=/run/opendkim/opendkim.pid\nExecStart=/usr/sbin/opendkim -x /etc/opendkim.conf\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .write(
        "/etc/opendkim.conf",
        "# This is a basic configuration\nSyslog\t\t\tyes\nUMask\t\t\t007\n\
         Socket\t\t\tlocal:/run/opendkim/opendkim.sock\nPidFile\t\t\t/run/opendkim/opendkim.pid\n",
    )
    .write(
        "/etc/default/opendkim",
        "RUNDIR=/run/opendkim\n#SOCKET=local:$RUNDIR/opendkim.sock\nSOCKET=inet:12345@localhost\n",
    )
    .write(
        "/lib/systemd/system/clamav-milter.service",
        "[Unit]\nDescription=ClamAV Milter\n\n[Service]\nType=forking\n\
         ExecStart=/usr/sbin/clamav-milter --config-file /etc/clamav/clamav-milter.conf\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .write(
        "/etc/clamav/clamav-milter.conf",
        "#Automatically Generated by clamav-milter postconfiguration script\n\
         MilterSocket /var/run/clamav/clamav-milter.ctl\nFixStaleSocket true\nUser clamav\n\
         ClamdSocket unix:/var/run/clamav/clamd.ctl\n",
    )
    .write(
        "/lib/systemd/system/spamass-milter.service",
        "[Unit]\nDescription=SpamAssassin milter\n\n[Service]\n\
         EnvironmentFile=-/etc/default/spamass-milter\n\
         ExecStart=/usr/sbin/spamass-milter -p ${SOCKET} -g postfix $OPTIONS\n",
    )
    .write(
        "/etc/default/spamass-milter",
        "# spamass-milt startup defaults\n\
         OPTIONS=\"-u spamass-milter -i 127.0.0.1 -- -d 127.0.0.1\"\n\
         SOCKET=\"/var/spool/postfix/spamass/spamass.sock\"\nSOCKETOWNER=\"postfix:postfix\"\n",
    )
    .write(
        "/lib/systemd/system/rspamd.service",
        "[Unit]\nDescription=rapid spam filtering system\n\n[Service]\n\
         ExecStart=/usr/bin/rspamd -c /etc/rspamd/rspamd.conf -f\n",
    )
    .write("/etc/rspamd/rspamd.conf", RSPAMD_CONF)
    .write("/etc/rspamd/worker-proxy.inc", WORKER_PROXY_INC)
    .write("/etc/rspamd/local.d/worker-proxy.inc", "bind_socket = \"*:11332\";\n");
    let wants = "/etc/systemd/system/multi-user.target.wants";
    for name in ["opendkim", "clamav-milter", "spamass-milter", "rspamd"] {
        if enabled {
            root.link(
                &format!("{wants}/{name}.service"),
                &format!("/lib/systemd/system/{name}.service"),
            );
        }
    }
    if !enabled {
        // Masked: disabled even though a target still wants it.
        root.link("/etc/systemd/system/rspamd.service", "/dev/null")
            .link(&format!("{wants}/rspamd.service"), "/lib/systemd/system/rspamd.service");
    }
    root
}

fn debian_systemd_expected(enabled: bool) -> Vec<DetectedMilter> {
    let systemctl = |name| ["/usr/bin/systemctl", "start", name];
    vec![
        milter(
            "clamav-milter",
            "unix:/var/run/clamav/clamav-milter.ctl",
            enabled,
            &systemctl("clamav-milter"),
            &[],
            "/lib/systemd/system/clamav-milter.service",
            Some("ClamAV Milter"),
        ),
        milter(
            "opendkim",
            "local:/run/opendkim/opendkim.sock",
            enabled,
            &systemctl("opendkim"),
            &[],
            "/lib/systemd/system/opendkim.service",
            Some("OpenDKIM Milter"),
        ),
        milter(
            "spamass-milter",
            "unix:/var/spool/postfix/spamass/spamass.sock",
            enabled,
            &systemctl("spamass-milter"),
            SPAM_CONDITIONS,
            "/lib/systemd/system/spamass-milter.service",
            Some("SpamAssassin milter"),
        ),
        milter(
            "rspamd",
            "inet:11332@[127.0.0.1]",
            enabled,
            &systemctl("rspamd"),
            SPAM_CONDITIONS,
            "/lib/systemd/system/rspamd.service",
            Some("rapid spam filtering system"),
        ),
    ]
}

#[test]
fn debian_systemd_enabled() {
    let root = debian_systemd_tree(true);
    assert_milters(&root.detect("debian", ""), &debian_systemd_expected(true));
}

#[test]
fn debian_systemd_disabled() {
    let root = debian_systemd_tree(false);
    assert_milters(&root.detect("debian", ""), &debian_systemd_expected(false));
}

fn debian_init_tree(enabled: bool) -> FakeRoot {
    let root = FakeRoot::new();
    let switch = |off: &str| if enabled { String::new() } else { format!("ENABLED={off}\n") };
    root.write("/usr/sbin/service", "#!/bin/sh\n")
        .write(
            "/etc/init.d/opendkim",
            "#! /bin/sh\n### BEGIN INIT INFO\n# Provides:\t\topendkim\n\
             # Short-Description:\tStart the OpenDKIM service\n\
             # Description:\t\tEnable DKIM signing and verification\n#\t\tprovided by OpenDKIM\n\
             ### END INIT INFO\n\nPATH=/sbin:/bin:/usr/sbin:/usr/bin\nDAEMON=/usr/sbin/opendkim\n\
             NAME=opendkim\nDESC=\"OpenDKIM\"\nRUNDIR=/run/$NAME\nSOCKET=local:$RUNDIR/$NAME.sock\n\
             PIDFILE=$RUNDIR/$NAME.pid\n\ntest -x $DAEMON || exit 0\n\n\
             # Include opendkim defaults if available\nif [ -f /etc/default/opendkim ] ; then\n\
             \t. /etc/default/opendkim\nfi\n\nif [ -f /etc/opendkim.conf ]; then\n\
             \tCONFIG_SOCKET=`awk '$1 == \"Socket\" { print $2 }' /etc/opendkim.conf`\nfi\n\n\
             if [ -n \"$SOCKET\" -a -z \"$CONFIG_SOCKET\" ]; then\n\
             \tDAEMON_OPTS=\"-p $SOCKET $DAEMON_OPTS\"\nfi\n",
        )
        .write("/etc/opendkim.conf", "Syslog yes\nUMask 007\n")
        .write("/etc/default/opendkim", &format!("{}SOCKET=\"inet:8891@localhost\"\n", switch("0")))
        .write(
            "/etc/init.d/clamav-milter",
            "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          clamav-milter\n\
             # Short-Description: ClamAV virus milter\n# Description:       Clamav Milter interface\n\
             ### END INIT INFO\nPATH=/sbin:/bin:/usr/sbin:/usr/bin\nDAEMON=/usr/sbin/clamav-milter\n\
             NAME=\"clamav-milter\"\nCLAMAVCONF=/etc/clamav/clamav-milter.conf\n\
             [ -r /etc/default/clamav-milter ] && . /etc/default/clamav-milter\n",
        )
        .write("/etc/default/clamav-milter", &format!("# SOCKET_RWGROUP=postfix\n{}", switch("no")))
        .write("/etc/clamav/clamav-milter.conf", "MilterSocket /var/run/clamav/clamav-milter.ctl\n")
        .write(
            "/etc/init.d/spamass-milter",
            "#! /bin/sh\n### BEGIN INIT INFO\n# Provides:          spamass-milter\n\
             # Short-Description: milter for spamassassin\n### END INIT INFO\n\
             NAME=spamass-milter\nDAEMON=/usr/sbin/spamass-milter\nSOCKET=/var/run/spamass/spamass.sock\n\
             OPTIONS=\"\"\nif [ -e /etc/default/spamass-milter ]; then\n    . /etc/default/spamass-milter\nfi\n",
        )
        .write(
            "/etc/default/spamass-milter",
            &format!("OPTIONS=\"-u spamass-milter -i 127.0.0.1\"\n{}", switch("FALSE")),
        )
        .write(
            "/etc/init.d/rspamd",
            "#! /bin/sh\n### BEGIN INIT INFO\n# Provides:          rspamd\n\
             # Description:       Rapid spam filtering system\n### END INIT INFO\n\
             NAME=rspamd\nDAEMON=/usr/bin/$NAME\nDAEMON_ARGS=\"-c /etc/rspamd/rspamd.conf\"\n\
             [ -r /etc/default/$NAME ] && . /etc/default/$NAME\n",
        )
        .write("/etc/default/rspamd", &switch("0"))
        .write("/etc/rspamd/rspamd.conf", RSPAMD_CONF)
        .write("/etc/rspamd/worker-proxy.inc", WORKER_PROXY_INC);
    root
}

fn debian_init_expected(enabled: bool) -> Vec<DetectedMilter> {
    let service = |name| ["/usr/sbin/service", name, "start"];
    vec![
        milter(
            "clamav-milter",
            "unix:/var/run/clamav/clamav-milter.ctl",
            enabled,
            &service("clamav-milter"),
            &[],
            "/etc/init.d/clamav-milter",
            Some("Clamav Milter interface"),
        ),
        milter(
            "opendkim",
            "inet:8891@localhost",
            enabled,
            &service("opendkim"),
            &[],
            "/etc/init.d/opendkim",
            Some("Enable DKIM signing and verification provided by OpenDKIM"),
        ),
        milter(
            "spamass-milter",
            "unix:/var/run/spamass/spamass.sock",
            enabled,
            &service("spamass-milter"),
            SPAM_CONDITIONS,
            "/etc/init.d/spamass-milter",
            Some("milter for spamassassin"),
        ),
        milter(
            "rspamd",
            "inet:11332@localhost",
            enabled,
            &service("rspamd"),
            SPAM_CONDITIONS,
            "/etc/init.d/rspamd",
            Some("Rapid spam filtering system"),
        ),
    ]
}

#[test]
fn debian_init_enabled() {
    let root = debian_init_tree(true);
    assert_milters(&root.detect("debian", ""), &debian_init_expected(true));
}

#[test]
fn debian_init_disabled() {
    let root = debian_init_tree(false);
    assert_milters(&root.detect("debian", ""), &debian_init_expected(false));
}

#[test]
fn debian_variable_expansion_and_greylist_conditions() {
    let root = FakeRoot::new();
    root.write(
        "/etc/init.d/milter-greylist",
        "#!/bin/sh\nNAME=milter-greylist\nDESC=\"Greylist milter\"\nRUNDIR=/var/run/$NAME\n\
         [ -f /etc/default/$NAME ] && . /etc/default/$NAME\n",
    )
    .write(
        "/etc/default/milter-greylist",
        "SOCKET_DIR=${RUNDIR}/sockets\nCONF=/etc/milter-greylist/greylist.conf\n\
         OPTIONS=\"-f $CONF -p ${SOCKET_DIR}/${NAME}.sock -u greylist\"\n",
    );
    let detection = root.detect("debian", "");
    assert_milters(
        &detection,
        &[milter(
            "milter-greylist",
            "unix:/var/run/milter-greylist/sockets/milter-greylist.sock",
            true,
            &["/etc/init.d/milter-greylist", "start"],
            &[
                "Sendmail Compatible",
                "Stress Notify",
                "Trust",
                "Remote Network",
                "S25R",
                "Unauthenticated",
            ],
            "/etc/init.d/milter-greylist",
            Some("Greylist milter"),
        )],
    );
    // The configuration, once there, tells the socket instead.
    root.write(
        "/etc/milter-greylist/greylist.conf",
        "pidfile \"/run/g.pid\"\nsocket \"/run/g.sock\" 660\n",
    );
    assert_eq!(
        root.detect("debian", "").milters[0].connection_spec,
        Spec::parse("unix:/run/g.sock").unwrap()
    );
}

#[test]
fn a_configuration_without_socket_defines_nothing() {
    let root = debian_systemd_tree(true);
    root.write("/etc/opendkim.conf", "Syslog yes\n# Socket local:/run/x.sock\n")
        .write("/etc/default/opendkim", "RUNDIR=/run/opendkim\n");
    let detection = root.detect("debian", "");
    assert!(detection.milters.iter().all(|milter| milter.name != "opendkim"));
    assert_eq!(
        detection.notes,
        ["opendkim: /lib/systemd/system/opendkim.service: no socket found (looked at -p in \
          ExecStart in /lib/systemd/system/opendkim.service, Socket in /etc/opendkim.conf, SOCKET, \
          SOCKET_ADDRESS, MILTER_SOCKET, CONNECTION_SPEC); not defined"]
    );
}

#[test]
fn clamav_milter_still_an_example_defines_nothing() {
    let root = FakeRoot::new();
    root.write("/etc/init.d/clamav-milter", "#!/bin/sh\nNAME=clamav-milter\n").write(
        "/etc/clamav/clamav-milter.conf",
        "##\n## Example config file for clamav-milter\n##\n\n# Comment or remove the line below.\nExample\n\n\
         #MilterSocket /tmp/clamav-milter.socket\nMilterSocket inet:7357\n",
    );
    assert_eq!(
        only_note(&root.detect("debian", "")),
        "clamav-milter: /etc/init.d/clamav-milter: /etc/clamav/clamav-milter.conf still has its \
         Example line: clamav-milter is not configured yet; not defined"
    );
}

#[test]
fn postfix_style_spec_is_converted() {
    let root = FakeRoot::new();
    root.write("/etc/init.d/clamav-milter", "#!/bin/sh\nNAME=clamav-milter\n")
        .write("/etc/clamav/clamav-milter.conf", "MilterSocket inet:127.0.0.1:7357\n");
    let detection = root.detect("debian", "");
    assert_eq!(detection.milters[0].connection_spec.to_string(), "inet:7357@[127.0.0.1]");
    root.write("/etc/clamav/clamav-milter.conf", "MilterSocket inet:localhost:7357\n");
    assert_eq!(
        root.detect("debian", "").milters[0].connection_spec.to_string(),
        "inet:7357@localhost"
    );
}

#[test]
fn rspamd_not_in_milter_mode_defines_nothing() {
    let root = FakeRoot::new();
    root.write("/lib/systemd/system/rspamd.service", "[Service]\nExecStart=/usr/bin/rspamd -f\n")
        .write("/etc/rspamd/rspamd.conf", RSPAMD_CONF)
        .write("/etc/rspamd/worker-proxy.inc", WORKER_PROXY_INC)
        .write("/etc/rspamd/override.d/worker-proxy.inc", "milter = no;\n");
    assert_eq!(
        only_note(&root.detect("debian", "")),
        "rspamd: /lib/systemd/system/rspamd.service: its proxy worker is not in milter mode \
         (no milter = yes in /etc/rspamd); not defined"
    );
    root.write(
        "/etc/rspamd/override.d/worker-proxy.inc",
        "milter = yes;\nbind_socket = systemd:0;\n",
    );
    assert!(only_note(&root.detect("debian", "")).contains("passed by systemd cannot be located"));
    root.write("/etc/rspamd/override.d/worker-proxy.inc", "worker {\n");
    assert!(only_note(&root.detect("debian", ""))
        .contains("cannot read /etc/rspamd/override.d/worker-proxy.inc"));
}

// Red Hat -----------------------------------------------------------------------------

fn redhat_systemd_tree(enabled: bool) -> FakeRoot {
    let root = FakeRoot::new();
    root.write(
        "/usr/lib/systemd/system/opendkim.service",
        "[Unit]\nDescription=DomainKeys Identified Mail (DKIM) Milter\n\n[Service]\nType=forking\n\
         EnvironmentFile=-/etc/sysconfig/opendkim\nExecStart=/usr/sbin/opendkim $OPTIONS\n",
    )
    .write("/etc/sysconfig/opendkim", "OPTIONS=\"-x /etc/opendkim.conf -P /run/opendkim/opendkim.pid\"\n")
    .write("/etc/opendkim.conf", "Mode\tv\nSocket\tinet:8891@localhost\n")
    .write(
        "/usr/lib/systemd/system/clamav-milter.service",
        "[Unit]\nDescription=Milter module for the Clam Antivirus scanner\n\n[Service]\n\
         ExecStart=/usr/sbin/clamav-milter -c /etc/mail/clamav-milter.conf\n",
    )
    .write("/etc/mail/clamav-milter.conf", "MilterSocket /run/clamav-milter/clamav-milter.socket\n")
    .write(
        "/usr/lib/systemd/system/spamass-milter.service",
        "[Unit]\nDescription=Mail filter for SpamAssassin\n\n[Service]\n\
         EnvironmentFile=-/etc/sysconfig/spamass-milter\n\
         ExecStart=/usr/sbin/spamass-milter -p $SOCKET -g $SOCKET_GROUP $EXTRA_FLAGS\n",
    )
    .write(
        "/etc/sysconfig/spamass-milter",
        "SOCKET=/run/spamass-milter/spamass-milter.sock\nSOCKET_GROUP=postfix\nEXTRA_FLAGS=\"-m -r 15\"\n",
    )
    .write(
        "/usr/lib/systemd/system/rspamd.service",
        "[Unit]\nDescription=rapid spam filtering system\n\n[Service]\n\
         ExecStart=/usr/bin/rspamd -c /etc/rspamd/rspamd.conf -f\n",
    )
    .write(
        "/etc/rspamd/rspamd.conf",
        "worker \"rspamd_proxy\" {\n    bind_socket = \"127.0.0.1:11332\";\n    milter = yes;\n}\n",
    );
    for name in ["opendkim", "clamav-milter", "spamass-milter", "rspamd"] {
        if enabled {
            root.link(
                &format!("/etc/systemd/system/multi-user.target.wants/{name}.service"),
                &format!("/usr/lib/systemd/system/{name}.service"),
            );
        }
    }
    root
}

fn redhat_systemd_expected(enabled: bool) -> Vec<DetectedMilter> {
    let systemctl = |name| ["/usr/bin/systemctl", "start", name];
    let unit = |name: &str| format!("/usr/lib/systemd/system/{name}.service");
    vec![
        milter(
            "clamav-milter",
            "unix:/run/clamav-milter/clamav-milter.socket",
            enabled,
            &systemctl("clamav-milter"),
            &[],
            &unit("clamav-milter"),
            Some("Milter module for the Clam Antivirus scanner"),
        ),
        milter(
            "spamass-milter",
            "unix:/run/spamass-milter/spamass-milter.sock",
            enabled,
            &systemctl("spamass-milter"),
            SPAM_CONDITIONS,
            &unit("spamass-milter"),
            Some("Mail filter for SpamAssassin"),
        ),
        milter(
            "opendkim",
            "inet:8891@localhost",
            enabled,
            &systemctl("opendkim"),
            &[],
            &unit("opendkim"),
            Some("DomainKeys Identified Mail (DKIM) Milter"),
        ),
        milter(
            "rspamd",
            "inet:11332@[127.0.0.1]",
            enabled,
            &systemctl("rspamd"),
            SPAM_CONDITIONS,
            &unit("rspamd"),
            Some("rapid spam filtering system"),
        ),
    ]
}

#[test]
fn redhat_systemd_enabled() {
    let root = redhat_systemd_tree(true);
    assert_milters(&root.detect("redhat", ""), &redhat_systemd_expected(true));
}

#[test]
fn redhat_systemd_disabled() {
    let root = redhat_systemd_tree(false);
    assert_milters(&root.detect("redhat", ""), &redhat_systemd_expected(false));
}

fn redhat_init_tree(enabled: bool) -> FakeRoot {
    let root = FakeRoot::new();
    let script = |name: &str, description: &str, body: &str| {
        format!(
            "#!/bin/bash\n#\n# {name}\tThis shell script takes care of starting and stopping {name}.\n#\n\
             # chkconfig: - 79 21\n# description: {description}\n\n. /etc/rc.d/init.d/functions\n\n{body}"
        )
    };
    root.write("/sbin/service", "#!/bin/sh\n")
        .write(
            "/etc/rc.d/init.d/opendkim",
            &script(
                "opendkim",
                "OpenDKIM implements the DomainKeys Identified Mail \\\n#              (DKIM) service",
                "prog=opendkim\nCONFIG=/etc/opendkim.conf\n\
                 [ -f /etc/sysconfig/$prog ] && . /etc/sysconfig/$prog\n",
            ),
        )
        .write("/etc/opendkim.conf", "Socket inet:8891@localhost\n")
        .write(
            "/etc/rc.d/init.d/clamav-milter",
            &script("clamav-milter", "Milter module for ClamAV", "CLAMAV_FLAGS=\"-c /etc/mail/clamav-milter.conf\"\n"),
        )
        .write("/etc/mail/clamav-milter.conf", "MilterSocket local:/var/run/clamav-milter/clamav.sock\n")
        .write(
            "/etc/rc.d/init.d/spamass-milter",
            &script(
                "spamass-milter",
                "spamass-milter is a milter for SpamAssassin",
                "SOCKET=/var/run/spamass-milter/spamass-milter.sock\nEXTRA_FLAGS=\"-m -r 15\"\n\
                 . /etc/sysconfig/spamass-milter\n",
            ),
        )
        .write("/etc/sysconfig/spamass-milter", "EXTRA_FLAGS=\"-m -r 15 -p /var/run/spamass.sock\"\n")
        .write("/etc/rc.d/init.d/rspamd", &script("rspamd", "Rspamd", "OPTIONS=\"-c /etc/rspamd/rspamd.conf\"\n"))
        .write("/etc/rspamd/rspamd.conf", RSPAMD_CONF)
        .write("/etc/rspamd/worker-proxy.inc", WORKER_PROXY_INC);
    for (n, name) in ["opendkim", "clamav-milter", "spamass-milter", "rspamd"].iter().enumerate() {
        let kind = if enabled { "S" } else { "K" };
        for level in [0, 3, 5] {
            root.link(
                &format!("/etc/rc.d/rc{level}.d/{kind}{:02}{name}", 70 + n),
                &format!("../init.d/{name}"),
            );
        }
    }
    root
}

fn redhat_init_expected(enabled: bool) -> Vec<DetectedMilter> {
    let service = |name| ["/sbin/service", name, "start"];
    let script = |name: &str| format!("/etc/rc.d/init.d/{name}");
    vec![
        milter(
            "clamav-milter",
            "local:/var/run/clamav-milter/clamav.sock",
            enabled,
            &service("clamav-milter"),
            &[],
            &script("clamav-milter"),
            Some("Milter module for ClamAV"),
        ),
        milter(
            "spamass-milter",
            "unix:/var/run/spamass-milter/spamass-milter.sock",
            enabled,
            &service("spamass-milter"),
            SPAM_CONDITIONS,
            &script("spamass-milter"),
            Some("spamass-milter is a milter for SpamAssassin"),
        ),
        milter(
            "opendkim",
            "inet:8891@localhost",
            enabled,
            &service("opendkim"),
            &[],
            &script("opendkim"),
            Some("OpenDKIM implements the DomainKeys Identified Mail (DKIM) service"),
        ),
        milter(
            "rspamd",
            "inet:11332@localhost",
            enabled,
            &service("rspamd"),
            SPAM_CONDITIONS,
            &script("rspamd"),
            Some("Rspamd"),
        ),
    ]
}

#[test]
fn redhat_init_enabled() {
    let root = redhat_init_tree(true);
    assert_milters(&root.detect("redhat", ""), &redhat_init_expected(true));
}

#[test]
fn redhat_init_disabled() {
    let root = redhat_init_tree(false);
    assert_milters(&root.detect("redhat", ""), &redhat_init_expected(false));
}

// FreeBSD -----------------------------------------------------------------------------

const FREEBSD_OPENDKIM: &str = r#"#!/bin/sh
# PROVIDE: milter-opendkim
# REQUIRE: DAEMON
# BEFORE: mail
# KEYWORD: shutdown

. /etc/rc.subr

name="milteropendkim"
rcvar=milteropendkim_enable

command="/usr/local/sbin/opendkim"
_piddir="/var/run/milteropendkim"
pidfile="${_piddir}/pid"

load_rc_config $name

#
# DO NOT CHANGE THESE DEFAULT VALUES HERE
#
: ${milteropendkim_enable="NO"}
: ${milteropendkim_uid="mailnull"}
: ${milteropendkim_cfgfile="/usr/local/etc/mail/opendkim.conf"}

if [ -n "$2" ]; then
    profile="$2"
    if [ "x${milteropendkim_profiles}" != "x" ]; then
	eval milteropendkim_socket="\${milteropendkim_${profile}_socket:-}"
	command_args="-l -p ${milteropendkim_socket}"
    fi
else
	if [ -f "${milteropendkim_cfgfile}" ];then
	    milteropendkim_cfgfile="-x ${milteropendkim_cfgfile}"
	fi
	if [ "x${milteropendkim_socket}" != "x" ];then
	    _socket_prefix="-p"
	fi
	command_args="-l ${_socket_prefix} ${milteropendkim_socket} -P ${pidfile} ${milteropendkim_cfgfile}"
fi

dkim_prepcmd ()
{
    if [ -S ${milteropendkim_socket##local:} ] ; then
        rm -f ${milteropendkim_socket##local:}
    fi
}

run_rc_command "$1"
"#;

const FREEBSD_CLAMAV_MILTER: &str = r#"#!/bin/sh
# PROVIDE: clamav-milter
. /etc/rc.subr

name=clamav_milter
rcvar=clamav_milter_enable

load_rc_config $name

: ${clamav_milter_enable:="NO"}
: ${clamav_milter_conf_file="/usr/local/etc/clamav-milter.conf"}
: ${clamav_milter_socket="/var/run/clamav/clmilter.sock"}

command=/usr/local/sbin/clamav-milter
required_files=${clamav_milter_conf_file}
command_args="-c ${clamav_milter_conf_file}"

start_precmd()
{
	if [ -S "$clamav_milter_socket" ]; then
		rm "$clamav_milter_socket"
	fi
}

run_rc_command "$1"
"#;

const FREEBSD_SPAMASS_MILTER: &str = r#"#!/bin/sh
# PROVIDE: spamass-milter
. /etc/rc.subr

name=spamass_milter
rcvar=`set_rcvar`

command=/usr/local/sbin/spamass-milter

stop_postcmd()
{
  rm -f ${spamass_milter_socket}
}

# set defaults

spamass_milter_enable=${spamass_milter_enable:-"NO"}
spamass_milter_socket=${spamass_milter_socket:-"/var/run/spamass-milter.sock"}
spamass_milter_flags=${spamass_milter_flags:-"-f -p ${spamass_milter_socket}"}

load_rc_config ${name}
run_rc_command "$1"
"#;

const FREEBSD_RSPAMD: &str = r#"#!/bin/sh
# PROVIDE: rspamd
. /etc/rc.subr

name=rspamd
rcvar=`set_rcvar`
command=/usr/local/bin/rspamd

pidfile="$rspamd_pidfile"

load_rc_config $name

: ${rspamd_enable="NO"}
: ${rspamd_pidfile="/var/run/rspamd/rspamd.pid"}
: ${rspamd_user="nobody"}
: ${rspamd_flags="-c /usr/local/etc/rspamd/rspamd.conf"}

command_args="-u ${rspamd_user} ${rspamd_flags}"
run_rc_command "$1"
"#;

fn freebsd_tree(enabled: bool) -> FakeRoot {
    let root = FakeRoot::new();
    let yes = if enabled { "YES" } else { "NO" };
    root.write("/usr/local/etc/rc.d/milter-opendkim", FREEBSD_OPENDKIM)
        .write("/usr/local/etc/mail/opendkim.conf", "Socket\t\tinet:8891@localhost\n")
        .write("/usr/local/etc/rc.d/clamav-milter", FREEBSD_CLAMAV_MILTER)
        .write(
            "/usr/local/etc/clamav-milter.conf",
            "MilterSocket unix:/var/run/clamav/clmilter.sock\n",
        )
        .write("/usr/local/etc/rc.d/spamass-milter", FREEBSD_SPAMASS_MILTER)
        .write("/usr/local/etc/rc.d/rspamd", FREEBSD_RSPAMD)
        .write("/usr/local/etc/rspamd/rspamd.conf", RSPAMD_CONF)
        .write("/usr/local/etc/rspamd/worker-proxy.inc", WORKER_PROXY_INC)
        .write(
            "/usr/local/etc/rspamd/override.d/worker-proxy.inc",
            "bind_socket = \"/var/run/rspamd/milter.sock mode=0666 owner=nobody\";\n",
        )
        .write(
            "/etc/rc.conf",
            &format!(
                "hostname=\"mail.example.org\"\nsendmail_enable=\"NONE\"\n\
                 milteropendkim_enable=\"{yes}\"\nclamav_milter_enable=\"{}\"\n\
                 spamass_milter_enable={yes}\nrspamd_enable=\"{yes}\"\n",
                yes.to_lowercase()
            ),
        );
    root
}

fn freebsd_expected(enabled: bool) -> Vec<DetectedMilter> {
    let script = |name: &str| format!("/usr/local/etc/rc.d/{name}");
    let start = |name: &str| [script(name), "start".to_string()];
    vec![
        milter(
            "clamav-milter",
            "unix:/var/run/clamav/clmilter.sock",
            enabled,
            &start("clamav-milter").each_ref().map(String::as_str),
            &[],
            &script("clamav-milter"),
            None,
        ),
        milter(
            "milter-opendkim",
            "inet:8891@localhost",
            enabled,
            &start("milter-opendkim").each_ref().map(String::as_str),
            &[],
            &script("milter-opendkim"),
            None,
        ),
        milter(
            "spamass-milter",
            "unix:/var/run/spamass-milter.sock",
            enabled,
            &start("spamass-milter").each_ref().map(String::as_str),
            SPAM_CONDITIONS,
            &script("spamass-milter"),
            None,
        ),
        milter(
            "rspamd",
            "unix:/var/run/rspamd/milter.sock",
            enabled,
            &start("rspamd").each_ref().map(String::as_str),
            SPAM_CONDITIONS,
            &script("rspamd"),
            None,
        ),
    ]
}

#[test]
fn freebsd_enabled() {
    let root = freebsd_tree(true);
    assert_milters(&root.detect("freebsd", ""), &freebsd_expected(true));
}

#[test]
fn freebsd_disabled() {
    let root = freebsd_tree(false);
    assert_milters(&root.detect("freebsd", ""), &freebsd_expected(false));
}

#[test]
fn freebsd_rc_conf_local_and_rc_conf_d_override_rc_conf() {
    let root = FakeRoot::new();
    root.write("/usr/local/etc/rc.d/spamass-milter", FREEBSD_SPAMASS_MILTER)
        .write(
            "/etc/rc.conf",
            "spamass_milter_enable=\"NO\"\nspamass_milter_flags=\"-f -p /tmp/a.sock\"\n",
        )
        .write("/etc/rc.conf.local", "spamass_milter_enable=\"YES\"\n");
    let detection = root.detect("freebsd", "");
    assert!(detection.milters[0].enabled);
    assert_eq!(detection.milters[0].connection_spec.to_string(), "unix:/tmp/a.sock");
    root.write(
        "/etc/rc.conf.d/spamass_milter",
        "spamass_milter_flags=\"-f -p inet:2525@[127.0.0.1]\"\n",
    );
    assert_eq!(
        root.detect("freebsd", "").milters[0].connection_spec.to_string(),
        "inet:2525@[127.0.0.1]"
    );
    root.write("/etc/rc.conf.local", "spamass_milter_enable=\"NO\"\n");
    assert!(!root.detect("freebsd", "").milters[0].enabled);
}

#[test]
fn freebsd_opendkim_socket_variable_beats_the_sample_configuration() {
    // Upstream issue #154: opendkim.conf.sample's placeholder became a broken spec.
    let root = FakeRoot::new();
    root.write("/usr/local/etc/rc.d/milter-opendkim", FREEBSD_OPENDKIM)
        .write(
            "/usr/local/etc/mail/opendkim.conf",
            "## Socket socketspec\nSocket\t\t\tinet:port@localhost\n",
        )
        .write("/etc/rc.conf", "milteropendkim_enable=YES\n");
    assert_eq!(
        only_note(&root.detect("freebsd", "")),
        "milter-opendkim: /usr/local/etc/rc.d/milter-opendkim: Socket in /usr/local/etc/mail/opendkim.conf \
         is \"inet:port@localhost\", which is not a connection spec: port \"port\" is not a number; \
         not defined"
    );
    root.write(
        "/etc/rc.conf",
        "milteropendkim_enable=YES\nmilteropendkim_socket=\"local:/var/run/milteropendkim/socket\"\n",
    );
    let detection = root.detect("freebsd", "");
    assert_eq!(
        detection.milters[0].connection_spec.to_string(),
        "local:/var/run/milteropendkim/socket"
    );
}

#[test]
fn freebsd_opendkim_profiles() {
    let root = FakeRoot::new();
    root.write("/usr/local/etc/rc.d/milter-opendkim", FREEBSD_OPENDKIM).write(
        "/etc/rc.conf",
        "milteropendkim_enable=YES\nmilteropendkim_profiles=\"inner outer nosocket inner\"\n\
         milteropendkim_inner_enable=NO\nmilteropendkim_inner_socket=\"inet:8891@[127.0.0.1]\"\n\
         milteropendkim_outer_socket=\"/var/run/milteropendkim/outer.sock\"\n",
    );
    let detection = root.detect("freebsd", "");
    let script = "/usr/local/etc/rc.d/milter-opendkim";
    assert_eq!(
        detection.milters,
        [
            milter(
                "milter-opendkim-inner",
                "inet:8891@[127.0.0.1]",
                false,
                &[script, "start", "inner"],
                &[],
                script,
                None
            ),
            milter(
                "milter-opendkim-outer",
                "unix:/var/run/milteropendkim/outer.sock",
                true,
                &[script, "start", "outer"],
                &[],
                script,
                None
            ),
        ]
    );
    assert_eq!(
        detection.notes,
        [
            "milter-opendkim-nosocket: /usr/local/etc/rc.d/milter-opendkim: no socket found (looked at \
             milteropendkim_nosocket_socket); not defined",
            "milter-opendkim-inner: /usr/local/etc/rc.d/milter-opendkim is ignored: \
             /usr/local/etc/rc.d/milter-opendkim was found first",
        ]
    );
}

#[test]
fn freebsd_script_without_name_defines_nothing() {
    let root = FakeRoot::new();
    root.write("/usr/local/etc/rc.d/rspamd", "#!/bin/sh\n. /etc/rc.subr\nrun_rc_command \"$1\"\n");
    assert_eq!(
        only_note(&root.detect("freebsd", "")),
        "rspamd: /usr/local/etc/rc.d/rspamd sets no name=; not defined"
    );
}

// pkgsrc ------------------------------------------------------------------------------

fn pkgsrc_script(name: &str, var: &str, command_args: &str) -> String {
    format!(
        "#!/bin/sh\n#\n# PROVIDE: {name}\n# REQUIRE: DAEMON\n\nif [ -f /etc/rc.subr ]; then\n\t. /etc/rc.subr\nfi\n\n\
         name=\"{var}\"\nrcvar=$name\ncommand=\"/usr/pkg/sbin/{name}\"\ncommand_args=\"{command_args}\"\n\n\
         if [ -f /etc/rc.subr ]; then\n        load_rc_config $name\n\trun_rc_command \"$1\"\nelse\n\
         \techo -n \" ${{name}}\"\n\t${{command}} ${{{var}_flags}} ${{command_args}}\nfi\n"
    )
}

fn pkgsrc_tree(enabled: bool, etc: &str, rc_d: &str) -> FakeRoot {
    let root = FakeRoot::new();
    let yes = if enabled { "YES" } else { "NO" };
    root.write(
        &format!("{rc_d}/opendkim"),
        &pkgsrc_script(
            "opendkim",
            "opendkim",
            &format!("-P /var/run/opendkim/opendkim.pid -l -x {etc}/opendkim.conf"),
        ),
    )
    .write(&format!("{etc}/opendkim.conf"), "Socket local:/var/run/opendkim/opendkim.sock\n")
    .write(
        &format!("{rc_d}/clamav-milter"),
        &pkgsrc_script("clamav-milter", "clamav_milter", &format!("-c {etc}/clamav-milter.conf")),
    )
    .write(
        &format!("{etc}/clamav-milter.conf"),
        "MilterSocket /var/run/clamav/clamav-milter.sock\n",
    )
    .write(
        &format!("{rc_d}/spamass-milter"),
        &pkgsrc_script("spamass-milter", "spamass_milter", "-u nobody -p /var/run/spamass.sock -f"),
    )
    .write(
        &format!("{rc_d}/rspamd"),
        &pkgsrc_script(
            "rspamd",
            "rspamd",
            &format!("-u _rspamd -g _rspamd -c {etc}/rspamd/rspamd.conf"),
        ),
    )
    .write(&format!("{etc}/rspamd/rspamd.conf"), RSPAMD_CONF)
    .write(&format!("{etc}/rspamd/worker-proxy.inc"), WORKER_PROXY_INC)
    .write(
        "/etc/rc.conf",
        &format!(
            "opendkim={yes}\nclamav_milter={yes}\nspamass_milter=\"{yes}\"\nrspamd={}\n",
            yes.to_lowercase()
        ),
    );
    root
}

fn pkgsrc_expected(enabled: bool, rc_d: &str) -> Vec<DetectedMilter> {
    let script = |name: &str| format!("{rc_d}/{name}");
    let start = |name: &str| [script(name), "start".to_string()];
    vec![
        milter(
            "opendkim",
            "local:/var/run/opendkim/opendkim.sock",
            enabled,
            &start("opendkim").each_ref().map(String::as_str),
            &[],
            &script("opendkim"),
            None,
        ),
        milter(
            "clamav-milter",
            "unix:/var/run/clamav/clamav-milter.sock",
            enabled,
            &start("clamav-milter").each_ref().map(String::as_str),
            &[],
            &script("clamav-milter"),
            None,
        ),
        milter(
            "spamass-milter",
            "unix:/var/run/spamass.sock",
            enabled,
            &start("spamass-milter").each_ref().map(String::as_str),
            SPAM_CONDITIONS,
            &script("spamass-milter"),
            None,
        ),
        milter(
            "rspamd",
            "inet:11332@localhost",
            enabled,
            &start("rspamd").each_ref().map(String::as_str),
            SPAM_CONDITIONS,
            &script("rspamd"),
            None,
        ),
    ]
}

#[test]
fn pkgsrc_enabled() {
    let root = pkgsrc_tree(true, "/usr/pkg/etc", "/usr/pkg/etc/rc.d");
    assert_milters(&root.detect("pkgsrc", ""), &pkgsrc_expected(true, "/usr/pkg/etc/rc.d"));
}

#[test]
fn pkgsrc_disabled() {
    let root = pkgsrc_tree(false, "/usr/pkg/etc", "/usr/pkg/etc/rc.d");
    assert_milters(&root.detect("pkgsrc", ""), &pkgsrc_expected(false, "/usr/pkg/etc/rc.d"));
}

#[test]
fn pkgsrc_prefix_and_rcddir_options() {
    let root = pkgsrc_tree(true, "/opt/pkg/etc", "/opt/pkg/etc/rc.d");
    assert!(root.detect("pkgsrc", "").milters.is_empty());
    assert_milters(
        &root.detect("pkgsrc", "prefix=/opt/pkg/etc"),
        &pkgsrc_expected(true, "/opt/pkg/etc/rc.d"),
    );
    let root = pkgsrc_tree(true, "/opt/pkg/etc", "/etc/rc.d");
    assert_milters(
        &root.detect("pkgsrc", " prefix = /opt/pkg/etc , rcddir=/etc/rc.d/ "),
        &pkgsrc_expected(true, "/etc/rc.d"),
    );
}

// Options and platforms ---------------------------------------------------------------

#[test]
fn package_options() {
    let options = PackageOptions::parse("prefix=/opt/pkg/etc,rcddir=/etc/rc.d,flavour=x").unwrap();
    assert_eq!(options.prefix.as_deref(), Some("/opt/pkg/etc"));
    assert_eq!(options.rcddir.as_deref(), Some("/etc/rc.d"));
    assert_eq!(options.other["flavour"], "x");
    assert_eq!(PackageOptions::parse("  ").unwrap(), PackageOptions::default());
    for (text, reason) in [
        ("prefix", "\"prefix\" is not name=value"),
        ("prefix=/a,", "\"\" is not name=value"),
        ("=/a", "does not start with an option name"),
        ("prefix=", "prefix has no value"),
        ("prefix=/a,prefix=/b", "prefix is given twice"),
        ("prefix=usr/pkg", "prefix must be an absolute path"),
        ("pre fix=/a", "does not start with an option name"),
    ] {
        let err = PackageOptions::parse(text).unwrap_err();
        assert!(err.reason.contains(reason), "{text}: {err}");
        assert!(err.to_string().starts_with("invalid package.options"), "{err}");
    }
    assert!("rcddir=/x".parse::<PackageOptions>().is_ok());
}

#[test]
fn unknown_platform_and_empty_tree() {
    let root = FakeRoot::new();
    assert_eq!(
        only_note(&root.detect("gentoo", "")),
        "unknown platform \"gentoo\": no milter detected"
    );
    for platform in ["debian", "redhat", "freebsd", "pkgsrc"] {
        assert_eq!(root.detect(platform, ""), Detection::default(), "{platform}");
    }
}

#[test]
fn garbage_never_panics() {
    // Texts built from the characters the readers treat specially, by a fixed generator.
    const ALPHABET: &[u8] = b"ab_=:$ {}()[]'\"`\\#;,.\n\t*-/@%<>1";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..3000 {
        let len = round % 48;
        let text: String = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
            })
            .collect();
        let mut shell = shell::Shell::new();
        shell.run_all("/x", &text);
        let _ = shell.expand(&text);
        let _ = shell::option_value(&shell::split_words(&text), &["-p", "--config"]);
        let _ = rspamd::parse_for_tests(&text);
        let _ = normalize::connection_spec(&text);
    }
    let root = FakeRoot::new();
    for text in
        ["${", "$(", "\"", "'", "\\", "a=${b", "${#}", "${:-x}", "`", "{", "[", "/*", "\"\\"]
    {
        root.write("/etc/init.d/spamass-milter", text)
            .write("/etc/default/spamass-milter", text)
            .write("/usr/local/etc/rc.d/rspamd", text)
            .write("/usr/local/etc/rspamd/rspamd.conf", text)
            .write("/etc/rc.conf", text);
        for platform in ["debian", "freebsd"] {
            let _ = root.detect(platform, "");
        }
    }
}

/// What detection gives a milter must load: every condition name of every platform's
/// candidates is a built-in one (the blocker of a host with spamass-milter installed).
#[test]
fn every_condition_detection_gives_is_built_in() {
    for candidates in [DEBIAN, REDHAT, FREEBSD, PKGSRC] {
        for candidate in candidates {
            for condition in candidate.conditions {
                assert!(
                    crate::conditions::builtin_name(condition) == Some(*condition),
                    "{}: {condition:?} is not the name of a built-in condition",
                    candidate.name
                );
            }
        }
    }
}

/// Adds every candidate of `platform` that `root` lacks, as a service that listens on its
/// own loopback port: a systemd unit with its environment file, or an rc.d script.
fn install_every_candidate(root: &FakeRoot, platform: &str) {
    let (candidates, rc_d) = match platform {
        "debian" => (DEBIAN, None),
        "redhat" => (REDHAT, None),
        "freebsd" => (FREEBSD, Some("/usr/local/etc/rc.d")),
        _ => (PKGSRC, Some("/usr/pkg/etc/rc.d")),
    };
    let mut rc_conf = std::fs::read_to_string(root.path("/etc/rc.conf")).unwrap_or_default();
    for (index, candidate) in candidates.iter().enumerate() {
        let name = candidate.name;
        let spec = format!("inet:{}@localhost", 20000 + index);
        match rc_d {
            None => {
                let (units, env) = match platform {
                    "debian" => ("/lib/systemd/system", "/etc/default"),
                    _ => ("/usr/lib/systemd/system", "/etc/sysconfig"),
                };
                if root.path(&format!("{units}/{name}.service")).exists() {
                    continue;
                }
                root.write(
                    &format!("{units}/{name}.service"),
                    &format!(
                        "[Unit]\nDescription={name}\n[Service]\n\
                         EnvironmentFile=-{env}/{name}\nExecStart=/usr/sbin/{name} -p $SOCKET\n"
                    ),
                )
                .write(&format!("{env}/{name}"), &format!("SOCKET={spec}\n"))
                .link(
                    &format!("/etc/systemd/system/multi-user.target.wants/{name}.service"),
                    &format!("{units}/{name}.service"),
                );
            }
            Some(rc_d) => {
                if root.path(&format!("{rc_d}/{name}")).exists() {
                    continue;
                }
                let var = name.replace('-', "_");
                root.write(&format!("{rc_d}/{name}"), &pkgsrc_script(name, &var, ""));
                let enable =
                    if platform == "freebsd" { format!("{var}_enable") } else { var.clone() };
                rc_conf.push_str(&format!("{enable}=YES\n{var}_socket=\"{spec}\"\n"));
            }
        }
    }
    root.write("/etc/rc.conf", &rc_conf);
}

/// The shipped configuration loads, with its conditions, on a machine of each platform
/// that has every milter detection knows installed and enabled.
#[test]
fn the_shipped_configuration_loads_with_every_known_milter_installed() {
    use crate::config::Config;
    let trees = [
        ("debian", debian_systemd_tree(true)),
        ("redhat", redhat_systemd_tree(true)),
        ("freebsd", freebsd_tree(true)),
        ("pkgsrc", pkgsrc_tree(true, "/usr/pkg/etc", "/usr/pkg/etc/rc.d")),
    ];
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    for (platform, root) in trees {
        install_every_candidate(&root, platform);
        // The shipped files only, not what a developer keeps beside them.
        let conf = root.path("/etc/milter-manager");
        std::fs::create_dir_all(conf.join("defaults")).unwrap();
        std::fs::create_dir_all(conf.join("conf.d")).unwrap();
        std::fs::copy(shipped.join("milter-manager.toml"), conf.join("milter-manager.toml"))
            .unwrap();
        let default = format!("defaults/{platform}.toml");
        std::fs::copy(shipped.join(&default), conf.join(&default)).unwrap();
        std::fs::write(
            conf.join("conf.d/platform.toml"),
            format!("[package]\nplatform = \"{platform}\"\n"),
        )
        .unwrap();
        let config =
            Config::load_under(&conf, &root.dir).unwrap_or_else(|e| panic!("{platform}: {e}"));
        let candidates = match platform {
            "debian" => DEBIAN,
            "redhat" => REDHAT,
            "freebsd" => FREEBSD,
            _ => PKGSRC,
        };
        let defined: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
        for candidate in candidates {
            // FreeBSD's opendkim script is milter-opendkim; each is defined by its service.
            assert!(
                defined.contains(&candidate.name),
                "{platform}: {} is not defined: {defined:?}\nnotes: {:#?}",
                candidate.name,
                config.notes
            );
        }
        let sessions = std::rc::Rc::new(NoSessions);
        crate::conditions::ConditionSet::new(&config, sessions)
            .unwrap_or_else(|e| panic!("{platform}: {e}"));
    }
}

struct NoSessions;

impl crate::conditions::SessionCount for NoSessions {
    fn n_sessions(&self) -> usize {
        0
    }
}

/// Debian's opendmarc package: a unit without options, its socket in opendmarc.conf.
#[test]
fn debian_opendmarc_from_its_configuration() {
    let root = FakeRoot::new();
    root.write(
        "/lib/systemd/system/opendmarc.service",
        "[Unit]\nDescription=OpenDMARC Milter\n\n[Service]\nType=forking\n\
         PIDFile=/run/opendmarc/opendmarc.pid\nExecStart=/usr/sbin/opendmarc\nUser=opendmarc\n",
    )
    .write(
        "/etc/opendmarc.conf",
        "# This is a basic configuration\nPidFile /run/opendmarc/opendmarc.pid\n\
         Socket local:/run/opendmarc/opendmarc.sock # the milter socket\n",
    )
    .link(
        "/etc/systemd/system/multi-user.target.wants/opendmarc.service",
        "/lib/systemd/system/opendmarc.service",
    );
    assert_milters(
        &root.detect("debian", ""),
        &[milter(
            "opendmarc",
            "local:/run/opendmarc/opendmarc.sock",
            true,
            &["/usr/bin/systemctl", "start", "opendmarc"],
            &[],
            "/lib/systemd/system/opendmarc.service",
            Some("OpenDMARC Milter"),
        )],
    );
}
