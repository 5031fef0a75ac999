//! The SMTP client's pure parts: assembling (multi-line) replies, reading a reply code
//! as a status, and the DATA bytes of a mail.

use super::mail::Mail;
use crate::status::Status;
use crate::tools::Ending;

/// A complete SMTP reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// The reply as one line (`550 5.1.1 no such user`), for error messages.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

/// Collects reply lines (`250-first`, `250-second`, `250 last`) into replies.
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyAssembler {
    /// Takes one line (with or without its line end); gives the reply once its last line
    /// arrived. A line that is not `DDD[ -]text` or changes the code is an error.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<SmtpReply>, SmtpReplyError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let shown = || String::from_utf8_lossy(line).into_owned();
        let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
        let (Some(digits), separator) = (digits, line.get(3).copied()) else {
            return Err(SmtpReplyError::NotAReplyLine(shown()));
        };
        let code: u16 = std::str::from_utf8(digits).expect("digits").parse().expect("three digits");
        let last = match separator {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(SmtpReplyError::NotAReplyLine(shown())),
        };
        if self.code.is_some_and(|c| c != code) {
            return Err(SmtpReplyError::CodeChanged(shown()));
        }
        self.code = Some(code);
        self.lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
        if !last {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(SmtpReply { code, lines: std::mem::take(&mut self.lines) }))
    }
}

/// A line from the SMTP server that does not continue a reply (the line, lossily decoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpReplyError {
    #[error("the SMTP server sent {0:?}, not a reply line")]
    NotAReplyLine(String),
    #[error("the SMTP server changed the code within a reply: {0:?}")]
    CodeChanged(String),
}

/// Whether an EHLO reply offers the extension `keyword` (the first word of one of the
/// lines after the greeting line).
pub fn offers(ehlo: &SmtpReply, keyword: &str) -> bool {
    ehlo.lines
        .iter()
        .skip(1)
        .any(|line| line.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case(keyword)))
}

/// Postfix's `XCLIENT NAME=... ADDR=...` line: the client name and address the server
/// should take this connection as coming from. Values are xtext (RFC 1891); an IPv6
/// address gets the `IPV6:` prefix Postfix expects.
pub fn xclient_command(name: Option<&str>, address: Option<&str>) -> Vec<u8> {
    let mut line = String::from("XCLIENT");
    if let Some(name) = name {
        line.push_str(" NAME=");
        line.push_str(&xtext(name));
    }
    if let Some(address) = address {
        let bare = address.trim_start_matches('[').trim_end_matches(']');
        let address = match bare.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("IPV6:{v6}"),
            _ => address.to_string(),
        };
        line.push_str(" ADDR=");
        line.push_str(&xtext(&address));
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// RFC 1891 xtext: `+`, `=`, controls, spaces and non-ASCII as `+HH`.
fn xtext(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("+{byte:02X}"));
        }
    }
    encoded
}

/// What a reply code means for the mail: 2xx pass, 4xx temporary failure, 5xx reject;
/// `None` for anything else (1xx, 3xx where a final answer was due).
pub fn status_of_code(code: u16) -> Option<Ending> {
    match code / 100 {
        2 => Some(Ending::PASS),
        4 => Some(Status::TemporaryFailure.into()),
        5 => Some(Status::Reject.into()),
        _ => None,
    }
}

