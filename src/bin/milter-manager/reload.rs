//! SIGHUP: the whole configuration loaded and checked again, the same way as at start
//! (included files, Rhai scripts, conditions, child addresses). A configuration that fails
//! leaves the running one in place; one that loads also switches the log settings. Items
//! that only a restart can change (the listening socket, the identity, the pid file) are
//! named in the log and keep their running values.

use std::rc::Rc;

use milter_manager::config::Config;
use supervisor::SessionBoard;

use crate::adapter::Generation;
use crate::Options;

pub struct Reloader {
    options: Options,
    board: Rc<SessionBoard>,
    /// The configuration the process started with: restart-only items are compared to it.
    started: Config,
}

impl Reloader {
    pub fn new(options: &Options, board: &Rc<SessionBoard>, started: &Config) -> Reloader {
        Reloader { options: options.clone(), board: Rc::clone(board), started: started.clone() }
    }

    /// The configuration as the files say now, or `None` (logged in one line) if it fails.
    pub fn load(&mut self) -> Option<(Config, Generation)> {
        let (config, generation) = match crate::load(&self.options, &self.board) {
            Ok(loaded) => loaded,
            Err(error) => {
                log::error!("reload failed; keeping the running configuration: {error}");
                return None;
            }
        };
        for note in &config.notes {
            log::info!("[configuration] {note}");
        }
        for line in restart_needed(&self.started, &config) {
            log::warn!("{line}");
        }
        if let Err(error) = crate::set_up_logging(&config, true) {
            log::warn!("reload: {error}; logging stays as it was");
        }
        Some((config, generation))
    }
}

/// One line per item whose new value needs a restart.
fn restart_needed(running: &Config, new: &Config) -> Vec<String> {
    let (old_manager, new_manager) = (&running.manager, &new.manager);
    let mut lines = Vec::new();
    if old_manager.connection_spec != new_manager.connection_spec {
        lines.push(format!(
            "manager.connection_spec changed to {}; restart milter-manager to listen there \
             (still listening on {})",
            new_manager.connection_spec, old_manager.connection_spec
        ));
    }
    let changed = [
        ("manager.unix_socket_mode", old_manager.unix_socket_mode != new_manager.unix_socket_mode),
        (
            "manager.unix_socket_group",
            old_manager.unix_socket_group != new_manager.unix_socket_group,
        ),
        (
            "manager.remove_unix_socket_on_close",
            old_manager.remove_unix_socket_on_close != new_manager.remove_unix_socket_on_close,
        ),
        ("manager.daemon", old_manager.daemon != new_manager.daemon),
        ("manager.pid_file", old_manager.pid_file != new_manager.pid_file),
        (
            "manager.max_file_descriptors",
            old_manager.max_file_descriptors != new_manager.max_file_descriptors,
        ),
        ("manager.n_workers", (old_manager.n_workers == 0) != (new_manager.n_workers == 0)),
        ("security.effective_user", running.security.effective_user != new.security.effective_user),
        (
            "security.effective_group",
            running.security.effective_group != new.security.effective_group,
        ),
    ];
    for (item, differs) in changed {
        if differs {
            lines.push(format!("{item} changed; it takes effect when milter-manager restarts"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use milter_manager::spec::Spec;

    #[test]
    fn only_restart_items_are_named() {
        let mut running = Config::default();
        running.manager.n_workers = 2;
        let mut new = running.clone();
        new.manager.max_connections = 7;
        new.manager.n_workers = running.manager.n_workers + 3;
        assert!(restart_needed(&running, &new).is_empty(), "both apply at a reload");
        new.manager.connection_spec = Spec::parse("inet:2525@[127.0.0.1]").unwrap();
        new.security.effective_user = Some("nobody".into());
        let lines = restart_needed(&running, &new);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("manager.connection_spec changed to inet:2525@[127.0.0.1]; "));
        assert!(lines[0]
            .ends_with(&format!("(still listening on {})", running.manager.connection_spec)));
        assert_eq!(
            lines[1],
            "security.effective_user changed; it takes effect when milter-manager restarts"
        );
    }
}
