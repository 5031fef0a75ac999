//! Socket texts as milters' configurations write them, made into connection specs.
//!
//! Accepted on top of the spec forms: a bare absolute path (a UNIX socket, as libmilter
//! takes it), a repeated type (`unix:unix:/x`), and Postfix's `inet:HOST:PORT` (also
//! `inet:[ADDRESS]:PORT`), rewritten `inet:PORT@HOST`. `local:` stays as written: it is a
//! UNIX socket.

use std::net::IpAddr;

use super::error::SpecTextError;
use crate::spec::Spec;

pub(crate) fn connection_spec(text: &str) -> Result<Spec, SpecTextError> {
    let mut text = text.trim();
    for quote in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            text = text[1..text.len() - 1].trim();
        }
    }
    if text.is_empty() {
        return Err(SpecTextError::Empty);
    }
    if text.starts_with('/') {
        return Ok(Spec::parse(&format!("unix:{text}")).map_err(|err| err.reason)?);
    }
    let Some((scheme, mut rest)) = text.split_once(':') else {
        return Err(SpecTextError::NoType);
    };
    if matches!(scheme, "unix" | "local") {
        while let Some(inner) = rest.strip_prefix("unix:").or_else(|| rest.strip_prefix("local:")) {
            rest = inner;
        }
        return Ok(Spec::parse(&format!("{scheme}:{rest}")).map_err(|err| err.reason)?);
    }
    match Spec::parse(text) {
        Ok(spec) => Ok(spec),
        Err(err) => postfix_form(scheme, rest).ok_or(SpecTextError::Spec(err.reason)),
    }
}

/// `inet:HOST:PORT` → `inet:PORT@HOST`; an IPv6 address makes it `inet6`.
fn postfix_form(scheme: &str, rest: &str) -> Option<Spec> {
    if !matches!(scheme, "inet" | "inet6") || rest.contains('@') {
        return None;
    }
    let (host, port) = rest.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let text = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => format!("inet:{port}@[{address}]"),
        Ok(IpAddr::V6(address)) => format!("inet6:{port}@[{address}]"),
        Err(_) => format!("{scheme}:{port}@{host}"),
    };
    Spec::parse(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> String {
        connection_spec(text)
            .map(|spec| spec.to_string())
            .unwrap_or_else(|why| format!("error: {why}"))
    }

    #[test]
    fn forms() {
        let cases = [
            ("/var/run/x.sock", "unix:/var/run/x.sock"),
            ("  \"/var/run/x.sock\" ", "unix:/var/run/x.sock"),
            ("unix:/run/x.sock", "unix:/run/x.sock"),
            ("local:/run/x.sock", "local:/run/x.sock"),
            ("unix:unix:/run/x.sock", "unix:/run/x.sock"),
            ("local:unix:/run/x.sock", "local:/run/x.sock"),
            ("inet:8891@localhost", "inet:8891@localhost"),
            ("inet:8891@[127.0.0.1]", "inet:8891@[127.0.0.1]"),
            ("inet:8891", "inet:8891"),
            ("inet6:8891@[::1]", "inet6:8891@[::1]"),
            ("inet:localhost:8891", "inet:8891@localhost"),
            ("inet:127.0.0.1:8891", "inet:8891@[127.0.0.1]"),
            ("inet:[::1]:8891", "inet6:8891@[::1]"),
        ];
        for (text, expected) in cases {
            assert_eq!(spec(text), expected, "{text}");
        }
        for (text, error) in [
            ("", "empty"),
            ("inet:port@localhost", "\"port\" is not a number"),
            ("x.sock", "neither an absolute path"),
            ("tcp:127.0.0.1:25", "unknown type"),
            ("inet:host:99999", "Postfix's"),
        ] {
            let got = spec(text);
            assert!(got.starts_with("error: ") && got.contains(error), "{text}: {got}");
        }
    }
}
