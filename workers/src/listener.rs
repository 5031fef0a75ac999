//! The shared listening socket on the mio side: accepting, and sorting accept errors into
//! "next one" and "pause".

use std::io;

use mio::event::Source;
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};

use crate::stream::Stream;
use crate::{Listener, PeerAddr};

pub(crate) enum AcceptListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// How the loop should react to a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AcceptFailure {
    /// The listener is drained (another worker may have won the race): wait for readiness.
    Drained,
    /// A signal interrupted the call: try again.
    Retry,
    /// This one connection failed (aborted before accept, and friends); go on accepting.
    Skip,
    /// Out of descriptors or memory, or something unexpected: accepting again right away
    /// would spin, so pause.
    Pause,
}

/// EMFILE or ENFILE: the process or the system has no file descriptor left.
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl AcceptListener {
    /// Takes over the supervisor's listener, switching it to non-blocking mode.
    pub(crate) fn from_std(listener: Listener) -> io::Result<Self> {
        Ok(match listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                set_nodelay_for_accepted(&l);
                Self::Tcp(TcpListener::from_std(l))
            }
            Listener::Unix(l) => {
                l.set_nonblocking(true)?;
                Self::Unix(UnixListener::from_std(l))
            }
        })
    }

    /// Accepts one connection (mio makes it non-blocking and close-on-exec); TCP ones get
    /// TCP_NODELAY (on Linux from the listener, see [`set_nodelay_for_accepted`]).
    pub(crate) fn accept(&self) -> io::Result<(Stream, PeerAddr)> {
        match self {
            Self::Tcp(l) => {
                let (stream, addr) = l.accept()?;
                let stream = Stream::Tcp(stream);
                #[cfg(not(target_os = "linux"))]
                stream.set_nodelay();
                Ok((stream, PeerAddr::Tcp(addr)))
            }
            Self::Unix(l) => {
                let (stream, addr) = l.accept()?;
                let path = addr.as_pathname().map(|p| p.to_path_buf());
                Ok((Stream::Unix(stream), PeerAddr::Unix(path)))
            }
        }
    }
}

/// Linux copies TCP_NODELAY from a listening socket to every socket it accepts, so setting
/// it once here saves a `setsockopt` per session. Elsewhere each accepted socket gets it.
fn set_nodelay_for_accepted(listener: &std::net::TcpListener) {
    #[cfg(target_os = "linux")]
    if let Err(e) = socket2::SockRef::from(listener).set_tcp_nodelay(true) {
        log::warn!(
            "setting TCP_NODELAY on the listener failed: {e}; small answers may wait up to \
             40 ms for the peer's acknowledgement"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = listener;
}

pub(crate) fn classify_accept_error(error: &io::Error) -> AcceptFailure {
    match error.kind() {
        io::ErrorKind::WouldBlock => return AcceptFailure::Drained,
        io::ErrorKind::Interrupted => return AcceptFailure::Retry,
        _ => {}
    }
    match error.raw_os_error() {
        // accept(2): errors of the pending connection itself; "retry like EAGAIN".
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => AcceptFailure::Skip,
        #[cfg(target_os = "linux")]
        Some(libc::ENONET) => AcceptFailure::Skip,
        // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unforeseen.
        _ => AcceptFailure::Pause,
    }
}

impl AcceptListener {
    #[cfg(target_os = "linux")]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Self::Tcp(l) => l.as_raw_fd(),
            Self::Unix(l) => l.as_raw_fd(),
        }
    }
}

/// Every worker watches the same listening socket. On Linux it is registered with
/// `EPOLLEXCLUSIVE`, so a new client wakes one idle worker instead of all of them (the
/// others would only lose the race for `accept`). The flags otherwise match mio's own
/// (edge-triggered), and registration and removal both go through `epoll_ctl` here, since
/// mio cannot express the flag. Elsewhere mio's registration is used.
impl Source for AcceptListener {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            debug_assert!(interests == Interest::READABLE);
            let add = |flags: libc::c_int| {
                let mut event = libc::epoll_event {
                    events: (libc::EPOLLIN | libc::EPOLLET | flags) as u32,
                    u64: usize::from(token) as u64,
                };
                // SAFETY: both descriptors are open for the duration of the call (the
                // registry and the listener are borrowed), and `event` is a valid epoll_event.
                let rc = unsafe {
                    libc::epoll_ctl(
                        registry.as_raw_fd(),
                        libc::EPOLL_CTL_ADD,
                        self.raw_fd(),
                        &mut event,
                    )
                };
                if rc == -1 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            match add(libc::EPOLLEXCLUSIVE) {
                // Kernels before 4.5 do not know the flag.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => add(0),
                result => result,
            }
        }
        #[cfg(not(target_os = "linux"))]
        match self {
            AcceptListener::Tcp(l) => l.register(registry, token, interests),
            AcceptListener::Unix(l) => l.register(registry, token, interests),
        }
    }

    /// Never needed: the listener's interest does not change, it is only added and removed.
    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "the listener is never re-registered"))
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: as in `register`; EPOLL_CTL_DEL ignores the event argument.
            let rc = unsafe {
                libc::epoll_ctl(
                    registry.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    self.raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        match self {
            AcceptListener::Tcp(l) => l.deregister(registry),
            AcceptListener::Unix(l) => l.deregister(registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_tcp_sockets_have_nodelay() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = AcceptListener::from_std(Listener::Tcp(std_listener)).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept failed: {e}"),
            }
        };
        let Stream::Tcp(accepted) = accepted else { panic!("a TCP listener accepted unix") };
        assert!(accepted.nodelay().unwrap(), "Nagle would hold back small answers");
    }

    #[test]
    fn sorts_accept_errors() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify_accept_error(&os(libc::EAGAIN)), AcceptFailure::Drained);
        assert_eq!(classify_accept_error(&os(libc::EINTR)), AcceptFailure::Retry);
        assert_eq!(classify_accept_error(&os(libc::ECONNABORTED)), AcceptFailure::Skip);
        for resource in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify_accept_error(&os(resource)), AcceptFailure::Pause);
        }
    }
}
