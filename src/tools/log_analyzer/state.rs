//! Where the last run stopped in each log file, so that a run reads only what is new.
//! A file is known by its device and inode, and by a hash of its first bytes: a rotated
//! file keeps its inode (`mail.log` → `mail.log.1`), a compressed one keeps its content
//! (`mail.log.1` → `mail.log.2.gz`), a truncated one shrinks.

use super::store::{fnv1a, Watermark};

const HEADER: &str = "milter-manager-log-analyzer state 1";

/// How many bytes from the start of a file identify it.
pub const HEAD_LENGTH: usize = 1024;

/// Files remembered: those of the last run and a few before (rotation renames them).
const MAX_FILES: usize = 64;

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error("not a state file of this version (first line {0:?})")]
    Version(String),
    #[error("line {0} cannot be read")]
    Line(usize),
    #[error("truncated (no end line)")]
    Truncated,
}

/// A position in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub device: u64,
    pub inode: u64,
    /// Bytes read (of the decompressed text for a compressed file).
    pub offset: u64,
    /// How many of the first bytes `head_hash` covers (fewer than [`HEAD_LENGTH`] only
    /// when the file was that short).
    pub head_length: usize,
    pub head_hash: u64,
}

impl Position {
    pub fn new(device: u64, inode: u64, offset: u64, head: &[u8]) -> Self {
        let head = &head[..head.len().min(HEAD_LENGTH)];
        Self { device, inode, offset, head_length: head.len(), head_hash: fnv1a(head) }
    }

    fn same_head(&self, head: &[u8]) -> bool {
        head.len() >= self.head_length && fnv1a(&head[..self.head_length]) == self.head_hash
    }
}

/// A file to read, as the caller sees it now.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub device: u64,
    pub inode: u64,
    /// Its size, for a plain file; `None` for a compressed one.
    pub size: Option<u64>,
    /// Its first bytes (decompressed), up to [`HEAD_LENGTH`].
    pub head: &'a [u8],
}

/// Where to start reading a file, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A file not seen before (or rotated away and replaced).
    New,
    /// The same file, from `offset`.
    At(u64),
    /// The same inode, but shorter than what was read: truncated, read again from 0.
    Shrunk,
}

/// The positions of the last run and the store's watermark when they were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub watermark: Watermark,
    pub files: Vec<Position>,
}

impl State {
    pub fn resume(&self, seen: &Seen<'_>) -> Resume {
        let by_inode = self
            .files
            .iter()
            .find(|known| (known.device, known.inode) == (seen.device, seen.inode));
        if let Some(known) = by_inode.filter(|known| known.same_head(seen.head)) {
            return match seen.size {
                Some(size) if size < known.offset => Resume::Shrunk,
                _ => Resume::At(known.offset),
            };
        }
        // A compressed copy of a file read before: same first bytes, another inode.
        let by_content =
            self.files.iter().find(|known| known.head_length > 0 && known.same_head(seen.head));
        match by_content {
            Some(known) if seen.size.is_none_or(|size| size >= known.offset) => {
                Resume::At(known.offset)
            }
            _ => Resume::New,
        }
    }

    /// The state after a run that read `read` (in order): those first, then the older
    /// positions not superseded, up to a bound.
    pub fn after(&self, watermark: Watermark, read: &[Position]) -> Self {
        let mut files = read.to_vec();
        for old in &self.files {
            let superseded = read.iter().any(|new| {
                (new.device, new.inode) == (old.device, old.inode)
                    || (old.head_length > 0
                        && new.head_length >= old.head_length
                        && new.head_hash == old.head_hash)
            });
            if !superseded && files.len() < MAX_FILES {
                files.push(*old);
            }
        }
        Self { watermark, files }
    }

    pub fn encode(&self) -> String {
        let mut text =
            format!("{HEADER}\nwatermark {} {}\n", self.watermark.time, self.watermark.count);
        for file in &self.files {
            text.push_str(&format!(
                "file {} {} {} {} {:016x}\n",
                file.device, file.inode, file.offset, file.head_length, file.head_hash
            ));
        }
        text.push_str("end\n");
        text
    }

