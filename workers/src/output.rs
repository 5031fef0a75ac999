//! The bytes queued on one connection and not yet accepted by the kernel.

use std::io::{self, Write};

/// Pending output: `bytes[written..]` is still to be written. The buffer keeps its capacity
/// across flushes so a busy connection stops allocating once it has grown.
#[derive(Default)]
pub(crate) struct Output {
    bytes: Vec<u8>,
    written: usize,
}

/// What one attempt to write left behind.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Everything queued is written.
    Drained,
    /// The socket would block; the rest waits for writability.
    Pending,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Queues `bytes` behind whatever is already pending. Gives the caller's buffer back,
    /// emptied with its capacity, when its bytes were copied; keeps it when it was taken
    /// over whole.
    pub(crate) fn push(&mut self, mut bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.is_empty() && self.bytes.capacity() < bytes.len() {
            // Taking over the caller's buffer saves a copy of a large payload.
            self.bytes = bytes;
            self.written = 0;
            return None;
        }
        if self.is_empty() {
            self.bytes.clear();
            self.written = 0;
        } else if self.written >= self.bytes.len() / 2 {
            // Reclaim the written prefix before it dominates the buffer.
            self.bytes.drain(..self.written);
            self.written = 0;
        }
        self.bytes.extend_from_slice(&bytes);
        bytes.clear();
        Some(bytes)
    }

    /// One `write` call (retried only when interrupted), as the session batches its packets
    /// into one `Send` and expects one syscall for it.
    pub(crate) fn write_once(&mut self, sink: &mut impl Write) -> io::Result<WriteOutcome> {
        self.write_step(sink)?;
        Ok(self.outcome())
    }

    /// Writes until everything is out or the socket would block; edge-triggered readiness
    /// requires going on until `WouldBlock`.
    pub(crate) fn write_all_available(
        &mut self,
        sink: &mut impl Write,
    ) -> io::Result<WriteOutcome> {
        while !self.is_empty() {
            if !self.write_step(sink)? {
                break;
            }
        }
        Ok(self.outcome())
    }

    /// One `write` of the pending bytes; false if the socket would block.
    fn write_step(&mut self, sink: &mut impl Write) -> io::Result<bool> {
        if self.is_empty() {
            return Ok(true);
        }
        loop {
            match sink.write(&self.bytes[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.advance(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.written += n;
        if self.is_empty() {
            self.bytes.clear();
            self.written = 0;
        }
    }

    fn outcome(&self) -> WriteOutcome {
        if self.is_empty() {
            WriteOutcome::Drained
        } else {
            WriteOutcome::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `chunk` bytes per write, then would block after `budget` bytes.
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.chunk).min(self.budget);
            self.budget -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_partial_writes() {
        let mut out = Output::default();
        let mut sink = Trickle { got: Vec::new(), chunk: 3, budget: 5 };
        out.push(b"hello".to_vec());
        assert_eq!(out.write_once(&mut sink).unwrap(), WriteOutcome::Pending);
        out.push(b" world".to_vec());
        assert_eq!(out.write_all_available(&mut sink).unwrap(), WriteOutcome::Pending);
        assert_eq!(out.pending_len(), 6);
        sink.budget = 100;
        assert_eq!(out.write_all_available(&mut sink).unwrap(), WriteOutcome::Drained);
        assert_eq!(sink.got, b"hello world");
        assert!(out.is_empty());
    }

    #[test]
    fn a_copied_buffer_is_given_back_empty_and_a_large_one_is_kept() {
        let mut out = Output::default();
        let mut sink = Trickle { got: Vec::new(), chunk: 1 << 20, budget: 1 << 20 };
        assert_eq!(out.push(vec![1; 64]), None, "the first buffer is taken over");
        out.write_once(&mut sink).unwrap();
        let mut small = Vec::with_capacity(32);
        small.extend_from_slice(b"next");
        let given_back = out.push(small).expect("copied behind the drained buffer");
        assert!(given_back.is_empty());
        assert_eq!(given_back.capacity(), 32, "with its capacity, for the next batch");
        out.write_once(&mut sink).unwrap();
        assert_eq!(out.push(vec![2; 1000]), None, "too big for the buffer: taken over");
        out.write_once(&mut sink).unwrap();
        assert_eq!(sink.got.len(), 64 + 4 + 1000);
    }

    #[test]
    fn a_zero_length_write_is_an_error() {
        let mut out = Output::default();
        out.push(b"x".to_vec());
        let mut sink = Trickle { got: Vec::new(), chunk: 0, budget: 1 };
        assert!(out.write_once(&mut sink).is_err());
    }
}
