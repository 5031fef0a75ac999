//! Creating and setting up the listening socket, before any privilege drop or fork.

use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};
use nix::unistd;

use crate::error::{Error, Result};
use crate::privileges;
use crate::{BindTarget, ListenOptions, Listener};

/// A listening socket, ready to be served, with what the runtime must remember about it.
#[derive(Debug)]
pub struct BoundSocket {
    pub(crate) listener: Listener,
    /// The absolute path of a unix socket (absolute so that chdir("/") cannot break removal).
    pub(crate) unix_path: Option<PathBuf>,
    pub(crate) remove_on_close: bool,
    /// `unix_socket_group` was applied; a later chown must keep it.
    pub(crate) group_applied: bool,
    /// Removes the socket file if the socket is dropped before it is served, whatever
    /// `remove_unix_socket_on_close` says: a start that fails later leaves nothing behind.
    pub(crate) unserved: SocketFileGuard,
}

impl BoundSocket {
    /// The socket in milter spec form for logs: `unix:/run/x.sock`, `inet:10025@[127.0.0.1]`
    /// (with the port the kernel chose when 0 was asked for).
    pub fn local_description(&self) -> String {
        match (&self.listener, &self.unix_path) {
            (_, Some(path)) => format!("unix:{}", path.display()),
            (Listener::Tcp(listener), None) => match listener.local_addr() {
                Ok(address) => describe_tcp(&address),
                Err(_) => "inet:(unknown address)".to_string(),
            },
            (Listener::Unix(_), None) => "unix:(unnamed)".to_string(),
        }
    }

    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The address of a TCP listener (useful after binding port 0).
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// The absolute path of a unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// Hands the socket file over to the one that serves it: from now on it is removed
    /// on close only when `remove_unix_socket_on_close` asked for it.
    pub(crate) fn serve_file(&mut self) -> SocketFileGuard {
        std::mem::replace(&mut self.unserved, SocketFileGuard::none()).served(self.remove_on_close)
    }
}

/// Removes the socket file on drop when `remove_unix_socket_on_close` asked for it. Only the
/// supervisor (or the single serving process) holds one: forked processes leave with
/// `exit`, which runs no destructors.
#[derive(Debug)]
pub(crate) struct SocketFileGuard(Option<PathBuf>);

impl SocketFileGuard {
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// The guard of a socket being served: it removes the file on close only when
    /// `remove_on_close`.
    pub(crate) fn served(mut self, remove_on_close: bool) -> Self {
        Self(self.0.take().filter(|_| remove_on_close))
    }

    /// Keeps the file after all.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFileGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            match fs::remove_file(&path) {
                Ok(()) => log::debug!("removed socket {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "cannot remove socket {}: {}",
                    path.display(),
                    crate::error::os_words(&e)
                ),
            }
        }
    }
}

impl fmt::Display for BindTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addresses) => {
                for (i, address) in addresses.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&describe_tcp(address))?;
                }
                Ok(())
            }
        }
    }
}

/// A TCP address in milter spec form: `inet:10025@[127.0.0.1]`, `inet6:10025@[::1]`.
pub(crate) fn describe_tcp(address: &SocketAddr) -> String {
    let family = if address.is_ipv4() { "inet" } else { "inet6" };
    format!("{family}:{}@[{}]", address.port(), address.ip())
}

/// Creates the listening socket described by `target`.
pub fn bind(target: &BindTarget, opts: &ListenOptions) -> Result<BoundSocket> {
    match target {
        BindTarget::Unix(path) => bind_unix(path, opts),
        BindTarget::Tcp(addresses) => bind_tcp(addresses, opts),
    }
}

fn backlog(opts: &ListenOptions) -> Backlog {
    // nix refuses values at or above SOMAXCONN; the kernel caps the backlog there anyway.
    Backlog::new(opts.backlog).unwrap_or(Backlog::MAXCONN)
}

