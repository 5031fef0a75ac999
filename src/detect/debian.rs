//! Debian: a systemd unit in /lib/systemd/system or /usr/lib/systemd/system (with
//! /etc/default/NAME), else an init script /etc/init.d/NAME with /etc/default/NAME,
//! enabled unless `ENABLED` is 0 or no.

use super::apps::App;
use super::error::DetectError;
use super::{init, init_command, systemd, Ctx, Facts};

const UNIT_DIRS: [&str; 2] = ["/lib/systemd/system", "/usr/lib/systemd/system"];
const SOCKET_VARS: [&str; 3] = ["SOCKET", "SOCKFILE", "CONNECTION_SPEC"];
const OPTION_VARS: [&str; 5] = ["OPTARGS", "DAEMON_ARGS", "DAEMON_OPTS", "PARAMS", "OPTIONS"];

pub(crate) fn detect(ctx: &Ctx, name: &str, app: App) -> Vec<(String, Result<Facts, DetectError>)> {
    let defaults = format!("/etc/default/{name}");
    if let Some(unit) = systemd::find(ctx, name, &UNIT_DIRS) {
        return vec![(name.to_string(), Ok(systemd::facts(ctx, name, app, unit, &defaults)))];
    }
    let script = format!("/etc/init.d/{name}");
    let Some(text) = ctx.root.read(&script) else { return Vec::new() };
    let shell = init::run_script(ctx, &script, &text, &defaults);
    let info = init::lsb_info(&text);
    let description = info
        .get("Description")
        .or_else(|| info.get("Short-Description"))
        .map(String::as_str)
        .or_else(|| shell.known("DESC"))
        .map(str::to_string);
    let enabled = !shell.known("ENABLED").is_some_and(|value| {
        matches!(value.trim().to_ascii_lowercase().as_str(), "0" | "no" | "false")
    });
    let config_vars: &[&str] = match app {
        App::ClamavMilter => &["CLAMAVMILTERCONF"],
        App::Enma => &["CONF_FILE"],
        _ => &[],
    };
    let sources =
        init::spec_sources(ctx, app, &shell, config_vars, &SOCKET_VARS, &OPTION_VARS, false);
    let (command, command_options) = init_command(ctx, name, &script);
    let facts = Facts { source: script, description, enabled, command, command_options, sources };
    vec![(name.to_string(), Ok(facts))]
}
