//! The aggregated time series: like RRD, a fixed number of buckets per resolution (5
//! minutes for 2 days, an hour for 2 months, a day for 2 years), so the store never grows.
//! Every record is counted in all three resolutions at once. The file format is a compact
//! binary of the buckets that hold data, ending with a checksum.

use super::layout::{MILTER_WIDTH, SESSION_WIDTH};

/// The resolutions: (seconds per bucket, buckets).
pub const RESOLUTIONS: [(i64, usize); 3] = [(300, 576), (3600, 1440), (86_400, 730)];

/// Child milters beyond this many are counted under [`OTHER_MILTERS`].
pub const MAX_MILTERS: usize = 32;
pub const OTHER_MILTERS: &str = "(other milters)";

const MAGIC: &[u8; 12] = b"MMLA-STORE\0\x01";

/// Why a store file cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("not a store of this version (bad magic number)")]
    Version,
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// One resolution: a ring of rows of `width` counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    step: i64,
    width: usize,
    /// The bucket number (time / step) each row holds, or `i64::MIN` for an empty row.
    slots: Vec<i64>,
    values: Vec<u32>,
    /// The newest bucket number counted; older rows than `latest - len` are gone.
    latest: i64,
}

impl Ring {
    fn new(step: i64, length: usize, width: usize) -> Self {
        Self {
            step,
            width,
            slots: vec![i64::MIN; length],
            values: vec![0; length * width],
            latest: i64::MIN,
        }
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    fn add(&mut self, time: i64, column: usize, count: u32) {
        let slot = time.div_euclid(self.step);
        if self.latest != i64::MIN && slot <= self.latest - self.slots.len() as i64 {
            return; // Older than this resolution keeps.
        }
        self.latest = self.latest.max(slot);
        let index = ring_index(slot, self.slots.len());
        let row = &mut self.values[index * self.width..(index + 1) * self.width];
        if self.slots[index] != slot {
            self.slots[index] = slot;
            row.fill(0);
        }
        row[column] = row[column].saturating_add(count);
    }

    /// The row of the bucket starting at `time`, if the ring holds it.
    pub fn row(&self, time: i64) -> Option<&[u32]> {
        let slot = time.div_euclid(self.step);
        let index = ring_index(slot, self.slots.len());
        (self.slots[index] == slot)
            .then(|| &self.values[index * self.width..(index + 1) * self.width])
    }
}

/// The three resolutions of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Archives {
    rings: Vec<Ring>,
}

impl Archives {
    fn new(width: usize) -> Self {
        Self {
            rings: RESOLUTIONS
                .iter()
                .map(|&(step, length)| Ring::new(step, length, width))
                .collect(),
        }
    }

    pub fn add(&mut self, time: i64, column: usize, count: u32) {
        for ring in &mut self.rings {
            ring.add(time, column, count);
        }
    }

    /// Each counter summed over the buckets of the ring of `step` (all it holds).
    pub fn totals(&self, step: i64) -> Vec<u64> {
        let Some(ring) = self.ring(step) else { return Vec::new() };
        let mut totals = vec![0; ring.width];
        for (index, &slot) in ring.slots.iter().enumerate() {
            if slot == i64::MIN {
                continue;
            }
            let row = &ring.values[index * ring.width..(index + 1) * ring.width];
            totals.iter_mut().zip(row).for_each(|(total, &value)| *total += u64::from(value));
        }
        totals
    }

    /// The ring of the given step (one of [`RESOLUTIONS`]).
    pub fn ring(&self, step: i64) -> Option<&Ring> {
        self.rings.iter().find(|ring| ring.step == step)
    }
}

/// The newest record counted: its time and how many records of that same second were
/// counted. A run that cannot trust its read positions skips what this covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    pub time: i64,
    pub count: u64,
}

impl Watermark {
    pub fn advance(&mut self, time: i64) {
        if time > self.time {
            *self = Self { time, count: 1 };
        } else if time == self.time {
            self.count += 1;
        }
    }
}

