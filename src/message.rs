//! A message as the milters see it (envelope, headers, body) and the modifications milters
//! make to it at end-of-message, applied the way the MTAs apply them.
//!
//! Every change is remembered (added, changed, deleted) so a tool can show what the
//! milters did, not only the result.

use crate::protocol::Reply;

/// Where a header or recipient stands relative to the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Original,
    Added,
    /// Changed; the original value is kept.
    Changed {
        old: Vec<u8>,
    },
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Vec<u8>,
    /// The value as milters see it: folded lines joined by `\n`, leading space removed.
    pub value: Vec<u8>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: Vec<u8>,
    pub parameters: Vec<Vec<u8>>,
    pub change: Change,
}

/// A message and its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub sender: Vec<u8>,
    pub sender_parameters: Vec<Vec<u8>>,
    /// The sender before a change-from, if one happened.
    pub original_sender: Option<Vec<u8>>,
    pub recipients: Vec<Recipient>,
    /// Headers in order, deleted ones included (marked).
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// The body before a replace-body, if one happened.
    pub original_body: Option<Vec<u8>>,
    pub quarantine_reason: Option<Vec<u8>>,
    /// A replace-body is under way in the current end-of-message answer.
    replacing_body: bool,
}

/// A modification that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModificationError(pub String);

impl std::fmt::Display for ModificationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModificationError {}

impl Message {
    /// An empty message from `sender`.
    pub fn new(sender: &[u8]) -> Self {
        Self { sender: sender.to_vec(), ..Self::default() }
    }

    pub fn add_original_header(&mut self, name: &[u8], value: &[u8]) {
        self.headers.push(Header {
            name: name.to_vec(),
            value: value.to_vec(),
            change: Change::Original,
        });
    }

    pub fn add_original_recipient(&mut self, address: &[u8], parameters: Vec<Vec<u8>>) {
        self.recipients.push(Recipient {
            address: address.to_vec(),
            parameters,
            change: Change::Original,
        });
    }

    /// The headers still in the message, in order.
    pub fn live_headers(&self) -> impl Iterator<Item = &Header> {
        self.headers.iter().filter(|h| h.change != Change::Deleted)
    }

