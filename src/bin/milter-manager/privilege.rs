//! Whom the manager serves as, and privilege mode: the launcher's allow-list. Only enabled
//! milters of the configuration that have a `command` are started, with their `command_options`, as their `user_name` (root when
//! unset, as in the original); anything else is refused with the reason, and logged. At a
//! reload the launcher reads the configuration files itself, so milters added by it can be
//! started without a restart.

use std::collections::BTreeMap;

use milter_manager::config::Config;
use milter_manager::launcher_protocol::{command_line, LaunchAnswer, LaunchRequest};
use supervisor::{Launcher, Programs, Started};

use crate::error::StartError;

/// The user started as root without `security.effective_user` serves as, like the
/// original: the package's own user when there is one, else nobody.
const DEFAULT_USERS: [&str; 2] = ["milter-manager", "nobody"];

/// The user the processes serve as: `security.effective_user`, or when started as root
/// without one, [`DEFAULT_USERS`]' first that exists (root only when written out). `None`:
/// the user that started it, unchanged. The second value says why, for the log.
/// In privilege mode, with neither default user, it fails: the launcher runs commands as
/// root on request, so the side that talks to the MTA must not be root too.
pub(crate) fn serving_user(
    config: &Config,
) -> Result<(Option<String>, Option<String>), StartError> {
    if let Some(user) = &config.security.effective_user {
        return Ok((Some(user.clone()), None));
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Ok((None, None));
    }
    let found = DEFAULT_USERS
        .into_iter()
        .find(|name| matches!(nix::unistd::User::from_name(name), Ok(Some(_))));
    default_user_choice(found, config.security.privilege_mode)
}

/// Whom to serve as when started as root without `security.effective_user`, given the
/// first of [`DEFAULT_USERS`] that exists.
fn default_user_choice(
    found: Option<&str>,
    privilege_mode: bool,
) -> Result<(Option<String>, Option<String>), StartError> {
    if found.is_none() && privilege_mode {
        return Err(StartError::RootInPrivilegeMode);
    }
    Ok(match found {
        Some(name) => (
            Some(name.to_string()),
            Some(format!(
                "started as root without security.effective_user: serving as user \"{name}\" \
                 (effective_user = \"root\" keeps root)"
            )),
        ),
        // Nothing to switch to: say so instead of failing on a host without nobody.
        None => (
            None,
            Some(
                "started as root without security.effective_user and no user \"milter-manager\" \
                 or \"nobody\" exists: serving as root"
                    .to_string(),
            ),
        ),
    })
}

/// What the launcher may run for one milter.
enum Allowed {
    Command {
        argv: Vec<String>,
        user: Option<String>,
    },
    /// In the configuration but not startable, and why.
    Not(String),
}

/// Starts the launcher when `security.privilege_mode` is on and the manager runs as root;
/// its socket is for `user` (the one the manager serves as). It reads the configuration
/// again the way `options` say when asked to reload.
pub(crate) fn start_launcher(
    config: &Config,
    user: Option<&str>,
    options: &crate::Options,
) -> Result<Option<Launcher>, StartError> {
    if !config.security.privilege_mode {
        return Ok(None);
    }
    if !nix::unistd::Uid::effective().is_root() {
        log::warn!(
            "security.privilege_mode needs root (running as uid {}): child milters will not be started",
            nix::unistd::Uid::effective()
        );
        return Ok(None);
    }
    let mut allowed = allowed_of(config);
    let options = options.clone();
    let reload = move || -> Result<Config, StartError> {
        // The launcher runs as root: only root may own what tells it what to run.
        let mut config = Config::load(&options.config_dir, nix::unistd::geteuid().as_raw())?;
        config.apply_overrides(&crate::overrides(&options)?)?;
        Ok(config)
    };
    let security = &config.security;
    let launcher = Launcher::start(
        user,
        security.effective_group.as_deref(),
        config.manager.daemon,
        move |line, programs| answer(&mut allowed, &reload, line, programs).encode(),
    )?;
    Ok(Some(launcher))
}

