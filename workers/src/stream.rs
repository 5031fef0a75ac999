//! One connected (or connecting) socket, TCP or unix, behind a single type, plus the socket
//! options the loop needs.

use std::io::{self, Read, Write};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use crate::Endpoint;

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Starts a non-blocking connect; completion is signalled by writability (see
    /// [`Stream::connect_status_at_once`]). A unix connect completes or fails right here.
    /// TCP_NODELAY is set here, while the handshake may still be in flight, so the first
    /// write goes out unheld.
    pub(crate) fn connect(endpoint: &Endpoint) -> io::Result<Self> {
        let stream = match endpoint {
            Endpoint::Tcp(addr) => TcpStream::connect(*addr).map(Stream::Tcp)?,
            Endpoint::Unix(path) => UnixStream::connect(path).map(Stream::Unix)?,
        };
        stream.set_nodelay();
        Ok(stream)
    }

    /// Whether the socket stays registered for writability for its whole life. TCP only
    /// signals writability again after a write found the send buffer full, so keeping the
    /// interest costs no wakeups and saves an `epoll_ctl` per change. A unix socket signals
    /// it each time the peer consumes a packet, so it is watched only while output waits.
    pub(crate) fn keeps_writable_interest(&self) -> bool {
        matches!(self, Self::Tcp(_))
    }

    /// The interest an accepted socket is registered with.
    pub(crate) fn accepted_interest(&self) -> Interest {
        if self.keeps_writable_interest() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// How a connect stands right after [`Stream::connect`] returned, without a syscall
    /// where one is not needed: `Ok(true)` if it has completed, `Ok(false)` if the loop
    /// should wait for writability. A TCP connect returns EINPROGRESS even on loopback, and
    /// its end is signalled by the next poll (with the other events of that turn), which
    /// costs less than asking the socket now. A unix connect on Linux completes or fails
    /// inside the call, so returning at all means connected.
    pub(crate) fn connect_status_at_once(&self) -> io::Result<bool> {
        match self {
            Self::Tcp(_) => Ok(false),
            #[cfg(target_os = "linux")]
            Self::Unix(_) => Ok(true),
            #[cfg(not(target_os = "linux"))]
            Self::Unix(_) => self.connect_status(),
        }
    }

    /// How a non-blocking connect stands: `Ok(true)` once connected, `Ok(false)` while in
    /// progress, `Err` when it failed. Asked on an event of a connect in flight that is not plain
    /// writability (and right after a unix connect where that may be in flight). The peer
    /// address is asked first, so a connected socket costs one syscall.
    pub(crate) fn connect_status(&self) -> io::Result<bool> {
        let peer = match self {
            Self::Tcp(s) => s.peer_addr().map(drop),
            Self::Unix(s) => s.peer_addr().map(drop),
        };
        let peer_error = match peer {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        let pending_error = match self {
            Self::Tcp(s) => s.take_error()?,
            Self::Unix(s) => s.take_error()?,
        };
        if let Some(error) = pending_error {
            return Err(error);
        }
        if peer_error.kind() == io::ErrorKind::NotConnected
            || peer_error.raw_os_error() == Some(libc::EINPROGRESS)
        {
            return Ok(false);
        }
        Err(peer_error)
    }

    /// Small request/response packets must not wait for Nagle.
    pub(crate) fn set_nodelay(&self) {
        if let Self::Tcp(s) = self {
            if let Err(e) = s.set_nodelay(true) {
                log::debug!("setting TCP_NODELAY on a connection failed: {e}");
            }
        }
    }

    /// Sends the ACK for what arrived now rather than after the delayed-ACK timer, and
    /// acknowledges promptly for a while after (see [`crate::Action::Acknowledge`]). Setting
    /// TCP_QUICKACK does both on Linux; the kernel clears it again by itself.
    pub(crate) fn acknowledge_now(&self) {
        #[cfg(target_os = "linux")]
        if let Self::Tcp(s) = self {
            // A failure only costs latency, and logging it per read would flood the log.
            let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.register(registry, token, interests),
            Self::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.reregister(registry, token, interests),
            Self::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.deregister(registry),
            Self::Unix(s) => s.deregister(registry),
        }
    }
}
