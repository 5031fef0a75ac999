//! pkgsrc: rc.d scripts in `rcddir` of `package.options`, else `<prefix>/rc.d` (prefix
//! `/usr/pkg/etc` by default), configured by /etc/rc.conf and /etc/rc.conf.d/NAME; enabled
//! by `NAME=YES` (the script's rcvar).

use super::apps::App;
use super::error::DetectError;
use super::{rcng, Ctx, Facts};

pub(crate) fn detect(
    ctx: &Ctx,
    script: &str,
    app: App,
) -> Vec<(String, Result<Facts, DetectError>)> {
    let rc_d = match &ctx.options.rcddir {
        Some(dir) => dir.trim_end_matches('/').to_string(),
        None => format!("{}/rc.d", ctx.pkgsrc_prefix()),
    };
    let path = format!("{rc_d}/{script}");
    let Some(text) = ctx.root.read(&path) else { return Vec::new() };
    match rcng::evaluate(ctx, &path, &text, &["/etc/rc.conf"], &["/etc/rc.conf.d"], str::to_string)
    {
        Ok(rc) => vec![(script.to_string(), Ok(rcng::facts(ctx, app, &rc)))],
        Err(why) => vec![(script.to_string(), Err(why))],
    }
}
