//! milter-manager-migrate-config: converts the original milter manager's Ruby
//! configuration (milter-manager.conf and what it loads) into a directory of this
//! project's TOML and Rhai, and lists on standard error what needs a hand.
//!
//! Exit status: 0 converted completely, 1 converted with items to review, 2 nothing
//! written (a file could not be read, or the output directory is in the way).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use milter_manager::migrate::{self, Source};

#[derive(Parser, Debug)]
#[command(
    name = "milter-manager-migrate-config",
    version,
    override_usage = "milter-manager-migrate-config [ORIGINAL_DIR] <OUTPUT_DIR>",
    about = "Converts the original milter manager's milter-manager.conf (Ruby) into \
             milter-manager.toml and Rhai",
    long_about = "Converts the original milter manager's milter-manager.conf (Ruby), with \
                  what it loads (milter-manager.local.conf, conditions of your own), into a \
                  new configuration directory of milter-manager.toml and Rhai files. Each \
                  converted item names the original FILE:LINE. What was translated \
                  approximately or not at all is listed on standard error, FILE:LINE first.\n\n\
                  Exit status: 0 converted completely; 1 converted, with items to review; \
                  2 nothing written."
)]
struct Options {
    /// The original's configuration directory, holding milter-manager.conf (default
    /// /etc/milter-manager), then the directory to create for the result (it must not
    /// exist yet).
    #[arg(num_args = 1..=2, required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
}

/// The original's files on disk.
struct Disk;

impl Source for Disk {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| !t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    let (original, output) = match options.dirs.as_slice() {
        [output] => (PathBuf::from("/etc/milter-manager"), output.clone()),
        [original, output, ..] => (original.clone(), output.clone()),
        [] => unreachable!("clap requires one"),
    };
    match run(&original, &output) {
        Ok(0) => {
            eprintln!("converted {} into {}: complete", original.display(), output.display());
            ExitCode::SUCCESS
        }
        Ok(review) => {
            eprintln!(
                "converted {} into {}: {review} item(s) to review, listed above",
                original.display(),
                output.display()
            );
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("milter-manager-migrate-config: {message}; nothing written");
            ExitCode::from(2)
        }
    }
}

/// Converts and writes; the number of findings, printed on standard error.
fn run(original: &Path, output: &Path) -> Result<usize, String> {
    if output.exists() {
        return Err(format!("{}: exists already; give a new directory", output.display()));
    }
    let dir = original.to_string_lossy();
    let conversion = migrate::convert(&dir, &Disk).map_err(|error| error.to_string())?;
    write_atomically(output, &conversion.files)
        .map_err(|error| format!("{}: cannot write: {error}", output.display()))?;
    for finding in &conversion.findings {
        eprintln!("{finding}");
    }
    Ok(conversion.findings.len())
}

/// Writes the files into a new directory next to `output`, then renames it, so that a
/// failure leaves no partial directory.
fn write_atomically(output: &Path, files: &[(String, String)]) -> io::Result<()> {
    let name = output.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy());
    let temporary = output.with_file_name(format!(".{name}.migrating-{}", std::process::id()));
    let result = (|| {
        fs::create_dir(&temporary)?;
        for (file, text) in files {
            fs::write(temporary.join(file), text)?;
        }
        fs::rename(&temporary, output)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&temporary);
    }
    result
}