/// All the series.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub sessions: Archives,
    milters: Vec<(String, Archives)>,
    pub watermark: Watermark,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            sessions: Archives::new(SESSION_WIDTH),
            milters: Vec::new(),
            watermark: Watermark::default(),
        }
    }
}

impl Store {
    /// The series of a child milter, created on first use.
    pub fn milter(&mut self, name: &str) -> &mut Archives {
        let index = match self.milters.iter().position(|(known, _)| known == name) {
            Some(index) => index,
            None if self.milters.len() + 1 < MAX_MILTERS => {
                self.milters.push((name.to_string(), Archives::new(MILTER_WIDTH)));
                self.milters.len() - 1
            }
            None => return self.milter_other(),
        };
        &mut self.milters[index].1
    }

    fn milter_other(&mut self) -> &mut Archives {
        if !self.milters.iter().any(|(known, _)| known == OTHER_MILTERS) {
            self.milters.push((OTHER_MILTERS.to_string(), Archives::new(MILTER_WIDTH)));
        }
        let index = self.milters.iter().position(|(known, _)| known == OTHER_MILTERS).unwrap_or(0);
        &mut self.milters[index].1
    }

    /// The child milters by name, in the order they were first seen.
    pub fn milters(&self) -> impl Iterator<Item = (&str, &Archives)> {
        self.milters.iter().map(|(name, archives)| (name.as_str(), archives))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.watermark.time.to_le_bytes());
        out.extend_from_slice(&self.watermark.count.to_le_bytes());
        encode_archives(&mut out, &self.sessions);
        out.extend_from_slice(&(self.milters.len() as u64).to_le_bytes());
        for (name, archives) in &self.milters {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            encode_archives(&mut out, archives);
        }
        let checksum = fnv1a(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if !bytes.starts_with(MAGIC) {
            return Err(if bytes.len() < MAGIC.len() {
                StoreError::Truncated(bytes.len())
            } else {
                StoreError::Version
            });
        }
        if bytes.len() < MAGIC.len() + 8 {
            return Err(StoreError::Truncated(bytes.len()));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body).to_le_bytes() != checksum {
            return Err(StoreError::Checksum);
        }
        let mut reader = Reader { bytes: body, at: MAGIC.len() };
        let watermark = Watermark { time: reader.i64()?, count: reader.u64()? };
        let sessions = decode_archives(&mut reader, SESSION_WIDTH)?;
        let count = reader.length()?;
        if count > MAX_MILTERS {
            return Err(StoreError::Inconsistent("too many milters"));
        }
        let mut milters = Vec::with_capacity(count);
        for _ in 0..count {
            let length = reader.length()?;
            let name = std::str::from_utf8(reader.take(length)?)
                .map_err(|_| StoreError::Inconsistent("milter name is not UTF-8"))?;
            milters.push((name.to_string(), decode_archives(&mut reader, MILTER_WIDTH)?));
        }
        if reader.at != body.len() {
            return Err(StoreError::Inconsistent("trailing bytes"));
        }
        Ok(Self { sessions, milters, watermark })
    }
}