fn bind_unix(path: &Path, opts: &ListenOptions) -> Result<BoundSocket> {
    let path = std::path::absolute(path)
        .map_err(|source| Error::Bind { address: format!("unix:{}", path.display()), source })?;
    clear_socket_path(&path, opts)?;

    let bind_error = |errno: nix::Error| match errno {
        nix::Error::ENOENT => Error::SocketDirectoryMissing { path: path.clone() },
        errno => Error::Bind {
            address: format!("unix:{}", path.display()),
            source: io::Error::from(errno),
        },
    };
    let address = socket::UnixAddr::new(&path).map_err(|errno| match errno {
        nix::Error::ENAMETOOLONG => {
            Error::SocketPathTooLong { path: path.clone(), max: max_unix_path_len() }
        }
        errno => bind_error(errno),
    })?;
    let fd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(bind_error)?;
    socket::bind(fd.as_raw_fd(), &address).map_err(bind_error)?;
    // From here on the file is ours: removed again if the set-up fails half-way, or if the
    // socket is dropped before it is served.
    let unserved = SocketFileGuard(Some(path.clone()));
    socket::listen(&fd, backlog(opts)).map_err(bind_error)?;

    if let Some(mode) = opts.unix_socket_mode {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|source| Error::SocketMode { path: path.clone(), mode, source })?;
    }
    if let Some(group) = &opts.unix_socket_group {
        let gid = privileges::lookup_group(group)?;
        unistd::chown(&path, None, Some(gid)).map_err(|errno| Error::SocketOwner {
            path: path.clone(),
            owner: format!(":{group}"),
            source: io::Error::from(errno),
        })?;
    }
    Ok(BoundSocket {
        listener: Listener::Unix(UnixListener::from(fd)),
        unix_path: Some(path),
        remove_on_close: opts.remove_unix_socket_on_close,
        group_applied: opts.unix_socket_group.is_some(),
        unserved,
    })
}

/// Fails as [`bind`] would because of what is at a unix socket's path already (a live
/// socket, a file that is not a socket, a socket it may not replace), without binding or
/// removing anything: a program with several sockets checks them all before binding any.
/// TCP targets pass: nothing is left behind when binding them fails.
pub fn check_bindable(target: &BindTarget, opts: &ListenOptions) -> Result<()> {
    let BindTarget::Unix(path) = target else { return Ok(()) };
    let path = std::path::absolute(path)
        .map_err(|source| Error::Bind { address: format!("unix:{}", path.display()), source })?;
    stale_socket_at(&path, opts).map(|_| ())
}

/// Whether a socket file nobody listens on is at `path` (so binding may remove it); an error
/// for a live socket, a socket that may not be replaced, and anything that is not a socket.
fn stale_socket_at(path: &Path, opts: &ListenOptions) -> Result<bool> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Bind { address: format!("unix:{}", path.display()), source })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(Error::NotASocket { path: path.to_path_buf() });
    }
    if !opts.remove_unix_socket_on_create {
        return Err(Error::SocketExists { path: path.to_path_buf() });
    }
    // A second instance must not steal the socket of a running one: only a socket nobody
    // accepts on is stale. The probe sends nothing and closes, which the listener (ours
    // included) takes for no request at all.
    match UnixStream::connect(path) {
        Ok(_) => Err(Error::SocketInUse { path: path.to_path_buf() }),
        // The listen queue is full: someone is listening.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
            Err(Error::SocketInUse { path: path.to_path_buf() })
        }
        Err(_) => Ok(true),
    }
}

/// Makes room for the socket at `path`: removes a stale socket file (when allowed), refuses a
/// live socket and anything that is not a socket.
fn clear_socket_path(path: &Path, opts: &ListenOptions) -> Result<()> {
    if !stale_socket_at(path, opts)? {
        return Ok(());
    }
    fs::remove_file(path)
        .map_err(|source| Error::RemoveStaleSocket { path: path.to_path_buf(), source })?;
    log::info!("removed stale socket {}", path.display());
    Ok(())
}

fn max_unix_path_len() -> usize {
    // sun_path without its terminating NUL.
    std::mem::size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path) - 1
}

