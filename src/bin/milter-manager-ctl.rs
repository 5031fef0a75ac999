//! milter-manager-ctl: asks a running milter-manager's controller one question and prints
//! the answer. Exit status: 0 when the controller answered ok, 1 otherwise.

use milter_manager::{out, program};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use milter_manager::config::{Config, ConfigError, DEFAULT_CONFIG_DIR};
use milter_manager::control_protocol::{parse_answer, AnswerError, ControlRequest, RequestError};
use milter_manager::spec::{Spec, SpecError};

#[derive(Parser, Debug)]
#[command(
    name = "milter-manager-ctl",
    version,
    about = "Asks a running milter-manager: status, configuration, reload, metrics, stop-child NAME"
)]
struct Options {
    /// Directory of milter-manager.toml, whose controller.connection_spec is used.
    #[arg(short = 'c', long = "config-dir", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// The controller's socket (instead of the configuration's): unix:PATH, inet:PORT@HOST...
    #[arg(short = 's', long = "connection-spec")]
    connection_spec: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The request: status, configuration, reload, metrics (Prometheus text), or stop-child
    /// NAME.
    #[arg(required = true, num_args = 1..)]
    request: Vec<String>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(body) => {
            out!("{body}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("milter-manager-ctl: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why no answer body is printed; the program prints it after its name.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("--connection-spec: {0}")]
    Spec(SpecError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: controller.connection_spec is not set: no controller to ask (or use -s)", .0.display())]
    NoController(PathBuf),
    #[error("--timeout {0}: give seconds between 0 and 86400")]
    Timeout(f64),
    #[error("controller at {spec}: {reason}")]
    Unreachable { spec: Spec, reason: AskError },
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

/// Why the controller could not be asked.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The host name of an inet spec did not resolve.
    #[error(transparent)]
    Resolve(milter_manager::program::ResolveError),
}

fn run(options: &Options) -> Result<String, CtlError> {
    let request = ControlRequest::parse(&options.request.join(" "))?;
    let spec = match &options.connection_spec {
        Some(text) => Spec::parse(text).map_err(CtlError::Spec)?,
        None => {
            let config = Config::load(&options.config_dir, nix::unistd::geteuid().as_raw())?;
            let spec = config.controller.connection_spec.clone();
            spec.ok_or_else(|| CtlError::NoController(options.config_dir.clone()))?
        }
    };
    if !(options.timeout > 0.0 && options.timeout <= 86400.0) {
        return Err(CtlError::Timeout(options.timeout));
    }
    let timeout = Duration::from_secs_f64(options.timeout);
    let answer = ask(&spec, &request.encode(), timeout)
        .map_err(|reason| CtlError::Unreachable { spec: spec.clone(), reason })?;
    Ok(parse_answer(&answer)?)
}

/// Sends the request line and reads the answer until the controller closes.
fn ask(spec: &Spec, line: &str, timeout: Duration) -> Result<String, AskError> {
    let mut stream: Box<dyn ReadWrite> = match spec {
        Spec::Unix { path, .. } => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Box::new(stream)
        }
        Spec::Inet { .. } => {
            let mut last = std::io::Error::other("no address");
            let mut connected = None;
            for address in program::resolve_inet(spec, false).map_err(AskError::Resolve)? {
                match TcpStream::connect_timeout(&address, timeout) {
                    Ok(stream) => {
                        connected = Some(stream);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let stream = connected.ok_or(last)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Box::new(stream)
        }
    };
    stream.write_all(line.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