/// What follows a 354: the header fields, an empty line and the body, every line ending
/// in CRLF and dot-stuffed, then the lone `.` line that ends the data.
pub fn dot_stuffed_data(mail: &Mail) -> Vec<u8> {
    let mut text = Vec::with_capacity(mail.body.len() + 64 * mail.headers.len() + 16);
    for (name, value) in &mail.headers {
        text.extend_from_slice(name);
        text.push(b':');
        // Milters get the value without the space after the colon; put it back.
        if !value.is_empty() && !value.starts_with(b" ") && !value.starts_with(b"\t") {
            text.push(b' ');
        }
        for (i, line) in value.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                text.extend_from_slice(b"\r\n");
            }
            text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        }
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"\r\n");
    text.extend_from_slice(&mail.body);
    if !mail.body.is_empty() && !mail.body.ends_with(b"\r\n") {
        text.extend_from_slice(b"\r\n");
    }
    let mut data = Vec::with_capacity(text.len() + text.len() / 64 + 3);
    let mut at_line_start = true;
    for &byte in &text {
        if at_line_start && byte == b'.' {
            data.push(b'.');
        }
        data.push(byte);
        at_line_start = byte == b'\n';
    }
    data.extend_from_slice(b".\r\n");
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::performance::mail::Envelope;

    #[test]
    fn multi_line_replies() {
        let mut assembler = ReplyAssembler::default();
        assert_eq!(assembler.push_line(b"250-mx.example.org\r\n"), Ok(None));
        assert_eq!(assembler.push_line(b"250-PIPELINING\r\n"), Ok(None));
        let reply = assembler.push_line(b"250 8BITMIME\r\n").unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example.org", "PIPELINING", "8BITMIME"]);
        let reply = assembler.push_line(b"354\r\n").unwrap().unwrap();
        assert_eq!((reply.code, reply.lines.len()), (354, 1));
        assert_eq!(
            assembler
                .push_line(b"550 5.1.1 <x@example.org>: no such user\n")
                .unwrap()
                .unwrap()
                .one_line(),
            "550 5.1.1 <x@example.org>: no such user"
        );
        for bad in [&b"hello\r\n"[..], b"25\r\n", b"250x\r\n"] {
            assert!(assembler.push_line(bad).is_err(), "{bad:?}");
        }
        let mut assembler = ReplyAssembler::default();
        assembler.push_line(b"250-a").unwrap();
        let error = assembler.push_line(b"251 b").unwrap_err().to_string();
        assert_eq!(error, "the SMTP server changed the code within a reply: \"251 b\"");
    }

    #[test]
    fn xclient_lines_and_extensions() {
        assert_eq!(
            xclient_command(Some("client.example"), Some("192.0.2.7")),
            b"XCLIENT NAME=client.example ADDR=192.0.2.7\r\n"
        );
        assert_eq!(
            xclient_command(None, Some("2001:db8::1")),
            b"XCLIENT ADDR=IPV6:2001:db8::1\r\n"
        );
        assert_eq!(xclient_command(None, Some("[::1]")), b"XCLIENT ADDR=IPV6:::1\r\n");
        assert_eq!(
            xclient_command(Some("a b+c=d\u{e9}"), None),
            b"XCLIENT NAME=a+20b+2Bc+3Dd+C3+A9\r\n"
        );
        let ehlo = SmtpReply {
            code: 250,
            lines: vec![
                "XCLIENT is my name".into(),
                "PIPELINING".into(),
                "xclient NAME ADDR".into(),
            ],
        };
        assert!(offers(&ehlo, "XCLIENT"));
        assert!(!offers(&ehlo, "STARTTLS"));
        let greeting_only = SmtpReply { code: 250, lines: vec!["XCLIENT".into()] };
        assert!(!offers(&greeting_only, "XCLIENT"));
    }

    #[test]
    fn codes_as_statuses() {
        assert_eq!(status_of_code(250), Some(Ending::PASS));
        assert_eq!(status_of_code(421), Some(Status::TemporaryFailure.into()));
        assert_eq!(status_of_code(554), Some(Status::Reject.into()));
        assert_eq!(status_of_code(354), None);
    }

    #[test]
    fn data_is_dot_stuffed_with_crlf() {
        let mail = Mail {
            envelope: Envelope { from: b"<a@b>".to_vec(), recipients: vec![b"<c@d>".to_vec()] },
            headers: vec![
                (b"Subject".to_vec(), b"folded\n line two".to_vec()),
                (b"X-Tab".to_vec(), b"\tvalue".to_vec()),
                (b"X-Empty".to_vec(), Vec::new()),
            ],
            body: b".leading dot\r\nmiddle\r\n..two\r\nno end".to_vec(),
        };
        assert_eq!(
            String::from_utf8(dot_stuffed_data(&mail)).unwrap(),
            "Subject: folded\r\n line two\r\nX-Tab:\tvalue\r\nX-Empty:\r\n\r\n\
             ..leading dot\r\nmiddle\r\n...two\r\nno end\r\n.\r\n"
        );
        let empty = Mail { headers: Vec::new(), body: Vec::new(), ..mail };
        assert_eq!(dot_stuffed_data(&empty), b"\r\n.\r\n");
    }
}
