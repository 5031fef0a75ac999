//! The milters detection knows: their options and their own configuration files.

use super::{rspamd, shell, Ctx, Platform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    Greylist,
    Opendkim,
    /// OpenDMARC: opendkim's options and configuration format.
    Opendmarc,
    ClamavMilter,
    SpamassMilter,
    Rspamd,
    /// amavisd-milter, whose socket option is `-s` (`-p` is its pid file).
    AmavisdMilter,
    Enma,
    /// Any other milter: a `-p` option or the platform's socket variables.
    Generic,
}

/// What a milter's configuration says of its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigSocket {
    Found {
        label: String,
        value: String,
    },
    /// Not there; says what was looked at.
    Missing(String),
    /// The configuration says the milter cannot be used as it is.
    Refused(String),
}

impl App {
    /// The application behind a service name.
    pub(super) fn of(service: &str) -> Self {
        match service {
            "milter-greylist" => Self::Greylist,
            "opendkim" | "milter-opendkim" => Self::Opendkim,
            "opendmarc" => Self::Opendmarc,
            "clamav-milter" => Self::ClamavMilter,
            "spamass-milter" => Self::SpamassMilter,
            "rspamd" => Self::Rspamd,
            "amavisd-milter" => Self::AmavisdMilter,
            "enma" | "milter-enma" => Self::Enma,
            _ => Self::Generic,
        }
    }

    /// The command-line option naming the socket; none for milters that only take it from
    /// their configuration.
    pub(super) fn socket_option(self) -> Option<&'static str> {
        match self {
            Self::ClamavMilter | Self::Rspamd | Self::Enma => None,
            Self::AmavisdMilter => Some("-s"),
            Self::Greylist
            | Self::Opendkim
            | Self::Opendmarc
            | Self::SpamassMilter
            | Self::Generic => Some("-p"),
        }
    }

    /// The command-line options naming the configuration file.
    pub(super) fn config_options(self) -> &'static [&'static str] {
        match self {
            Self::Greylist => &["-f"],
            Self::Opendkim => &["-x"],
            Self::Opendmarc => &["-c"],
            Self::ClamavMilter => &["-c", "--config-file"],
            Self::Rspamd => &["-c", "--config"],
            Self::Enma => &["-c"],
            Self::SpamassMilter | Self::AmavisdMilter | Self::Generic => &[],
        }
    }

    /// Whether the milter has a configuration file telling its socket.
    pub(super) fn has_config(self) -> bool {
        !self.config_options().is_empty()
    }

    /// Whether only the configuration tells the socket (no command-line option overrides
    /// it), so that it comes before any variable.
    pub(super) fn config_decides(self) -> bool {
        self.socket_option().is_none()
    }

    /// Where the platform's package puts the configuration file.
    pub(super) fn default_config(self, ctx: &Ctx) -> Option<String> {
        let (debian, redhat, freebsd, pkgsrc) = match self {
            Self::Greylist => (
                "/etc/milter-greylist/greylist.conf",
                "/etc/mail/greylist.conf",
                "/usr/local/etc/mail/greylist.conf",
                "greylist.conf",
            ),
            Self::Opendkim => (
                "/etc/opendkim.conf",
                "/etc/opendkim.conf",
                "/usr/local/etc/mail/opendkim.conf",
                "opendkim.conf",
            ),
            Self::Opendmarc => (
                "/etc/opendmarc.conf",
                "/etc/opendmarc.conf",
                "/usr/local/etc/mail/opendmarc.conf",
                "opendmarc.conf",
            ),
            Self::ClamavMilter => (
                "/etc/clamav/clamav-milter.conf",
                "/etc/mail/clamav-milter.conf",
                "/usr/local/etc/clamav-milter.conf",
                "clamav-milter.conf",
            ),
            Self::Rspamd => (
                "/etc/rspamd/rspamd.conf",
                "/etc/rspamd/rspamd.conf",
                "/usr/local/etc/rspamd/rspamd.conf",
                "rspamd/rspamd.conf",
            ),
            Self::Enma => {
                ("/etc/enma.conf", "/etc/enma.conf", "/usr/local/etc/enma.conf", "enma.conf")
            }
            Self::SpamassMilter | Self::AmavisdMilter | Self::Generic => return None,
        };
        Some(match ctx.platform {
            Platform::Debian => debian.to_string(),
            Platform::RedHat => redhat.to_string(),
            Platform::FreeBsd => freebsd.to_string(),
            Platform::Pkgsrc => format!("{}/{pkgsrc}", ctx.pkgsrc_prefix()),
        })
    }

    /// The configuration file: named by one of `vars` (the first set), or by a
    /// configuration option in one of `option_lists`, or the package's default.
    pub(super) fn locate_config(
        self,
        ctx: &Ctx,
        shell: &shell::Shell,
        vars: &[&str],
        option_lists: &[&[String]],
    ) -> Option<String> {
        if !self.has_config() {
            return None;
        }
        let named = vars.iter().find_map(|name| shell.known(name).map(str::to_string));
        let given = named.or_else(|| {
            option_lists.iter().find_map(|words| shell::option_value(words, self.config_options()))
        });
        // rspamd's flags in old FreeBSD scripts still name the long gone rspamd.xml.
        let usable = |path: &String| {
            path.starts_with('/') && (self != Self::Rspamd || path.ends_with(".conf"))
        };
        given.filter(usable).or_else(|| self.default_config(ctx))
    }
}

