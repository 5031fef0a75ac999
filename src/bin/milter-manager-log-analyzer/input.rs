//! Reading the logs: files in time order (plain or gzip), from where the last run stopped,
//! or standard input; each line goes to the analyzer, problems are tallied for one line
//! each at the end.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use milter_manager::tools::log_analyzer::state::{Position, Resume, Seen, State, HEAD_LENGTH};
use milter_manager::tools::log_analyzer::{Analyzer, Fed};

const BUFFER: usize = 1 << 20;

/// What reading met that the user should hear of: counts and the first place of each.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) counted: u64,
    pub(crate) garbage: u64,
    pub(crate) first_garbage: Option<String>,
    pub(crate) future: u64,
    pub(crate) first_future: Option<String>,
    /// One line per file that could not be read (wholly or partly).
    pub(crate) problems: Vec<String>,
    /// One line per file read again from its start although it was known.
    pub(crate) notices: Vec<String>,
}

impl Tally {
    fn note(&mut self, fed: Fed, place: impl FnOnce() -> String) {
        match fed {
            Fed::Counted => self.counted += 1,
            Fed::Garbage => {
                self.garbage += 1;
                self.first_garbage.get_or_insert_with(place);
            }
            Fed::Future => {
                self.future += 1;
                self.first_future.get_or_insert_with(place);
            }
            Fed::Ignored | Fed::AlreadyCounted => {}
        }
    }
}

/// `paths` in the order they were written: the higher rotation number first (`mail.log.2.gz`
/// before `mail.log.1` before `mail.log`: compressing may have changed the modification
/// time), then the oldest modification first. A file named twice (`--log mail.log --log
/// mail.log*`) is read once: positions are saved only at the end of the run.
pub(crate) fn time_order(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut identities = std::collections::HashSet::new();
    let paths: Vec<&PathBuf> = paths
        .iter()
        .filter(|path| match std::fs::metadata(path) {
            Ok(metadata) => identities.insert((metadata.dev(), metadata.ino())),
            Err(_) => true, // Told of when it is opened.
        })
        .collect();
    let mut keyed: Vec<(std::cmp::Reverse<u64>, i64, PathBuf)> = paths
        .iter()
        .map(|&path| {
            let modified = std::fs::metadata(path).map(|m| m.mtime()).unwrap_or(i64::MAX);
            (std::cmp::Reverse(rotation_number(path)), modified, path.clone())
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, path)| path).collect()
}

/// `N` of `name.N` or `name.N.gz`; 0 otherwise.
fn rotation_number(path: &Path) -> u64 {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(name);
    name.rsplit_once('.').and_then(|(_, number)| number.parse().ok()).unwrap_or(0)
}

/// Reads one file into the analyzer from where `state` says it stopped (from its start
/// when `trusted` is false: the analyzer then skips what the store has). Returns its new
/// position, or None when it could not be opened.
pub(crate) fn read_file(
    path: &Path,
    state: &State,
    trusted: bool,
    analyzer: &mut Analyzer,
    tally: &mut Tally,
) -> Option<Position> {
    let shown = path.display().to_string();
    let opened = File::open(path).and_then(|file| Ok((file.metadata()?, file)));
    let (metadata, mut file) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tally.problems.push(format!("cannot read {shown}: {error}"));
            return None;
        }
    };
    let compressed = is_gzip(&mut file).unwrap_or(false);
    let head = match read_head(&file, compressed) {
        Ok(head) => head,
        Err(error) => {
            tally.problems.push(format!("cannot read {shown}: {error}"));
            return None;
        }
    };
    let seen = Seen {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: (!compressed).then_some(metadata.len()),
        head: &head,
    };
    let start = match (trusted, state.resume(&seen)) {
        (true, Resume::At(offset)) => offset,
        (true, Resume::Shrunk) => {
            tally
                .notices
                .push(format!("{shown} is shorter than when last read: read again from its start"));
            0
        }
        _ => 0,
    };
    let result = if compressed {
        read_compressed(&file, start, &shown, analyzer, tally)
    } else {
        read_plain(&mut file, start, &shown, analyzer, tally)
    };
    let end = match result {
        Ok(end) => end,
        Err((end, error)) => {
            let what =
                if compressed { "compressed data truncated or damaged" } else { "read error" };
            tally.problems.push(format!(
                "{shown}: {what} after byte {end} ({error}); counted what came before"
            ));
            end
        }
    };
    Some(Position::new(seen.device, seen.inode, end, &head))
}

