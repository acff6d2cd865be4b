//! The upload body: the queued file streamed from disk and checked, as it goes, against the size
//! and checksum that admission validated (its XXH3-128, or the SHA-256 of an entry an older
//! version queued: [`Expected`]). The last chunk is held back until the end of the file
//! has been read and both match, so a copy damaged in `queue/` (or unreadable) never reaches the
//! server whole: the request fails before its last byte, and the server sees an incomplete body.
//! The shared [`Check`] tells the uploader afterwards which it was: damaged, or sent complete
//! (a 2xx before that is not an acceptance of the file).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::fs::File;
use tokio_util::io::ReaderStream;

use crate::spool::digest::{Checker, Expected};

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

pub struct Verified {
    inner: ReaderStream<File>,
    checker: Checker,
    held: Option<Bytes>,
    seen: u64,
    size: u64,
    done: bool,
    check: Arc<Check>,
}

impl Verified {
    pub fn new(file: File, size: u64, expected: Expected, check: Arc<Check>) -> Verified {
        Verified {
            inner: ReaderStream::with_capacity(file, 256 * 1024),
            checker: expected.checker(),
            held: None,
            seen: 0,
            size,
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

impl Stream for Verified {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    this.seen += chunk.len() as u64;
                    if this.seen > this.size {
                        let why = format!(
                            "the queued copy is longer than the {} bytes that were validated",
                            this.size
                        );
                        return this.fail(why);
                    }
                    this.checker.update(&chunk);
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Some(Err(e)) => {
                    // The disk, not the network: the copy cannot be sent as it is.
                    return this.fail(format!("reading the queued copy failed: {e}"));
                }
                None => {
                    if this.seen != this.size {
                        let why = format!(
                            "the queued copy ended after {} of the {} bytes that were validated",
                            this.seen, this.size
                        );
                        return this.fail(why);
                    }
                    if let Some(why) = this.checker.mismatch() {
                        return this.fail(why);
                    }
                    this.done = true;
                    // Before the last chunk goes: a server cannot have the whole file earlier.
                    this.check.complete.store(true, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Sha256, Xxh3};
    use futures_util::StreamExt;

    async fn collect(
        content: &[u8],
        size: u64,
        expected: Expected,
    ) -> (Vec<u8>, Option<String>, bool) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, content).unwrap();
        let check = Arc::new(Check::default());
        let mut s = Verified::new(File::open(&p).await.unwrap(), size, expected, check.clone());
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

    /// What admission records for `b` (XXH3), and what an entry of an older version has (only
    /// the SHA-256).
    fn both(b: &[u8]) -> [(Expected, &'static str); 2] {
        [
            (Expected::new(Some(Xxh3::of(b)), Sha256::of(b)), "xxh3 is"),
            (Expected::new(None, Sha256::of(b)), "sha256 is"),
        ]
    }

    #[tokio::test]
    async fn an_intact_copy_goes_through_whole() {
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (expected, _) in both(&content) {
            let (out, damage, failed) = collect(&content, content.len() as u64, expected).await;
            assert_eq!(out, content);
            assert!(damage.is_none() && !failed);
        }
        for (expected, _) in both(b"") {
            let (out, damage, failed) = collect(b"", 0, expected).await;
            assert!(out.is_empty() && damage.is_none() && !failed);
        }
    }

    #[tokio::test]
    async fn a_damaged_copy_never_yields_its_last_chunk() {
        let good: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        for (expected, named) in both(&good) {
            for at in [0, 150_000, good.len() - 1] {
                let mut flipped = good.clone();
                flipped[at] ^= 1;
                let (out, damage, failed) = collect(&flipped, good.len() as u64, expected).await;
                assert!(failed, "the body must fail ({named}, byte {at})");
                let damage = damage.unwrap();
                assert!(damage.contains(named), "named as damage: {damage}");
                assert!(
                    out.len() < good.len(),
                    "the whole body was sent: {}",
                    out.len()
                );
            }

            let (out, damage, failed) = collect(&good[..100], good.len() as u64, expected).await;
            assert!(failed && out.is_empty());
            assert!(damage.unwrap().contains("ended after 100 of"));
        }
        for (expected, _) in both(&good[..100]) {
            let (_, damage, failed) = collect(&good, 100, expected).await;
            assert!(failed && damage.unwrap().contains("longer than"));
        }
    }
}
