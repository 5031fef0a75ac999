//! SMTP mode: each session is one SMTP connection to an MTA (EHLO, MAIL, RCPT..., DATA,
//! the message, QUIT), as the original tool does. The MTA's reply decides the status:
//! 2xx pass, 4xx temporary failure, 5xx reject, at the stage it was given.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use milter_manager::status::Status;
use milter_manager::tools::performance::{
    base64, choose_mechanism, cram_md5_response, dot_stuffed_data, offered_mechanisms, offers,
    plain_response, status_of_code, AuthMechanism, Credentials, ErrorKind, Failure, Mail, Outcome,
    ReplyAssembler, SmtpReply,
};
use milter_manager::tools::Ending;
use rustls::ClientConfig;

use crate::failure::{io_failure, kind_of};
use crate::tls::{client_config, server_name, StartTls, Transport};

/// The longest reply line taken (RFC 5321 allows 512 bytes; be generous).
const MAX_REPLY_LINE: u64 = 64 * 1024;

/// One mail ready to send: its envelope commands and its DATA bytes.
struct PreparedMail {
    mail_from: Vec<u8>,
    rcpt_to: Vec<Vec<u8>>,
    data: Vec<u8>,
}

/// Why the SMTP server's address cannot be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmtpTargetError {
    #[error("cannot resolve the SMTP server {host:?}: {error}")]
    Resolve { host: String, error: std::io::Error },
    #[error("the SMTP server {0:?} has no address")]
    NoAddress(String),
    #[error("--starttls: cannot set up TLS: {0}")]
    Tls(rustls::Error),
}

/// How to talk to the SMTP server.
pub(crate) struct SmtpSettings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) helo: String,
    pub(crate) starttls: StartTls,
    /// The `XCLIENT` line to send after EHLO (`--connect-host`, `--connect-address`).
    pub(crate) xclient: Option<Vec<u8>>,
    /// SMTP AUTH after EHLO (`--auth-user` or `--auth-map`).
    pub(crate) auth: Option<Auth>,
    /// For connecting and writing.
    pub(crate) timeout: Duration,
    /// For each reply (`--reading-timeout`).
    pub(crate) reading_timeout: Duration,
}

/// Who to authenticate as, and how (`None`: the best the server offers).
pub(crate) struct Auth {
    pub(crate) credentials: Credentials,
    pub(crate) mechanism: Option<AuthMechanism>,
}

/// An SMTP server and the mails to send it.
pub(crate) struct SmtpTarget {
    description: String,
    addresses: Vec<SocketAddr>,
    settings: SmtpSettings,
    mails: Vec<PreparedMail>,
    /// Unless `--starttls=disable`.
    tls: Option<Arc<ClientConfig>>,
}

impl SmtpTarget {
    /// Looks up the server's host; an error says why it cannot be found.
    pub(crate) fn new(settings: SmtpSettings, mails: &[Mail]) -> Result<Self, SmtpTargetError> {
        let (host, port) = (settings.host.as_str(), settings.port);
        let description =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let addresses: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|error| SmtpTargetError::Resolve { host: host.to_string(), error })?
            .collect();
        if addresses.is_empty() {
            return Err(SmtpTargetError::NoAddress(host.to_string()));
        }
        let mails = mails
            .iter()
            .map(|mail| PreparedMail {
                mail_from: [b"MAIL FROM:", &mail.envelope.from[..], b"\r\n"].concat(),
                rcpt_to: mail
                    .envelope
                    .recipients
                    .iter()
                    .map(|r| [b"RCPT TO:", &r[..], b"\r\n"].concat())
                    .collect(),
                data: dot_stuffed_data(mail),
            })
            .collect();
        let tls = match settings.starttls {
            StartTls::Disable => None,
            _ => Some(client_config().map_err(SmtpTargetError::Tls)?),
        };
        Ok(Self { description, addresses, settings, mails, tls })
    }

    pub(crate) fn description(&self) -> String {
        self.description.clone()
    }

    /// Session number `index`: one mail over one connection.
    pub(crate) fn run_session(&self, index: usize) -> Result<Outcome, Failure> {
        let mail = &self.mails[index % self.mails.len()];
        let mut connection = SmtpConnection::open(self)?;
        let outcome = connection.send(mail, &self.settings);
        // Say goodbye whatever happened, as a client would; the answer does not matter.
        connection.quit();
        outcome
    }
}