    pub fn decode(text: &str) -> Result<Self, StateError> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        if first != HEADER {
            return Err(StateError::Version(first.chars().take(60).collect()));
        }
        let mut state = Self::default();
        for (index, line) in lines.enumerate() {
            let number = index + 2;
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["watermark", time, count] => {
                    state.watermark = Watermark {
                        time: time.parse().map_err(|_| StateError::Line(number))?,
                        count: count.parse().map_err(|_| StateError::Line(number))?,
                    };
                }
                ["file", device, inode, offset, head_length, head_hash] => {
                    let bad = |_| StateError::Line(number);
                    let head_length: usize =
                        head_length.parse().map_err(|_| StateError::Line(number))?;
                    if head_length > HEAD_LENGTH || state.files.len() == MAX_FILES {
                        return Err(StateError::Line(number));
                    }
                    state.files.push(Position {
                        device: device.parse().map_err(|_| StateError::Line(number))?,
                        inode: inode.parse().map_err(|_| StateError::Line(number))?,
                        offset: offset.parse().map_err(|_| StateError::Line(number))?,
                        head_length,
                        head_hash: u64::from_str_radix(head_hash, 16).map_err(bad)?,
                    });
                }
                ["end"] => return Ok(state),
                _ => return Err(StateError::Line(number)),
            }
        }
        Err(StateError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"Dec  2 10:00:01 mx postfix/smtpd[1]: connect from a\n";

    fn seen(inode: u64, size: Option<u64>, head: &[u8]) -> Seen<'_> {
        Seen { device: 8, inode, size, head }
    }

    fn state() -> State {
        State {
            watermark: Watermark { time: 5, count: 2 },
            files: vec![Position::new(8, 100, 500, HEAD)],
        }
    }

    #[test]
    fn the_same_file_resumes_where_it_stopped() {
        assert_eq!(state().resume(&seen(100, Some(800), HEAD)), Resume::At(500));
        assert_eq!(state().resume(&seen(100, Some(500), HEAD)), Resume::At(500));
    }

    #[test]
    fn a_truncated_file_is_read_again() {
        assert_eq!(state().resume(&seen(100, Some(20), &HEAD[..20])), Resume::New);
        assert_eq!(state().resume(&seen(100, Some(400), HEAD)), Resume::Shrunk);
    }

    #[test]
    fn a_rotated_and_compressed_file_is_known_by_its_head() {
        assert_eq!(state().resume(&seen(101, None, HEAD)), Resume::At(500));
        assert_eq!(
            state().resume(&seen(101, Some(900), b"Dec  2 10:05:00 another head")),
            Resume::New
        );
    }

    #[test]
    fn after_a_run_new_positions_come_first() {
        let older = Position::new(8, 50, 70, b"old head");
        let before = State { files: vec![Position::new(8, 100, 500, HEAD), older], ..state() };
        let read = [Position::new(8, 100, 900, HEAD), Position::new(8, 101, 10, b"new")];
        let after = before.after(Watermark { time: 9, count: 1 }, &read);
        assert_eq!(after.files, vec![read[0], read[1], older]);
        assert_eq!(after.watermark, Watermark { time: 9, count: 1 });
    }

    #[test]
    fn encodes_decodes_and_refuses_damage() {
        let state = state();
        let text = state.encode();
        assert_eq!(State::decode(&text), Ok(state));
        assert_eq!(State::decode(&text[..text.len() - 4]), Err(StateError::Truncated));
        assert_eq!(
            State::decode("milter-manager-log-analyzer state 9\nend\n"),
            Err(StateError::Version("milter-manager-log-analyzer state 9".into()))
        );
        assert_eq!(State::decode(""), Err(StateError::Version(String::new())));
        let garbled = text.replace("file 8", "file x");
        assert_eq!(State::decode(&garbled), Err(StateError::Line(3)));
    }
}
