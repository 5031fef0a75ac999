//! Detection of the child milters installed on this machine, for `load_default`.
//!
//! For `package.platform` it looks for each known milter's service (a systemd unit, an
//! init script, an rc.d script), whether it is enabled, how to start it, and the socket
//! it listens on, from the milter's own configuration or from the service's variables.
//! Everything is read from files under a root directory (`/` in production, a fake tree in
//! tests); no program is run and no socket is opened.
//!
//! A milter whose socket cannot be worked out is not defined: the detection says why in
//! [`Detection::notes`], for the caller to log, rather than defining a broken spec.

mod apps;
mod debian;
mod error;
mod freebsd;
mod init;
mod normalize;
mod options;
mod pkgsrc;
mod platform;
mod rcng;
mod redhat;
mod root;
mod rspamd;
mod shell;
mod systemd;
#[cfg(test)]
mod tests;

use std::path::Path;

use crate::spec::Spec;
use apps::{App, ConfigSocket};
use error::DetectError;
pub use options::{PackageOptions, PackageOptionsError};
pub use platform::{detect_platform, FoundPlatform};
pub(crate) use root::Root;
use shell::Unknown;

/// A milter found installed, ready to be defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedMilter {
    /// The service's name, e.g. "opendkim", "milter-opendkim", "rspamd".
    pub name: String,
    pub description: Option<String>,
    /// Whether the platform starts the service.
    pub enabled: bool,
    pub connection_spec: Spec,
    /// What starts it: `/usr/bin/systemctl`, `/usr/sbin/service` or the script itself.
    pub command: Option<String>,
    pub command_options: Vec<String>,
    /// The conditions the original's platform defaults give this milter.
    pub applicable_conditions: Vec<String>,
    /// Where it was found, e.g. "/etc/init.d/opendkim".
    pub source: String,
}

/// What [`detect`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detection {
    pub milters: Vec<DetectedMilter>,
    /// One line each: a milter found but not defined, and why; files that could not be read.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    Debian,
    RedHat,
    FreeBsd,
    Pkgsrc,
}

const SPAM: &[&str] = &["Remote Network", "Unauthenticated", "No Stress"];
const GREYLIST: &[&str] =
    &["Sendmail Compatible", "Stress Notify", "Trust", "Remote Network", "S25R", "Unauthenticated"];

/// A service name to look for, and the conditions it gets.
pub(crate) struct Candidate {
    pub name: &'static str,
    pub conditions: &'static [&'static str],
}

const fn candidate(name: &'static str, conditions: &'static [&'static str]) -> Candidate {
    Candidate { name, conditions }
}

/// The original's candidates per platform, plus opendkim, opendmarc, clamav-milter, rspamd
/// and amavisd-milter where the platform packages them.
const DEBIAN: &[Candidate] = &[
    candidate("milter-greylist", GREYLIST),
    candidate("spfmilter", SPAM),
    candidate("clamav-milter", &[]),
    candidate("dkim-filter", &[]),
    candidate("opendkim", &[]),
    candidate("opendmarc", &[]),
    candidate("spamass-milter", SPAM),
    candidate("amavisd-new-milter", &[]),
    candidate("amavisd-milter", &[]),
    candidate("rspamd", SPAM),
];
const REDHAT: &[Candidate] = &[
    candidate("milter-greylist", GREYLIST),
    candidate("clamav-milter", &[]),
    candidate("enma", SPAM),
    candidate("spamass-milter", SPAM),
    candidate("amavisd", &[]),
    candidate("amavisd-milter", &[]),
    candidate("opendkim", &[]),
    candidate("opendmarc", &[]),
    candidate("rspamd", SPAM),
];
const FREEBSD: &[Candidate] = &[
    candidate("milter-greylist", GREYLIST),
    candidate("milter-enma", SPAM),
    candidate("milter-sid", SPAM),
    candidate("clamav-milter", &[]),
    candidate("milter-dkim", &[]),
    candidate("milter-opendkim", &[]),
    candidate("opendmarc", &[]),
    candidate("spamass-milter", SPAM),
    candidate("amavis-milter", &[]),
    candidate("amavisd-milter", &[]),
    candidate("rspamd", SPAM),
];
const PKGSRC: &[Candidate] = &[
    candidate("milter-greylist", GREYLIST),
    candidate("mimedefang", &[]),
    candidate("enma", SPAM),
    candidate("dk-milter", &[]),
    candidate("dkim-filter", &[]),
    candidate("opendkim", &[]),
    candidate("opendmarc", &[]),
    candidate("clamav-milter", &[]),
    candidate("spamass-milter", SPAM),
    candidate("amavismilter", &[]),
    candidate("amavisd-milter", &[]),
    candidate("milter-regex", SPAM),
    candidate("rspamd", SPAM),
];

/// Finds the milters installed under `root` for `platform` ("debian", "redhat", "freebsd"
/// or "pkgsrc"). Never fails: whatever cannot be used is explained in the notes.
pub fn detect(platform: &str, root: &Path, options: &PackageOptions) -> Detection {
    let (platform, candidates) = match platform {
        "debian" => (Platform::Debian, DEBIAN),
        "redhat" => (Platform::RedHat, REDHAT),
        "freebsd" => (Platform::FreeBsd, FREEBSD),
        "pkgsrc" => (Platform::Pkgsrc, PKGSRC),
        _ => {
            return Detection {
                milters: Vec::new(),
                notes: vec![format!("unknown platform {platform:?}: no milter detected")],
            }
        }
    };
    let ctx = Ctx { root: Root::new(root), platform, options };
    let mut detection = Detection::default();
    for candidate in candidates {
        let app = App::of(candidate.name);
        let found = match platform {
            Platform::Debian => debian::detect(&ctx, candidate.name, app),
            Platform::RedHat => redhat::detect(&ctx, candidate.name, app),
            Platform::FreeBsd => freebsd::detect(&ctx, candidate.name, app),
            Platform::Pkgsrc => pkgsrc::detect(&ctx, candidate.name, app),
        };
        for (name, facts) in found {
            let facts = match facts {
                Ok(facts) => facts,
                Err(why) => {
                    detection.notes.push(format!("{name}: {why}; not defined"));
                    continue;
                }
            };
            if let Some(first) = detection.milters.iter().find(|milter| milter.name == name) {
                detection.notes.push(format!(
                    "{name}: {} is ignored: {} was found first",
                    facts.source, first.source
                ));
                continue;
            }
            match resolve(&ctx, app, &facts.sources) {
                Ok(connection_spec) => detection.milters.push(DetectedMilter {
                    name,
                    description: facts.description,
                    enabled: facts.enabled,
                    connection_spec,
                    command: facts.command,
                    command_options: facts.command_options,
                    applicable_conditions: candidate
                        .conditions
                        .iter()
                        .map(|condition| condition.to_string())
                        .collect(),
                    source: facts.source,
                }),
                Err(why) => {
                    detection.notes.push(format!("{name}: {}: {why}; not defined", facts.source))
                }
            }
        }
    }
    detection.notes.extend(ctx.root.take_notes());
    detection
}

/// What detection has to go on.
pub(crate) struct Ctx<'a> {
    pub root: Root<'a>,
    pub platform: Platform,
    pub options: &'a PackageOptions,
}