/// Reads standard input (plain or gzip) to its end. Positions mean nothing there: the
/// analyzer is told to skip what the store has counted (cron pipes the whole log each time).
pub(crate) fn read_stdin(analyzer: &mut Analyzer, tally: &mut Tally) {
    let mut input = BufReader::with_capacity(BUFFER, io::stdin().lock());
    let compressed =
        input.fill_buf().map(|bytes| bytes.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
    let result = if compressed {
        let mut decoded = BufReader::with_capacity(BUFFER, MultiGzDecoder::new(input));
        feed_lines(&mut decoded, 0, true, "standard input", analyzer, tally)
    } else {
        feed_lines(&mut input, 0, true, "standard input", analyzer, tally)
    };
    if let Err((end, error)) = result {
        tally.problems.push(format!(
            "standard input: unreadable after byte {end} ({error}); counted what came before"
        ));
    }
}

fn is_gzip(file: &mut File) -> io::Result<bool> {
    let mut magic = [0; 2];
    let read = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(read == 2 && magic == [0x1f, 0x8b])
}

/// The first bytes of the (decompressed) text, which identify the file.
fn read_head(file: &File, compressed: bool) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_LENGTH);
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(0))?;
    let limit = HEAD_LENGTH as u64;
    if compressed {
        // A damaged file still has a head: keep what decompressed.
        let _ = MultiGzDecoder::new(file).take(limit).read_to_end(&mut head);
    } else {
        file.take(limit).read_to_end(&mut head)?;
    }
    Ok(head)
}

fn read_plain(
    file: &mut File,
    start: u64,
    shown: &str,
    analyzer: &mut Analyzer,
    tally: &mut Tally,
) -> Result<u64, (u64, io::Error)> {
    file.seek(SeekFrom::Start(start)).map_err(|error| (start, error))?;
    let mut reader = BufReader::with_capacity(BUFFER, file);
    // A last line without its newline is still being written: left for the next run.
    feed_lines(&mut reader, start, false, shown, analyzer, tally)
}

fn read_compressed(
    file: &File,
    start: u64,
    shown: &str,
    analyzer: &mut Analyzer,
    tally: &mut Tally,
) -> Result<u64, (u64, io::Error)> {
    // The clone shares the file's offset, which reading the head moved.
    let mut file = file.try_clone().map_err(|error| (0, error))?;
    file.seek(SeekFrom::Start(0)).map_err(|error| (0, error))?;
    let mut reader = BufReader::with_capacity(BUFFER, MultiGzDecoder::new(file));
    let skipped =
        io::copy(&mut (&mut reader).take(start), &mut io::sink()).map_err(|error| (0, error))?;
    if skipped < start {
        // Shorter than what was read of it: another file with the same first bytes.
        return Ok(skipped);
    }
    feed_lines(&mut reader, start, true, shown, analyzer, tally)
}

/// Feeds each line to the analyzer; returns the offset after the last line fed. A last
/// line without a newline is fed only when `take_partial`.
fn feed_lines(
    reader: &mut impl BufRead,
    start: u64,
    take_partial: bool,
    shown: &str,
    analyzer: &mut Analyzer,
    tally: &mut Tally,
) -> Result<u64, (u64, io::Error)> {
    let mut line = Vec::with_capacity(4096);
    let mut offset = start;
    loop {
        line.clear();
        let read = match reader.read_until(b'\n', &mut line) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err((offset, error)),
        };
        if read == 0 || (!take_partial && line.last() != Some(&b'\n')) {
            return Ok(offset);
        }
        let fed = analyzer.feed(&line);
        tally.note(fed, || format!("{shown}, byte {offset}"));
        offset += read as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_numbers() {
        assert_eq!(rotation_number(Path::new("/var/log/mail.log")), 0);
        assert_eq!(rotation_number(Path::new("/var/log/mail.log.1")), 1);
        assert_eq!(rotation_number(Path::new("/var/log/mail.log.12.gz")), 12);
    }
}
