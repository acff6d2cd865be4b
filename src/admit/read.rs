//! The one read of a file: its bytes flow once through a tee that feeds the validator, and
//! from there to a thread that hashes them and one that writes the private copy (holes kept),
//! so admission costs about what validation alone does. A fourth thread makes the copy durable
//! as it grows (`fdatasync` every [`FLUSH_EVERY`] bytes written), so the final fsync of a large
//! copy has little left to wait for. A small file (up to [`IN_HAND`]) is read whole instead and
//! the same work done on the admitting thread. Also `check`, the read of `hostedscan-agent
//! validate`.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc;

use super::room::Reserved;
use crate::spool::digest::{Hasher, Xxh3Hasher};
use crate::spool::{Sha256, Xxh3};
use crate::validate::{self, Hints, Verdict};

/// A reader that hands a copy of every chunk the validator pulls through it to the hasher
/// thread (and from there to the writer of the queue copy) while validation goes on.
struct Tee<R> {
    inner: R,
    chunks: mpsc::SyncSender<Vec<u8>>,
    /// Emptied chunks coming back from the hasher or the writer, so the buffers are reused.
    spare: mpsc::Receiver<Vec<u8>>,
    count: u64,
}

/// Chunks in flight from the validator to the hasher, and from the hasher to the writer:
/// enough to ride out a slow write, few enough to keep memory flat (256 KiB each).
const CHUNKS_IN_FLIGHT: usize = 4;

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let mut chunk = self.spare.try_recv().unwrap_or_default();
            chunk.clear();
            chunk.extend_from_slice(&buf[..n]);
            if self.chunks.send(chunk).is_err() {
                // The writer stopped on an error (and so the hasher); `read_once` reports it.
                return Err(io::Error::other("writing the queue copy failed"));
            }
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Bytes written to the copy between two nudges of the flusher.
const FLUSH_EVERY: u64 = 32 << 20;

/// The hasher: SHA-256 and XXH3-128 (the copy's check when it is sent) of every chunk, in
/// order, each then handed on to the writer (when there is a copy to write) or back to the tee. ring's SHA-256 uses the CPU's SHA extensions when it
/// has them (about twice as fast as the `sha2` crate here, and ring is already in the tree for
/// TLS). Hashing and writing are two threads: each alone is about as fast as validation.
fn hasher(
    chunks: mpsc::Receiver<Vec<u8>>,
    writer: Option<mpsc::SyncSender<Vec<u8>>>,
    spare: mpsc::SyncSender<Vec<u8>>,
) -> (Sha256, Xxh3) {
    let mut hasher = Hasher::default();
    let mut check = Xxh3Hasher::default();
    for chunk in chunks {
        hasher.update(&chunk);
        check.update(&chunk);
        match &writer {
            Some(w) => {
                if w.send(chunk).is_err() {
                    // The writer stopped on an error (`read_once` reports it); so does the tee.
                    break;
                }
            }
            None => {
                let _ = spare.try_send(chunk);
            }
        }
    }
    (hasher.finish(), check.finish())
}

/// The writer: every chunk at its offset in the copy. A chunk of zeros is not written (a hole:
/// a sparse file stays sparse; a valid report has no NUL byte). Every [`FLUSH_EVERY`] bytes it
/// nudges the flusher (never waiting for it). Each chunk written is given back from the copy's
/// reservation of room. Stops at the first write error.
fn writer(
    chunks: mpsc::Receiver<Vec<u8>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    out: &File,
    flush: mpsc::SyncSender<()>,
    room: Option<&Reserved<'_>>,
) -> io::Result<()> {
    let mut at = 0u64;
    let mut unflushed = 0u64;
    for chunk in chunks {
        if chunk.iter().any(|&b| b != 0) {
            out.write_all_at(&chunk, at)?;
            unflushed += chunk.len() as u64;
            if unflushed >= FLUSH_EVERY {
                // A nudge already waiting covers this one too.
                let _ = flush.try_send(());
                unflushed = 0;
            }
        }
        at += chunk.len() as u64;
        if let Some(room) = room {
            room.written(chunk.len() as u64);
        }
        let _ = spare.try_send(chunk);
    }
    out.set_len(at)
}