impl Ctx<'_> {
    /// pkgsrc's configuration directory.
    pub(crate) fn pkgsrc_prefix(&self) -> &str {
        self.options.prefix.as_deref().unwrap_or("/usr/pkg/etc").trim_end_matches('/')
    }
}

/// What a platform found about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub source: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub command: Option<String>,
    pub command_options: Vec<String>,
    /// Where the socket may be told, the one that counts first.
    pub sources: Vec<SpecSource>,
}

/// One place that may tell a milter's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpecSource {
    /// The milter's own configuration file (rspamd: its `rspamd.conf`).
    Config(String),
    /// A value that is the socket itself, such as `SOCKET`; `None` when unset.
    Value { label: String, value: Option<Result<String, Unknown>> },
    /// Options given to the milter (its command line, or a variable of options): the
    /// argument of its socket option counts.
    Options { label: String, words: Result<Vec<String>, Unknown> },
}

impl SpecSource {
    /// The variable `name` of `shell` as a socket value.
    pub(crate) fn var(shell: &shell::Shell, name: &str) -> Self {
        match shell.var(name) {
            Some(var) => Self::Value {
                label: format!("{name} in {}", var.origin),
                value: Some(var.value.clone()),
            },
            None => Self::Value { label: name.to_string(), value: None },
        }
    }

    /// The variable `name` of `shell` as a string of options; nothing when unset.
    pub(crate) fn options_var(shell: &shell::Shell, name: &str) -> Option<Self> {
        shell.var(name).map(|var| Self::Options {
            label: format!("{name} in {}", var.origin),
            words: var.value.as_deref().map(shell::split_words).map_err(Clone::clone),
        })
    }
}

/// The socket from the first source that tells one.
fn resolve(ctx: &Ctx, app: App, sources: &[SpecSource]) -> Result<Spec, DetectError> {
    let mut looked = Vec::new();
    let spec = |label: &str, value: &str| {
        normalize::connection_spec(value).map_err(|why| DetectError::NotASpec {
            label: label.to_string(),
            value: value.to_string(),
            why,
        })
    };
    for source in sources {
        match source {
            SpecSource::Config(path) => match apps::config_socket(ctx, app, path) {
                ConfigSocket::Found { label, value } => return spec(&label, &value),
                ConfigSocket::Missing(what) => looked.push(what),
                ConfigSocket::Refused(why) => return Err(DetectError::Config(why)),
            },
            SpecSource::Value { label, value } => match value {
                Some(Ok(value)) if !value.trim().is_empty() => return spec(label, value),
                Some(Err(why)) => {
                    return Err(DetectError::UnknownValue {
                        label: label.clone(),
                        why: why.clone(),
                    })
                }
                _ => looked.push(label.clone()),
            },
            SpecSource::Options { label, words } => {
                let Some(option) = app.socket_option() else { continue };
                match words {
                    Ok(words) => match shell::option_value(words, &[option]) {
                        Some(value) => return spec(&format!("{option} in {label}"), &value),
                        None => looked.push(format!("{option} in {label}")),
                    },
                    Err(why) => looked.push(format!("{label} ({why})")),
                }
            }
        }
    }
    if looked.is_empty() {
        return Err(DetectError::NoWay);
    }
    Err(DetectError::NotFound(looked))
}

/// What starts an init-script service: `service NAME start` when the machine has
/// `service`, the script otherwise.
pub(crate) fn init_command(ctx: &Ctx, name: &str, script: &str) -> (Option<String>, Vec<String>) {
    for service in ["/usr/sbin/service", "/sbin/service"] {
        if ctx.root.is_file(service) {
            return (Some(service.to_string()), vec![name.to_string(), "start".to_string()]);
        }
    }
    (Some(script.to_string()), vec!["start".to_string()])
}
