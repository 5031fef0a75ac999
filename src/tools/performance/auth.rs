//! SMTP AUTH for SMTP mode: choosing the mechanism, the client's side of PLAIN
//! (RFC 4616), LOGIN (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195), and
//! `--auth-map`, a file in Postfix's `smtp_sasl_password_maps` text form.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use super::smtp::SmtpReply;

/// A mechanism the check can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    Plain,
    Login,
    CramMd5,
}

impl AuthMechanism {
    /// As SMTP names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::CramMd5 => "CRAM-MD5",
        }
    }
}

/// Why no mechanism could be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MechanismError {
    #[error("offers no AUTH")]
    NoAuth,
    #[error("offers AUTH {}, none of which this check can use (CRAM-MD5, PLAIN, LOGIN)", .0.join(" "))]
    NoneUsable(Vec<String>),
    #[error("does not offer AUTH {asked} (it offers {})", .offered.join(" "))]
    NotOffered { asked: &'static str, offered: Vec<String> },
}

/// The mechanisms an EHLO reply lists (`AUTH PLAIN LOGIN`, or the old `AUTH=PLAIN`),
/// upper-case, each once.
pub fn offered_mechanisms(ehlo: &SmtpReply) -> Vec<String> {
    let mut offered: Vec<String> = Vec::new();
    for line in ehlo.lines.iter().skip(1) {
        let upper = line.to_ascii_uppercase();
        let rest = match upper.strip_prefix("AUTH") {
            Some(rest) if rest.starts_with([' ', '=']) => &rest[1..],
            _ => continue,
        };
        for mechanism in rest.split_whitespace() {
            if !offered.iter().any(|known| known == mechanism) {
                offered.push(mechanism.to_string());
            }
        }
    }
    offered
}

/// `asked`, if the server offers it; without one (auto), the first offered of
/// CRAM-MD5 (no password on the wire), PLAIN, LOGIN, as the original tool prefers.
pub fn choose_mechanism(
    asked: Option<AuthMechanism>,
    offered: &[String],
) -> Result<AuthMechanism, MechanismError> {
    if offered.is_empty() {
        return Err(MechanismError::NoAuth);
    }
    let is_offered = |mechanism: AuthMechanism| offered.iter().any(|o| o == mechanism.name());
    match asked {
        Some(asked) if is_offered(asked) => Ok(asked),
        Some(asked) => {
            Err(MechanismError::NotOffered { asked: asked.name(), offered: offered.to_vec() })
        }
        None => [AuthMechanism::CramMd5, AuthMechanism::Plain, AuthMechanism::Login]
            .into_iter()
            .find(|&m| is_offered(m))
            .ok_or_else(|| MechanismError::NoneUsable(offered.to_vec())),
    }
}

/// `text` in base64.
pub fn base64(text: &[u8]) -> String {
    BASE64.encode(text)
}

/// PLAIN's initial response: no authorization identity, the user, the password.
pub fn plain_response(user: &str, password: &str) -> String {
    base64(format!("\0{user}\0{password}").as_bytes())
}

/// A CRAM-MD5 challenge that is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CRAM-MD5 challenge {0:?} is not base64")]
pub struct BadChallenge(pub String);

/// CRAM-MD5's answer to `challenge` (the base64 text after `334 `): the user, a space
/// and the hex HMAC-MD5 of the challenge keyed with the password, in base64.
pub fn cram_md5_response(
    user: &str,
    password: &str,
    challenge: &str,
) -> Result<String, BadChallenge> {
    let challenge_bytes =
        BASE64.decode(challenge.trim()).map_err(|_| BadChallenge(challenge.to_string()))?;
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(password.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(&challenge_bytes);
    let digest: String =
        mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(base64(format!("{user} {digest}").as_bytes()))
}

/// A user and password for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// One `--auth-map` entry: `HOST[:PORT]` or `[HOST][:PORT]`, then `USER:PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthMapEntry {
    host: String,
    /// `None`: any port.
    port: Option<u16>,
    credentials: Credentials,
}

/// The credentials per server from `--auth-map`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthMap {
    entries: Vec<AuthMapEntry>,
}

/// A line of an `--auth-map` file that is not an entry (its number counts from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}; write HOST[:PORT] USER:PASSWORD")]
pub struct AuthMapError {
    pub line: usize,
    pub reason: String,
}

