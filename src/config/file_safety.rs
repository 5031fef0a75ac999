//! Who may change the configuration. A milter's `command` is run as root by the launcher in
//! privilege mode, so a configuration file, or the directory holding it, that a user other
//! than root or the serving user may write hands that user root. Such a file is refused
//! in privilege mode and warned about otherwise, as sshd and Postfix do for their files.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Config, ConfigError};

/// Checks every file read (and its directory) and every directory an include glob lists;
/// see the module's documentation.
/// `serving_uid`: the user the manager serves as, trusted besides root.
pub(super) fn check(config: &mut Config, serving_uid: u32) -> Result<(), ConfigError> {
    let trusted = [0, serving_uid];
    let mut warnings = Vec::new();
    let files = config.files_read.iter().filter_map(|path| Some((path, problem(path, &trusted)?)));
    // A glob's directory counts even when it matches nothing yet: a file put there is
    // loaded at the next reload.
    let directories = config.directories_listed.iter().filter_map(|path| {
        let problem = writable_by_others(&std::fs::metadata(path).ok()?, &trusted)?;
        Some((path, format!("{problem}, and include globs load the files put there")))
    });
    for (path, problem) in files.chain(directories) {
        if config.security.privilege_mode {
            return Err(ConfigError::file(
                path,
                format!(
                    "{problem}: with security.privilege_mode it could make the launcher run \
                     any command as root; make it root's and not writable by group or others"
                ),
            ));
        }
        warnings.push(format!(
            "{}: {problem}: whoever can write it can change what the manager does",
            path.display()
        ));
    }
    config.warnings.extend(warnings);
    Ok(())
}

/// Why others than `trusted` users may change `path`: through the file itself, or its
/// directory (where it could be replaced, or a file added that a glob picks up).
fn problem(path: &Path, trusted: &[u32]) -> Option<String> {
    let file = std::fs::metadata(path).ok()?;
    if let Some(problem) = writable_by_others(&file, trusted) {
        return Some(problem);
    }
    let directory = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let metadata = std::fs::metadata(directory).ok()?;
    writable_by_others(&metadata, trusted)
        .map(|problem| format!("its directory {}: {problem}", directory.display()))
}

fn writable_by_others(metadata: &std::fs::Metadata, trusted: &[u32]) -> Option<String> {
    let mode = metadata.mode() & 0o7777;
    if !trusted.contains(&metadata.uid()) {
        return Some(format!("owned by uid {} (mode {mode:04o})", metadata.uid()));
    }
    if mode & 0o022 != 0 {
        return Some(format!("writable by group or others (mode {mode:04o})"));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::testdir::TestDir;
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_others_may_write_is_refused_in_privilege_mode_and_warned_about_otherwise() {
        let dir = TestDir::new("file-safety");
        let main = dir.write("milter-manager.toml", "load_default = false\n");
        set_mode(&main, 0o666);
        let config = dir.load().expect("loads outside privilege mode");
        let expected = format!(
            "{}: writable by group or others (mode 0666): whoever can write it can change what \
             the manager does",
            main.display()
        );
        assert_eq!(config.warnings, [expected]);
        assert!(config.check_report().contains("warning: "), "{}", config.check_report());

        dir.write(
            "milter-manager.toml",
            "load_default = false\n[security]\nprivilege_mode = true\n",
        );
        set_mode(&main, 0o666);
        let error = dir.load().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}: writable by group or others (mode 0666): with",
                main.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn the_caller_names_the_user_trusted_besides_root() {
        let dir = TestDir::new("file-safety");
        let main = dir.write(
            "milter-manager.toml",
            "load_default = false\n[security]\nprivilege_mode = true\n",
        );
        set_mode(&main, 0o644);
        if dir.owner() == 0 {
            // Root is always trusted: hand the files to another user to test the rest.
            let other = Some(nix::unistd::Uid::from_raw(4242));
            nix::unistd::chown(&main, other, None).unwrap();
            nix::unistd::chown(dir.path(), other, None).unwrap();
        }
        let owner = dir.owner();
        let machine = dir.machine();
        assert!(Config::load_under(dir.path(), &machine, owner).is_ok());
        let error = Config::load_under(dir.path(), &machine, owner + 1).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}: owned by uid {owner} (mode 0644): with",
                main.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_directory_others_may_write_counts_as_well() {
        let dir = TestDir::new("file-safety");
        dir.write("milter-manager.toml", "load_default = false\ninclude = [\"conf.d/*.toml\"]\n");
        let local = dir.write("conf.d/local.toml", "[security]\nprivilege_mode = true\n");
        let conf_d = local.parent().unwrap();
        set_mode(conf_d, 0o777);
        let error = dir.load().unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "its directory {}: writable by group or others",
                conf_d.display()
            )),
            "{error}"
        );
        set_mode(conf_d, 0o755);
        assert!(dir.load().is_ok());
    }

    #[test]
    fn a_glob_directory_others_may_write_counts_while_empty() {
        let dir = TestDir::new("file-safety");
        dir.write(
            "milter-manager.toml",
            "include = [\"conf.d/*.toml\"]\n[security]\nprivilege_mode = true\n",
        );
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        set_mode(&conf_d, 0o1777);
        let error = dir.load().unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}: writable by group or others (mode 1777), and include globs load the files \
                 put there: with security.privilege_mode it could make the launcher run any \
                 command as root; make it root's and not writable by group or others",
                conf_d.display()
            )
        );
        set_mode(&conf_d, 0o755);
        assert!(dir.load().is_ok());
    }
}
