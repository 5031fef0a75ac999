//! systemd services: the unit file with its drop-ins, its environment, its command line,
//! and whether it is enabled (a `*.wants/NAME.service` link under /etc/systemd/system, and
//! not masked).

use super::apps::App;
use super::shell::{self, Shell, Unknown};
use super::{Ctx, Facts, SpecSource};

const ETC: &str = "/etc/systemd/system";
const RUN: &str = "/run/systemd/system";

/// What detection reads of a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unit {
    pub path: String,
    pub description: Option<String>,
    pub exec_start: Option<String>,
    /// The file that set `ExecStart`.
    pub exec_origin: String,
    /// `Environment=` assignments, `NAME=value`, with the file that made them.
    pub environment: Vec<(String, String)>,
    /// `EnvironmentFile=` paths, without the `-` marking them optional.
    pub environment_files: Vec<String>,
}

/// The unit `NAME.service`: an administrator's copy in /etc/systemd/system, else the
/// package's in one of `vendor_dirs`; then the drop-ins of `NAME.service.d`.
pub(crate) fn find(ctx: &Ctx, name: &str, vendor_dirs: &[&str]) -> Option<Unit> {
    let file = format!("{name}.service");
    let etc = format!("{ETC}/{file}");
    let path = if ctx.root.is_file(&etc) && ctx.root.read_link(&etc).is_none() && !masked(ctx, &etc)
    {
        etc
    } else {
        vendor_dirs.iter().map(|dir| format!("{dir}/{file}")).find(|path| ctx.root.is_file(path))?
    };
    let text = ctx.root.read(&path)?;
    let mut unit = Unit { path: path.clone(), ..Unit::default() };
    apply(&mut unit, &path, &text);
    let mut drop_ins: Vec<(String, String)> = Vec::new();
    for dir in [ETC, RUN].iter().chain(vendor_dirs) {
        let dir = format!("{dir}/{file}.d");
        for entry in ctx.root.list(&dir) {
            if entry.ends_with(".conf") && !drop_ins.iter().any(|(name, _)| *name == entry) {
                let path = format!("{dir}/{entry}");
                drop_ins.push((entry, path));
            }
        }
    }
    drop_ins.sort();
    for (_, path) in drop_ins {
        if let Some(text) = ctx.root.read(&path) {
            apply(&mut unit, &path, &text);
        }
    }
    Some(unit)
}

/// Reads the `[Unit]` and `[Service]` settings detection needs; an empty value resets a
/// list, as systemd does.
fn apply(unit: &mut Unit, origin: &str, text: &str) {
    let joined = text.replace("\\\n", " ");
    let mut section = String::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|line| line.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match (section.as_str(), key) {
            ("Unit", "Description") => unit.description = Some(value.to_string()),
            ("Service", "ExecStart") if value.is_empty() => unit.exec_start = None,
            ("Service", "ExecStart") => {
                unit.exec_start = Some(value.to_string());
                unit.exec_origin = origin.to_string();
            }
            ("Service", "Environment") if value.is_empty() => unit.environment.clear(),
            ("Service", "Environment") => {
                for item in shell::split_words(value) {
                    if let Some((name, value)) = item.split_once('=') {
                        unit.environment.push((format!("{name}={value}"), origin.to_string()));
                    }
                }
            }
            ("Service", "EnvironmentFile") if value.is_empty() => unit.environment_files.clear(),
            ("Service", "EnvironmentFile") => {
                unit.environment_files.push(value.trim_start_matches('-').to_string())
            }
            _ => {}
        }
    }
}

/// Linked to /dev/null, or empty.
fn masked(ctx: &Ctx, path: &str) -> bool {
    match ctx.root.read_link(path) {
        Some(target) => target.as_os_str() == "/dev/null",
        None => ctx.root.read(path).is_some_and(|text| text.trim().is_empty()),
    }
}

/// Enabled: wanted by some target (`systemctl enable` makes a link in
/// `/etc/systemd/system/TARGET.wants`), and not masked.
pub(crate) fn enabled(ctx: &Ctx, name: &str) -> bool {
    let file = format!("{name}.service");
    if masked(ctx, &format!("{ETC}/{file}")) {
        return false;
    }
    ctx.root
        .list(ETC)
        .iter()
        .filter(|entry| entry.ends_with(".wants"))
        .any(|wants| ctx.root.exists(&format!("{ETC}/{wants}/{file}")))
}

