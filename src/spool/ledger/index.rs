//! `ledger.index`: the compacted part of the ledger. A sorted binary file of `(source, digest)`
//! keys that answers "was this content uploaded to this source?" with at most one read of a few
//! KiB, and a header with the totals of the lines it holds, so `status` need not read them.
//!
//! Layout (integers little-endian unless said):
//!
//! ```text
//! magic "HSLEDGR\x01" | generation u64 | included_bytes u64 | records u64
//! | sources u32 | table_len u32 | table | SHA-256 of all the above (32)
//! | records × (source number u32 big-endian, digest 32) strictly ascending
//! | SHA-256 of the records (32)
//! ```
//!
//! `table` holds per source, in ascending id order (the source number is the position): id
//! (u16 length + bytes), total lines (u64), last `at` (u16 length + bytes, empty: none).
//! The index holds every line of the retired files `ledger-history/<n>-*.jsonl` with
//! `n <= generation`, and the first `included_bytes` bytes of the file of generation
//! `generation + 1` (see `files.rs`). In memory it keeps a Bloom filter (misses never read the
//! disk) and the first key of every block of [`BLOCK`] records (a hit reads one block).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Summary;
use crate::spool::Sha256;

pub const NAME: &str = "ledger.index";
/// Where a new index is written before it is renamed over [`NAME`]; removed at open.
pub const TMP_NAME: &str = "ledger.index.tmp";

const MAGIC: &[u8; 8] = b"HSLEDGR\x01";
/// A record: source number (big-endian, so that bytes compare like numbers) and digest.
pub const REC: usize = 36;
/// Records per fence entry: one lookup reads at most this many (4.5 KiB).
const BLOCK: u64 = 128;
/// The Bloom filter's size is capped (8 MiB): past ~6.7 M records its false positives grow,
/// which only costs more reads (each hit is confirmed on disk), never a wrong answer.
const BLOOM_MAX_BITS: u64 = 1 << 26;
const BLOOM_HASHES: u64 = 7;

pub type Key = [u8; REC];

pub fn key(source_no: u32, sha256: &Sha256) -> Key {
    let mut k = [0u8; REC];
    k[..4].copy_from_slice(&source_no.to_be_bytes());
    k[4..].copy_from_slice(&sha256.to_bytes());
    k
}

pub fn source_of(k: &Key) -> u32 {
    u32::from_be_bytes([k[0], k[1], k[2], k[3]])
}

/// What the header says.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub generation: u64,
    pub included_bytes: u64,
    pub records: u64,
    /// Ascending by id; a source's number is its position.
    pub sources: Vec<(String, Summary)>,
}