/// The flusher: `fdatasync` of the copy at each nudge, while the copier goes on writing, so
/// that the disk works during the read instead of after it. The first error is kept and
/// reported (the kernel reports a write-back error once per open file: the final fsync of the
/// same descriptor might not see it again).
fn flusher(nudges: mpsc::Receiver<()>, out: &File) -> io::Result<()> {
    for () in nudges {
        out.sync_data()?;
    }
    Ok(())
}

/// What one read of a file gave.
pub(super) struct ReadOnce {
    pub verdict: Verdict,
    /// SHA-256 of everything read; the whole file's only when `complete`.
    pub sha256: Sha256,
    /// XXH3-128 of the same bytes (the check made while the copy is sent).
    pub xxh3: Xxh3,
    /// Bytes read (and copied).
    pub count: u64,
    /// The read went to the end: a rejection stops it where the problem is.
    pub complete: bool,
}

/// Run the validator over the first `len` bytes of `file`, hashing and copying into `out` on
/// other threads, so admission costs about what validation alone does. A valid file is read to
/// its end exactly once; a rejected one only as far as the rejection (the caller copies the
/// rest if it keeps the file). What is written is given back from `room`, the copy's
/// reservation.
pub(super) fn read_once(
    file: &File,
    len: u64,
    hints: &Hints,
    out: Option<&File>,
    room: Option<&Reserved<'_>>,
) -> Result<ReadOnce, ReadError> {
    if len <= IN_HAND {
        read_in_hand(file, len, hints, out, room)
    } else {
        read_streamed(file, len, hints, out, room)
    }
}

/// [`read_once`] for a larger file: validated as it streams, hashed and copied on other threads.
fn read_streamed(
    file: &File,
    len: u64,
    hints: &Hints,
    out: Option<&File>,
    room: Option<&Reserved<'_>>,
) -> Result<ReadOnce, ReadError> {
    let (chunks_tx, chunks_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    // Every buffer can come back: those queued for the hasher and the writer, and one each in
    // hand.
    let (spare_tx, spare_rx) = mpsc::sync_channel(2 * CHUNKS_IN_FLIGHT + 2);
    let (flush_tx, flush_rx) = mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let (to_writer, written) = match out {
            Some(out) => {
                let (tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
                let spare = spare_tx.clone();
                let flushed = scope.spawn(move || flusher(flush_rx, out));
                let written = scope.spawn(move || writer(rx, spare, out, flush_tx, room));
                (Some(tx), Some((written, flushed)))
            }
            None => (None, None),
        };
        let hashed = scope.spawn(move || hasher(chunks_rx, to_writer, spare_tx));
        let mut tee = Tee {
            inner: file.take(len),
            chunks: chunks_tx,
            spare: spare_rx,
            count: 0,
        };
        let result = {
            let mut reader = BufReader::with_capacity(256 * 1024, &mut tee);
            validate::validate(&mut reader, hints).and_then(|v| {
                if v.is_ok() {
                    // The validator may stop before the end of a valid file (trailing
                    // whitespace); the copy and the hash need it all.
                    io::copy(&mut reader, &mut io::sink())?;
                }
                Ok(v)
            })
        };
        let count = tee.count;
        drop(tee);
        let joined = |r: std::thread::Result<io::Result<()>>, what: &str| {
            r.unwrap_or_else(|_| Err(io::Error::other(format!("the {what} thread panicked"))))
        };
        let hashed = hashed
            .join()
            .map_err(|_| io::Error::other("the hasher thread panicked"));
        // The hasher has stopped, and with it the writer's input; the writer's end of the
        // nudges closes when it stops, and so the flusher ends.
        let copied = match written {
            Some((written, flushed)) => {
                joined(written.join(), "writer").and_then(|()| joined(flushed.join(), "flusher"))
            }
            None => Ok(()),
        }
        .and(hashed);
        match (result, copied) {
            (Ok(verdict), Ok((sha256, xxh3))) => Ok(ReadOnce {
                complete: count == len,
                verdict,
                sha256,
                xxh3,
                count,
            }),
            // A failed copy explains a failed read (the Tee stopped because of it), so a full
            // disk is not blamed on the file.
            (_, Err(w)) => Err(ReadError::Write(w)),
            (Err(e), Ok(_)) => Err(ReadError::Read(e)),
        }
    })
}

