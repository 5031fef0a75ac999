//! A tiny daemon on top of the supervisor, for trying it by hand and for the integration
//! tests: every connection gets one line back, prefixed with the serving process's pid.
//!
//! ```text
//! echo_daemon SOCKET_PATH N_WORKERS [--daemon] [--pid-file PATH] [--user USER] [--group GROUP]
//!             [--socket-group GROUP] [--socket-mode OCTAL]
//! ```
//!
//! With `ECHO_DAEMON_EXIT_AT_ONCE=CODE` in the environment, every `serve` returns CODE at once
//! (a crashing build, to watch the respawn throttle).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use supervisor::{BindTarget, ListenOptions, Listener, ProcessOptions, WorkerContext};

fn main() {
    log::set_logger(&StderrLogger).expect("first logger");
    log::set_max_level(log::LevelFilter::Debug);

    let (target, listen, process) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("echo_daemon: {message}");
            eprintln!(
                "usage: echo_daemon SOCKET_PATH N_WORKERS [--daemon] [--pid-file PATH] \
                 [--user USER] [--group GROUP] [--socket-group GROUP] [--socket-mode OCTAL]"
            );
            std::process::exit(2);
        }
    };
    let result = supervisor::bind(&target, &listen).and_then(|bound| {
        log::info!("listening on {}", bound.local_description());
        supervisor::run(bound, &process, serve)
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("echo_daemon: {error}");
            std::process::exit(1);
        }
    }
}

fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<(BindTarget, ListenOptions, ProcessOptions), String> {
    let socket = args.next().ok_or("missing SOCKET_PATH")?;
    let n_workers =
        args.next().ok_or("missing N_WORKERS")?.parse().map_err(|_| "N_WORKERS is not a number")?;
    let mut listen = ListenOptions::default();
    let mut process = ProcessOptions { n_workers, ..ProcessOptions::default() };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--daemon" => process.daemon = true,
            "--pid-file" => process.pid_file = Some(PathBuf::from(value()?)),
            "--user" => process.user = Some(value()?),
            "--group" => process.group = Some(value()?),
            "--socket-group" => listen.unix_socket_group = Some(value()?),
            "--socket-mode" => {
                let mode = value()?;
                let mode = u32::from_str_radix(&mode, 8).map_err(|_| "bad --socket-mode")?;
                listen.unix_socket_mode = Some(mode);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((BindTarget::Unix(PathBuf::from(socket)), listen, process))
}

/// One worker: accept and answer until SIGTERM/SIGINT or EOF from the supervisor.
fn serve(listener: Listener, context: WorkerContext) -> i32 {
    if let Some(code) =
        std::env::var("ECHO_DAEMON_EXIT_AT_ONCE").ok().and_then(|code| code.parse().ok())
    {
        return code;
    }
    let Listener::Unix(listener) = listener else {
        log::error!("echo_daemon serves unix sockets only");
        return 1;
    };
    match serve_unix(&listener, context) {
        Ok(()) => 0,
        Err(error) => {
            log::error!("worker failed: {error}");
            1
        }
    }
}

fn serve_unix(listener: &UnixListener, context: WorkerContext) -> io::Result<()> {
    // Shared by all workers: whoever loses the accept race gets WouldBlock.
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (mut wake_read, wake_write) = UnixStream::pair()?;
    wake_read.set_nonblocking(true)?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
        signal_hook::low_level::pipe::register(signal, wake_write.try_clone()?)?;
    }
    log::debug!("worker {} (pid {}) serving", context.worker_index, std::process::id());

    loop {
        if stop.load(Ordering::SeqCst) {
            log::info!("worker {} stopping on signal", context.worker_index);
            return Ok(());
        }
        let mut fds = vec![
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake_read.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(watch) = &context.parent_watch {
            fds.push(PollFd::new(watch.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
        let parent_gone =
            fds.get(2).and_then(|fd| fd.revents()).is_some_and(|events| !events.is_empty());
        drop(fds);
        if parent_gone && parent_closed(context.parent_watch.as_ref()) {
            log::info!("worker {}: supervisor closed the pipe", context.worker_index);
            return Ok(());
        }
        let mut drain = [0u8; 64];
        while matches!(wake_read.read(&mut drain), Ok(n) if n > 0) {}
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(error) = answer(stream) {
                    log::warn!("connection failed: {error}");
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn parent_closed(watch: Option<&OwnedFd>) -> bool {
    let Some(watch) = watch else { return false };
    let mut byte = [0u8; 1];
    matches!(nix::unistd::read(watch.as_raw_fd(), &mut byte), Ok(0) | Err(_))
}

/// Reads one line and writes it back with this process's pid.
fn answer(stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let mut stream = stream;
    stream.write_all(format!("pid {}: {line}", std::process::id()).as_bytes())
}

/// Log lines on stderr, tagged with the pid so that supervisor and workers can be told apart.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        eprintln!("echo_daemon[{}] {}: {}", std::process::id(), record.level(), record.args());
    }

    fn flush(&self) {}
}
