//! rspamd's milter socket: the `bind_socket` of its proxy worker in milter mode, read from
//! its configuration files (UCL) instead of running `rspamadm configdump`.
//!
//! The worker's settings come, the first that sets a key winning, from
//! `override.d/worker-proxy.inc`, `local.d/worker-proxy.inc`, the `worker "rspamd_proxy"`
//! block of `rspamd.conf.override`, `rspamd.conf.local` and `rspamd.conf`, then the stock
//! `worker-proxy.inc`, all in the directory of `rspamd.conf`.

use super::apps::ConfigSocket;
use super::Ctx;

/// A UCL value, as far as detection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Scalar(String),
    List(Vec<Self>),
    Object(Vec<(String, Self)>),
}

pub(crate) fn proxy_socket(ctx: &Ctx, conf: &str) -> ConfigSocket {
    let dir = conf.rsplit_once('/').map_or("", |(dir, _)| dir);
    let layers: [(String, bool); 6] = [
        (format!("{dir}/override.d/worker-proxy.inc"), false),
        (format!("{dir}/local.d/worker-proxy.inc"), false),
        (format!("{conf}.override"), true),
        (format!("{conf}.local"), true),
        (conf.to_string(), true),
        (format!("{dir}/worker-proxy.inc"), false),
    ];
    let mut settings: Vec<(String, Vec<(String, Node)>)> = Vec::new();
    for (path, in_worker_block) in layers {
        let Some(text) = ctx.root.read(&path) else { continue };
        let entries = match parse(&text) {
            Ok(entries) => entries,
            Err(why) => return ConfigSocket::Refused(format!("cannot read {path}: {why}")),
        };
        let entries = if in_worker_block { proxy_worker(entries) } else { entries };
        settings.push((path, entries));
    }
    if settings.is_empty() {
        return ConfigSocket::Missing(format!("the proxy worker in {conf} (no such file)"));
    }
    let first = |key: &str| {
        settings.iter().find_map(|(path, entries)| {
            entries.iter().find(|(name, _)| name == key).map(|(_, node)| (path.as_str(), node))
        })
    };
    let milter = first("milter").and_then(|(_, node)| scalar(node)).is_some_and(is_true);
    if !milter {
        return ConfigSocket::Refused(format!(
            "its proxy worker is not in milter mode (no milter = yes in {dir})"
        ));
    }
    let Some((path, node)) = first("bind_socket") else {
        return ConfigSocket::Missing(format!("bind_socket of the proxy worker in {dir}"));
    };
    let label = format!("bind_socket in {path}");
    let Some(bind) = scalar(node) else {
        return ConfigSocket::Refused(format!("{label} is not a string"));
    };
    match bind_spec(bind) {
        Ok(value) => ConfigSocket::Found { label, value },
        Err(why) => ConfigSocket::Refused(format!("{label} is {bind:?}: {why}")),
    }
}

/// The settings of the `worker "rspamd_proxy"` blocks (or `worker { type = "rspamd_proxy" }`).
fn proxy_worker(entries: Vec<(String, Node)>) -> Vec<(String, Node)> {
    let mut settings = Vec::new();
    for (key, node) in entries {
        let Node::Object(fields) = node else { continue };
        if key != "worker" {
            continue;
        }
        let typed = fields
            .iter()
            .any(|(name, value)| name == "type" && scalar(value) == Some("rspamd_proxy"));
        if typed {
            settings.extend(fields);
            continue;
        }
        for (name, value) in fields {
            if let (true, Node::Object(inner)) = (name == "rspamd_proxy", value) {
                settings.extend(inner);
            }
        }
    }
    settings
}

fn scalar(node: &Node) -> Option<&str> {
    match node {
        Node::Scalar(value) => Some(value),
        Node::List(items) => items.first().and_then(scalar),
        Node::Object(_) => None,
    }
}

fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

/// Why a `bind_socket` names no socket the manager can reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BindError {
    #[error("a socket passed by systemd cannot be located")]
    Systemd,
    #[error("expected /PATH or HOST:PORT")]
    NotPathOrPort,
}

/// Where the UCL reader gave up on a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UclError {
    #[error("unterminated [")]
    UnterminatedList,
    #[error("expected {expected:?} at line {line}")]
    Expected { expected: char, line: usize },
    #[error("unterminated string at line {0}")]
    UnterminatedString(usize),
    #[error("unexpected {} at line {line}", found.map_or("end of file".to_string(), |c| format!("{c:?}")))]
    Unexpected { found: Option<char>, line: usize },
}

