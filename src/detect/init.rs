//! System V init scripts: their variables (with the /etc/default or /etc/sysconfig files
//! they source) and their comment headers.

use std::collections::BTreeMap;

use super::apps::App;
use super::shell::{self, Shell};
use super::{Ctx, SpecSource};

/// Evaluates an init script, reading the files it sources from /etc/default and
/// /etc/sysconfig where it sources them; then `defaults` if the script did not source it
/// (or sources it through something that cannot be followed).
pub(crate) fn run_script(ctx: &Ctx, path: &str, text: &str, defaults: &str) -> Shell {
    let mut shell = Shell::new();
    let mut sourced = Vec::new();
    run_sourcing(ctx, &mut shell, path, text, &mut sourced, 0);
    if !sourced.iter().any(|path| path == defaults) {
        if let Some(text) = ctx.root.read(defaults) {
            shell.run_all(defaults, &text);
        }
    }
    shell
}

fn run_sourcing(
    ctx: &Ctx,
    shell: &mut Shell,
    origin: &str,
    text: &str,
    sourced: &mut Vec<String>,
    depth: usize,
) {
    shell.run(origin, text, &|_| true, &mut |shell, words| {
        let [dot, path, ..] = words else { return };
        let followed = path.starts_with("/etc/default/") || path.starts_with("/etc/sysconfig/");
        if !matches!(dot.as_str(), "." | "source") || !followed || depth >= 4 {
            return;
        }
        if let Some(text) = ctx.root.read(path) {
            sourced.push(path.clone());
            run_sourcing(ctx, shell, path, &text, sourced, depth + 1);
        }
    });
}

/// The `### BEGIN INIT INFO` block: `# Key: value`, continued by lines starting with
/// `#` and a tab or two spaces.
pub(crate) fn lsb_info(text: &str) -> BTreeMap<String, String> {
    let mut info: BTreeMap<String, String> = BTreeMap::new();
    let mut in_block = false;
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("### BEGIN INIT INFO") {
            in_block = true;
            continue;
        }
        if line.starts_with("### END INIT INFO") {
            break;
        }
        let Some(body) = line.strip_prefix('#').filter(|_| in_block) else { continue };
        if body.starts_with('\t') || body.starts_with("  ") {
            if let Some(value) = last.as_ref().and_then(|key| info.get_mut(key)) {
                value.push(' ');
                value.push_str(body.trim());
            }
        } else if let Some((key, value)) = body.trim().split_once(':') {
            info.insert(key.trim().to_string(), value.trim().to_string());
            last = Some(key.trim().to_string());
        }
    }
    info
}

/// chkconfig's `# description:` header, its lines joined where they end with `\`.
pub(crate) fn chkconfig_description(text: &str) -> Option<String> {
    let mut lines = text.lines().map_while(|line| line.strip_prefix('#'));
    let first = lines.by_ref().find_map(|line| line.trim().strip_prefix("description:"))?;
    let mut description = first.trim().to_string();
    while let Some(head) = description.strip_suffix('\\') {
        description = head.trim_end().to_string();
        match lines.next() {
            Some(next) => {
                description.push(' ');
                description.push_str(next.trim());
            }
            None => break,
        }
    }
    Some(description)
}

/// Where an init script's variables may tell the socket: the milter's configuration
/// (located through `config_vars` or the options), the socket variables, then the socket
/// option in the option variables. milter-greylist's configuration comes last when
/// `greylist_config_last` (Red Hat's script hands it `-p`).
pub(crate) fn spec_sources(
    ctx: &Ctx,
    app: App,
    shell: &Shell,
    config_vars: &[&str],
    socket_vars: &[&str],
    option_vars: &[&str],
    greylist_config_last: bool,
) -> Vec<SpecSource> {
    let option_words: Vec<Vec<String>> =
        option_vars.iter().filter_map(|name| shell.known(name)).map(shell::split_words).collect();
    let option_lists: Vec<&[String]> = option_words.iter().map(Vec::as_slice).collect();
    let config = app.locate_config(ctx, shell, config_vars, &option_lists).map(SpecSource::Config);
    let config_last = greylist_config_last && app == App::Greylist;
    let mut sources = Vec::new();
    if !config_last {
        sources.extend(config.clone());
    }
    sources.extend(socket_vars.iter().map(|name| SpecSource::var(shell, name)));
    sources.extend(option_vars.iter().filter_map(|name| SpecSource::options_var(shell, name)));
    if config_last {
        sources.extend(config);
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let text = "#!/bin/sh\n#\n# chkconfig: 2345 80 20\n# description: A milter \\\n#   for DKIM\n\
                    ### BEGIN INIT INFO\n# Provides: opendkim\n# Description: Starts the\n#\tOpenDKIM milter\n\
                    # Short-Description: DKIM\n### END INIT INFO\nNAME=x\n";
        let info = lsb_info(text);
        assert_eq!(info["Description"], "Starts the OpenDKIM milter");
        assert_eq!(info["Short-Description"], "DKIM");
        assert_eq!(chkconfig_description(text).as_deref(), Some("A milter for DKIM"));
    }
}
