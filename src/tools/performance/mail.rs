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

/// The envelope options, as the original tool takes them: `--from` and `--recipient`
/// stand in when the mail does not say, `--force-from` and `--force-recipient` win over
/// the mail.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvelopeOptions<'a> {
    pub from: Option<&'a str>,
    pub force_from: Option<&'a str>,
    pub recipients: &'a [String],
    pub force_recipients: &'a [String],
}

impl Envelope {
    /// Sender: `--force-from`, else the mail's From: (its first address), else `--from`,
    /// else the default. Recipients: `--force-recipient`, else every address of the
    /// mail's To: and Cc:, else `--recipient`, else the default.
    pub fn choose(options: &EnvelopeOptions<'_>, headers: &HeaderFields) -> Self {
        let values = |name: &'static str| {
            headers
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v)
        };
        let from = match (options.force_from, values("From").next()) {
            (Some(forced), _) => angle_address(forced),
            (None, Some(value)) => header_address(value),
            (None, None) => angle_address(options.from.unwrap_or(DEFAULT_FROM)),
        };
        let from_headers: Vec<Vec<u8>> = values("To")
            .chain(values("Cc"))
            .flat_map(|value| value.split(|&b| b == b','))
            .filter(|address| address.iter().any(|b| !b.is_ascii_whitespace()))
            .map(header_address)
            .collect();
        let recipients = if !options.force_recipients.is_empty() {
            options.force_recipients.iter().map(|r| angle_address(r)).collect()
        } else if !from_headers.is_empty() {
            from_headers
        } else if !options.recipients.is_empty() {
            options.recipients.iter().map(|r| angle_address(r)).collect()
        } else {
            vec![angle_address(DEFAULT_RECIPIENT)]
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

/// The line `--n-additional-lines` appends, CRLF included.
pub const ADDITIONAL_LINE: &[u8] = b"an additional line to make the message longer\r\n";

/// A mail with `n_headers` header fields (From, To, Subject, Message-ID, then numbered
/// X-Performance-Check-N fields) and a body of `body_size` bytes in lines of 78 bytes,
/// then `n_additional_lines` times [`ADDITIONAL_LINE`].
pub fn generated_mail(
    envelope: &EnvelopeOptions<'_>,
    n_headers: usize,
    body_size: usize,
    n_additional_lines: usize,
) -> Mail {
    let envelope = Envelope::choose(envelope, &HeaderFields::new());
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
    let mut body = generated_body(body_size);
    if n_additional_lines > 0 {
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        body.extend(ADDITIONAL_LINE.repeat(n_additional_lines));
    }
    Mail { envelope, headers, body }
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
pub fn mail_from_file(bytes: &[u8], envelope: &EnvelopeOptions<'_>) -> Result<Mail, MailError> {
    let (headers, body) = parse_mail(bytes)?;
    let envelope = Envelope::choose(envelope, &headers);
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
            let mail = generated_mail(&EnvelopeOptions::default(), 5, size, 0);
            assert_eq!(mail.body.len(), size, "size {size}");
            if size >= 2 && size % BODY_LINE != 1 {
                assert!(mail.body.ends_with(b"\r\n"), "size {size}");
            }
            assert!(mail.body.split(|&b| b == b'\n').all(|line| line.len() <= BODY_LINE));
        }
        let names = |n| -> Vec<String> {
            generated_mail(&EnvelopeOptions::default(), n, 0, 0)
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
    fn additional_lines_follow_the_body() {
        let plain = EnvelopeOptions::default();
        let mail = generated_mail(&plain, 0, 79, 2);
        let line = text(ADDITIONAL_LINE);
        assert!(
            text(&mail.body).ends_with(&format!("\r\nb\r\n{line}{line}")),
            "{:?}",
            text(&mail.body)
        );
        assert_eq!(mail.body.len(), 79 + 2 + 2 * ADDITIONAL_LINE.len());
        assert_eq!(generated_mail(&plain, 0, 0, 3).body, ADDITIONAL_LINE.repeat(3));
    }

    #[test]
    fn the_mail_beats_from_and_recipient_and_force_beats_the_mail() {
        let recipients = ["<b@example.org>".to_string(), "c@example.org".to_string()];
        let given = EnvelopeOptions {
            from: Some("a@example.net"),
            recipients: &recipients,
            ..EnvelopeOptions::default()
        };
        let mail = generated_mail(&given, 2, 0, 0);
        assert_eq!(text(&mail.envelope.from), "<a@example.net>");
        assert_eq!(
            mail.envelope.recipients,
            [b"<b@example.org>".to_vec(), b"<c@example.org>".to_vec()]
        );
        assert_eq!(text(&mail.headers[1].1), "<b@example.org>, <c@example.org>");

        let file =
            b"From: Alice <alice@example.net>\nTo: bob@example.org, Carol <carol@example.org>\n\
                     Cc: dave@example.org\n\nHi\n";
        let mail = mail_from_file(file, &given).unwrap();
        assert_eq!(text(&mail.envelope.from), "<alice@example.net>");
        assert_eq!(
            mail.envelope.recipients,
            [
                b"<bob@example.org>".to_vec(),
                b"<carol@example.org>".to_vec(),
                b"<dave@example.org>".to_vec()
            ]
        );
        assert_eq!(mail.body, b"Hi\r\n");
        let forced = ["y@example.com".to_string(), "z@example.com".to_string()];
        let force = EnvelopeOptions {
            force_from: Some("x@example.com"),
            force_recipients: &forced,
            ..given
        };
        let mail = mail_from_file(file, &force).unwrap();
        assert_eq!(text(&mail.envelope.from), "<x@example.com>");
        assert_eq!(
            mail.envelope.recipients,
            [b"<y@example.com>".to_vec(), b"<z@example.com>".to_vec()]
        );

        let bare = b"Subject: none\n\nbody\n";
        let mail = mail_from_file(bare, &EnvelopeOptions::default()).unwrap();
        assert_eq!(text(&mail.envelope.from), "<sender@example.com>");
        assert_eq!(mail.envelope.recipients, [b"<receiver@example.com>".to_vec()]);
        let mail = mail_from_file(bare, &given).unwrap();
        assert_eq!(text(&mail.envelope.from), "<a@example.net>");
        assert_eq!(mail.envelope.recipients.len(), 2);
        let error = mail_from_file(b"no header line\n", &given).unwrap_err();
        assert_eq!(error.to_string(), "line 1: header line without ':'");
    }
}