fn corrupt(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Whether an error opening the index means its content is bad (rather than the disk).
pub fn is_corrupt(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut table = Vec::new();
        for (id, s) in &self.sources {
            put_str(&mut table, id);
            table.extend_from_slice(&s.total.to_le_bytes());
            put_str(&mut table, s.last_at.as_deref().unwrap_or(""));
        }
        let mut b = Vec::with_capacity(40 + table.len() + 32);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.extend_from_slice(&self.included_bytes.to_le_bytes());
        b.extend_from_slice(&self.records.to_le_bytes());
        b.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        b.extend_from_slice(&(table.len() as u32).to_le_bytes());
        b.extend_from_slice(&table);
        let sum = Sha256::of(&b).to_bytes();
        b.extend_from_slice(&sum);
        b
    }

    /// The header of an index file, checked (its checksum, and a length that fits the record
    /// count); returns it and where the records start. `InvalidData`/`UnexpectedEof`: corrupt.
    pub fn read(f: &File) -> io::Result<(Header, u64)> {
        let len = f.metadata()?.len();
        let mut fixed = [0u8; 40];
        f.read_exact_at(&mut fixed, 0)?;
        if &fixed[..8] != MAGIC {
            return Err(corrupt("not a ledger index (or another version)"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(fixed[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap_or([0; 4]));
        let (generation, included_bytes, records) = (u64_at(8), u64_at(16), u64_at(24));
        let (n_sources, table_len) = (u32_at(32), u64::from(u32_at(36)));
        if 40 + table_len + 32 > len {
            return Err(corrupt("header longer than the file"));
        }
        let mut rest = vec![0u8; table_len as usize + 32];
        f.read_exact_at(&mut rest, 40)?;
        let (table, sum) = rest.split_at(table_len as usize);
        let mut whole = fixed.to_vec();
        whole.extend_from_slice(table);
        if Sha256::of(&whole).to_bytes() != sum {
            return Err(corrupt("header checksum mismatch"));
        }
        let records_at = 40 + table_len + 32;
        if records
            .checked_mul(REC as u64)
            .and_then(|r| r.checked_add(records_at + 32))
            != Some(len)
        {
            return Err(corrupt("file length does not match the record count"));
        }
        let mut t = table;
        let mut sources = Vec::with_capacity(n_sources.min(1 << 16) as usize);
        for _ in 0..n_sources {
            let id = take_str(&mut t)?;
            let total = u64::from_le_bytes(take(&mut t, 8)?.try_into().unwrap_or([0; 8]));
            let at = take_str(&mut t)?;
            let last_at = (!at.is_empty()).then_some(at);
            if sources.last().is_some_and(|(prev, _)| prev >= &id) {
                return Err(corrupt("source table out of order"));
            }
            sources.push((id, Summary { total, last_at }));
        }
        if !t.is_empty() {
            return Err(corrupt("source table longer than its sources"));
        }
        Ok((
            Header {
                generation,
                included_bytes,
                records,
                sources,
            },
            records_at,
        ))
    }

    /// The header of the index at `path`; `None` when there is none.
    pub fn load(path: &Path) -> io::Result<Option<Header>> {
        match File::open(path) {
            Ok(f) => Header::read(&f).map(|(h, _)| Some(h)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    // Source ids and timestamps are short; a longer one (never written by the agent) is cut.
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s);
}

fn take<'a>(t: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
    if t.len() < n {
        return Err(corrupt("source table cut short"));
    }
    let (a, b) = t.split_at(n);
    *t = b;
    Ok(a)
}

fn take_str(t: &mut &[u8]) -> io::Result<String> {
    let n = take(t, 2)?;
    let n = u16::from_le_bytes([n[0], n[1]]) as usize;
    String::from_utf8(take(t, n)?.to_vec()).map_err(|_| corrupt("source table not UTF-8"))
}

/// A Bloom filter over keys. The digests are SHA-256, uniform already: the bit positions are
/// taken from their bytes (double hashing), mixed with the source number.
struct Bloom {
    bits: Vec<u64>,
    mask: u64,
}

impl Bloom {
    fn new(capacity: u64) -> Bloom {
        let bits = (capacity.saturating_mul(10))
            .clamp(1 << 10, BLOOM_MAX_BITS)
            .next_power_of_two();
        Bloom {
            bits: vec![0; (bits / 64) as usize],
            mask: bits - 1,
        }
    }

    fn positions(&self, k: &Key) -> [u64; BLOOM_HASHES as usize] {
        let word = |i: usize| u64::from_le_bytes(k[i..i + 8].try_into().unwrap_or([0; 8]));
        let h1 = word(4) ^ u64::from(source_of(k)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h2 = word(12) | 1;
        std::array::from_fn(|i| h1.wrapping_add((i as u64).wrapping_mul(h2)) & self.mask)
    }

    fn insert(&mut self, k: &Key) {
        for p in self.positions(k) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, k: &Key) -> bool {
        self.positions(k)
            .iter()
            .all(|p| self.bits[(*p / 64) as usize] & (1 << (*p % 64)) != 0)
    }
}

/// What is kept in memory while the records are written or checked: the filter and the fence.
struct Lookup {
    bloom: Bloom,
    fence: Vec<Key>,
    count: u64,
    last: Option<Key>,
    sum: ring::digest::Context,
}

impl Lookup {
    fn new(capacity: u64) -> Lookup {
        Lookup {
            bloom: Bloom::new(capacity),
            fence: Vec::with_capacity(capacity.div_ceil(BLOCK) as usize),
            count: 0,
            last: None,
            sum: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// The next key, which must be greater than the last one.
    fn push(&mut self, k: &Key, n_sources: usize) -> io::Result<()> {
        if self.last.is_some_and(|l| l >= *k) || source_of(k) as usize >= n_sources {
            return Err(corrupt("records out of order or of an unknown source"));
        }
        if self.count.is_multiple_of(BLOCK) {
            self.fence.push(*k);
        }
        self.bloom.insert(k);
        self.sum.update(k);
        self.count += 1;
        self.last = Some(*k);
        Ok(())
    }
}

/// An open index: lookups by (source id, digest), and its records for a merge.
pub struct Index {
    file: File,
    pub header: Header,
    records_at: u64,
    bloom: Bloom,
    fence: Vec<Key>,
}

impl Index {
    /// Open and check the index at `path` (every record is read once: the checksum, the order,
    /// and the filter built from them); `None` when there is none. A corrupt file gives an
    /// error for which [`is_corrupt`] is true.
    pub fn open(path: &Path) -> io::Result<Option<Index>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let (header, records_at) = Header::read(&file)?;
        let mut look = Lookup::new(header.records);
        let mut reader = Records::new(&file, records_at, header.records);
        while let Some(k) = reader.next_key()? {
            look.push(&k, header.sources.len())?;
        }
        let mut sum = [0u8; 32];
        file.read_exact_at(&mut sum, records_at + header.records * REC as u64)?;
        if look.sum.finish().as_ref() != sum {
            return Err(corrupt("records checksum mismatch"));
        }
        Ok(Some(Index {
            file,
            header,
            records_at,
            bloom: look.bloom,
            fence: look.fence,
        }))
    }

    pub fn source_no(&self, source_id: &str) -> Option<u32> {
        self.header
            .sources
            .binary_search_by(|(id, _)| id.as_str().cmp(source_id))
            .ok()
            .map(|i| i as u32)
    }

    /// Exact: a filter hit is confirmed by reading the one block the key can be in.
    pub fn contains(&self, source_id: &str, sha256: &Sha256) -> io::Result<bool> {
        let Some(no) = self.source_no(source_id) else {
            return Ok(false);
        };
        let k = key(no, sha256);
        if !self.bloom.may_contain(&k) {
            return Ok(false);
        }
        let Some(block) = self.fence.partition_point(|f| f <= &k).checked_sub(1) else {
            return Ok(false);
        };
        let first = block as u64 * BLOCK;
        let n = BLOCK.min(self.header.records - first) as usize;
        let mut buf = vec![0u8; n * REC];
        self.file
            .read_exact_at(&mut buf, self.records_at + first * REC as u64)?;
        let recs: Vec<&[u8]> = buf.chunks_exact(REC).collect();
        Ok(recs.binary_search_by(|r| (*r).cmp(&k[..])).is_ok())
    }

    /// Every key, in order, read in large pieces.
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.file, self.records_at, self.header.records)
    }
}

/// The records of an index file, read sequentially with `pread` (the handle's offset is
/// untouched, so lookups may go on between reads).
pub struct Records<'a> {
    file: &'a File,
    at: u64,
    left: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> Records<'a> {
    fn new(file: &'a File, at: u64, count: u64) -> Records<'a> {
        Records {
            file,
            at,
            left: count,
            buf: Vec::new(),
            pos: 0,
        }
    }

    pub fn next_key(&mut self) -> io::Result<Option<Key>> {
        if self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.left.min(2048);
            self.buf.resize(n as usize * REC, 0);
            self.file.read_exact_at(&mut self.buf, self.at)?;
            self.at += n * REC as u64;
            self.left -= n;
            self.pos = 0;
        }
        let mut k = [0u8; REC];
        k.copy_from_slice(&self.buf[self.pos..self.pos + REC]);
        self.pos += REC;
        Ok(Some(k))
    }
}

/// Write a new index at `path` (created or truncated) with `header` (its record count is
/// filled in) and `keys`, which must come in strictly ascending order; synced before it
/// returns. `capacity` bounds the number of keys (it sizes the filter).
pub fn write(
    path: &Path,
    mut header: Header,
    capacity: u64,
    mut keys: impl FnMut() -> io::Result<Option<Key>>,
) -> io::Result<Index> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The header's length does not depend on the record count: write it now, again at the end.
    let head = header.encode();
    let records_at = head.len() as u64;
    let mut out = BufWriter::with_capacity(256 * 1024, &file);
    out.write_all(&head)?;
    let mut look = Lookup::new(capacity);
    while let Some(k) = keys()? {
        look.push(&k, header.sources.len())
            .map_err(|_| io::Error::other("ledger index keys out of order (a bug)"))?;
        out.write_all(&k)?;
    }
    let sum = look.sum.clone().finish();
    out.write_all(sum.as_ref())?;
    out.flush()?;
    drop(out);
    header.records = look.count;
    file.write_all_at(&header.encode(), 0)?;
    file.sync_all()?;
    Ok(Index {
        file,
        header,
        records_at,
        bloom: look.bloom,
        fence: look.fence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ids: &[&str]) -> Header {
        Header {
            generation: 3,
            included_bytes: 10,
            records: 0,
            sources: ids
                .iter()
                .map(|id| {
                    (
                        id.to_string(),
                        Summary {
                            total: 7,
                            last_at: Some("2026-11-27T00:00:00Z".into()),
                        },
                    )
                })
                .collect(),
        }
    }

    fn build(path: &Path, digests: &[Sha256]) -> Index {
        let mut keys: Vec<Key> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| key((i % 2) as u32, d))
            .collect();
        keys.sort();
        let mut it = keys.into_iter();
        write(path, header(&["a", "b"]), digests.len() as u64, || {
            Ok(it.next())
        })
        .unwrap()
    }

    #[test]
    fn a_written_index_reads_back_and_answers_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let digests: Vec<Sha256> = (0..1000u32).map(|i| Sha256::of(&i.to_le_bytes())).collect();
        build(&path, &digests);
        let index = Index::open(&path).unwrap().unwrap();
        assert_eq!(index.header.records, 1000);
        assert_eq!(index.header.generation, 3);
        assert_eq!(index.header.sources[1].1.total, 7);
        for (i, d) in digests.iter().enumerate() {
            let (mine, other) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
            assert!(index.contains(mine, d).unwrap(), "{i}");
            assert!(
                !index.contains(other, d).unwrap(),
                "{i} in the other source"
            );
            assert!(!index.contains("c", d).unwrap());
        }
        for i in 1000..3000u32 {
            assert!(!index.contains("a", &Sha256::of(&i.to_le_bytes())).unwrap());
        }
    }

    #[test]
    fn any_damage_is_seen_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let digests: Vec<Sha256> = (0..300u32).map(|i| Sha256::of(&i.to_le_bytes())).collect();
        build(&path, &digests);
        let good = std::fs::read(&path).unwrap();
        for at in [0, 12, 45, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let e = Index::open(&path).err().expect("damage not seen");
            assert!(is_corrupt(&e), "{at}: {e}");
        }
        std::fs::write(&path, &good[..good.len() - 36]).unwrap();
        assert!(is_corrupt(&Index::open(&path).err().unwrap()));
        std::fs::write(&path, b"").unwrap();
        assert!(is_corrupt(&Index::open(&path).err().unwrap()));
    }
}