/// The socket named in the milter's configuration file at `path`.
pub(crate) fn config_socket(ctx: &Ctx, app: App, path: &str) -> ConfigSocket {
    let (key, case_sensitive) = match app {
        App::Opendkim | App::Opendmarc => ("Socket", false),
        App::ClamavMilter => ("MilterSocket", false),
        App::Greylist => ("socket", true),
        App::Enma => ("milter.socket", true),
        App::Rspamd => return rspamd::proxy_socket(ctx, path),
        App::SpamassMilter | App::AmavisdMilter | App::Generic => {
            return ConfigSocket::Missing(path.to_string())
        }
    };
    let Some(text) = ctx.root.read(path) else {
        return ConfigSocket::Missing(format!("{key} in {path} (no such file)"));
    };
    let settings = match app {
        App::Greylist => greylist_settings(&text),
        App::Enma => enma_settings(&text),
        _ => keyword_settings(&text, matches!(app, App::Opendkim | App::Opendmarc)),
    };
    if app == App::ClamavMilter && settings.iter().any(|(name, _)| name == "Example") {
        return ConfigSocket::Refused(format!(
            "{path} still has its Example line: clamav-milter is not configured yet"
        ));
    }
    let matches = |name: &str| {
        if case_sensitive {
            name == key
        } else {
            name.eq_ignore_ascii_case(key)
        }
    };
    match settings.into_iter().rev().find(|(name, _)| matches(name)) {
        Some((_, value)) if !value.is_empty() => {
            ConfigSocket::Found { label: format!("{key} in {path}"), value }
        }
        _ => ConfigSocket::Missing(format!("{key} in {path}")),
    }
}

/// `Keyword value` lines (opendkim.conf, clamav-milter.conf). Lines starting with `#` are
/// comments; opendkim also ends a line at any `#`.
fn keyword_settings(text: &str, inline_comments: bool) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = if inline_comments { line.split('#').next().unwrap_or("") } else { line };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            Some((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// milter-greylist's greylist.conf: `keyword "value" [more]`, `#` comments, `\` joining
/// lines. Only the keyword and its first (quoted or bare) value.
fn greylist_settings(text: &str) -> Vec<(String, String)> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (name, rest) = line.split_once(char::is_whitespace)?;
            let rest = rest.trim();
            let value = match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or(""),
                None => rest.split(|c: char| c.is_whitespace() || c == '#').next().unwrap_or(""),
            };
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// ENMA's enma.conf: `name: value`, `#` comments.
fn enma_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let opendkim = "## Socket inet:port@localhost\nSocket\tlocal:/run/o.sock # here\nsocket\n";
        assert_eq!(
            keyword_settings(opendkim, true),
            [("Socket".into(), "local:/run/o.sock".into()), ("socket".into(), String::new())]
        );
        let greylist = "pidfile \"/var/run/g.pid\"\nsocket \"/var/run/g.sock\" 666\n\
                        racl whitelist \\\n  default\n# socket \"/x\"\n";
        let settings = greylist_settings(greylist);
        assert!(settings.contains(&("socket".into(), "/var/run/g.sock".into())));
        assert_eq!(settings.len(), 3);
        assert_eq!(
            enma_settings("# x\nmilter.socket: inet:10025@127.0.0.1\n"),
            [("milter.socket".into(), "inet:10025@127.0.0.1".into())]
        );
    }
}