/// What may be started, by milter name.
fn allowed_of(config: &Config) -> BTreeMap<String, Allowed> {
    config
        .milters
        .iter()
        .map(|milter| {
            let name = &milter.name;
            let allowed = match &milter.command {
                None => Allowed::Not(format!("milter {name:?} has no command")),
                // Disabling a milter must also keep its command from running as root.
                Some(_) if !milter.enabled => {
                    Allowed::Not(format!("milter {name:?} is disabled (enabled = false)"))
                }
                Some(command) => match command_line(command, milter.command_options.as_ref()) {
                    Ok(argv) => Allowed::Command { argv, user: milter.user_name.clone() },
                    Err(e) => Allowed::Not(format!("milter {name:?}: {e}")),
                },
            };
            (name.clone(), allowed)
        })
        .collect()
}

fn answer(
    allowed: &mut BTreeMap<String, Allowed>,
    reload: &dyn Fn() -> Result<Config, StartError>,
    line: &str,
    programs: &mut Programs,
) -> LaunchAnswer {
    let answer = match LaunchRequest::parse(line) {
        Err(reason) => LaunchAnswer::Refused(reason.to_string()),
        Ok(LaunchRequest::Start(name)) => match allowed.get(&name) {
            None => LaunchAnswer::Refused(format!("no milter named {name:?} in the configuration")),
            Some(Allowed::Not(reason)) => LaunchAnswer::Refused(reason.clone()),
            Some(Allowed::Command { argv, user }) => {
                match programs.start(&name, argv, user.as_deref()) {
                    Ok(Started::New(pid)) => LaunchAnswer::Started(pid),
                    Ok(Started::AlreadyRunning(pid)) => LaunchAnswer::Running(pid),
                    Ok(Started::BackingOff(wait)) => LaunchAnswer::Wait(
                        u64::try_from(wait.as_millis().max(1)).unwrap_or(u64::MAX),
                    ),
                    Err(reason) => LaunchAnswer::Refused(reason.to_string()),
                }
            }
        },
        Ok(LaunchRequest::Stop(name)) => match programs.stop(&name) {
            Ok(pid) => LaunchAnswer::Stopped(pid),
            Err(reason) => LaunchAnswer::Refused(reason.to_string()),
        },
        Ok(LaunchRequest::Reload) => match reload() {
            Ok(config) => {
                *allowed = allowed_of(&config);
                let startable =
                    allowed.values().filter(|a| matches!(a, Allowed::Command { .. })).count();
                log::info!(
                    "launcher: configuration read again: {startable} milters can be started"
                );
                LaunchAnswer::Reloaded(startable)
            }
            Err(reason) => LaunchAnswer::Refused(format!(
                "the configuration does not load, the launcher keeps its list: {reason}"
            )),
        },
    };
    if let LaunchAnswer::Refused(reason) = &answer {
        log::warn!("launcher: refused {line:?}: {reason}");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use milter_manager::config::Milter;

    #[test]
    fn privilege_mode_without_a_user_to_serve_as_is_refused() {
        let error = default_user_choice(None, true).unwrap_err();
        assert_eq!(
            error.to_string(),
            "security.privilege_mode: started as root without security.effective_user, and \
             neither user \"milter-manager\" nor \"nobody\" exists to serve as: set \
             security.effective_user to an unprivileged user (the launcher alone keeps root)"
        );
        let (user, why) = default_user_choice(None, false).unwrap();
        assert_eq!(user, None);
        assert!(why.unwrap().ends_with("serving as root"));
        let (user, _) = default_user_choice(Some("nobody"), true).unwrap();
        assert_eq!(user.as_deref(), Some("nobody"));
    }

    #[test]
    fn a_disabled_milter_is_not_started() {
        let mut config = Config::default();
        let mut off = Milter::new("off");
        off.enabled = false;
        off.command = Some("/bin/true".into());
        config.milters.push(off);
        let mut allowed = allowed_of(&config);
        let reload = || Ok(Config::default());
        // Refused before any program is touched: nothing runs, nothing is reaped.
        let answer = answer(&mut allowed, &reload, "start off", &mut Programs::default());
        assert_eq!(answer.encode(), "error milter \"off\" is disabled (enabled = false)\n");
    }
}
