//! Red Hat: a systemd unit in /usr/lib/systemd/system (with /etc/sysconfig/NAME), else an
//! init script /etc/rc.d/init.d/NAME with /etc/sysconfig/NAME, enabled when a start link
//! `S??NAME` is in one of the runlevel directories.

use super::apps::App;
use super::error::DetectError;
use super::{init, init_command, systemd, Ctx, Facts};

const UNIT_DIRS: [&str; 2] = ["/usr/lib/systemd/system", "/lib/systemd/system"];
const OPTION_VARS: [&str; 4] = ["OPTIONS", "EXTRA_FLAGS", "DAEMON_ARGS", "CLAMAV_FLAGS"];

pub(crate) fn detect(ctx: &Ctx, name: &str, app: App) -> Vec<(String, Result<Facts, DetectError>)> {
    let sysconfig = format!("/etc/sysconfig/{name}");
    if let Some(unit) = systemd::find(ctx, name, &UNIT_DIRS) {
        return vec![(name.to_string(), Ok(systemd::facts(ctx, name, app, unit, &sysconfig)))];
    }
    let Some((script, text)) = ["/etc/rc.d/init.d", "/etc/init.d"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find_map(|script| ctx.root.read(&script).map(|text| (script, text)))
    else {
        return Vec::new();
    };
    let shell = init::run_script(ctx, &script, &text, &sysconfig);
    let description = init::chkconfig_description(&text)
        .or_else(|| init::lsb_info(&text).get("Description").cloned());
    let config_vars: &[&str] = match app {
        App::Opendkim => &["CONFIG"],
        App::Enma => &["CONF_FILE"],
        _ => &[],
    };
    let sources = init::spec_sources(
        ctx,
        app,
        &shell,
        config_vars,
        &systemd::SOCKET_VARS,
        &OPTION_VARS,
        true,
    );
    let (command, command_options) = init_command(ctx, name, &script);
    let enabled = started_in_a_runlevel(ctx, name);
    let facts = Facts { source: script, description, enabled, command, command_options, sources };
    vec![(name.to_string(), Ok(facts))]
}

/// `chkconfig NAME on` makes `S<NN>NAME` links; `off` makes `K<NN>NAME` ones.
fn started_in_a_runlevel(ctx: &Ctx, name: &str) -> bool {
    (0..=6).any(|level| {
        [format!("/etc/rc.d/rc{level}.d"), format!("/etc/rc{level}.d")].iter().any(|dir| {
            ctx.root.list(dir).iter().any(|entry| {
                entry.len() == name.len() + 3
                    && entry.starts_with('S')
                    && entry.as_bytes()[1..3].iter().all(u8::is_ascii_digit)
                    && entry.ends_with(name)
            })
        })
    })
}