/// A `bind_socket` as a spec text: `/path [options]`, `*:PORT` or `*v4:PORT` (loopback, as
/// that is where the manager reaches it), `*v6:PORT`, `HOST:PORT`, `[ADDRESS]:PORT`.
fn bind_spec(bind: &str) -> Result<String, BindError> {
    let bind = bind.trim();
    if bind.starts_with('/') {
        let path = bind.split(|c: char| c.is_whitespace() || c == ',').next().unwrap_or(bind);
        return Ok(format!("unix:{path}"));
    }
    if bind.starts_with("systemd:") {
        return Err(BindError::Systemd);
    }
    let (host, port) = match bind.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("*", bind),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BindError::NotPathOrPort);
    }
    Ok(match host {
        "*" | "*v4" | "" => format!("inet:{port}@[127.0.0.1]"),
        "*v6" => format!("inet6:{port}@[::1]"),
        _ => match host.strip_prefix('[').and_then(|host| host.strip_suffix(']')) {
            Some(address) => format!("inet6:{port}@[{address}]"),
            None => format!("inet:{host}:{port}"),
        },
    })
}

/// A small UCL reader: `key = value;` (also `:` or nothing between), `key "name" { }`,
/// objects, lists, quoted strings, `#` and `/* */` comments; `.include` and other macros
/// are skipped.
fn parse(text: &str) -> Result<Vec<(String, Node)>, UclError> {
    let mut parser = Parser { chars: text.chars().collect(), at: 0 };
    parser.skip_blank();
    // The top level may be written inside braces, JSON-like.
    let entries = if parser.peek() == Some('{') {
        match parser.value()? {
            Node::Object(entries) => entries,
            _ => Vec::new(),
        }
    } else {
        parser.object_body()?
    };
    parser.skip_blank();
    if parser.at < parser.chars.len() {
        let found = Some(parser.chars[parser.at]);
        return Err(UclError::Unexpected { found, line: parser.line() });
    }
    Ok(entries)
}