/// Files up to this size are read whole into memory and validated, hashed and copied on the
/// admitting thread: for a small report, starting the three threads of the streamed read (and
/// handing its chunks between them) costs more than the work itself. At most
/// `ADMISSIONS_AT_ONCE` such buffers exist at once (8 MiB in all).
const IN_HAND: u64 = 256 * 1024;

/// [`read_once`] for a small file: one read of the whole file (up to `len` bytes), then the
/// same validation, hash and copy, one after the other.
fn read_in_hand(
    file: &File,
    len: u64,
    hints: &Hints,
    out: Option<&File>,
    room: Option<&Reserved<'_>>,
) -> Result<ReadOnce, ReadError> {
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Read)?;
    let verdict = validate::validate(bytes.as_slice(), hints).map_err(ReadError::Read)?;
    let mut hasher = Hasher::default();
    hasher.update(&bytes);
    if let Some(out) = out {
        out.write_all_at(&bytes, 0).map_err(ReadError::Write)?;
        if let Some(room) = room {
            room.written(bytes.len() as u64);
        }
    }
    let count = bytes.len() as u64;
    Ok(ReadOnce {
        complete: count == len,
        verdict,
        sha256: hasher.finish(),
        xxh3: Xxh3::of(&bytes),
        count,
    })
}

pub(super) enum ReadError {
    Read(io::Error),
    Write(io::Error),
}

/// Open a file named on the command line (`validate`): the operator's own path, followed as
/// given, but never blocking on a FIFO and only a regular file.
fn open_named(path: &Path) -> io::Result<File> {
    let flags = (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits();
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(
            "not a regular file (a FIFO, socket, device or directory is never read)",
        ));
    }
    Ok(f)
}

