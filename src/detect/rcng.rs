//! rc.subr scripts (FreeBSD, NetBSD/pkgsrc): `name=`, the defaults the script gives its
//! variables at the left margin (`: ${NAME_x="default"}`, `NAME_x=${NAME_x:-default}`,
//! `command_args=...`), overridden by rc.conf files where the script calls
//! `load_rc_config`; enabled when the rcvar is YES (or TRUE, ON, 1), in any case.

use super::apps::App;
use super::error::DetectError;
use super::shell::{self, Shell};
use super::{Ctx, Facts, SpecSource};

/// An evaluated rc.d script.
pub(crate) struct RcScript {
    pub path: String,
    /// The script's `name`, prefix of its variables.
    pub name: String,
    pub rcvar: String,
    pub shell: Shell,
}

impl RcScript {
    pub(super) fn enabled(&self) -> bool {
        self.shell.known(&self.rcvar).is_some_and(shell::is_yes)
    }
}

/// Evaluates the script at `path`; `rc_confs` are read where it calls `load_rc_config`
/// (at the end if it does not at the left margin), then `<dir>/<name>` for each of
/// `conf_dirs`. `default_rcvar` gives the rcvar when the script does not set one that can
/// be read.
pub(crate) fn evaluate(
    ctx: &Ctx,
    path: &str,
    text: &str,
    rc_confs: &[&str],
    conf_dirs: &[&str],
    default_rcvar: fn(&str) -> String,
) -> Result<RcScript, DetectError> {
    let mut shell = Shell::new();
    let mut loaded = false;
    let load = |shell: &mut Shell| {
        for conf in rc_confs {
            if let Some(text) = ctx.root.read(conf) {
                shell.run_all(conf, &text);
            }
        }
        if let Some(name) = shell.known("name").map(str::to_string) {
            for dir in conf_dirs {
                let conf = format!("{dir}/{name}");
                if let Some(text) = ctx.root.read(&conf) {
                    shell.run_all(&conf, &text);
                }
            }
        }
    };
    shell.run(path, text, &|command| command.indent == 0, &mut |shell, words| {
        if words[0] == "load_rc_config" && !loaded {
            load(shell);
            loaded = true;
        }
    });
    if !loaded {
        load(&mut shell);
    }
    let name = match shell.value("name") {
        Some(Ok(name)) if !name.trim().is_empty() => name.trim().to_string(),
        Some(Err(why)) => {
            return Err(DetectError::UnknownName { path: path.to_string(), why: why.to_string() })
        }
        _ => return Err(DetectError::NoName { path: path.to_string() }),
    };
    let rcvar = match shell.known("rcvar") {
        Some(rcvar) => rcvar.trim().to_string(),
        None => default_rcvar(&name),
    };
    Ok(RcScript { path: path.to_string(), name, rcvar, shell })
}

/// The facts of an rc.d service. The socket: for milters that take it on the command
/// line, `NAME_flags`, `command_args`, then the socket variables (`NAME_socket`,
/// `NAME_sockfile`, `NAME_connection_spec`, which such scripts pass on the command line),
/// then the milter's configuration; for milters that only take it from their
/// configuration, the configuration first.
pub(crate) fn facts(ctx: &Ctx, app: App, rc: &RcScript) -> Facts {
    let name = &rc.name;
    let shell = &rc.shell;
    let flags = format!("{name}_flags");
    let option_vars = [flags.as_str(), "command_args"];
    let option_words: Vec<Vec<String>> =
        option_vars.iter().filter_map(|var| shell.known(var)).map(shell::split_words).collect();
    let option_lists: Vec<&[String]> = option_words.iter().map(Vec::as_slice).collect();
    let config_vars = [format!("{name}_cfgfile"), "conf_file".to_string()];
    let config_vars: Vec<&str> = config_vars.iter().map(String::as_str).collect();
    let config = app.locate_config(ctx, shell, &config_vars, &option_lists).map(SpecSource::Config);
    let options = option_vars.iter().filter_map(|var| SpecSource::options_var(shell, var));
    let values = ["socket", "sockfile", "connection_spec"]
        .iter()
        .map(|suffix| SpecSource::var(shell, &format!("{name}_{suffix}")));
    let mut sources = Vec::new();
    if app.config_decides() {
        sources.extend(config);
        sources.extend(values);
        sources.extend(options);
    } else {
        sources.extend(options);
        sources.extend(values);
        sources.extend(config);
    }
    Facts {
        source: rc.path.clone(),
        description: None,
        enabled: rc.enabled(),
        command: Some(rc.path.clone()),
        command_options: vec!["start".to_string()],
        sources,
    }
}
