//! The upload body's bytes counted as the request takes them, for the progress display of
//! `--once`: a stream adapter that adds each chunk's length to a shared counter when the
//! connection polls it (so the count follows the socket, a chunk or two ahead of the wire). A
//! relaxed add per 256 KiB chunk: nothing the upload waits for.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

pub struct Counted<S> {
    inner: S,
    sent: Option<Arc<AtomicU64>>,
}

impl<S> Counted<S> {
    /// `inner`, with what it yields added to `sent` (nothing counted when `None`).
    pub fn new(inner: S, sent: Option<Arc<AtomicU64>>) -> Counted<S> {
        Counted { inner, sent }
    }
}

impl<S, E> Stream for Counted<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some(sent)) = (&polled, &this.sent) {
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn counts_what_it_hands_over() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defgh")),
            Err(std::io::Error::other("disk")),
        ];
        let sent = Arc::new(AtomicU64::new(0));
        let mut s = Counted::new(futures_util::stream::iter(chunks), Some(sent.clone()));
        let mut got = 0;
        while let Some(c) = s.next().await {
            got += c.map(|b| b.len()).unwrap_or(0);
        }
        assert_eq!(got, 8);
        assert_eq!(sent.load(Ordering::Relaxed), 8);
    }
}