/// Validate a file and nothing else (`validate`): no hash, no copy, and a rejection stops the
/// read where the problem is.
pub fn check(path: &Path, hints: &Hints) -> io::Result<Verdict> {
    let f = open_named(path)?;
    validate::validate(BufReader::with_capacity(256 * 1024, f), hints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, File::open(&path).unwrap())
    }

    /// A read's hash, check and copy, when it went to the end of the file.
    type Whole = Option<(Sha256, Xxh3, Vec<u8>)>;

    /// One of the two ways of reading.
    type ReadFn =
        fn(&File, u64, &Hints, Option<&File>, Option<&Reserved>) -> Result<ReadOnce, ReadError>;

    /// What a read gave and what it copied, for comparing the two ways of reading.
    fn read_with(how: ReadFn, bytes: &[u8]) -> (Verdict, Whole, u64) {
        let (dir, input) = file_with(bytes);
        let copy_path = dir.path().join("copy");
        let copy = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&copy_path)
            .unwrap();
        let Ok(read) = how(
            &input,
            bytes.len() as u64,
            &Hints::default(),
            Some(&copy),
            None,
        ) else {
            panic!("the read failed");
        };
        let copied = fs::read(&copy_path).unwrap();
        assert!(
            copied.len() as u64 <= read.count && bytes.starts_with(&copied),
            "the copy is not a prefix of what was read"
        );
        let whole = read.complete.then_some((read.sha256, read.xxh3, copied));
        (read.verdict, whole, read.count)
    }

    fn nmap(ports: usize) -> Vec<u8> {
        let port = r#"<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ssh" method="table" conf="3"/></port>"#;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap 127.0.0.1" start="1700000000" version="7.94" xmloutputversion="1.05">
<host><status state="up" reason="localhost-response" reason_ttl="0"/><address addr="127.0.0.1" addrtype="ipv4"/><ports>{}</ports></host>
<runstats><finished time="1700000001" timestr="x" summary="x" elapsed="1.00" exit="success"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"#,
            port.repeat(ports)
        )
        .into_bytes()
    }

    #[test]
    fn a_small_file_read_whole_gives_what_the_streamed_read_gives() {
        let valid = nmap(10);
        let mut broken = nmap(10);
        broken.truncate(broken.len() / 2);
        let mut bad_byte = nmap(10);
        bad_byte[300] = 0;
        for (what, bytes) in [
            ("valid", valid),
            ("truncated", broken),
            ("a NUL byte", bad_byte),
            ("empty", Vec::new()),
            ("not a report", b"hello\n".to_vec()),
        ] {
            let (v1, whole1, n1) = read_with(read_in_hand, &bytes);
            let (v2, whole2, _) = read_with(read_streamed, &bytes);
            assert_eq!(v1, v2, "{what}: the verdicts differ");
            assert_eq!(n1, bytes.len() as u64, "{what}: not read whole");
            let (sha, xxh3, copy) = whole1.unwrap_or_else(|| panic!("{what}: not read to its end"));
            assert_eq!(sha, Sha256::of(&bytes), "{what}: wrong hash");
            assert_eq!(xxh3, Xxh3::of(&bytes), "{what}: wrong check");
            assert_eq!(copy, bytes, "{what}: wrong copy");
            if let Some(streamed) = whole2 {
                assert_eq!((sha, xxh3, copy), streamed, "{what}");
            }
        }
        assert!(
            read_with(read_in_hand, &nmap(10)).0.is_ok(),
            "the fixture is a valid report"
        );
    }

    #[test]
    fn the_copys_reservation_of_room_is_given_back_as_it_is_written() {
        use super::super::room::Reservations;
        for ports in [10, IN_HAND as usize / 130 + 10, 20_000] {
            let bytes = nmap(ports);
            let (dir, input) = file_with(&bytes);
            let copy = File::create(dir.path().join("copy")).unwrap();
            let room = Reservations::default();
            let len = bytes.len() as u64;
            let held = room.reserve(len + 7, |_| Ok::<_, ()>(())).unwrap();
            let Ok(read) = read_once(&input, len, &Hints::default(), Some(&copy), Some(&held))
            else {
                panic!("the read failed");
            };
            assert!(read.complete && read.verdict.is_ok(), "{len} bytes");
            // Written: counted by the file system now; only what was never written is held.
            assert_eq!(room.reserved(), 7, "{len} bytes");
            drop(held);
            assert_eq!(room.reserved(), 0, "{len} bytes");
        }
    }

    #[test]
    fn a_large_rejected_file_is_read_only_as_far_as_its_problem() {
        // Past the limit the streamed read runs (a rejected file is read only as far as its
        // problem, so memory stays flat); at the limit the file is read whole.
        let mut big = nmap(IN_HAND as usize / 130 + 10);
        assert!(big.len() as u64 > IN_HAND);
        big[1000] = 0;
        let (dir, input) = file_with(&big);
        let _ = dir;
        let Ok(read) = read_once(&input, big.len() as u64, &Hints::default(), None, None) else {
            panic!("the read failed");
        };
        assert!(
            read.verdict.is_err() && !read.complete,
            "a large file was read whole"
        );
        let small = &big[..IN_HAND as usize];
        let (dir, input) = file_with(small);
        let _ = dir;
        let Ok(read) = read_once(&input, small.len() as u64, &Hints::default(), None, None) else {
            panic!("the read failed");
        };
        assert!(read.verdict.is_err() && read.complete && read.count == IN_HAND);
    }
}
