//! Checking the text of a `y` (reply-code) packet before anyone relies on it.
//!
//! The rules are the MTAs' (Postfix's `milter8_valid_smtp_reply`, Sendmail's
//! `MILTER_CHECK_REPLYCODE`), so a reply we accept is one the MTA accepts too: every line
//! starts with the same 4xx or 5xx code followed by `-` (more lines follow, then CRLF) or a
//! space (last line); an enhanced status code, if present, is of the same class.

use std::fmt;

/// A validated SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyCode {
    /// The three-digit code, e.g. 550.
    pub code: u16,
    /// The enhanced status code of the first line, e.g. `5.7.1`, if given.
    pub enhanced: Option<String>,
    /// The text after the code (and enhanced code) of each line.
    pub lines: Vec<String>,
}

/// Why a reply text is not a valid SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReplyCode {
    pub text: String,
    pub reason: String,
}

impl fmt::Display for InvalidReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid reply code {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for InvalidReplyCode {}

impl ReplyCode {
    /// Parses and checks the text of a `y` packet (without its NUL).
    pub fn parse(text: &[u8]) -> Result<Self, InvalidReplyCode> {
        let shown = String::from_utf8_lossy(text).into_owned();
        let invalid = |reason: String| InvalidReplyCode { text: shown.clone(), reason };
        let text = std::str::from_utf8(text).map_err(|_| invalid("not valid UTF-8".into()))?;
        if text.is_empty() {
            return Err(invalid("empty".into()));
        }
        let raw_lines: Vec<&str> = text.split("\r\n").collect();
        let mut code = None;
        let mut enhanced = None;
        let mut lines = Vec::with_capacity(raw_lines.len());
        for (i, line) in raw_lines.iter().enumerate() {
            let last = i + 1 == raw_lines.len();
            let bytes = line.as_bytes();
            if bytes.len() < 4 || !bytes[..3].iter().all(u8::is_ascii_digit) {
                return Err(invalid(format!(
                    "line {} does not start with a 3-digit code and a separator",
                    i + 1
                )));
            }
            if bytes[0] != b'4' && bytes[0] != b'5' {
                return Err(invalid(format!("code {} is not a 4xx or 5xx code", &line[..3])));
            }
            let line_code: u16 = line[..3].parse().expect("three ASCII digits");
            if *code.get_or_insert(line_code) != line_code {
                return Err(invalid(format!(
                    "line {} has code {line_code}, the first line another",
                    i + 1
                )));
            }
            match (bytes[3], last) {
                (b' ', true) | (b'-', false) => {}
                (b'-', true) => return Err(invalid("the last line continues with '-'".into())),
                _ => {
                    return Err(invalid(format!(
                        "line {} must continue with '-' and end with ' '",
                        i + 1
                    )))
                }
            }
            if line.contains(['\r', '\n']) {
                return Err(invalid("a line break that is not CRLF".into()));
            }
            let mut rest = &line[4..];
            if let Some((status, after)) = split_enhanced_code(rest) {
                if status.as_bytes()[0] != bytes[0] {
                    return Err(invalid(format!(
                        "enhanced status {status} does not match the class of code {line_code}"
                    )));
                }
                if i == 0 {
                    enhanced = Some(status.to_string());
                }
                rest = after;
            } else if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                return Err(invalid(format!("malformed enhanced status code in line {}", i + 1)));
            }
            lines.push(rest.to_string());
        }
        Ok(Self { code: code.expect("at least one line"), enhanced, lines })
    }

    /// 4xx: a temporary failure; 5xx: a rejection.
    pub fn is_temporary(&self) -> bool {
        self.code < 500
    }
}

/// Splits a leading `x.y.z` enhanced status code (x one digit; y, z 1-3 digits) off `text`.
fn split_enhanced_code(text: &str) -> Option<(&str, &str)> {
    let end = text.find(' ').unwrap_or(text.len());
    let candidate = &text[..end];
    let parts: Vec<&str> = candidate.split('.').collect();
    let valid = parts.len() == 3
        && parts[0].len() == 1
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return None;
    }
    Some((candidate, text[end..].strip_prefix(' ').unwrap_or(&text[end..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_with_enhanced_code() {
        let reply = ReplyCode::parse(b"550 5.7.1 rejected by policy").unwrap();
        assert_eq!(reply.code, 550);
        assert_eq!(reply.enhanced.as_deref(), Some("5.7.1"));
        assert_eq!(reply.lines, vec!["rejected by policy"]);
        assert!(!reply.is_temporary());
    }

    #[test]
    fn multi_line_reply() {
        let reply = ReplyCode::parse(b"451-4.7.1 first\r\n451 4.7.1 second").unwrap();
        assert!(reply.is_temporary());
        assert_eq!(reply.lines, vec!["first", "second"]);
    }

    #[test]
    fn code_without_enhanced_status() {
        let reply = ReplyCode::parse(b"554 go away").unwrap();
        assert_eq!(reply.enhanced, None);
    }

    #[test]
    fn invalid_replies_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"554 3.7.1 nope", "does not match the class"),
            (b"250 ok", "not a 4xx or 5xx"),
            (b"550", "3-digit code and a separator"),
            (b"550-5.7.1 a\r\n551 5.7.1 b", "another"),
            (b"550 5.7.1 a\r\n550 5.7.1 b", "continue with '-'"),
            (b"550-5.7.1 only", "last line continues"),
            (b"550 5.7.1 bare\nnewline", "not CRLF"),
            (b"", "empty"),
        ];
        for (text, reason) in cases {
            let err = ReplyCode::parse(text).unwrap_err();
            assert!(err.reason.contains(reason), "{:?}: {}", String::from_utf8_lossy(text), err);
        }
    }
}
