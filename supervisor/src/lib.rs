//! The process runtime of milter-manager's daemons: binding the listening socket, the
//! privilege drop, daemonizing, the pid file, and the prefork workers that share the
//! listener. It knows nothing about milters: the caller hands it a bind target and a
//! function that serves the listener in a worker.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use workers::Listener;

/// What to listen on (a resolved connection spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    Unix(PathBuf),
    /// Addresses to try in order; the first one that binds wins.
    Tcp(Vec<SocketAddr>),
}

/// Set-up of the listening socket.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Permission bits of a unix socket (e.g. 0o660).
    pub unix_socket_mode: Option<u32>,
    /// Group name of a unix socket.
    pub unix_socket_group: Option<String>,
    /// Remove a stale socket file at the path before binding.
    pub remove_unix_socket_on_create: bool,
    /// Remove the socket file when the process exits cleanly.
    pub remove_unix_socket_on_close: bool,
    /// listen(2) backlog.
    pub backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            unix_socket_mode: None,
            unix_socket_group: None,
            remove_unix_socket_on_create: true,
            remove_unix_socket_on_close: true,
            backlog: 1024,
        }
    }
}

/// How the process runs.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    pub daemon: bool,
    /// User to switch to (name or numeric id); only when started as root.
    pub user: Option<String>,
    /// Group to switch to (name or numeric id); only when started as root.
    pub group: Option<String>,
    pub pid_file: Option<PathBuf>,
    /// 0: serve in the supervisor's own process; N: fork N workers sharing the listener.
    pub n_workers: u32,
}
