//! Stress Notify / No Stress: the MTA is "stressed" when the manager serves nearly as many
//! sessions as the MTA has SMTP server processes. Stress Notify sets [`STRESS_MACRO`] to
//! [`STRESS_VALUE`] for its milters; No Stress stops its milters while stressed.
//!
//! The threshold is 3/4 of Postfix's smtpd process limit, read from `master.cf` (and
//! `default_process_limit` in `main.cf` for a `-` limit). Sendmail is not detected; its
//! threshold has to be configured.

use std::path::Path;

use crate::conditions::FileReader;

/// The macro Stress Notify sets.
pub const STRESS_MACRO: &str = "{stress}";
/// Its value while stressed (it stays unset otherwise).
pub const STRESS_VALUE: &str = "yes";
/// Postfix's built-in `default_process_limit`.
pub const POSTFIX_DEFAULT_PROCESS_LIMIT: u32 = 100;

/// Where Postfix keeps its configuration, below the file-system root: Linux packages,
/// FreeBSD ports, pkgsrc.
const POSTFIX_CONFIG_DIRECTORIES: [&str; 3] =
    ["etc/postfix", "usr/local/etc/postfix", "usr/pkg/etc/postfix"];

/// True when `n_sessions` sessions in progress mean stress. A threshold of 0 never does.
pub fn is_stressed(n_sessions: usize, threshold: u32) -> bool {
    threshold != 0 && n_sessions >= threshold as usize
}

/// The threshold from the installed Postfix below `root` (`/` in production), read with
/// `files`: `None` when no Postfix configuration is found there or it has no SMTP server
/// service.
pub fn detect_threshold(files: &dyn FileReader, root: &Path) -> Option<u32> {
    // The first directory with a master.cf is the installed Postfix.
    let (directory, master_cf) = POSTFIX_CONFIG_DIRECTORIES.iter().find_map(|directory| {
        let directory = root.join(directory);
        let master_cf = files.read_to_string(&directory.join("master.cf")).ok()?;
        Some((directory, master_cf))
    })?;
    let main_cf = files.read_to_string(&directory.join("main.cf")).unwrap_or_default();
    threshold_from_postfix(&master_cf, main_cf_default_process_limit(&main_cf))
}

/// 3/4 (rounded down) of the number of smtpd processes that serve incoming SMTP, from the
/// text of `master.cf`. A `-` process limit means `default_process_limit` (100 when not
/// given). `Some(0)` when that number is unlimited (a limit of 0): never stressed.
///
/// Which services count: the original read the first service named `smtp`, which under
/// postscreen is postscreen itself (one process) and so gave a threshold of 0. Here:
/// 1. the smtpd services of type `inet` on the SMTP port (`smtp`, `25`, `ADDR:smtp`,
///    `ADDR:25`), summed, since each listener has its own pool of processes;
/// 2. when the SMTP port runs postscreen instead, the smtpd services of type `pass` that
///    postscreen hands its clients to, summed;
/// 3. otherwise every smtpd service of type `inet` (e.g. only submission), summed.
///
/// Submission and smtps services are left out in cases 1 and 2: they are usually small,
/// and adding their processes would put the threshold above what port 25 can ever reach.
pub fn threshold_from_postfix(master_cf: &str, default_process_limit: Option<u32>) -> Option<u32> {
    let default_limit = default_process_limit.unwrap_or(POSTFIX_DEFAULT_PROCESS_LIMIT);
    let services: Vec<Service> =
        logical_lines(master_cf).filter_map(|l| Service::parse(&l)).collect();

    let smtp_port_smtpd: Vec<&Service> =
        services.iter().filter(|s| s.kind == "inet" && s.on_smtp_port() && s.is_smtpd()).collect();
    let postscreen =
        services.iter().any(|s| s.kind == "inet" && s.on_smtp_port() && s.command == "postscreen");
    let pass_smtpd: Vec<&Service> =
        services.iter().filter(|s| s.kind == "pass" && s.is_smtpd()).collect();
    let any_inet_smtpd: Vec<&Service> =
        services.iter().filter(|s| s.kind == "inet" && s.is_smtpd()).collect();

    let counted = if !smtp_port_smtpd.is_empty() {
        smtp_port_smtpd
    } else if postscreen && !pass_smtpd.is_empty() {
        pass_smtpd
    } else {
        any_inet_smtpd
    };
    if counted.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    for service in counted {
        match service.max_processes(default_limit) {
            0 => return Some(0),
            n => total += u64::from(n),
        }
    }
    Some(u32::try_from(total * 3 / 4).unwrap_or(u32::MAX))
}