    /// The recipients still in the envelope, in order.
    pub fn live_recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.change != Change::Deleted)
    }

    /// Marks the start of one milter's end-of-message answer: a replace-body in it
    /// starts a new body; its further chunks append.
    pub fn begin_modifications(&mut self) {
        self.replacing_body = false;
    }

    /// Applies one modification packet. Other replies are refused.
    pub fn apply(&mut self, reply: &Reply) -> Result<(), ModificationError> {
        match reply {
            Reply::AddHeader { name, value } => self.headers.push(Header {
                name: name.clone(),
                value: value.clone(),
                change: Change::Added,
            }),
            Reply::InsertHeader { index, name, value } => {
                let position = self.position_of_live(*index as usize);
                let header =
                    Header { name: name.clone(), value: value.clone(), change: Change::Added };
                self.headers.insert(position, header);
            }
            Reply::ChangeHeader { index, name, value } => self.change_header(*index, name, value),
            Reply::ChangeFrom { address, parameters } => {
                let old = std::mem::replace(&mut self.sender, address.clone());
                self.original_sender.get_or_insert(old);
                self.sender_parameters = split_parameters(parameters.as_deref());
            }
            Reply::AddRecipient { address } => self.add_recipient(address, Vec::new()),
            Reply::AddRecipientWithParameters { address, parameters } => {
                self.add_recipient(address, split_parameters(parameters.as_deref()))
            }
            Reply::DeleteRecipient { address } => {
                // The MTA matches the address as given; a recipient added earlier is
                // simply dropped again.
                if let Some(i) = self
                    .recipients
                    .iter()
                    .position(|r| r.change != Change::Deleted && same_address(&r.address, address))
                {
                    if self.recipients[i].change == Change::Added {
                        self.recipients.remove(i);
                    } else {
                        self.recipients[i].change = Change::Deleted;
                    }
                }
            }
            Reply::ReplaceBody { chunk } => {
                if !self.replacing_body {
                    self.replacing_body = true;
                    let old = std::mem::take(&mut self.body);
                    self.original_body.get_or_insert(old);
                }
                self.body.extend_from_slice(chunk);
            }
            Reply::Quarantine { reason } => self.quarantine_reason = Some(reason.clone()),
            other => {
                return Err(ModificationError(format!(
                    "{} is not a message modification",
                    other.name()
                )))
            }
        }
        Ok(())
    }

    /// The position in `headers` before the `live_index`-th live header (0 = top); past the
    /// end appends.
    fn position_of_live(&self, live_index: usize) -> usize {
        self.headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.change != Change::Deleted)
            .nth(live_index)
            .map_or(self.headers.len(), |(i, _)| i)
    }

    /// Whether a change-header with this index and name finds a header: one that does not
    /// adds the header, or deletes nothing when its value is empty.
    pub fn has_header(&self, index: u32, name: &[u8]) -> bool {
        self.find_header(index, name).is_some()
    }

    /// The position in `headers` of the `index`-th live header called `name`. The index
    /// counts headers of that name from 1; MTAs treat 0 as 1.
    fn find_header(&self, index: u32, name: &[u8]) -> Option<usize> {
        let nth = index.max(1) as usize;
        self.headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.change != Change::Deleted && h.name.eq_ignore_ascii_case(name))
            .nth(nth - 1)
            .map(|(i, _)| i)
    }

    fn change_header(&mut self, index: u32, name: &[u8], value: &[u8]) {
        match self.find_header(index, name) {
            Some(i) if value.is_empty() => {
                if self.headers[i].change == Change::Added {
                    self.headers.remove(i);
                } else {
                    self.headers[i].change = Change::Deleted;
                }
            }
            Some(i) => {
                let header = &mut self.headers[i];
                let old = std::mem::replace(&mut header.value, value.to_vec());
                if header.change == Change::Original {
                    header.change = Change::Changed { old };
                }
            }
            // Sendmail and Postfix add the header when there is no such occurrence.
            None if !value.is_empty() => self.headers.push(Header {
                name: name.to_vec(),
                value: value.to_vec(),
                change: Change::Added,
            }),
            None => {}
        }
    }

    fn add_recipient(&mut self, address: &[u8], parameters: Vec<Vec<u8>>) {
        self.recipients.push(Recipient {
            address: address.to_vec(),
            parameters,
            change: Change::Added,
        });
    }
}

fn same_address(a: &[u8], b: &[u8]) -> bool {
    let strip = |x: &[u8]| -> Vec<u8> {
        let x = x.strip_prefix(b"<").unwrap_or(x);
        x.strip_suffix(b">").unwrap_or(x).to_ascii_lowercase()
    };
    strip(a) == strip(b)
}