/// The reader, for the robustness test of the module.
#[cfg(test)]
pub(crate) fn parse_for_tests(text: &str) -> bool {
    parse(text).is_ok()
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    /// Moves on, never past the end.
    fn advance(&mut self, n: usize) {
        self.at = (self.at + n).min(self.chars.len());
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn line(&self) -> usize {
        self.chars[..self.at.min(self.chars.len())].iter().filter(|&&c| c == '\n').count() + 1
    }

    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.advance(1);
            } else if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.advance(1);
                }
            } else if c == '/' && self.chars.get(self.at + 1) == Some(&'*') {
                self.advance(2);
                while self.at < self.chars.len()
                    && !(self.chars[self.at] == '*' && self.chars.get(self.at + 1) == Some(&'/'))
                {
                    self.advance(1);
                }
                self.advance(2);
            } else {
                break;
            }
        }
    }

    /// Entries up to a `}` (left for the caller) or the end.
    fn object_body(&mut self) -> Result<Vec<(String, Node)>, UclError> {
        let mut entries = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None | Some('}') => return Ok(entries),
                Some(';' | ',') => self.advance(1),
                Some('.') => self.skip_macro()?,
                Some(_) => {
                    let key = self.atom_or_string(true)?;
                    let value = self.entry_value()?;
                    entries.push((key, value));
                }
            }
        }
    }

    fn entry_value(&mut self) -> Result<Node, UclError> {
        self.skip_blank();
        if matches!(self.peek(), Some('=' | ':')) {
            self.advance(1);
            self.skip_blank();
            return self.value();
        }
        if matches!(self.peek(), Some('{' | '[')) {
            return self.value();
        }
        // `key "name" { ... }`, or `key value`.
        let name = self.atom_or_string(false)?;
        self.skip_blank();
        if self.peek() == Some('{') {
            let inner = self.value()?;
            return Ok(Node::Object(vec![(name, inner)]));
        }
        Ok(Node::Scalar(name))
    }

    fn value(&mut self) -> Result<Node, UclError> {
        match self.peek() {
            Some('{') => {
                self.advance(1);
                let entries = self.object_body()?;
                self.expect('}')?;
                Ok(Node::Object(entries))
            }
            Some('[') => {
                self.advance(1);
                let mut items = Vec::new();
                loop {
                    self.skip_blank();
                    match self.peek() {
                        Some(']') => {
                            self.advance(1);
                            return Ok(Node::List(items));
                        }
                        Some(',') => self.advance(1),
                        None => return Err(UclError::UnterminatedList),
                        Some(_) => items.push(self.value()?),
                    }
                }
            }
            _ => Ok(Node::Scalar(self.atom_or_string(false)?)),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), UclError> {
        self.skip_blank();
        if self.peek() == Some(c) {
            self.advance(1);
            Ok(())
        } else {
            Err(UclError::Expected { expected: c, line: self.line() })
        }
    }

    /// A quoted string, or a bare word: a key ends before `=`, `:`, `{`, `[`; a value at
    /// the end of the line, `;`, `,`, `}` or `]`.
    fn atom_or_string(&mut self, key: bool) -> Result<String, UclError> {
        let start_line = self.line();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.advance(1);
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => return Err(UclError::UnterminatedString(start_line)),
                        Some(c) if c == quote => {
                            self.advance(1);
                            return Ok(text);
                        }
                        Some('\\') => {
                            let escaped = self.chars.get(self.at + 1).copied().unwrap_or('\\');
                            text.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                            self.advance(2);
                        }
                        Some(c) => {
                            text.push(c);
                            self.advance(1);
                        }
                    }
                }
            }
            _ => {
                let start = self.at;
                while let Some(c) = self.peek() {
                    let ends = if key {
                        c.is_whitespace() || "=:{[;,}\"'".contains(c)
                    } else {
                        c == '\n'
                            || ";,}]".contains(c)
                            || (c == '#'
                                && self.at > start
                                && self.chars[self.at - 1].is_whitespace())
                    };
                    if ends {
                        break;
                    }
                    self.advance(1);
                }
                let word: String = self.chars[start..self.at].iter().collect();
                let word = word.trim().to_string();
                if word.is_empty() {
                    return Err(UclError::Unexpected { found: self.peek(), line: start_line });
                }
                Ok(word)
            }
        }
    }

    /// `.name`, `.name(params)`, then its argument.
    fn skip_macro(&mut self) -> Result<(), UclError> {
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != '(' && c != '"') {
            self.advance(1);
        }
        self.skip_blank();
        if self.peek() == Some('(') {
            while self.peek().is_some_and(|c| c != ')') {
                self.advance(1);
            }
            self.advance(1);
            self.skip_blank();
        }
        match self.peek() {
            Some('{') => {
                self.value()?;
            }
            Some(_) => {
                self.atom_or_string(false)?;
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ucl() {
        let text = r#"
# comment
.include "$CONFDIR/common.conf"
options { pidfile = "$RUNDIR/rspamd.pid"; .include(try=true; priority=1) "$LOCAL_CONFDIR/x.inc" }
worker "rspamd_proxy" {
    bind_socket = "localhost:11332";
    /* block
       comment */
    upstream "local" { default = yes; self_scan = yes; }
    list = [ "a", 'b' ];
    bare = *:11332;
}
worker { type = "rspamd_proxy"; milter: true }
"#;
        let entries = parse(text).unwrap();
        let settings = proxy_worker(entries);
        let get = |key: &str| settings.iter().find(|(name, _)| name == key).map(|(_, node)| node);
        assert_eq!(get("bind_socket"), Some(&Node::Scalar("localhost:11332".into())));
        assert_eq!(get("bare"), Some(&Node::Scalar("*:11332".into())));
        assert_eq!(get("milter"), Some(&Node::Scalar("true".into())));
        assert_eq!(
            get("list"),
            Some(&Node::List(vec![Node::Scalar("a".into()), Node::Scalar("b".into())]))
        );
        assert_eq!(
            parse("{ \"milter\": true, \"bind_socket\": \"*:11332\" }\n").unwrap(),
            [
                ("milter".into(), Node::Scalar("true".into())),
                ("bind_socket".into(), Node::Scalar("*:11332".into()))
            ]
        );
        assert!(parse("worker {\n").is_err());
        assert!(parse("} x").is_err());
        assert!(parse("a = \"x").is_err());
        let error = |text| parse(text).unwrap_err().to_string();
        assert_eq!(error("} x"), "unexpected '}' at line 1");
        assert_eq!(error("a = \"x"), "unterminated string at line 1");
        // Not "unexpected None": the end of the file is named as such.
        assert_eq!(error("a =\n"), "unexpected end of file at line 2");
    }

    #[test]
    fn bind_sockets() {
        let cases = [
            ("*:11332", "inet:11332@[127.0.0.1]"),
            ("*v4:11332", "inet:11332@[127.0.0.1]"),
            ("*v6:11332", "inet6:11332@[::1]"),
            ("localhost:11332", "inet:localhost:11332"),
            ("127.0.0.1:11332", "inet:127.0.0.1:11332"),
            ("[::1]:11332", "inet6:11332@[::1]"),
            ("/run/rspamd/milter.sock mode=0660 owner=_rspamd", "unix:/run/rspamd/milter.sock"),
        ];
        for (bind, spec) in cases {
            assert_eq!(bind_spec(bind).as_deref(), Ok(spec), "{bind}");
        }
        assert!(bind_spec("systemd:0").is_err());
        assert!(bind_spec("localhost:http").is_err());
    }
}
