//! Framing: `u32` big-endian length (counting the command byte), the command byte, then
//! `length - 1` bytes of data.
//!
//! [`Deframer`] is incremental: push whatever bytes arrived, then take frames while whole
//! ones are buffered. A length over the configured bound is refused before anything is
//! allocated for it, so a peer cannot make us reserve gigabytes with four bytes.

use std::fmt;

/// The routine payload limit; Postfix body chunks fill it, so a length field of 65536
/// (65535 data bytes plus the command byte) is normal.
pub const MAX_DATA_SIZE: usize = 65535;

/// The default bound on a frame's data: big enough for the largest negotiable data size
/// (1 MiB - 1), small enough that a broken peer cannot exhaust memory.
pub const DEFAULT_MAX_FRAME_DATA: usize = 1024 * 1024 - 1;

/// A framing error: the stream cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is zero: a frame always has at least its command byte.
    ZeroLength,
    /// The frame's data is larger than the bound.
    TooLarge { data_len: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLength => f.write_str("packet with length 0 (no command byte)"),
            Self::TooLarge { data_len, max } => {
                write!(f, "packet of {data_len} data bytes is larger than the limit of {max} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// One frame, borrowed from the deframer's buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub code: u8,
    pub data: &'a [u8],
}

/// Splits a byte stream into frames.
#[derive(Debug)]
pub struct Deframer {
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`; what lies before it has been handed out.
    start: usize,
    max_data: usize,
    failed: Option<FrameError>,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_DATA)
    }
}

impl Deframer {
    /// A deframer that refuses frames with more than `max_data` bytes of data.
    pub fn new(max_data: usize) -> Self {
        Self { buffer: Vec::new(), start: 0, max_data, failed: None }
    }

    /// Changes the bound, e.g. after a larger data size was negotiated.
    pub fn set_max_data(&mut self, max_data: usize) {
        self.max_data = max_data;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            // Everything was consumed: reuse the allocation from its beginning.
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buffer.capacity() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Whether a frame has been started but not completed.
    pub fn has_partial_frame(&self) -> bool {
        self.buffered() > 0
    }

    /// The next whole frame, `None` if more bytes are needed, or the framing error that
    /// ended the stream (returned again on every later call).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, FrameError>> {
        if let Some(error) = &self.failed {
            return Some(Err(error.clone()));
        }
        let unread = &self.buffer[self.start..];
        if unread.len() < 4 {
            return None;
        }
        let length = u32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]) as usize;
        if length == 0 {
            self.failed = Some(FrameError::ZeroLength);
            return Some(Err(FrameError::ZeroLength));
        }
        let data_len = length - 1;
        if data_len > self.max_data {
            let error = FrameError::TooLarge { data_len, max: self.max_data };
            self.failed = Some(error.clone());
            return Some(Err(error));
        }
        if unread.len() < 4 + length {
            // Reserve once for the whole frame rather than growing step by step.
            let missing = 4 + length - unread.len();
            self.buffer.reserve(missing);
            return None;
        }
        let begin = self.start + 4;
        self.start = begin + length;
        Some(Ok(Frame { code: self.buffer[begin], data: &self.buffer[begin + 1..begin + length] }))
    }
}

/// Appends a frame with `code` whose data `write_data` appends; fills in the length after.
pub fn encode_frame(out: &mut Vec<u8>, code: u8, write_data: impl FnOnce(&mut Vec<u8>)) {
    let length_at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, code]);
    write_data(out);
    // Frames are built from bounded data (at most MAX_DATA_SIZE): the length fits.
    let length = u32::try_from(out.len() - length_at - 4).expect("a frame under 4 GiB");
    out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(code: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, code, |o| o.extend_from_slice(data));
        out
    }

    #[test]
    fn frames_split_across_pushes() {
        let mut stream = frame_bytes(b'B', b"hello");
        stream.extend(frame_bytes(b'E', b""));
        let mut deframer = Deframer::default();
        let mut seen = Vec::new();
        for byte in &stream {
            deframer.push(std::slice::from_ref(byte));
            while let Some(frame) = deframer.next_frame() {
                let frame = frame.unwrap();
                seen.push((frame.code, frame.data.to_vec()));
            }
        }
        assert_eq!(seen, vec![(b'B', b"hello".to_vec()), (b'E', vec![])]);
        assert!(!deframer.has_partial_frame());
    }

    #[test]
    fn full_postfix_body_chunk_is_accepted() {
        let data = vec![b'x'; MAX_DATA_SIZE];
        let bytes = frame_bytes(b'B', &data);
        assert_eq!(&bytes[..4], &65536u32.to_be_bytes());
        let mut deframer = Deframer::new(MAX_DATA_SIZE);
        deframer.push(&bytes);
        let frame = deframer.next_frame().unwrap().unwrap();
        assert_eq!(frame.data.len(), MAX_DATA_SIZE);
    }

    #[test]
    fn oversize_frame_is_refused_before_its_data_arrives() {
        let mut deframer = Deframer::new(MAX_DATA_SIZE);
        deframer.push(&[0xff, 0xff, 0xff, 0xff, b'B']);
        let error = deframer.next_frame().unwrap().unwrap_err();
        assert_eq!(error, FrameError::TooLarge { data_len: 0xffff_fffe, max: MAX_DATA_SIZE });
        assert!(deframer.buffer.capacity() < 1024);
        // The stream stays failed.
        assert!(deframer.next_frame().unwrap().is_err());
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut deframer = Deframer::default();
        deframer.push(&[0, 0, 0, 0]);
        assert_eq!(deframer.next_frame(), Some(Err(FrameError::ZeroLength)));
    }
}