fn bind_tcp(addresses: &[SocketAddr], opts: &ListenOptions) -> Result<BoundSocket> {
    if addresses.is_empty() {
        return Err(Error::NoAddress);
    }
    let mut attempts = Vec::new();
    for address in addresses {
        match bind_one_tcp(address, opts) {
            Ok(listener) => {
                for (failed, error) in &attempts {
                    log::info!(
                        "skipped {failed} ({}); listening on {}",
                        crate::error::os_words(error),
                        describe_tcp(address)
                    );
                }
                return Ok(BoundSocket {
                    listener: Listener::Tcp(listener),
                    unix_path: None,
                    remove_on_close: false,
                    group_applied: false,
                    unserved: SocketFileGuard::none(),
                });
            }
            Err(errno) => attempts.push((describe_tcp(address), io::Error::from(errno))),
        }
    }
    if attempts.len() == 1 {
        let (address, source) = attempts.pop().expect("one attempt");
        return Err(Error::Bind { address, source });
    }
    Err(Error::BindAll { attempts })
}

fn bind_one_tcp(address: &SocketAddr, opts: &ListenOptions) -> nix::Result<TcpListener> {
    let family = if address.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    // A restart must not wait for TIME_WAIT connections of the previous instance.
    socket::setsockopt(&fd, socket::sockopt::ReuseAddr, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(*address))?;
    socket::listen(&fd, backlog(opts))?;
    Ok(TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::os::unix::fs::MetadataExt;

    fn unix(path: &Path) -> BindTarget {
        BindTarget::Unix(path.to_path_buf())
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = TestDir::new("stale");
        let path = dir.path().join("milter.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let bound = bind(&unix(&path), &ListenOptions::default()).unwrap();
        assert_eq!(bound.local_description(), format!("unix:{}", path.display()));
        UnixStream::connect(&path).expect("the new socket accepts");
    }

    #[test]
    fn a_live_socket_is_not_stolen() {
        let dir = TestDir::new("live");
        let path = dir.path().join("milter.sock");
        let _running = UnixListener::bind(&path).unwrap();

        let error = bind(&unix(&path), &ListenOptions::default()).unwrap_err();
        assert!(matches!(error, Error::SocketInUse { .. }), "{error}");
        assert!(error.to_string().contains("another process is listening"));
    }

    #[test]
    fn an_existing_socket_is_kept_when_removal_is_off() {
        let dir = TestDir::new("keep");
        let path = dir.path().join("milter.sock");
        drop(UnixListener::bind(&path).unwrap());
        let opts =
            ListenOptions { remove_unix_socket_on_create: false, ..ListenOptions::default() };
        let error = bind(&unix(&path), &opts).unwrap_err();
        assert!(error
            .to_string()
            .starts_with(&format!("cannot bind unix:{}: Address already in use", path.display())));
        assert!(path.exists());
    }

    #[test]
    fn a_regular_file_is_never_removed() {
        let dir = TestDir::new("regular");
        let path = dir.path().join("milter.sock");
        fs::write(&path, "precious").unwrap();

        let error = bind(&unix(&path), &ListenOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} exists and is not a socket; refusing to remove it", path.display())
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = TestDir::new("nodir");
        let path = dir.path().join("missing").join("milter.sock");
        let error = bind(&unix(&path), &ListenOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot bind unix:{}: directory {} does not exist",
                path.display(),
                dir.path().join("missing").display()
            )
        );
    }

    #[test]
    fn an_overlong_path_is_refused_with_the_limit() {
        let dir = TestDir::new("long");
        let path = dir.path().join("x".repeat(200));
        let error = bind(&unix(&path), &ListenOptions::default()).unwrap_err();
        assert!(error.to_string().ends_with("the path is longer than 107 bytes"), "{error}");
    }

    #[test]
    fn mode_and_group_are_applied() {
        let dir = TestDir::new("mode");
        let path = dir.path().join("milter.sock");
        let as_root = nix::unistd::Uid::effective().is_root();
        // Root may give the socket to any group; others only to their own.
        let group =
            if as_root { "daemon".to_string() } else { nix::unistd::Gid::effective().to_string() };
        let opts = ListenOptions {
            unix_socket_mode: Some(0o660),
            unix_socket_group: Some(group.clone()),
            ..ListenOptions::default()
        };
        let bound = bind(&unix(&path), &opts).unwrap();
        let metadata = fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o660);
        assert_eq!(metadata.gid(), privileges::lookup_group(&group).unwrap().as_raw());
        assert!(bound.group_applied);
    }

    #[test]
    fn an_unknown_group_fails_and_leaves_no_socket_behind() {
        let dir = TestDir::new("badgroup");
        let path = dir.path().join("milter.sock");
        let opts = ListenOptions {
            unix_socket_group: Some("no-such-group-for-supervisor-tests".into()),
            ..ListenOptions::default()
        };
        let error = bind(&unix(&path), &opts).unwrap_err();
        assert_eq!(error.to_string(), "unknown group \"no-such-group-for-supervisor-tests\"");
        assert!(!path.exists());
    }

    #[test]
    fn the_socket_file_is_removed_on_close_only_when_asked() {
        let dir = TestDir::new("close");
        for remove in [true, false] {
            let path = dir.path().join(format!("milter-{remove}.sock"));
            let opts =
                ListenOptions { remove_unix_socket_on_close: remove, ..ListenOptions::default() };
            let mut bound = bind(&unix(&path), &opts).unwrap();
            drop(bound.serve_file());
            assert_eq!(path.exists(), !remove);
        }
    }

    #[test]
    fn a_socket_dropped_before_it_is_served_is_removed_even_when_kept_on_close() {
        let dir = TestDir::new("unserved");
        let path = dir.path().join("milter.sock");
        let opts = ListenOptions { remove_unix_socket_on_close: false, ..ListenOptions::default() };
        drop(bind(&unix(&path), &opts).unwrap());
        assert!(!path.exists(), "a start that fails leaves nothing behind");
    }

    #[test]
    fn checking_refuses_what_binding_would_and_removes_nothing() {
        let dir = TestDir::new("check");
        let path = dir.path().join("milter.sock");
        check_bindable(&unix(&path), &ListenOptions::default()).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        check_bindable(&unix(&path), &ListenOptions::default()).unwrap();
        assert!(path.exists(), "a stale socket is left for bind to remove");
        let _running = UnixListener::bind(dir.path().join("live.sock")).unwrap();
        let error = check_bindable(&unix(&dir.path().join("live.sock")), &ListenOptions::default())
            .unwrap_err();
        assert!(matches!(error, Error::SocketInUse { .. }), "{error}");
        fs::write(dir.path().join("file"), "").unwrap();
        let error =
            check_bindable(&unix(&dir.path().join("file")), &ListenOptions::default()).unwrap_err();
        assert!(matches!(error, Error::NotASocket { .. }), "{error}");
    }

    #[test]
    fn tcp_binds_the_loopback_with_a_kernel_chosen_port() {
        let target = BindTarget::Tcp(vec!["127.0.0.1:0".parse().unwrap()]);
        let bound = bind(&target, &ListenOptions::default()).unwrap();
        let address = bound.tcp_local_addr().unwrap();
        assert_ne!(address.port(), 0);
        assert_eq!(bound.local_description(), format!("inet:{}@[127.0.0.1]", address.port()));
        std::net::TcpStream::connect(address).expect("the listener accepts");

        // The same port again: the error names the address.
        let error = bind(&BindTarget::Tcp(vec![address]), &ListenOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot bind inet:{}@[127.0.0.1]: Address already in use", address.port())
        );
    }

    #[test]
    fn tcp_takes_the_first_address_that_binds() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_address = busy.local_addr().unwrap();
        let target = BindTarget::Tcp(vec![busy_address, "127.0.0.1:0".parse().unwrap()]);
        let bound = bind(&target, &ListenOptions::default()).unwrap();
        assert_ne!(bound.tcp_local_addr().unwrap(), busy_address);
    }

    #[test]
    fn targets_print_in_milter_spec_form() {
        let target = BindTarget::Tcp(vec![
            "[::1]:10025".parse().unwrap(),
            "127.0.0.1:10025".parse().unwrap(),
        ]);
        assert_eq!(target.to_string(), "inet6:10025@[::1], inet:10025@[127.0.0.1]");
        assert_eq!(unix(Path::new("/run/x.sock")).to_string(), "unix:/run/x.sock");
    }
}