/// The value of the last `default_process_limit = N` of `main.cf`; `None` when it is not
/// set, or when the last setting is not a plain number (e.g. `$other_parameter`, which
/// only `postconf` could expand).
pub fn main_cf_default_process_limit(main_cf: &str) -> Option<u32> {
    let mut value = None;
    for line in logical_lines(main_cf) {
        let Some((name, rest)) = line.split_once('=') else { continue };
        if name.trim() == "default_process_limit" {
            value = Some(rest.trim().parse::<u32>().ok());
        }
    }
    value.flatten()
}

/// Postfix configuration lines joined: a line starting with white space continues the one
/// before; empty lines and lines whose first non-blank character is `#` are ignored.
fn logical_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut lines = text.lines().peekable();
    std::iter::from_fn(move || loop {
        let line = lines.next()?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            // A continuation with nothing to continue (e.g. at the top of the file):
            // Postfix warns and ignores it.
            continue;
        }
        let mut logical = trimmed.to_string();
        while let Some(next) = lines.peek() {
            let next_trimmed = next.trim();
            if next_trimmed.is_empty() || next_trimmed.starts_with('#') {
                if !next.starts_with(char::is_whitespace) && !next_trimmed.is_empty() {
                    // A comment in the first column ends the logical line.
                    break;
                }
            } else if next.starts_with(char::is_whitespace) {
                logical.push(' ');
                logical.push_str(next_trimmed);
            } else {
                break;
            }
            lines.next();
        }
        return Some(logical);
    })
}

/// One `master.cf` service line: name, type, private, unpriv, chroot, wakeup, maxproc,
/// command + arguments.
struct Service {
    name: String,
    kind: String,
    max_processes: String,
    command: String,
}

