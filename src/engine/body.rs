//! A message body of any size: in memory up to a bound, then in a spill file the runtime
//! provides (the engine itself opens no files).

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

/// Where a body goes once it outgrows memory: an append-only file read back by offset.
pub trait SpillFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// Makes spill files (the binary: unlinked temporary files; tests: memory).
pub trait SpillFactory: Send + Sync {
    fn create(&self) -> io::Result<Box<dyn SpillFile>>;
}

/// A factory that refuses to spill, for bodies that must stay in memory.
pub struct NoSpill;

impl SpillFactory for NoSpill {
    fn create(&self) -> io::Result<Box<dyn SpillFile>> {
        Err(io::Error::other("no temporary directory is configured for large bodies"))
    }
}

/// The causes of body storage failures logged so far: a temporary directory that fails
/// fails for every large message, and one line per cause says as much as one per message.
#[derive(Debug, Default)]
pub struct ReportedOnce(Mutex<HashSet<String>>);

impl ReportedOnce {
    /// Whether `cause` is new (and now remembered).
    pub fn first_time(&self, cause: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(cause.to_owned())
    }
}

/// The body of the current message, as stored for the children that come later.
pub struct Body {
    memory: Vec<u8>,
    spill: Option<Box<dyn SpillFile>>,
    len: u64,
    memory_limit: usize,
    factory: Arc<dyn SpillFactory>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.len)
            .field("spilled", &self.spill.is_some())
            .finish()
    }
}

impl Body {
    pub fn new(memory_limit: usize, factory: Arc<dyn SpillFactory>) -> Self {
        Self { memory: Vec::new(), spill: None, len: 0, memory_limit, factory }
    }

    /// An empty body with the same limits.
    pub fn empty_like(&self) -> Self {
        Self::new(self.memory_limit, Arc::clone(&self.factory))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_spilled(&self) -> bool {
        self.spill.is_some()
    }

    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.spill.is_none() && self.memory.len() + bytes.len() > self.memory_limit {
            let mut file = self.factory.create()?;
            file.append(&self.memory)?;
            self.memory = Vec::new();
            self.spill = Some(file);
        }
        match &mut self.spill {
            Some(file) => file.append(bytes)?,
            None => self.memory.extend_from_slice(bytes),
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Up to `max` bytes starting at `offset`.
    /// Up to `max` bytes from `offset` of a body kept in memory, borrowed; empty past the
    /// end or when the body was spilled to a file (read it with [`Body::chunk_at`]).
    pub fn memory_chunk(&self, offset: u64, max: usize) -> &[u8] {
        if self.spill.is_some() {
            return &[];
        }
        let start = as_index(offset).min(self.memory.len());
        let end = self.memory.len().min(start.saturating_add(max));
        &self.memory[start..end]
    }

    pub fn chunk_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let end = self.len.min(offset + max as u64);
        if offset >= end {
            return Ok(Vec::new());
        }
        let wanted = as_index(end - offset);
        match &mut self.spill {
            None => {
                let start = as_index(offset);
                Ok(self.memory[start..start + wanted].to_vec())
            }
            Some(file) => {
                let mut chunk = vec![0; wanted];
                let mut filled = 0;
                while filled < wanted {
                    let n = file.read_at(offset + filled as u64, &mut chunk[filled..])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body's temporary file is shorter than what was written",
                        ));
                    }
                    filled += n;
                }
                Ok(chunk)
            }
        }
    }
}

/// A spill "file" in memory, for tests of the spill path.
#[derive(Default)]
pub struct MemorySpill;

struct MemoryFile(Vec<u8>);

impl SpillFile for MemoryFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = as_index(offset).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

impl SpillFactory for MemorySpill {
    fn create(&self) -> io::Result<Box<dyn SpillFile>> {
        Ok(Box::new(MemoryFile(Vec::new())))
    }
}

/// A body offset as an index: past `usize::MAX` (32-bit targets) it is past any body
/// held in memory, which the callers clamp to.
fn as_index(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_the_limit_and_reads_back_every_byte() {
        let mut body = Body::new(10, Arc::new(MemorySpill));
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for piece in data.chunks(7) {
            body.append(piece).unwrap();
        }
        assert!(body.is_spilled());
        let mut back = Vec::new();
        let mut offset = 0;
        while offset < body.len() {
            let chunk = body.chunk_at(offset, 64).unwrap();
            offset += chunk.len() as u64;
            back.extend(chunk);
        }
        assert_eq!(back, data);
    }

    #[test]
    fn a_cause_is_reported_the_first_time_only() {
        let reported = ReportedOnce::default();
        assert!(reported.first_time("/tmp/x: Permission denied"));
        assert!(!reported.first_time("/tmp/x: Permission denied"));
        assert!(reported.first_time("/tmp/x: No space left on device"));
    }

    #[test]
    fn a_spill_failure_is_reported() {
        let mut body = Body::new(4, Arc::new(NoSpill));
        body.append(b"1234").unwrap();
        assert!(body.append(b"5").is_err());
    }
}