/// The unit's command line, its variables substituted: `$NAME` alone as a word gives as
/// many words as its value has, `${NAME}` stays one word; unset variables are empty.
fn exec_words(exec: &str, shell: &Shell) -> Result<Vec<String>, Unknown> {
    let exec = exec.trim_start_matches(['@', '-', ':', '+', '!']);
    let mut words = Vec::new();
    for word in shell::split_words(exec) {
        let whole = word.strip_prefix('$').filter(|name| is_name(name));
        match whole {
            Some(name) => {
                if let Some(value) = shell.value(name) {
                    words.extend(
                        value
                            .map_err(|why| format!("${name} {why}"))?
                            .split_whitespace()
                            .map(String::from),
                    );
                }
            }
            None => words.push(substitute(&word, shell)?),
        }
    }
    Ok(words)
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn substitute(word: &str, shell: &Shell) -> Result<String, Unknown> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{').and_then(|inner| inner.split_once('}')) {
            Some((name, tail)) => (name, tail),
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if is_name(name) {
            match shell.value(name) {
                Some(Ok(value)) => out.push_str(value),
                Some(Err(why)) => return Err(format!("${name} {why}")),
                None => {}
            }
        } else {
            out.push('$');
            rest = after;
            continue;
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Variables that hold the socket itself, in the environment of units and init scripts.
pub(crate) const SOCKET_VARS: [&str; 4] =
    ["SOCKET", "SOCKET_ADDRESS", "MILTER_SOCKET", "CONNECTION_SPEC"];

/// What a unit tells. The environment is `default_env` (the platform's /etc/default or
/// /etc/sysconfig file, read even when the unit does not name it), the unit's environment
/// files, then its `Environment=`. The socket comes from the command line, then the
/// milter's configuration, then the socket variables.
pub(crate) fn facts(ctx: &Ctx, name: &str, app: App, unit: Unit, default_env: &str) -> Facts {
    let mut shell = Shell::new();
    if let Some(text) = ctx.root.read(default_env) {
        shell.run_all(default_env, &text);
    }
    for path in &unit.environment_files {
        if let Some(text) = ctx.root.read(path) {
            shell.run_all(path, &text);
        }
    }
    for (item, origin) in &unit.environment {
        if let Some((variable, value)) = item.split_once('=') {
            shell.define(variable, value, origin);
        }
    }
    let mut sources = Vec::new();
    let mut words = Vec::new();
    if let Some(exec) = &unit.exec_start {
        let exec = exec_words(exec, &shell);
        if let Ok(exec) = &exec {
            words.clone_from(exec);
        }
        sources.push(SpecSource::Options {
            label: format!("ExecStart in {}", unit.exec_origin),
            words: exec,
        });
    }
    if let Some(config) = app.locate_config(ctx, &shell, &[], &[&words]) {
        sources.push(SpecSource::Config(config));
    }
    sources.extend(SOCKET_VARS.iter().map(|variable| SpecSource::var(&shell, variable)));
    let systemctl = ["/usr/bin/systemctl", "/bin/systemctl"]
        .into_iter()
        .find(|path| ctx.root.is_file(path))
        .unwrap_or("/usr/bin/systemctl");
    Facts {
        source: unit.path,
        description: unit.description,
        enabled: enabled(ctx, name),
        command: Some(systemctl.to_string()),
        command_options: vec!["start".to_string(), name.to_string()],
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let mut shell = Shell::new();
        shell.run_all("/etc/default/x", "SOCKET=/run/x.sock\nOPTIONS=\"-u x -i 127.0.0.1\"\n");
        let words =
            exec_words("-/usr/sbin/x -p ${SOCKET} $OPTIONS $UNSET -P$SOCKET.pid", &shell).unwrap();
        assert_eq!(
            words,
            ["/usr/sbin/x", "-p", "/run/x.sock", "-u", "x", "-i", "127.0.0.1", "-P/run/x.sock.pid"]
        );
        let mut unit = Unit::default();
        apply(
            &mut unit,
            "/u",
            "[Unit]\nDescription=X\n[Service]\nEnvironment=\"A=1\" B=2\nExecStart=/x \\\n  -p /s\nEnvironmentFile=-/etc/default/x\n",
        );
        assert_eq!(unit.exec_start.as_deref(), Some("/x    -p /s"));
        assert_eq!(
            unit.environment,
            [("A=1".to_string(), "/u".to_string()), ("B=2".into(), "/u".into())]
        );
        assert_eq!(unit.environment_files, ["/etc/default/x"]);
        apply(&mut unit, "/d", "[Service]\nExecStart=\nExecStart=/y\nEnvironment=\n");
        assert_eq!((unit.exec_start.as_deref(), unit.exec_origin.as_str()), (Some("/y"), "/d"));
        assert!(unit.environment.is_empty());
    }
}
