//! The upload body: the queued file streamed from disk and checked, as it goes, against the size
//! and SHA-256 that admission validated. The last chunk is held back until the end of the file
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

use crate::spool::digest::{Hasher, Sha256};

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
    hasher: Hasher,
    held: Option<Bytes>,
    seen: u64,
    size: u64,
    sha256: Sha256,
    done: bool,
    check: Arc<Check>,
}

impl Verified {
    pub fn new(file: File, size: u64, sha256: Sha256, check: Arc<Check>) -> Verified {
        Verified {
            inner: ReaderStream::with_capacity(file, 256 * 1024),
            hasher: Hasher::default(),
            held: None,
            seen: 0,
            size,
            sha256,
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
                    this.hasher.update(&chunk);
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
                    let got = this.hasher.clone().finish();
                    if got != this.sha256 {
                        let why = format!(
                            "the queued copy's sha256 is {got}, not the {} that was validated",
                            this.sha256
                        );
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
    use futures_util::StreamExt;

    async fn collect(content: &[u8], size: u64, sha: &Sha256) -> (Vec<u8>, Option<String>, bool) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, content).unwrap();
        let check = Arc::new(Check::default());
        let mut s = Verified::new(File::open(&p).await.unwrap(), size, *sha, check.clone());
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
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (out, damage, failed) = collect(&content, content.len() as u64, &sha(&content)).await;
        assert_eq!(out, content);
        assert!(damage.is_none() && !failed);
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
