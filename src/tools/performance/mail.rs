//! The mails a performance check sends: generated ones (a number of headers and a body
//! of a given size) or ones read from files, each with its envelope.

use crate::message::{header_address, parse_mail, HeaderFields, MailError};

/// The envelope sender when neither `--from` nor the mail file gives one.
pub(super) const DEFAULT_FROM: &str = "sender@example.com";
/// The envelope recipient when neither `--recipient` nor the mail file gives one.
pub(super) const DEFAULT_RECIPIENT: &str = "receiver@example.com";

/// Bytes of a generated body line, CRLF included (RFC 5322 recommends at most 78).
const BODY_LINE: usize = 78;

/// Envelope addresses, each in angle brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
}

impl Envelope {
    /// The given addresses where there are some, else the mail's From:/To: header (the
    /// first address of each), else the defaults.
    pub fn choose(from: Option<&str>, recipients: &[String], headers: &HeaderFields) -> Self {
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
        };
        let from = match from {
            Some(from) => angle_address(from),
            None => {
                header("From").map_or_else(|| angle_address(DEFAULT_FROM), |v| header_address(v))
            }
        };
        let recipients = if !recipients.is_empty() {
            recipients.iter().map(|r| angle_address(r)).collect()
        } else {
            vec![header("To")
                .map_or_else(|| angle_address(DEFAULT_RECIPIENT), |v| header_address(v))]
        };
        Self { from, recipients }
    }
}

/// One mail: envelope, header fields (as milters receive them: no space after the colon,
/// continuation lines joined with `\n`) and the body with CRLF line ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub envelope: Envelope,
    pub headers: HeaderFields,
    pub body: Vec<u8>,
}

/// `a@b` or `<a@b>` as `<a@b>`.
pub fn angle_address(text: &str) -> Vec<u8> {
    let bare = text.trim();
    let bare = bare.strip_prefix('<').unwrap_or(bare);
    let bare = bare.strip_suffix('>').unwrap_or(bare);
    format!("<{bare}>").into_bytes()
}

/// A mail with `n_headers` header fields (From, To, Subject, Message-ID, then numbered
/// X-Performance-Check-N fields) and a body of exactly `body_size` bytes in lines of
/// 78 bytes.
pub fn generated_mail(
    from: Option<&str>,
    recipients: &[String],
    n_headers: usize,
    body_size: usize,
) -> Mail {
    let envelope = Envelope::choose(from, recipients, &HeaderFields::new());
    let to = envelope.recipients.join(&b", "[..]);
    let standard: [(&[u8], Vec<u8>); 4] = [
        (b"From", envelope.from.clone()),
        (b"To", to),
        (b"Subject", b"milter-performance-check".to_vec()),
        (b"Message-ID", b"<milter-performance-check@example.com>".to_vec()),
    ];
    let mut headers: HeaderFields =
        standard.into_iter().take(n_headers).map(|(name, value)| (name.to_vec(), value)).collect();
    for n in headers.len()..n_headers {
        let name = format!("X-Performance-Check-{}", n + 1).into_bytes();
        headers.push((name, b"a header field to make the message longer".to_vec()));
    }
    Mail { envelope, headers, body: generated_body(body_size) }
}

/// `size` bytes of printable lines, each ending in CRLF (the last one may be cut short;
/// a single byte left over is a lone letter).
fn generated_body(size: usize) -> Vec<u8> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut body = Vec::with_capacity(size);
    let mut line = 0;
    while body.len() < size {
        let room = size - body.len();
        let length = room.min(BODY_LINE);
        let text = if length >= 2 { length - 2 } else { length };
        body.extend((0..text).map(|i| LETTERS[(line + i) % LETTERS.len()]));
        if length >= 2 {
            body.extend_from_slice(b"\r\n");
        }
        line += 1;
    }
    body
}

/// A mail read from a file (any line ends). The envelope is chosen as in
/// [`Envelope::choose`].
pub fn mail_from_file(
    bytes: &[u8],
    from: Option<&str>,
    recipients: &[String],
) -> Result<Mail, MailError> {
    let (headers, body) = parse_mail(bytes)?;
    let envelope = Envelope::choose(from, recipients, &headers);
    Ok(Mail { envelope, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn generated_mails_have_the_asked_sizes() {
        for size in [0, 1, 2, 77, 78, 79, 80, 1000, 70_000] {
            let mail = generated_mail(None, &[], 5, size);
            assert_eq!(mail.body.len(), size, "size {size}");
            if size >= 2 && size % BODY_LINE != 1 {
                assert!(mail.body.ends_with(b"\r\n"), "size {size}");
            }
            assert!(mail.body.split(|&b| b == b'\n').all(|line| line.len() <= BODY_LINE));
        }
        let names = |n| -> Vec<String> {
            generated_mail(None, &[], n, 0)
                .headers
                .iter()
                .map(|(name, _)| text(name).to_string())
                .collect()
        };
        assert_eq!(names(0), Vec::<String>::new());
        assert_eq!(names(2), ["From", "To"]);
        assert_eq!(
            names(6),
            [
                "From",
                "To",
                "Subject",
                "Message-ID",
                "X-Performance-Check-5",
                "X-Performance-Check-6"
            ]
        );
    }

    #[test]
    fn envelope_from_options_then_headers_then_defaults() {
        let mail = generated_mail(
            Some("a@example.net"),
            &["<b@example.org>".into(), "c@example.org".into()],
            2,
            0,
        );
        assert_eq!(text(&mail.envelope.from), "<a@example.net>");
        assert_eq!(
            mail.envelope.recipients,
            [b"<b@example.org>".to_vec(), b"<c@example.org>".to_vec()]
        );
        assert_eq!(text(&mail.headers[1].1), "<b@example.org>, <c@example.org>");

        let file =
            b"From: Alice <alice@example.net>\nTo: bob@example.org, carol@example.org\n\nHi\n";
        let mail = mail_from_file(file, None, &[]).unwrap();
        assert_eq!(text(&mail.envelope.from), "<alice@example.net>");
        assert_eq!(mail.envelope.recipients, [b"<bob@example.org>".to_vec()]);
        assert_eq!(mail.body, b"Hi\r\n");
        let mail = mail_from_file(file, Some("x@example.com"), &["y@example.com".into()]).unwrap();
        assert_eq!(text(&mail.envelope.from), "<x@example.com>");
        assert_eq!(mail.envelope.recipients, [b"<y@example.com>".to_vec()]);

        let mail = mail_from_file(b"Subject: none\n\nbody\n", None, &[]).unwrap();
        assert_eq!(text(&mail.envelope.from), "<sender@example.com>");
        assert_eq!(mail.envelope.recipients, [b"<receiver@example.com>".to_vec()]);
        let error = mail_from_file(b"no header line\n", None, &[]).unwrap_err();
        assert_eq!(error.to_string(), "line 1: header line without ':'");
    }
}