impl Service {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        Some(Self {
            name: fields[0].to_string(),
            kind: fields[1].to_string(),
            max_processes: fields[6].to_string(),
            // A command may be given with a path; master.cf names it by its base name.
            command: fields[7].rsplit('/').next().unwrap_or(fields[7]).to_string(),
        })
    }

    fn is_smtpd(&self) -> bool {
        self.command == "smtpd"
    }

    fn on_smtp_port(&self) -> bool {
        let port = self.name.rsplit_once(':').map_or(self.name.as_str(), |(_, port)| port);
        port == "smtp" || port == "25"
    }

    /// `-` is the default limit; a value Postfix itself would refuse counts as the default.
    fn max_processes(&self, default_limit: u32) -> u32 {
        self.max_processes.parse().unwrap_or(default_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::MemoryFiles;

    const DEBIAN_MASTER_CF: &str = "\
#
# Postfix master process configuration file.  For details on the format
# of the file, see the master(5) manual page (command: \"man 5 master\" or
# on-line: https://www.postfix.org/master.5.html).
#
# Do not forget to execute \"postfix reload\" after editing this file.
#
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
#smtp      inet  n       -       y       -       1       postscreen
#smtpd     pass  -       -       y       -       -       smtpd
#dnsblog   unix  -       -       y       -       0       dnsblog
#tlsproxy  unix  -       -       y       -       0       tlsproxy
#submission inet n       -       y       -       -       smtpd
#  -o syslog_name=postfix/submission
#  -o smtpd_tls_security_level=encrypt
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       y       -       -       showq
";

    #[test]
    fn debian_default_is_75() {
        assert_eq!(threshold_from_postfix(DEBIAN_MASTER_CF, None), Some(75));
    }

    #[test]
    fn explicit_maxproc() {
        let master_cf = DEBIAN_MASTER_CF.replace(
            "smtp      inet  n       -       y       -       -       smtpd",
            "smtp      inet  n       -       y       -       20      smtpd",
        );
        assert_eq!(threshold_from_postfix(&master_cf, Some(200)), Some(15));
    }

    #[test]
    fn default_process_limit_from_main_cf() {
        let main_cf = "\
# See /usr/share/postfix/main.cf.dist for a commented, more complete version
myhostname = mx.example.com
default_process_limit = 50
default_process_limit = 200
#default_process_limit = 10
smtpd_milters = inet:127.0.0.1:10025
";
        let limit = main_cf_default_process_limit(main_cf);
        assert_eq!(limit, Some(200));
        assert_eq!(threshold_from_postfix(DEBIAN_MASTER_CF, limit), Some(150));
    }

    #[test]
    fn main_cf_forms() {
        assert_eq!(main_cf_default_process_limit(""), None);
        assert_eq!(main_cf_default_process_limit("default_process_limit=30"), Some(30));
        assert_eq!(main_cf_default_process_limit("default_process_limit =\n  40\n"), Some(40));
        assert_eq!(main_cf_default_process_limit("default_process_limit = $x"), None);
        assert_eq!(main_cf_default_process_limit("default_process_limit = 5\n  # c\n"), Some(5));
        assert_eq!(main_cf_default_process_limit("  default_process_limit = 5"), None);
        assert_eq!(main_cf_default_process_limit("smtpd_default_process_limit = 5"), None);
        assert_eq!(main_cf_default_process_limit("default_process_limit = -1"), None);
    }

    #[test]
    fn postscreen_counts_the_smtpd_pass_service() {
        let master_cf = "\
smtp      inet  n       -       y       -       1       postscreen
smtpd     pass  -       -       y       -       -       smtpd
dnsblog   unix  -       -       y       -       0       dnsblog
tlsproxy  unix  -       -       y       -       0       tlsproxy
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
";
        assert_eq!(threshold_from_postfix(master_cf, None), Some(75));
        assert_eq!(
            threshold_from_postfix(
                &master_cf.replace("-       -       smtpd\ndns", "-       40      smtpd\ndns"),
                None
            ),
            Some(30)
        );
    }

    #[test]
    fn several_listeners_on_the_smtp_port_add_up() {
        let master_cf = "\
192.0.2.1:smtp    inet n - y - 40 smtpd
[2001:db8::1]:25  inet n - y - 20 smtpd
submission inet n - y - 10 smtpd
";
        assert_eq!(threshold_from_postfix(master_cf, None), Some(45));
    }

    #[test]
    fn only_submission_falls_back_to_all_inet_smtpd() {
        let master_cf = "\
submission inet n - y - 10 smtpd
  -o smtpd_sasl_auth_enable=yes
smtps     inet  n       -       y       -       30       smtpd
";
        assert_eq!(threshold_from_postfix(master_cf, None), Some(30));
    }

    #[test]
    fn unlimited_and_tiny_limits() {
        assert_eq!(threshold_from_postfix("smtp inet n - n - 0 smtpd\n", None), Some(0));
        assert_eq!(threshold_from_postfix("smtp inet n - n - 1 smtpd\n", None), Some(0));
        assert_eq!(threshold_from_postfix("smtp inet n - n - 4 smtpd\n", None), Some(3));
        assert_eq!(threshold_from_postfix("smtp inet n - n - - smtpd\n", Some(0)), Some(0));
        let huge =
            format!("smtp inet n - n - {} smtpd\n25 inet n - n - {} smtpd\n", u32::MAX, u32::MAX);
        assert_eq!(threshold_from_postfix(&huge, None), Some(u32::MAX));
    }

    #[test]
    fn continuation_lines_and_odd_input() {
        let master_cf = "\
  stray continuation 1 2 3 4 5 6
smtp      inet  n       -       y       -
   # a comment inside
        12      /usr/lib/postfix/sbin/smtpd -o smtpd_milters=inet:127.0.0.1:10025
";
        assert_eq!(threshold_from_postfix(master_cf, None), Some(9));
        assert_eq!(threshold_from_postfix("", None), None);
        assert_eq!(threshold_from_postfix("smtp unix - - y - - smtp\n", None), None);
        assert_eq!(threshold_from_postfix("smtp inet n\n", None), None);
        assert_eq!(threshold_from_postfix("\u{0}\u{ffff} ä\n\t\n", None), None);
        assert_eq!(threshold_from_postfix("smtp inet n - y - many smtpd\n", None), Some(75));
    }

    #[test]
    fn stressed_when_sessions_reach_the_threshold() {
        assert!(!is_stressed(0, 0));
        assert!(!is_stressed(1000, 0));
        assert!(!is_stressed(74, 75));
        assert!(is_stressed(75, 75));
        assert!(is_stressed(76, 75));
        assert!(is_stressed(1, 1));
    }

    #[test]
    fn detect_from_a_root() {
        let root = Path::new("/fake");
        let files = MemoryFiles::new();
        assert_eq!(detect_threshold(&files, root), None);

        let etc = "/fake/usr/local/etc/postfix";
        let files = files.with(format!("{etc}/master.cf"), DEBIAN_MASTER_CF);
        assert_eq!(detect_threshold(&files, root), Some(75));
        let files = files.with(format!("{etc}/main.cf"), "default_process_limit = 20\n");
        assert_eq!(detect_threshold(&files, root), Some(15));

        // /etc/postfix comes first.
        let etc = "/fake/etc/postfix";
        let files = files.with(format!("{etc}/master.cf"), "smtp inet n - y - 8 smtpd\n");
        assert_eq!(detect_threshold(&files, root), Some(6));
        // and is the one: without an SMTP server there, there is no threshold.
        let files = files.with(format!("{etc}/master.cf"), "pickup unix n - y 60 1 pickup\n");
        assert_eq!(detect_threshold(&files, root), None);
    }
}