impl AuthMap {
    /// Reads the file's text: one entry a line; empty lines and `#` comments skipped.
    pub fn parse(text: &str) -> Result<Self, AuthMapError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason: &str| AuthMapError { line: index + 1, reason: reason.into() };
            let mut fields = line.split_whitespace();
            let (Some(server), Some(secret), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(error("expected two fields"));
            };
            let (host, port) = split_server(server).map_err(|reason| error(&reason))?;
            let Some((user, password)) = secret.split_once(':') else {
                return Err(error("no ':' between the user and the password"));
            };
            let credentials = Credentials { user: user.into(), password: password.into() };
            entries.push(AuthMapEntry { host, port, credentials });
        }
        Ok(Self { entries })
    }

    /// The first entry for `host` (compared without case) and `port`.
    pub fn lookup(&self, host: &str, port: u16) -> Option<&Credentials> {
        self.entries
            .iter()
            .find(|e| e.host.eq_ignore_ascii_case(host) && e.port.is_none_or(|p| p == port))
            .map(|e| &e.credentials)
    }
}

/// `host`, `host:port`, `[host]`, `[host]:port` (the port a number or `smtp`,
/// `submission`, `smtps`).
fn split_server(server: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match server.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or("an unclosed '['")?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or("text after ']'")?)),
            }
        }
        None => match server.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (server, None),
        },
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => None,
        Some("smtp") => Some(25),
        Some("submission") => Some(587),
        Some("smtps") => Some(465),
        Some(number) => Some(number.parse().map_err(|_| format!("{number:?} is not a port"))?),
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchanges_match_the_rfcs_examples() {
        // RFC 2195's example: its challenge, user tim, secret tanstaaftanstaaf.
        let challenge = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
        assert_eq!(
            cram_md5_response("tim", "tanstaaftanstaaf", challenge),
            Ok("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw".into())
        );
        assert_eq!(
            cram_md5_response("tim", "x", "not base64!"),
            Err(BadChallenge("not base64!".into()))
        );
        assert_eq!(plain_response("tim", "tanstaaftanstaaf"), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        assert_eq!(base64(b"tim"), "dGlt");
    }

    #[test]
    fn mechanisms_offered_and_chosen() {
        let ehlo = |lines: &[&str]| SmtpReply {
            code: 250,
            lines: lines.iter().map(|l| (*l).to_string()).collect(),
        };
        let offered = offered_mechanisms(&ehlo(&["mx", "AUTH LOGIN plain", "AUTH=LOGIN", "SIZE"]));
        assert_eq!(offered, ["LOGIN", "PLAIN"]);
        assert!(offered_mechanisms(&ehlo(&["AUTH PLAIN", "AUTHX Y"])).is_empty());
        assert_eq!(choose_mechanism(None, &offered), Ok(AuthMechanism::Plain));
        let all = ["LOGIN".to_string(), "CRAM-MD5".to_string(), "PLAIN".to_string()];
        assert_eq!(choose_mechanism(None, &all), Ok(AuthMechanism::CramMd5));
        assert_eq!(
            choose_mechanism(Some(AuthMechanism::Login), &offered),
            Ok(AuthMechanism::Login)
        );
        let error = choose_mechanism(Some(AuthMechanism::CramMd5), &offered).unwrap_err();
        assert_eq!(error.to_string(), "does not offer AUTH CRAM-MD5 (it offers LOGIN PLAIN)");
        assert_eq!(choose_mechanism(None, &[]), Err(MechanismError::NoAuth));
        let error = choose_mechanism(None, &["GSSAPI".to_string()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "offers AUTH GSSAPI, none of which this check can use (CRAM-MD5, PLAIN, LOGIN)"
        );
    }

    #[test]
    fn auth_maps_in_postfix_form() {
        let map = AuthMap::parse(
            "# comment\n\n[mx.example.org]:587 alice:pass:with:colons\n\
             127.0.0.1:25 bob:secret\nMX2.example.org carol:x\n[::1]:submission dave:y\n",
        )
        .unwrap();
        let user =
            |host, port| map.lookup(host, port).map(|c| (c.user.as_str(), c.password.as_str()));
        assert_eq!(user("mx.example.org", 587), Some(("alice", "pass:with:colons")));
        assert_eq!(user("mx.example.org", 25), None);
        assert_eq!(user("127.0.0.1", 25), Some(("bob", "secret")));
        assert_eq!(user("mx2.example.org", 2525), Some(("carol", "x")));
        assert_eq!(user("::1", 587), Some(("dave", "y")));
        for (text, expected) in [
            ("host", "line 1: expected two fields; write HOST[:PORT] USER:PASSWORD"),
            ("a b c", "line 1: expected two fields; write HOST[:PORT] USER:PASSWORD"),
            ("\nhost:x u:p", "line 2: \"x\" is not a port; write HOST[:PORT] USER:PASSWORD"),
            (
                "host user",
                "line 1: no ':' between the user and the password; write HOST[:PORT] USER:PASSWORD",
            ),
            ("[host u:p", "line 1: an unclosed '['; write HOST[:PORT] USER:PASSWORD"),
            (":25 u:p", "line 1: no host; write HOST[:PORT] USER:PASSWORD"),
        ] {
            assert_eq!(AuthMap::parse(text).unwrap_err().to_string(), expected, "{text:?}");
        }
    }
}
