//! Where finished sessions go: the records for the final report, the current window of
//! `--report-periodically`, and the lines of `--report-statistics-data`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use milter_manager::tools::performance::{
    periodic_header, periodic_line, statistics_data_line, SessionRecord, Summary,
    STATISTICS_DATA_HEADER,
};

use crate::runner::pause;

/// The statistics data file: its path (for messages) and writer.
struct DataFile {
    path: PathBuf,
    writer: BufWriter<File>,
    /// The first write error; later lines are not tried.
    error: Option<std::io::Error>,
}

/// Collects the records of a run.
pub(crate) struct Collector {
    records: Mutex<Vec<SessionRecord>>,
    /// Records since the last periodic line, when reporting periodically.
    window: Option<Mutex<Vec<SessionRecord>>>,
    data: Option<Mutex<DataFile>>,
    /// The message size of each mail, by session number modulo their count.
    sizes: Vec<usize>,
}

impl Collector {
    /// Creates the statistics data file (and writes its header) when `data` is given.
    pub(crate) fn new(
        periodic: bool,
        data: Option<&Path>,
        sizes: Vec<usize>,
    ) -> std::io::Result<Self> {
        let data = match data {
            Some(path) => {
                let mut writer = BufWriter::new(File::create(path)?);
                writeln!(writer, "{STATISTICS_DATA_HEADER}")?;
                Some(Mutex::new(DataFile { path: path.to_path_buf(), writer, error: None }))
            }
            None => None,
        };
        Ok(Self { records: Mutex::default(), window: periodic.then(Mutex::default), data, sizes })
    }

    /// Takes one finished session.
    pub(crate) fn add(&self, record: SessionRecord) {
        if let Some(data) = &self.data {
            let size = self.sizes[record.index % self.sizes.len()];
            let line = statistics_data_line(SystemTime::now(), record.latency, size);
            let mut data = lock(data);
            if data.error.is_none() {
                if let Err(error) = writeln!(data.writer, "{line}") {
                    data.error = Some(error);
                }
            }
        }
        if let Some(window) = &self.window {
            lock(window).push(record.clone());
        }
        lock(&self.records).push(record);
    }

    /// Prints a line for the sessions that ended in each `interval` until `done` is set,
    /// then one for the rest: the lines add up to the whole run.
    pub(crate) fn report_periodically(
        &self,
        interval: Duration,
        started: Instant,
        done: &AtomicBool,
        mut print: impl FnMut(&str),
    ) {
        let Some(window) = &self.window else { return };
        print(&periodic_header());
        let mut since = Instant::now();
        loop {
            pause(interval, done);
            let finished = done.load(Ordering::Relaxed);
            let records = std::mem::take(&mut *lock(window));
            let now = Instant::now();
            let summary = Summary::new(records, now - since);
            since = now;
            if !finished || summary.sessions > 0 {
                print(&periodic_line(now - started, &summary));
            }
            if finished {
                return;
            }
        }
    }

    /// All the records; the statistics data file flushed. An error names the file.
    pub(crate) fn finish(self) -> (Vec<SessionRecord>, Result<(), String>) {
        let records = self.records.into_inner().unwrap_or_else(|e| e.into_inner());
        let written = match self.data {
            None => Ok(()),
            Some(data) => {
                let mut data = data.into_inner().unwrap_or_else(|e| e.into_inner());
                let error = data.error.take().or_else(|| data.writer.flush().err());
                match error {
                    None => Ok(()),
                    Some(error) => Err(format!(
                        "--report-statistics-data: cannot write {}: {error}",
                        data.path.display()
                    )),
                }
            }
        };
        (records, written)
    }
}

/// A lock whose poisoning (a panicked session thread) does not hide the records.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
