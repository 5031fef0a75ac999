//! One client of the launcher, served without blocking: the launcher polls all of them
//! together, so a client that is slow or silent delays nobody else. Each has
//! [`CLIENT_DEADLINE`] from its connection to send its request line and take the answer;
//! then it is dropped.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

/// The longest request line read; a longer one is refused.
pub(crate) const MAX_REQUEST: usize = 4096;
/// How long one client may take to send its request and read the answer.
pub(crate) const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// Why a request line could not be read from a launcher client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("cannot read the request: {0}")]
    Read(io::Error),
    #[error("the request is longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("the request has no line end")]
    NoLineEnd,
    #[error("the request is not UTF-8")]
    NotUtf8,
}

/// A connected client and where its exchange stands.
#[derive(Debug)]
pub(crate) struct Client {
    stream: UnixStream,
    pub(crate) deadline: Instant,
    request: Vec<u8>,
    /// The answer, once the request is read, and how much of it is sent.
    answer: Option<(Vec<u8>, usize)>,
}

impl Client {
    /// Takes an accepted connection; it must finish within [`CLIENT_DEADLINE`] of `now`.
    pub(crate) fn new(stream: UnixStream, now: Instant) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self { stream, deadline: now + CLIENT_DEADLINE, request: Vec::new(), answer: None })
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// What the client waits for: its request, or room for its answer.
    pub(crate) fn interest(&self) -> PollFlags {
        if self.answer.is_some() {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    }

    /// Whether its request is read (it now waits for its answer to be sent).
    pub(crate) fn answered(&self) -> bool {
        self.answer.is_some()
    }

    /// Reads what the client has sent; the request line once it is complete (or why it
    /// cannot be), `None` while more is to come.
    pub(crate) fn read_request(&mut self) -> Option<Result<String, RequestError>> {
        let mut buffer = [0u8; 512];
        let mut ended = false;
        while !self.request.contains(&b'\n') && self.request.len() <= MAX_REQUEST {
            match self.stream.read(&mut buffer) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.request.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(RequestError::Read(e))),
            }
        }
        request_line(&self.request, ended)
    }

    /// Sets the answer and sends what the socket takes now.
    pub(crate) fn answer(&mut self, answer: String) -> io::Result<bool> {
        self.answer = Some((answer.into_bytes(), 0));
        self.write_answer()
    }

    /// Sends more of the answer; `true` once all of it is sent.
    pub(crate) fn write_answer(&mut self) -> io::Result<bool> {
        let Some((answer, sent)) = &mut self.answer else { return Ok(false) };
        while *sent < answer.len() {
            match self.stream.write(&answer[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// The request line in `received`, without its line end; `None` while it is incomplete and
/// the client may still send the rest (`ended`: it closed its side).
fn request_line(received: &[u8], ended: bool) -> Option<Result<String, RequestError>> {
    let end = match received.iter().position(|b| *b == b'\n') {
        Some(end) if end <= MAX_REQUEST => end,
        _ if received.len() > MAX_REQUEST => return Some(Err(RequestError::TooLong)),
        _ if ended => return Some(Err(RequestError::NoLineEnd)),
        _ => return None,
    };
    let line = &received[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some(String::from_utf8(line.to_vec()).map_err(|_| RequestError::NotUtf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(received: &[u8], ended: bool) -> Option<String> {
        request_line(received, ended).map(|r| r.map_err(|e| e.to_string()).unwrap_or_else(|e| e))
    }

    #[test]
    fn a_request_is_one_line_that_may_come_in_pieces() {
        assert_eq!(line(b"start dk", false), None, "more may come");
        assert_eq!(line(b"start dkim\r\nrest", false).as_deref(), Some("start dkim"));
        assert_eq!(line(b"start dk", true).as_deref(), Some("the request has no line end"));
        assert_eq!(line(b"\xff\n", false).as_deref(), Some("the request is not UTF-8"));
        let long = vec![b'x'; MAX_REQUEST + 1];
        assert_eq!(line(&long, false).as_deref(), Some("the request is longer than 4096 bytes"));
    }
}
