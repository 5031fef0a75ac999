//! milter-manager-log-analyzer: reads the `[statistics]` lines of milter-manager's log
//! (ours and the original's), adds what is new to a store of time series in the output
//! directory, and writes there a static site of charts: `index.html` and SVG files.
//! Meant for cron every few minutes; exit status 0 unless a log or the output directory
//! could not be read or written.

mod input;
mod output;
mod zone;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use milter_manager::tools::log_analyzer::state::State;
use milter_manager::tools::log_analyzer::{site, Analyzer};

#[derive(Parser, Debug)]
#[command(
    name = "milter-manager-log-analyzer",
    version,
    about = "Charts milter-manager's statistics log lines into a static web page",
    after_help = "Files are read in the order they were written (higher rotation number \
                  first, then oldest modification first), each from where the last run \
                  stopped, so `--log /var/log/mail.log*` over a rotated set works every time. Without --log, standard input is read whole; \
                  what the store has counted already is skipped."
)]
struct Options {
    /// A log file (plain or gzip); repeatable, and takes several files after one --log.
    /// Default: standard input.
    #[arg(long = "log", value_name = "FILE", num_args = 1.., action = clap::ArgAction::Append)]
    logs: Vec<PathBuf>,
    /// Where the store, the state and the site are.
    #[arg(long = "output-directory", value_name = "DIR", default_value = ".")]
    output_directory: PathBuf,
    /// Count new log lines into the store (the default).
    #[arg(long = "update-db", overrides_with = "no_update_db")]
    update_db: bool,
    /// Read no log: only draw the site again from the store.
    #[arg(long = "no-update-db", overrides_with = "update_db")]
    no_update_db: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("milter-manager-log-analyzer: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false): done, but some log could not be read.
fn run(options: &Options) -> Result<bool, output::OutputError> {
    let directory = &options.output_directory;
    let _lock = output::lock(directory)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let say = |line: &str| eprintln!("milter-manager-log-analyzer: {line}");

    let (store, store_problem) = output::load_store(directory)?;
    let (state, state_problem) = output::load_state(directory);
    for problem in [store_problem, state_problem].into_iter().flatten() {
        say(&problem);
    }
    let mut all_read = true;
    let store = if options.no_update_db && !options.update_db {
        store
    } else {
        let mut analyzer = Analyzer::new(store, now, Box::new(zone::SystemZone::default()));
        // Positions count only for the store they were written with.
        let trusted = state.watermark == analyzer.store.watermark && !state.files.is_empty();
        let mut tally = input::Tally::default();
        let mut read = Vec::new();
        if options.logs.is_empty() {
            analyzer.skip_counted();
            input::read_stdin(&mut analyzer, &mut tally);
        } else {
            if !trusted {
                analyzer.skip_counted();
            }
            for path in input::time_order(&options.logs) {
                if let Some(position) =
                    input::read_file(&path, &state, trusted, &mut analyzer, &mut tally)
                {
                    read.push(position);
                }
            }
        }
        all_read = tally.problems.is_empty();
        for line in tally.notices.iter().chain(&tally.problems) {
            say(line);
        }
        if tally.garbage > 0 {
            say(&format!(
                "skipped {} unreadable statistics line(s), the first at {}",
                tally.garbage,
                tally.first_garbage.as_deref().unwrap_or("?")
            ));
        }
        if tally.future > 0 {
            say(&format!(
                "skipped {} statistics line(s) dated in the future (later than now + 1 hour), the first at {}",
                tally.future,
                tally.first_future.as_deref().unwrap_or("?")
            ));
        }
        // The store first: positions saved with an older store are not trusted.
        output::save_store(directory, &analyzer.store)?;
        if !options.logs.is_empty() {
            // Positions of a state that did not match the store mean nothing: dropped.
            let kept = if trusted { state } else { State::default() };
            output::save_state(directory, &kept.after(analyzer.store.watermark, &read))?;
        }
        analyzer.store
    };
    output::write_site(directory, &site::charts(&store, now), now, &store)?;
    Ok(all_read)
}
