//! The log output of the binaries: lines of `[2026-11-22T10:00:00.123Z]: [level] message`
//! on standard output or in a file (written by env_logger), and optionally syslog
//! (facility mail). The project's levels decide what is logged; env_logger formats and
//! writes what they let through.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::logging::{Level, Levels};

/// Where and what to log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub levels: Levels,
    /// None or `-`: standard output.
    pub path: Option<PathBuf>,
    pub syslog: bool,
    /// The program name (syslog ident).
    pub ident: &'static str,
    /// The syslog facility by name ("mail", "local0", ...); None: mail.
    pub facility: Option<String>,
}

/// Why the logger cannot log as asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {}: {error}", path.display())]
    OpenFile { path: PathBuf, error: std::io::Error },
    #[error("log file {}: {problem}; remove it or give another path", path.display())]
    UnsafeFile { path: PathBuf, problem: &'static str },
    #[error("unknown syslog facility {0:?}")]
    UnknownFacility(String),
    #[error("cannot install the logger: {0}")]
    Install(log::SetLoggerError),
}

impl LogError {
    /// Whether the file could not be opened for lack of permission.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::OpenFile { error, .. } if error.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

/// What the logger does now; replaced as a whole by [`reconfigure`].
struct Outputs {
    levels: Levels,
    /// Standard output or the log file.
    writer: env_logger::Logger,
    /// Where the log file was opened, for [`reopen`].
    path: Option<std::path::PathBuf>,
    syslog: bool,
}

struct Logger {
    outputs: RwLock<Outputs>,
}

/// The installed logger, kept here so that [`reconfigure`] can reach it.
static LOGGER: OnceLock<Logger> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let Ok(outputs) = self.outputs.read() else { return false };
        outputs.levels.contains(Level::of_record(metadata.level(), metadata.target()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let Ok(outputs) = self.outputs.read() else { return };
        let level = Level::of_record(record.level(), record.target());
        if !outputs.levels.contains(level) {
            return;
        }
        outputs.writer.log(record);
        if outputs.syslog {
            let priority = match level {
                Level::Critical => libc::LOG_CRIT,
                Level::Error => libc::LOG_ERR,
                Level::Warning => libc::LOG_WARNING,
                Level::Message | Level::Statistics => libc::LOG_NOTICE,
                Level::Info | Level::Profile => libc::LOG_INFO,
                Level::Debug => libc::LOG_DEBUG,
            };
            let prefix = if level == Level::Statistics { "[statistics] " } else { "" };
            let text = record.args().to_string();
            let message = one_line(&text);
            if let Ok(text) = std::ffi::CString::new(format!("{prefix}{message}")) {
                // SAFETY: both strings are NUL-terminated and "%s" consumes exactly one.
                #[allow(unsafe_code)]
                unsafe {
                    libc::syslog(priority, c"%s".as_ptr(), text.as_ptr())
                };
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger; fails with a message naming the log file if it cannot be opened.
pub fn init(options: &LogOptions) -> Result<(), LogError> {
    let outputs = open_outputs(options)?;
    let logger = LOGGER.get_or_init(|| Logger { outputs: RwLock::new(outputs) });
    log::set_max_level(options.levels.max_log_filter());
    log::set_logger(logger).map_err(LogError::Install)
}

/// Switches the installed logger to `options` (a reloaded configuration). On error (the new
/// log file cannot be opened) the logger keeps logging as before.
pub fn reconfigure(options: &LogOptions) -> Result<(), LogError> {
    let outputs = open_outputs(options)?;
    let Some(logger) = LOGGER.get() else {
        return init(options);
    };
    if let Ok(mut current) = logger.outputs.write() {
        *current = outputs;
    }
    log::set_max_level(options.levels.max_log_filter());
    Ok(())
}

/// Opens the log file again at its path (SIGUSR1 after a log rotation): the old file is
/// let go. On error the logger keeps writing to the file it has.
pub fn reopen() -> Result<(), LogError> {
    let Some(logger) = LOGGER.get() else { return Ok(()) };
    let path = match logger.outputs.read() {
        Ok(outputs) => outputs.path.clone(),
        Err(_) => None,
    };
    let Some(path) = path else { return Ok(()) };
    let writer = writer(Some(open_log_file(&path)?));
    if let Ok(mut outputs) = logger.outputs.write() {
        outputs.writer = writer;
    }
    Ok(())
}

/// Opens the log for appending without following a symbolic link: the file is opened
/// as root, in a directory the serving user may be able to write, where a link planted to
/// another file would have root append to it.
fn open_log_file(path: &Path) -> Result<File, LogError> {
    use std::os::unix::fs::OpenOptionsExt;
    let unsafe_file = |problem| LogError::UnsafeFile { path: path.to_path_buf(), problem };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ELOOP) => unsafe_file("is a symbolic link"),
            _ => LogError::OpenFile { path: path.to_path_buf(), error },
        })?;
    let metadata =
        file.metadata().map_err(|error| LogError::OpenFile { path: path.to_path_buf(), error })?;
    if !metadata.is_file() {
        return Err(unsafe_file("is not a regular file"));
    }
    Ok(file)
}

fn open_outputs(options: &LogOptions) -> Result<Outputs, LogError> {
    let path = options.path.clone().filter(|path| path != Path::new("-"));
    let file = path.as_deref().map(open_log_file).transpose()?;
    if options.syslog {
        let facility = facility_code(options.facility.as_deref().unwrap_or("mail"))?;
        let ident = std::ffi::CString::new(options.ident).expect("no NUL in program names");
        // openlog keeps the pointer: leak the ident so it lives as long as the process.
        let ident: &'static std::ffi::CStr = Box::leak(ident.into_boxed_c_str());
        // SAFETY: the ident is 'static and NUL-terminated.
        #[allow(unsafe_code)]
        unsafe {
            libc::openlog(ident.as_ptr(), libc::LOG_PID, facility)
        };
    }
    Ok(Outputs { levels: options.levels, writer: writer(file), path, syslog: options.syslog })
}

/// An env_logger writing the project's line format to `file`, or to standard output.
/// It lets every record through: [`Logger`] has filtered them already.
fn writer(file: Option<File>) -> env_logger::Logger {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(log::LevelFilter::Trace)
        .write_style(env_logger::WriteStyle::Never)
        .format(|out, record| {
            let level = Level::of_record(record.level(), record.target());
            let text = record.args().to_string();
            let message = one_line(&text);
            writeln!(out, "[{}]: [{}] {message}", timestamp(), level.name())
        });
    if let Some(file) = file {
        // One write per line on an O_APPEND file: lines of several processes do not mix.
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    } else {
        builder.target(env_logger::Target::Stdout);
    }
    builder.build()
}

/// A message as one line: control characters (CR, LF, NUL, ...) that a peer put in a header
/// or a command are escaped, so that no text can forge a line of its own.
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return message.into();
    }
    let mut line = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push(' '),
            c if c.is_control() => line.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => line.push(c),
        }
    }
    line.into()
}

