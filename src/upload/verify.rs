//! The upload body: the queued file streamed from disk and checked, as it goes, against the size
//! and SHA-256 that admission validated. A blocking thread reads it in large chunks (positioned
//! reads, [`CHUNK`] bytes each) and hashes them a few chunks ahead of the connection, so hashing
//! and sending overlap instead of taking turns. The last chunk is held back until the end of the
//! file has been read and both match, so a copy damaged in `queue/` (or unreadable) never
//! reaches the server whole: the request fails before its last byte, and the server sees an
//! incomplete body. The shared [`Check`] tells the uploader afterwards which it was: damaged, or
//! sent complete (a 2xx before that is not an acceptance of the file).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::spool::digest::{Hasher, Sha256};

/// Bytes per read and per body chunk: large enough that a 1 GiB upload is a few thousand reads
/// and socket writes, small enough that the chunks in flight stay a few MiB.
pub const CHUNK: usize = 512 * 1024;

/// Chunks read and hashed ahead of the connection.
const AHEAD: usize = 4;

/// What the body found, for the uploader once the request is over.
#[derive(Debug, Default)]
pub struct Check {
    damage: OnceLock<String>,
    complete: AtomicBool,
}

impl Check {
    /// Why the queued copy is not the file that was validated (or cannot be read), if so.
    pub fn damage(&self) -> Option<&str> {
        self.damage.get().map(String::as_str)
    }

    /// The whole file was read, matched, and its last chunk handed to the request.
    pub fn complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// What the reading thread hands the body.
enum Read {
    Chunk(Bytes),
    /// The whole file was read, and its size and SHA-256 are those that were validated.
    Matched,
    /// It is not the file that was validated (or cannot be read): why.
    Damaged(String),
}

pub struct Verified {
    chunks: mpsc::Receiver<Read>,
    held: Option<Bytes>,
    done: bool,
    check: Arc<Check>,
}

impl Verified {
    /// The body for `file`, which must be `size` bytes with this `sha256`. Its reading thread
    /// stops when the body is dropped. Call within a Tokio runtime.
    pub fn new(file: File, size: u64, sha256: Sha256, check: Arc<Check>) -> Verified {
        let (tx, rx) = mpsc::channel(AHEAD);
        tokio::task::spawn_blocking(move || {
            let last = read_and_hash(&file, size, sha256, &tx);
            let _ = tx.blocking_send(last);
        });
        Verified {
            chunks: rx,
            held: None,
            done: false,
            check,
        }
    }

    fn fail(&mut self, why: String) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        self.held = None;
        let _ = self.check.damage.set(why.clone());
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, why))))
    }
}

/// The reading thread: every chunk of `file` hashed and sent on, then the verdict on the whole
/// (returned, for the caller to send last). Stops early when the body is gone.
fn read_and_hash(file: &File, size: u64, sha256: Sha256, tx: &mpsc::Sender<Read>) -> Read {
    let mut hasher = Hasher::default();
    let mut seen = 0u64;
    loop {
        // At the validated size one more byte is asked for: a longer copy shows there.
        let want = usize::try_from(size.saturating_sub(seen))
            .unwrap_or(CHUNK)
            .clamp(1, CHUNK);
        let mut buf = BytesMut::zeroed(want);
        let n = match read_full(file, &mut buf, seen) {
            Ok(n) => n,
            // The disk, not the network: the copy cannot be sent as it is.
            Err(e) => return Read::Damaged(format!("reading the queued copy failed: {e}")),
        };
        if n == 0 {
            break;
        }
        seen += n as u64;
        if seen > size {
            return Read::Damaged(format!(
                "the queued copy is longer than the {size} bytes that were validated"
            ));
        }
        buf.truncate(n);
        hasher.update(&buf);
        if tx.blocking_send(Read::Chunk(buf.freeze())).is_err() {
            return Read::Damaged("the upload stopped".into());
        }
    }
    if seen != size {
        return Read::Damaged(format!(
            "the queued copy ended after {seen} of the {size} bytes that were validated"
        ));
    }
    let got = hasher.finish();
    if got != sha256 {
        return Read::Damaged(format!(
            "the queued copy's sha256 is {got}, not the {sha256} that was validated"
        ));
    }
    Read::Matched
}

/// Fill `buf` from `file` at `at`, short only at the end of the file.
fn read_full(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Stream for Verified {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match ready!(this.chunks.poll_recv(cx)) {
                Some(Read::Chunk(chunk)) => {
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Some(Read::Damaged(why)) => return this.fail(why),
                Some(Read::Matched) => {
                    this.done = true;
                    // Before the last chunk goes: a server cannot have the whole file earlier.
                    this.check.complete.store(true, Ordering::Release);
                }
                None => return this.fail("the queued copy's reader stopped".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(content: &[u8], size: u64, sha: &Sha256) -> (Vec<u8>, Option<String>, bool) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, content).unwrap();
        let check = Arc::new(Check::default());
        let mut s = Verified::new(File::open(&p).unwrap(), size, *sha, check.clone());
        let (mut out, mut failed) = (Vec::new(), false);
        while let Some(c) = s.next().await {
            match c {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => failed = true,
            }
        }
        assert_eq!(
            check.complete(),
            !failed,
            "complete exactly when the body ended well"
        );
        (out, check.damage().map(String::from), failed)
    }

    fn sha(b: &[u8]) -> Sha256 {
        Sha256::of(b)
    }

    #[tokio::test]
    async fn an_intact_copy_goes_through_whole() {
        for len in [200_000, 3 * CHUNK as u32 + 7, 2 * CHUNK as u32] {
            let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (out, damage, failed) =
                collect(&content, content.len() as u64, &sha(&content)).await;
            assert_eq!(out, content, "{len} bytes");
            assert!(damage.is_none() && !failed);
        }
        let (out, damage, failed) = collect(b"", 0, &sha(b"")).await;
        assert!(out.is_empty() && damage.is_none() && !failed);
    }

    #[tokio::test]
    async fn a_damaged_copy_never_yields_its_last_chunk() {
        let good: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut flipped = good.clone();
        flipped[150_000] ^= 1;
        let (out, damage, failed) = collect(&flipped, good.len() as u64, &sha(&good)).await;
        assert!(failed, "the body must fail");
        assert!(damage.unwrap().contains("sha256"), "named as damage");
        assert!(
            out.len() < good.len(),
            "the whole body was sent: {}",
            out.len()
        );

        let (out, damage, failed) = collect(&good[..100], good.len() as u64, &sha(&good)).await;
        assert!(failed && out.is_empty());
        assert!(damage.unwrap().contains("ended after 100 of"));

        let (_, damage, failed) = collect(&good, 100, &sha(&good[..100])).await;
        assert!(failed && damage.unwrap().contains("longer than"));
    }
}
