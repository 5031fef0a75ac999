//! Which platform's packaging this machine follows, for `package.platform` when no file
//! sets it: the distribution of `/etc/os-release`, or the kernel's name for the BSDs.

use std::path::Path;

use super::root::Root;

/// The platform found, and what told it (shown by `--show-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPlatform {
    /// "debian", "redhat", "freebsd" or "pkgsrc".
    pub name: &'static str,
    /// e.g. "/etc/os-release: ID=ubuntu", "system: freebsd".
    pub source: String,
}

/// Distribution ids (`ID`, `ID_LIKE` of os-release) and the platform they package like.
const DISTRIBUTIONS: &[(&str, &str)] = &[
    ("debian", "debian"),
    ("ubuntu", "debian"),
    ("raspbian", "debian"),
    ("rhel", "redhat"),
    ("centos", "redhat"),
    ("fedora", "redhat"),
    ("rocky", "redhat"),
    ("almalinux", "redhat"),
    ("ol", "redhat"),
];

/// Where pkgsrc keeps its configuration when it is the machine's packaging.
const PKGSRC_PREFIXES: &[&str] = &["/usr/pkg/etc", "/opt/pkg/etc"];

/// The platform of the machine whose `/` is `root` and whose system is `os` (as
/// `std::env::consts::OS` names it). Falls back to "debian", saying so.
pub fn detect_platform(root: &Path, os: &str) -> FoundPlatform {
    let found = |name, source: String| FoundPlatform { name, source };
    match os {
        "freebsd" => return found("freebsd", "system: freebsd".into()),
        "netbsd" => return found("pkgsrc", "system: netbsd".into()),
        _ => {}
    }
    let root = Root::new(root);
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        let Some(text) = root.read(path) else { continue };
        for key in ["ID", "ID_LIKE"] {
            let Some(value) = os_release_value(&text, key) else { continue };
            for id in value.split_whitespace() {
                if let Some((_, platform)) = DISTRIBUTIONS.iter().find(|(d, _)| *d == id) {
                    return found(platform, format!("{path}: {key}={value}"));
                }
            }
        }
        break;
    }
    for prefix in PKGSRC_PREFIXES {
        if root.path(prefix).is_dir() {
            return found("pkgsrc", format!("{prefix} exists"));
        }
    }
    found("debian", format!("no known distribution in /etc/os-release ({os}): debian"))
}

/// A variable of os-release(5): `KEY=value`, the value maybe quoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        Some(unquoted.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(os_release: Option<&str>, dirs: &[&str]) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "milter-manager-platform-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        if let Some(text) = os_release {
            std::fs::write(dir.join("etc/os-release"), text).unwrap();
        }
        for sub in dirs {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        dir
    }

    #[test]
    fn distributions_by_id_and_id_like() {
        let cases = [
            ("ID=debian\n", "debian", "/etc/os-release: ID=debian"),
            (
                "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n",
                "debian",
                "/etc/os-release: ID=ubuntu",
            ),
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
                "redhat",
                "/etc/os-release: ID=rocky",
            ),
            ("ID=almalinux\n", "redhat", "/etc/os-release: ID=almalinux"),
            (
                "ID=linuxmint\nID_LIKE='ubuntu debian'\n",
                "debian",
                "/etc/os-release: ID_LIKE=ubuntu debian",
            ),
            ("ID=myrhel\nID_LIKE=\"Fedora\"\n", "redhat", "/etc/os-release: ID_LIKE=fedora"),
        ];
        for (text, name, source) in cases {
            let root = root_with(Some(text), &[]);
            let found = detect_platform(&root, "linux");
            assert_eq!((found.name, found.source.as_str()), (name, source), "{text}");
            std::fs::remove_dir_all(root).unwrap();
        }
    }

    #[test]
    fn the_bsds_by_kernel_and_pkgsrc_by_its_prefix() {
        let root = root_with(Some("ID=debian\n"), &[]);
        assert_eq!(detect_platform(&root, "freebsd").name, "freebsd");
        assert_eq!(detect_platform(&root, "netbsd").name, "pkgsrc");
        std::fs::remove_dir_all(root).unwrap();
        let root = root_with(Some("ID=gentoo\n"), &["usr/pkg/etc"]);
        let found = detect_platform(&root, "linux");
        assert_eq!((found.name, found.source.as_str()), ("pkgsrc", "/usr/pkg/etc exists"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_unknown_machine_is_debian_and_says_why() {
        let root = root_with(None, &[]);
        let found = detect_platform(&root, "linux");
        assert_eq!(found.name, "debian");
        assert!(found.source.contains("no known distribution"), "{}", found.source);
        std::fs::remove_dir_all(root).unwrap();
    }
}