/// The syslog facility called `name`.
fn facility_code(name: &str) -> Result<libc::c_int, LogError> {
    Ok(match name {
        "kern" => libc::LOG_KERN,
        "user" => libc::LOG_USER,
        "mail" => libc::LOG_MAIL,
        "daemon" => libc::LOG_DAEMON,
        "auth" => libc::LOG_AUTH,
        "syslog" => libc::LOG_SYSLOG,
        "lpr" => libc::LOG_LPR,
        "news" => libc::LOG_NEWS,
        "uucp" => libc::LOG_UUCP,
        "cron" => libc::LOG_CRON,
        "authpriv" => libc::LOG_AUTHPRIV,
        "ftp" => libc::LOG_FTP,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        other => return Err(LogError::UnknownFacility(other.to_string())),
    })
}

/// The current UTC time as ISO 8601 with milliseconds. env_logger's own timestamp would
/// need its `humantime` feature, which brings a whole date-time library for this line.
fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::calendar::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_configurable_facility_has_a_code() {
        for name in crate::config::SYSLOG_FACILITIES {
            assert!(super::facility_code(name).is_ok(), "{name}");
        }
        let error = super::facility_code("mial").unwrap_err().to_string();
        assert_eq!(error, "unknown syslog facility \"mial\"");
    }

    /// What the log file holds after `record` was written to it.
    fn logged(record: &log::Record) -> String {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log");
        let writer = super::writer(Some(super::open_log_file(&path).expect("open the log")));
        log::Log::log(&writer, record);
        std::fs::read_to_string(&path).expect("read the log")
    }

    #[test]
    fn lines_have_the_project_format() {
        let text = logged(
            &log::Record::builder()
                .args(format_args!("child {} started", "a"))
                .level(log::Level::Warn)
                .target("milter_manager::engine")
                .build(),
        );
        let line = regex::Regex::new(
            r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]: \[warning\] child a started\n$",
        )
        .unwrap();
        assert!(line.is_match(&text), "{text:?}");
    }

    #[test]
    fn a_message_with_line_breaks_stays_one_line() {
        let text = logged(
            &log::Record::builder()
                .args(format_args!(
                    "header X: {}",
                    "a\r\n[2026-01-01T00:00:00.000Z]: [critical] b\0"
                ))
                .level(log::Level::Info)
                .build(),
        );
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            text.ends_with("header X: a\\r\\n[2026-01-01T00:00:00.000Z]: [critical] b\\x00\n"),
            "{text:?}"
        );
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = dir.path().join("secret");
        std::fs::write(&target, "kept\n").unwrap();
        let link = dir.path().join("mm.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = super::open_log_file(&link).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "log file {}: is a symbolic link; remove it or give another path",
                link.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // No reader: refused at open (ENXIO) rather than blocking on it; with one, refused
        // as not a regular file.
        assert!(super::open_log_file(&fifo).is_err(), "a FIFO is taken as the log");
    }
}
