//! The one error type of the process runtime. Every message is a single line that names the
//! thing (path, address, user, group) and says what went wrong, so that a mail admin reading
//! it in the shell or in syslog knows what to fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why binding, privilege dropping, daemonizing, the pid file or the workers failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// bind/listen failed; `address` is in milter spec form (`unix:/run/x.sock`,
    /// `inet:10025@[127.0.0.1]`).
    Bind {
        address: String,
        source: io::Error,
    },
    /// Every TCP address failed; one entry per address, in the order tried.
    BindAll {
        attempts: Vec<(String, io::Error)>,
    },
    /// A TCP target without addresses.
    NoAddress,
    /// The unix socket path exists and a process accepts connections on it.
    SocketInUse {
        path: PathBuf,
    },
    /// The unix socket path exists and `remove_unix_socket_on_create` is off.
    SocketExists {
        path: PathBuf,
    },
    /// The unix socket path exists but is not a socket (a regular file, a directory…).
    NotASocket {
        path: PathBuf,
    },
    RemoveStaleSocket {
        path: PathBuf,
        source: io::Error,
    },
    /// The directory that should hold the unix socket does not exist.
    SocketDirectoryMissing {
        path: PathBuf,
    },
    SocketPathTooLong {
        path: PathBuf,
        max: usize,
    },
    SocketMode {
        path: PathBuf,
        mode: u32,
        source: io::Error,
    },
    /// chown of the unix socket failed; `owner` is e.g. `:nogroup` or `nobody:nogroup`.
    SocketOwner {
        path: PathBuf,
        owner: String,
        source: io::Error,
    },
    UnknownUser {
        name: String,
    },
    UnknownGroup {
        name: String,
    },
    /// The user or group database could not be read (NSS failure, not "no such entry").
    AccountLookup {
        what: String,
        source: io::Error,
    },
    /// Switching user or group was asked for but the process is not root.
    NeedsRoot {
        what: String,
        euid: u32,
    },
    /// One step of the privilege drop failed, e.g. `setresuid(65534)`.
    DropPrivileges {
        step: String,
        source: io::Error,
    },
    /// After switching to `user`, root could be regained: refuse to go on.
    RootRegainable {
        user: String,
    },
    /// One step of daemonizing failed, e.g. `setsid`.
    Daemonize {
        step: &'static str,
        source: io::Error,
    },
    PidFileOpen {
        path: PathBuf,
        source: io::Error,
    },
    /// Another process holds the pid file's lock; `pid` is what the file says, if readable.
    PidFileLocked {
        path: PathBuf,
        pid: Option<i32>,
    },
    PidFileWrite {
        path: PathBuf,
        source: io::Error,
    },
    TooManyWorkers {
        requested: u32,
        max: u32,
    },
    /// fork(2) of a worker failed.
    ForkWorker {
        source: io::Error,
    },
    /// Installing the supervisor's signal handlers or creating its pipes failed.
    Signals {
        source: io::Error,
    },
    /// The supervisor's wait for signals failed.
    Poll {
        source: io::Error,
    },
    /// Setting up the privilege-mode launcher failed at `step`.
    Launcher {
        step: String,
        source: io::Error,
    },
    /// The control socket's own process (when no worker is forked) could not be started.
    ControlProcess {
        source: io::Error,
    },
    /// `who` (the identity the process will serve as) cannot write `what` (`path`) because of
    /// `place` (the file itself or its directory): `reason`.
    NotWritable {
        what: String,
        path: PathBuf,
        place: PathBuf,
        who: String,
        reason: String,
    },
    /// `who` (the identity the process will serve as) cannot read `what` (`path`) because of
    /// `place` (the file itself or a directory above it): `reason`.
    NotReadable {
        what: &'static str,
        path: PathBuf,
        place: PathBuf,
        who: String,
        reason: String,
    },
    /// `who` cannot list the directory `what` (`path`) because of `place` (the directory
    /// itself or one above it): `reason`.
    NotListable {
        what: &'static str,
        path: PathBuf,
        place: PathBuf,
        who: String,
        reason: String,
    },
    /// chown of a file this process created failed.
    FileOwner {
        path: PathBuf,
        owner: String,
        source: io::Error,
    },
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The OS's words for an error, without Rust's " (os error 98)" suffix.
pub(crate) fn os_words(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => error.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            Bind { address, source } => write!(f, "cannot bind {address}: {}", os_words(source)),
            BindAll { attempts } => {
                f.write_str("cannot bind ")?;
                for (i, (address, source)) in attempts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{address}: {}", os_words(source))?;
                }
                Ok(())
            }
            NoAddress => f.write_str("cannot bind: the TCP address list is empty"),
            SocketInUse { path } => write!(
                f,
                "cannot bind unix:{}: another process is listening on it",
                path.display()
            ),
            SocketExists { path } => write!(
                f,
                "cannot bind unix:{}: Address already in use (the socket file exists and \
                 removing it on start is disabled)",
                path.display()
            ),
            NotASocket { path } => write!(
                f,
                "{} exists and is not a socket; refusing to remove it",
                path.display()
            ),
            RemoveStaleSocket { path, source } => write!(
                f,
                "cannot remove stale socket {}: {}",
                path.display(),
                os_words(source)
            ),
            SocketDirectoryMissing { path } => write!(
                f,
                "cannot bind unix:{}: directory {} does not exist",
                path.display(),
                path.parent().unwrap_or(path).display()
            ),
            SocketPathTooLong { path, max } => write!(
                f,
                "cannot bind unix:{}: the path is longer than {max} bytes",
                path.display()
            ),
            SocketMode { path, mode, source } => write!(
                f,
                "cannot set mode {mode:04o} on socket {}: {}",
                path.display(),
                os_words(source)
            ),
            SocketOwner {
                path,
                owner,
                source,
            } => write!(
                f,
                "cannot change owner of socket {} to {owner}: {}",
                path.display(),
                os_words(source)
            ),
            UnknownUser { name } => write!(f, "unknown user \"{name}\""),
            UnknownGroup { name } => write!(f, "unknown group \"{name}\""),
            AccountLookup { what, source } => {
                write!(f, "cannot look up {what}: {}", os_words(source))
            }
            NeedsRoot { what, euid } => write!(
                f,
                "switching to {what} needs root privileges (running as uid {euid})"
            ),
            DropPrivileges { step, source } => {
                write!(f, "cannot drop privileges: {step}: {}", os_words(source))
            }
            RootRegainable { user } => write!(
                f,
                "refusing to run: root privileges can be regained after switching to user \"{user}\""
            ),
            Daemonize { step, source } => {
                write!(f, "cannot become a daemon: {step}: {}", os_words(source))
            }
            PidFileOpen { path, source } => write!(
                f,
                "cannot open pid file {}: {}",
                path.display(),
                os_words(source)
            ),
            PidFileLocked { path, pid } => match pid {
                Some(pid) => write!(
                    f,
                    "pid file {} is locked by a running process (pid {pid})",
                    path.display()
                ),
                None => write!(
                    f,
                    "pid file {} is locked by a running process",
                    path.display()
                ),
            },
            PidFileWrite { path, source } => write!(
                f,
                "cannot write pid file {}: {}",
                path.display(),
                os_words(source)
            ),
            TooManyWorkers { requested, max } => {
                write!(f, "{requested} workers requested; at most {max} are allowed")
            }
            ForkWorker { source } => write!(f, "cannot fork a worker: {}", os_words(source)),
            Signals { source } => {
                write!(f, "cannot set up signal handling: {}", os_words(source))
            }
            Poll { source } => write!(f, "cannot wait for signals: {}", os_words(source)),
            Launcher { step, source } => {
                write!(f, "cannot start the launcher: {step}: {}", os_words(source))
            }
            ControlProcess { source } => {
                write!(f, "cannot fork the controller process: {}", os_words(source))
            }
            NotWritable { what, path, place, who, reason } if place == path => write!(
                f,
                "{what} {} is not writable by {who}, whom the processes run as ({reason})",
                path.display()
            ),
            NotWritable { what, path, place, who, reason } => write!(
                f,
                "{what} {}: directory {} is not writable by {who}, whom the processes run as \
                 ({reason})",
                path.display(),
                place.display()
            ),
            NotReadable { what, path, place, who, reason } if place == path => write!(
                f,
                "{what} {} is not readable by {who}, whom the processes run as and who reads \
                 it again at a reload ({reason}): let that user read it (chgrp/chmod g+r)",
                path.display()
            ),
            NotReadable { what, path, place, who, reason } => write!(
                f,
                "{what} {}: directory {} cannot be searched by {who}, whom the processes run as \
                 and who reads the file again at a reload ({reason}): let that user in \
                 (chgrp/chmod g+x)",
                path.display(),
                place.display()
            ),
            NotListable { what, path, place, who, reason } if place == path => write!(
                f,
                "{what} {} cannot be listed by {who}, whom the processes run as and who lists \
                 it again at a reload for new files ({reason}): let that user list it \
                 (chgrp/chmod g+rx)",
                path.display()
            ),
            NotListable { what, path, place, who, reason } => write!(
                f,
                "{what} {}: directory {} cannot be searched by {who}, whom the processes run as \
                 and who lists it again at a reload ({reason}): let that user in \
                 (chgrp/chmod g+x)",
                path.display(),
                place.display()
            ),
            FileOwner { path, owner, source } => write!(
                f,
                "cannot change owner of {} to {owner}: {}",
                path.display(),
                os_words(source)
            ),
        }
    }
}