fn encode_archives(out: &mut Vec<u8>, archives: &Archives) {
    for ring in &archives.rings {
        out.extend_from_slice(&ring.latest.to_le_bytes());
        let filled = ring.slots.iter().filter(|&&slot| slot != i64::MIN).count();
        out.extend_from_slice(&(filled as u64).to_le_bytes());
        for (index, &slot) in ring.slots.iter().enumerate() {
            if slot == i64::MIN {
                continue;
            }
            out.extend_from_slice(&slot.to_le_bytes());
            for value in &ring.values[index * ring.width..(index + 1) * ring.width] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
}

fn decode_archives(reader: &mut Reader<'_>, width: usize) -> Result<Archives, StoreError> {
    let mut archives = Archives::new(width);
    for ring in &mut archives.rings {
        ring.latest = reader.i64()?;
        let filled = reader.length()?;
        if filled > ring.slots.len() {
            return Err(StoreError::Inconsistent("more rows than buckets"));
        }
        for _ in 0..filled {
            let slot = reader.i64()?;
            let index = ring_index(slot, ring.slots.len());
            if slot == i64::MIN || slot > ring.latest || ring.slots[index] != i64::MIN {
                return Err(StoreError::Inconsistent("bucket out of place"));
            }
            ring.slots[index] = slot;
            for value in &mut ring.values[index * width..(index + 1) * width] {
                *value = reader.u32()?;
            }
        }
    }
    Ok(archives)
}

/// The row of bucket number `slot` in a ring of `length` rows.
fn ring_index(slot: i64, length: usize) -> usize {
    usize::try_from(slot.rem_euclid(length as i64)).unwrap_or(0)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(length).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(StoreError::Truncated(self.bytes.len()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }

    /// A count or length, at most the bytes left (which bounds what a damaged file makes
    /// the reader allocate).
    fn length(&mut self) -> Result<usize, StoreError> {
        let length = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        if length > self.bytes.len() - self.at {
            return Err(StoreError::Truncated(self.bytes.len()));
        }
        Ok(length)
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }
}

/// FNV-1a, 64 bits: enough to tell a damaged file from a good one.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_256_000;

    #[test]
    fn each_record_is_counted_in_every_resolution() {
        let mut store = Store::default();
        store.sessions.add(T + 10, 2, 1);
        store.sessions.add(T + 299, 2, 2);
        store.sessions.add(T + 300, 2, 4);
        let five = store.sessions.ring(300).unwrap();
        assert_eq!(five.row(T).unwrap()[2], 3);
        assert_eq!(five.row(T + 300).unwrap()[2], 4);
        assert_eq!(store.sessions.ring(3600).unwrap().row(T).unwrap()[2], 7);
        assert_eq!(store.sessions.ring(86_400).unwrap().row(T).unwrap()[2], 7);
        assert_eq!(store.sessions.totals(300)[2], 7);
        assert_eq!(store.sessions.totals(300).iter().sum::<u64>(), 7);
    }

    #[test]
    fn old_buckets_are_overwritten_and_older_records_dropped() {
        let mut store = Store::default();
        store.sessions.add(T, 0, 1);
        let two_days = 576 * 300;
        store.sessions.add(T + two_days, 0, 5);
        let five = store.sessions.ring(300).unwrap();
        assert_eq!(five.row(T), None);
        assert_eq!(five.row(T + two_days).unwrap()[0], 5);
        // Too old for the 5-minute ring now, still counted by the hourly one.
        store.sessions.add(T + 1, 0, 1);
        assert_eq!(store.sessions.ring(300).unwrap().row(T + two_days).unwrap()[0], 5);
        assert_eq!(store.sessions.ring(3600).unwrap().row(T).unwrap()[0], 2);
    }

    #[test]
    fn milters_are_bounded() {
        let mut store = Store::default();
        for i in 0..40 {
            store.milter(&format!("m{i}")).add(T, 0, 1);
        }
        let names: Vec<_> = store.milters().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names.len(), MAX_MILTERS);
        assert_eq!(names.last().unwrap(), OTHER_MILTERS);
        let other = store.milters().last().unwrap().1;
        assert_eq!(other.ring(300).unwrap().row(T).unwrap()[0], 9);
    }

    #[test]
    fn encodes_and_decodes() {
        let mut store = Store::default();
        store.sessions.add(T, 1, 3);
        store.sessions.add(T + 86_400 * 3, 4, 1);
        store.milter("clamav").add(T, 2, 7);
        store.watermark.advance(T + 5);
        store.watermark.advance(T + 5);
        let bytes = store.encode();
        assert!(bytes.len() < 4096, "{}", bytes.len());
        assert_eq!(Store::decode(&bytes), Ok(store));
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut store = Store::default();
        store.sessions.add(T, 1, 3);
        let bytes = store.encode();
        for length in [0, 5, MAGIC.len() + 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(Store::decode(&bytes[..length]).is_err(), "{length}");
        }
        assert_eq!(Store::decode(b"MMLA-STORE\0\x02 and more bytes"), Err(StoreError::Version));
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(Store::decode(&flipped), Err(StoreError::Checksum));
    }
}