fn split_parameters(parameters: Option<&[u8]>) -> Vec<Vec<u8>> {
    parameters
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Header fields as (name, value) pairs, in order.
pub type HeaderFields = Vec<(Vec<u8>, Vec<u8>)>;

/// Why a mail file's header cannot be read, and at which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct MailError {
    pub line: usize,
    pub problem: MailProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailProblem {
    #[error("continuation line before any header")]
    EarlyContinuation,
    #[error("header line without ':'")]
    NoColon,
    #[error("invalid header name")]
    BadName,
}

/// Splits an RFC 5322 message into headers (as milters receive them: continuation lines
/// joined with `\n`, the one space after the colon removed) and the body with CRLF line
/// ends, whatever line ends the input used.
pub fn parse_mail(bytes: &[u8]) -> Result<(HeaderFields, Vec<u8>), MailError> {
    let mut headers = HeaderFields::new();
    let mut rest = bytes;
    let mut line_number = 0;
    loop {
        if rest.is_empty() {
            return Ok((headers, Vec::new()));
        }
        let (line, after) = split_line(rest);
        line_number += 1;
        rest = after;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            let (_, value) = headers
                .last_mut()
                .ok_or(MailError { line: line_number, problem: MailProblem::EarlyContinuation })?;
            value.push(b'\n');
            value.extend_from_slice(line);
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(MailError { line: line_number, problem: MailProblem::NoColon })?;
        let name = &line[..colon];
        if name.is_empty() || name.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(MailError { line: line_number, problem: MailProblem::BadName });
        }
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        headers.push((name.to_vec(), value.to_vec()));
    }
    let mut body = Vec::with_capacity(rest.len() + rest.len() / 32);
    while !rest.is_empty() {
        let (line, after) = split_line(rest);
        // Over SMTP every line, the last one too, ends in CRLF.
        body.extend_from_slice(line);
        body.extend_from_slice(b"\r\n");
        rest = after;
    }
    Ok((headers, body))
}

/// The first address of a From:/To: header value (`Name <a@b>, ...` or `a@b`), in
/// angle brackets as an envelope address.
pub fn header_address(value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    let first = text.split(',').next().unwrap_or_default();
    match (first.find('<'), first.rfind('>')) {
        (Some(start), Some(end)) if start < end => first.as_bytes()[start..=end].to_vec(),
        _ => format!("<{}>", first.trim()).into_bytes(),
    }
}