// No `source()`: every message already ends with its cause in the OS's words (without
// Rust's "(os error N)"), and a chain reporter would print that cause a second time.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_reads_like_the_os() {
        let error = Error::Bind {
            address: "unix:/run/x.sock".into(),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        assert_eq!(error.to_string(), "cannot bind unix:/run/x.sock: Address already in use");
    }

    #[test]
    fn the_cause_is_printed_once_by_a_chain_reporter() {
        let error = Error::PidFileOpen {
            path: "/run/x.pid".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        // A reporter prints the error, then each source(): the cause is already in the text.
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(next) = cause {
            chain.push_str(&format!(": {next}"));
            cause = next.source();
        }
        assert_eq!(chain, "cannot open pid file /run/x.pid: Permission denied");
    }

    #[test]
    fn all_failed_tcp_addresses_are_named_on_one_line() {
        let error = Error::BindAll {
            attempts: vec![
                ("inet6:10025@[::1]".into(), io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
                ("inet:10025@[127.0.0.1]".into(), io::Error::from_raw_os_error(libc::EADDRINUSE)),
            ],
        };
        let text = error.to_string();
        assert!(!text.contains('\n'));
        assert!(text.starts_with("cannot bind inet6:10025@[::1]: "));
        assert!(text.ends_with("inet:10025@[127.0.0.1]: Address already in use"));
    }

    #[test]
    fn pid_file_lock_names_the_holder() {
        let error = Error::PidFileLocked { path: "/run/x.pid".into(), pid: Some(1234) };
        assert_eq!(
            error.to_string(),
            "pid file /run/x.pid is locked by a running process (pid 1234)"
        );
    }
}
