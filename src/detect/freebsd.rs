//! FreeBSD: rc.d scripts in /usr/local/etc/rc.d, configured by /etc/rc.conf,
//! /etc/rc.conf.local and rc.conf.d/NAME; enabled by `NAME_enable=YES`. OpenDKIM's
//! `profiles` give one milter per profile.

use super::apps::App;
use super::error::DetectError;
use super::{rcng, shell, Ctx, Facts, SpecSource};

const RC_D: &str = "/usr/local/etc/rc.d";
const RC_CONFS: [&str; 2] = ["/etc/rc.conf", "/etc/rc.conf.local"];
const CONF_DIRS: [&str; 2] = ["/etc/rc.conf.d", "/usr/local/etc/rc.conf.d"];

pub(crate) fn detect(
    ctx: &Ctx,
    script: &str,
    app: App,
) -> Vec<(String, Result<Facts, DetectError>)> {
    let path = format!("{RC_D}/{script}");
    let Some(text) = ctx.root.read(&path) else { return Vec::new() };
    let rc = match rcng::evaluate(ctx, &path, &text, &RC_CONFS, &CONF_DIRS, |name| {
        format!("{name}_enable")
    }) {
        Ok(rc) => rc,
        Err(why) => return vec![(script.to_string(), Err(why))],
    };
    let profiles = rc.shell.known(&format!("{}_profiles", rc.name)).unwrap_or("").to_string();
    if app == App::Opendkim && !profiles.trim().is_empty() {
        return profiles
            .split_whitespace()
            .map(|profile| (format!("{script}-{profile}"), Ok(profile_facts(&rc, profile))))
            .collect();
    }
    vec![(script.to_string(), Ok(rcng::facts(ctx, app, &rc)))]
}

/// One OpenDKIM profile: `NAME_PROFILE_enable` (the main switch by default), and the
/// `NAME_PROFILE_socket` the script requires and hands over with `-p`.
fn profile_facts(rc: &rcng::RcScript, profile: &str) -> Facts {
    let prefix = format!("{}_{profile}", rc.name);
    let enabled = rc.shell.known(&format!("{prefix}_enable")).or_else(|| rc.shell.known(&rc.rcvar));
    Facts {
        source: rc.path.clone(),
        description: None,
        enabled: enabled.is_some_and(shell::is_yes),
        command: Some(rc.path.clone()),
        command_options: vec!["start".to_string(), profile.to_string()],
        sources: vec![SpecSource::var(&rc.shell, &format!("{prefix}_socket"))],
    }
}