/// An open SMTP connection.
struct SmtpConnection<'a> {
    target: &'a str,
    host: &'a str,
    tls: Option<&'a Arc<ClientConfig>>,
    reading_timeout: Duration,
    /// Reads replies; written to through `get_mut`.
    reader: BufReader<Transport>,
    assembler: ReplyAssembler,
}

impl<'a> SmtpConnection<'a> {
    fn open(target: &'a SmtpTarget) -> Result<Self, Failure> {
        let mut last_error = None;
        let settings = &target.settings;
        for address in &target.addresses {
            match TcpStream::connect_timeout(address, settings.timeout) {
                Ok(stream) => {
                    let setup = |stream: &TcpStream| -> std::io::Result<()> {
                        stream.set_nodelay(true)?;
                        stream.set_read_timeout(Some(settings.reading_timeout))?;
                        stream.set_write_timeout(Some(settings.timeout))
                    };
                    let what = format!("cannot set up the connection to {}", target.description);
                    setup(&stream).map_err(|e| io_failure(&e, &what))?;
                    return Ok(SmtpConnection {
                        target: &target.description,
                        host: &settings.host,
                        tls: target.tls.as_ref(),
                        reading_timeout: settings.reading_timeout,
                        reader: BufReader::new(Transport::Plain(stream)),
                        assembler: ReplyAssembler::default(),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        let reason = last_error.map_or("no address".to_string(), |e| e.to_string());
        Err(Failure::new(
            ErrorKind::Connect,
            format!("cannot connect to the SMTP server at {}: {reason}", target.description),
        ))
    }

    /// The SMTP dialogue up to the end of the message.
    fn send(&mut self, mail: &PreparedMail, settings: &SmtpSettings) -> Result<Outcome, Failure> {
        let greeting = self.read_reply("connect")?;
        if let Some(refused) = refusal(&greeting, "connect", 2)? {
            return Ok(refused);
        }
        let mut ehlo = match self.hello(&settings.helo)? {
            Ok(ehlo) => ehlo,
            Err(refused) => return Ok(refused),
        };
        let starttls = match settings.starttls {
            StartTls::Disable => false,
            StartTls::Auto => offers(&ehlo, "STARTTLS"),
            StartTls::Always if offers(&ehlo, "STARTTLS") => true,
            StartTls::Always => {
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!(
                        "the SMTP server at {} does not offer STARTTLS (--starttls=always)",
                        self.target
                    ),
                ))
            }
        };
        if starttls {
            let reply = self.command(b"STARTTLS\r\n", "starttls")?;
            if reply.code / 100 != 2 {
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!(
                        "the SMTP server at {} refused STARTTLS (--starttls): {}",
                        self.target,
                        reply.one_line()
                    ),
                ));
            }
            self.start_tls()?;
            // After TLS the client starts over (RFC 3207): greet again.
            ehlo = match self.hello(&settings.helo)? {
                Ok(ehlo) => ehlo,
                Err(refused) => return Ok(refused),
            };
        }
        if let Some(xclient) = &settings.xclient {
            if !offers(&ehlo, "XCLIENT") {
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!(
                        "the SMTP server at {} does not offer XCLIENT, which --connect-host and \
                         --connect-address need (Postfix: list this client in \
                         smtpd_authorized_xclient_hosts)",
                        self.target
                    ),
                ));
            }
            let reply = self.command(xclient, "xclient")?;
            if reply.code / 100 != 2 {
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!(
                        "the SMTP server at {} refused XCLIENT (--connect-host, \
                         --connect-address): {}",
                        self.target,
                        reply.one_line()
                    ),
                ));
            }
            // The server starts over as if the given client had connected: greet again.
            ehlo = match self.hello(&settings.helo)? {
                Ok(ehlo) => ehlo,
                Err(refused) => return Ok(refused),
            };
        }
        if let Some(auth) = &settings.auth {
            self.authenticate(&ehlo, auth)?;
        }
        let reply = self.command(&mail.mail_from, "envelope-from")?;
        if let Some(refused) = refusal(&reply, "envelope-from", 2)? {
            return Ok(refused);
        }
        let mut last_refusal = None;
        let mut accepted = 0;
        for rcpt_to in &mail.rcpt_to {
            let reply = self.command(rcpt_to, "envelope-recipient")?;
            match refusal(&reply, "envelope-recipient", 2)? {
                None => accepted += 1,
                // 421: the server is closing the connection, not just refusing this one.
                Some(refused) if reply.code == 421 => return Ok(refused),
                Some(refused) => last_refusal = Some(refused),
            }
        }
        if accepted == 0 {
            let no_recipient = Outcome::new(Status::Reject.into(), "envelope-recipient");
            return Ok(last_refusal.unwrap_or(no_recipient));
        }
        let reply = self.command(b"DATA\r\n", "data")?;
        if let Some(refused) = refusal(&reply, "data", 3)? {
            return Ok(refused);
        }
        let reply = self.command(&mail.data, "end-of-message")?;
        match refusal(&reply, "end-of-message", 2)? {
            Some(refused) => Ok(refused),
            None => Ok(Outcome::new(Ending::PASS, "end-of-message")),
        }
    }

    /// SMTP AUTH with the mechanism asked for, or the best one offered.
    fn authenticate(&mut self, ehlo: &SmtpReply, auth: &Auth) -> Result<(), Failure> {
        let protocol = |message: String| Failure::new(ErrorKind::Protocol, message);
        let mechanism =
            choose_mechanism(auth.mechanism, &offered_mechanisms(ehlo)).map_err(|error| {
                protocol(format!(
                    "the SMTP server at {} {error} (--auth-user, --auth-mechanism, --auth-map)",
                    self.target
                ))
            })?;
        let Credentials { user, password } = &auth.credentials;
        let name = mechanism.name();
        let target = self.target;
        let refused = |reply: &SmtpReply| {
            protocol(format!(
                "the SMTP server at {target} refused AUTH {name} as {user:?}: {}",
                reply.one_line()
            ))
        };
        let mut step = |line: String, expected: u16| -> Result<SmtpReply, Failure> {
            let reply = self.command(format!("{line}\r\n").as_bytes(), "auth")?;
            if reply.code == expected {
                Ok(reply)
            } else {
                Err(refused(&reply))
            }
        };
        match mechanism {
            AuthMechanism::Plain => {
                step(format!("AUTH PLAIN {}", plain_response(user, password)), 235)?;
            }
            AuthMechanism::Login => {
                step("AUTH LOGIN".into(), 334)?;
                step(base64(user.as_bytes()), 334)?;
                step(base64(password.as_bytes()), 235)?;
            }
            AuthMechanism::CramMd5 => {
                let challenge = step("AUTH CRAM-MD5".into(), 334)?;
                let challenge = challenge.lines.first().map_or("", String::as_str);
                let response = cram_md5_response(user, password, challenge)
                    .map_err(|error| protocol(format!("{error}, from {target}")))?;
                step(response, 235)?;
            }
        }
        Ok(())
    }

    /// Switches the connection to TLS, after the server's go-ahead for STARTTLS.
    fn start_tls(&mut self) -> Result<(), Failure> {
        let protocol = |message: String| Failure::new(ErrorKind::Protocol, message);
        // Bytes read ahead of the handshake would be plain text smuggled into the TLS
        // session (the STARTTLS injection of CVE-2011-0411): refuse them.
        if !self.reader.buffer().is_empty() {
            return Err(protocol(format!(
                "the SMTP server at {} sent more after its STARTTLS reply",
                self.target
            )));
        }
        let transport = std::mem::replace(self.reader.get_mut(), Transport::Switching);
        let (Transport::Plain(tcp), Some(config)) = (transport, self.tls) else {
            return Err(protocol(format!("STARTTLS twice with {}", self.target)));
        };
        let name = server_name(self.host)
            .or_else(|| tcp.peer_addr().ok().map(|a| a.ip().into()))
            .ok_or_else(|| protocol(format!("no TLS server name for {}", self.host)))?;
        let tls = Transport::start_tls(tcp, config, name).map_err(|error| {
            let kind = match kind_of(&error) {
                ErrorKind::Io => ErrorKind::Protocol,
                other => other,
            };
            Failure::new(
                kind,
                format!(
                    "the TLS handshake with the SMTP server at {} failed: {error}",
                    self.target
                ),
            )
        })?;
        *self.reader.get_mut() = tls;
        Ok(())
    }

    /// EHLO, or HELO when the server does not know EHLO: the EHLO reply (its lines list
    /// the extensions), or the refusal.
    fn hello(&mut self, helo: &str) -> Result<Result<SmtpReply, Outcome>, Failure> {
        let mut reply = self.command(format!("EHLO {helo}\r\n").as_bytes(), "helo")?;
        if reply.code / 100 == 5 {
            reply = self.command(format!("HELO {helo}\r\n").as_bytes(), "helo")?;
        }
        Ok(match refusal(&reply, "helo", 2)? {
            Some(refused) => Err(refused),
            None => Ok(reply),
        })
    }

    /// Writes `bytes` (one write) and reads the reply.
    fn command(&mut self, bytes: &[u8], stage: &'static str) -> Result<SmtpReply, Failure> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).and_then(|()| stream.flush()).map_err(|e| {
            io_failure(
                &e,
                &format!("cannot write to the SMTP server at {} at {stage}", self.target),
            )
        })?;
        self.read_reply(stage)
    }

    fn read_reply(&mut self, stage: &'static str) -> Result<SmtpReply, Failure> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut self.reader).take(MAX_REPLY_LINE).read_until(b'\n', &mut line);
            let target = self.target;
            let reading_timeout = self.reading_timeout.as_secs_f64();
            let what = || format!("the SMTP server at {target} did not answer {stage}");
            match read {
                Ok(0) => {
                    return Err(Failure::new(
                        ErrorKind::Closed,
                        format!("the SMTP server at {} closed the connection at {stage}", self.target),
                    ))
                }
                Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REPLY_LINE => {
                    return Err(Failure::new(
                        ErrorKind::Protocol,
                        format!("the SMTP server at {} sent a reply line over {MAX_REPLY_LINE} bytes at {stage}", self.target),
                    ))
                }
                Ok(_) => {}
                Err(error) if kind_of(&error) == ErrorKind::Timeout => {
                    return Err(Failure::new(
                        ErrorKind::Timeout,
                        format!("{} within {reading_timeout} seconds (--reading-timeout)", what()),
                    ))
                }
                Err(error) => return Err(io_failure(&error, &what())),
            }
            match self.assembler.push_line(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(message) => {
                    return Err(Failure::new(ErrorKind::Protocol, format!("{message} at {stage}")))
                }
            }
        }
    }

    /// QUIT and its reply, errors ignored: the session's result is known already.
    fn quit(&mut self) {
        let stream = self.reader.get_mut();
        if stream.write_all(b"QUIT\r\n").and_then(|()| stream.flush()).is_ok() {
            let _ = self.read_reply("quit");
        }
    }
}

/// `None` when `reply` lets the session go on (its code starts with `positive`), the
/// final outcome when it refuses (4xx, 5xx), an error for anything else.
fn refusal(
    reply: &SmtpReply,
    stage: &'static str,
    positive: u16,
) -> Result<Option<Outcome>, Failure> {
    if reply.code / 100 == positive {
        return Ok(None);
    }
    match status_of_code(reply.code) {
        Some(status) if reply.code >= 400 => {
            Ok(Some(Outcome { status, stage, response: Some(reply.one_line()) }))
        }
        _ => Err(Failure::new(
            ErrorKind::Protocol,
            format!("unexpected SMTP reply \"{}\" at {stage}", reply.one_line()),
        )),
    }
}
