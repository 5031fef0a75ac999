//! One control client: its stream, its request and its answer, read and written without
//! blocking.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use super::MAX_REQUEST;

pub(super) enum Stream {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

pub(super) struct Client {
    pub stream: Stream,
    pub request: Vec<u8>,
    /// The answer and how much of it was written; `None` while reading the request.
    pub answer: Option<(Vec<u8>, usize)>,
    /// Waiting for the outcome of the reload it asked for.
    pub awaits_reload: bool,
    pub deadline: Instant,
}

pub(super) enum Progress {
    Pending,
    Done,
    Failed(io::Error),
}

impl Client {
    pub(super) fn read_request(&mut self) -> Progress {
        let mut buffer = [0u8; 1024];
        loop {
            match self.stream.read(&mut buffer) {
                // EOF ends the request even without a line break.
                Ok(0) => return Progress::Done,
                Ok(n) => {
                    self.request.extend_from_slice(&buffer[..n]);
                    if self.request.contains(&b'\n') || self.request.len() >= MAX_REQUEST {
                        return Progress::Done;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Failed(e),
            }
        }
    }

    pub(super) fn request_line(&self) -> String {
        let end = self.request.iter().position(|b| *b == b'\n').unwrap_or(self.request.len());
        let line = &self.request[..end.min(MAX_REQUEST)];
        String::from_utf8_lossy(line).trim_end_matches('\r').to_string()
    }

    pub(super) fn write_answer(&mut self) -> Progress {
        let Some((answer, written)) = self.answer.as_mut() else { return Progress::Pending };
        while *written < answer.len() {
            match self.stream.write(&answer[*written..]) {
                Ok(0) => return Progress::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Failed(e),
            }
        }
        Progress::Done
    }
}

impl Stream {
    pub(super) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Unix(stream) => stream.set_nonblocking(true),
            Self::Tcp(stream) => stream.set_nonblocking(true),
        }
    }

    pub(super) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Self::Unix(stream) => stream.as_fd(),
            Self::Tcp(stream) => stream.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(stream) => stream.read(buf),
            Self::Tcp(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(stream) => stream.write(buf),
            Self::Tcp(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