/// One line without its end (LF or CRLF), and what follows.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let line = &bytes[..lf];
            (line.strip_suffix(b"\r").unwrap_or(line), &bytes[lf + 1..])
        }
        None => (bytes, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let mut message = Message::new(b"<a@test>");
        message.add_original_recipient(b"<b@test>", vec![]);
        message.add_original_header(b"From", b"a@test");
        message.add_original_header(b"Subject", b"one");
        message.add_original_header(b"Received", b"first");
        message.add_original_header(b"Received", b"second");
        message.body = b"old body\r\n".to_vec();
        message
    }

    #[test]
    fn has_header_counts_live_headers_of_the_name_from_one() {
        let mut message = message();
        assert!(message.has_header(2, b"received"));
        assert!(message.has_header(0, b"Subject"), "index 0 is taken as 1");
        assert!(!message.has_header(3, b"Received"));
        assert!(!message.has_header(1, b"X-Missing"));
        let delete = Reply::ChangeHeader { index: 1, name: b"Subject".to_vec(), value: vec![] };
        message.apply(&delete).unwrap();
        assert!(!message.has_header(1, b"Subject"), "a deleted header is gone");
    }

    fn names_and_values(message: &Message) -> Vec<String> {
        message
            .live_headers()
            .map(|h| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&h.name),
                    String::from_utf8_lossy(&h.value)
                )
            })
            .collect()
    }

    #[test]
    fn header_edits_follow_the_mta() {
        let mut m = message();
        let b = |s: &str| s.as_bytes().to_vec();
        m.apply(&Reply::AddHeader { name: b("X-A"), value: b("1") }).unwrap();
        m.apply(&Reply::AddHeader { name: b("X-A"), value: b("2") }).unwrap();
        m.apply(&Reply::InsertHeader { index: 0, name: b("X-Top"), value: b("t") }).unwrap();
        m.apply(&Reply::ChangeHeader { index: 2, name: b("received"), value: b("changed") })
            .unwrap();
        m.apply(&Reply::ChangeHeader { index: 1, name: b("Subject"), value: b("") }).unwrap();
        m.apply(&Reply::ChangeHeader { index: 0, name: b("X-A"), value: b("") }).unwrap();
        m.apply(&Reply::ChangeHeader { index: 1, name: b("X-New"), value: b("n") }).unwrap();
        assert_eq!(
            names_and_values(&m),
            vec![
                "X-Top=t",
                "From=a@test",
                "Received=first",
                "Received=changed",
                "X-A=2",
                "X-New=n"
            ]
        );
        let deleted: Vec<_> = m.headers.iter().filter(|h| h.change == Change::Deleted).collect();
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0].name, b"Subject");
        // Inserting after a deleted header counts live headers only.
        m.apply(&Reply::InsertHeader { index: 2, name: b("X-Mid"), value: b("m") }).unwrap();
        assert_eq!(names_and_values(&m)[2], "X-Mid=m");
    }

    #[test]
    fn envelope_and_body_edits() {
        let mut m = message();
        let b = |s: &str| s.as_bytes().to_vec();
        m.begin_modifications();
        m.apply(&Reply::ChangeFrom { address: b("<new@test>"), parameters: Some(b("RET=HDRS")) })
            .unwrap();
        m.apply(&Reply::AddRecipient { address: b("<c@test>") }).unwrap();
        m.apply(&Reply::AddRecipientWithParameters {
            address: b("<d@test>"),
            parameters: Some(b("NOTIFY=NEVER")),
        })
        .unwrap();
        m.apply(&Reply::DeleteRecipient { address: b("b@test") }).unwrap();
        m.apply(&Reply::ReplaceBody { chunk: b("new ") }).unwrap();
        m.apply(&Reply::ReplaceBody { chunk: b("body") }).unwrap();
        m.apply(&Reply::Quarantine { reason: b("why") }).unwrap();
        assert_eq!(m.sender, b"<new@test>");
        assert_eq!(m.original_sender.as_deref(), Some(&b"<a@test>"[..]));
        assert_eq!(m.sender_parameters, vec![b("RET=HDRS")]);
        let live: Vec<_> = m.live_recipients().map(|r| r.address.clone()).collect();
        assert_eq!(live, vec![b("<c@test>"), b("<d@test>")]);
        assert_eq!(m.body, b"new body");
        assert_eq!(m.original_body.as_deref(), Some(&b"old body\r\n"[..]));
        // A later milter's replace-body starts over.
        m.begin_modifications();
        m.apply(&Reply::ReplaceBody { chunk: b("third") }).unwrap();
        assert_eq!(m.body, b"third");
        assert_eq!(m.original_body.as_deref(), Some(&b"old body\r\n"[..]));
        assert!(m.apply(&Reply::Continue).is_err());
    }

    #[test]
    fn mail_file_is_split_like_an_mta_does() {
        let mail =
            b"From: a@test\nSubject: folded\n\tsecond\nX-Empty:\nX-Tab:\tvalue\n\nline 1\nline 2\n";
        let (headers, body) = parse_mail(mail).unwrap();
        let b = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            headers,
            vec![
                (b("From"), b("a@test")),
                (b("Subject"), b("folded\n\tsecond")),
                (b("X-Empty"), b("")),
                (b("X-Tab"), b("\tvalue")),
            ]
        );
        assert_eq!(body, b"line 1\r\nline 2\r\n");
        let (_, body) = parse_mail(b"A: b\r\n\r\nno final newline").unwrap();
        assert_eq!(body, b"no final newline\r\n");
        let error = parse_mail(b" leading\n").unwrap_err().to_string();
        assert_eq!(error, "line 1: continuation line before any header");
        let error = parse_mail(b"A: b\nno colon\n").unwrap_err().to_string();
        assert_eq!(error, "line 2: header line without ':'");
        let error = parse_mail(b"A b: c\n").unwrap_err().to_string();
        assert_eq!(error, "line 1: invalid header name");
    }

    #[test]
    fn header_addresses() {
        assert_eq!(header_address(b"Alice <alice@test>, bob@test"), b"<alice@test>");
        assert_eq!(header_address(b" bob@test "), b"<bob@test>");
        assert_eq!(header_address(b"bob@test, carol@test"), b"<bob@test>");
    }
}
