//! The HostedScan API stand-in's HTTP server: the listener, one hyper connection task per client
//! (cut when the stand-in goes down, reset by a `DropConnection` fault) and the front every
//! request passes before the router: it is recorded and counted in flight, waits the added
//! latency, may draw a fault, and needs the API key.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::{Body as _, Incoming};
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

use super::requests::{endpoint_of, RequestRecord};
use super::{faults, json_error, router, Inner, KEY_HEADER};

/// A listener on `addr`, with SO_REUSEADDR so that [`super::StandIn::come_back`] can bind the
/// same port again while old connections linger in TIME_WAIT.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let router = router(inner.clone());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => spawn_connection(&inner, stream, router.clone()),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn spawn_connection(inner: &Arc<Inner>, stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let kill = Arc::new(Notify::new());
    let reset = Arc::new(AtomicBool::new(false));
    let io = KillableIo {
        io: TokioIo::new(stream),
        reset_on_drop: reset.clone(),
    };
    let svc = TowerToHyperService::new(router);
    let service = {
        let inner = inner.clone();
        let kill = kill.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let inner = inner.clone();
            let kill = kill.clone();
            let svc = svc.clone();
            async move { Ok::<_, Infallible>(handle(inner, svc, kill, req).await) }
        })
    };
    // Hold the registry lock while spawning so that the task's own removal comes after insertion.
    let mut conns = inner.conns();
    let task_inner = inner.clone();
    let task = tokio::spawn(async move {
        let mut conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::select! {
            _ = &mut conn => {}
            _ = kill.notified() => {
                // Dropping the connection drops the socket, which then resets (see KillableIo).
                reset.store(true, Ordering::SeqCst);
                drop(conn);
            }
        }
        task_inner.conns().remove(&id);
    });
    conns.insert(id, task);
}

/// The connection's socket; set to reset (SO_LINGER 0) when dropped by a `DropConnection` fault.
struct KillableIo {
    io: TokioIo<TcpStream>,
    reset_on_drop: Arc<AtomicBool>,
}

impl Drop for KillableIo {
    fn drop(&mut self) {
        if self.reset_on_drop.load(Ordering::SeqCst) {
            // SO_LINGER 0: closing sends RST. Deprecated only because a non-zero linger blocks.
            #[allow(deprecated)]
            let _ = self.io.inner().set_linger(Some(Duration::ZERO));
        }
    }
}

impl hyper::rt::Read for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Everything in front of the router: recording, faults, the key check.
async fn handle(
    inner: Arc<Inner>,
    svc: TowerToHyperService<Router>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Response<Body> {
    let endpoint = endpoint_of(req.uri().path());
    let seq = inner.next_request.fetch_add(1, Ordering::Relaxed);
    let (fault, key_ok, _counted, latency) = {
        let mut st = inner.lock();
        let fault = st.faults.take(endpoint);
        let key_ok = req
            .headers()
            .get(KEY_HEADER)
            .is_some_and(|v| v.as_bytes() == st.key.as_bytes());
        // Counted until this handler ends, however it ends (a cut connection drops it).
        let (guard, in_flight, latency) = st.load.enter(&inner, endpoint);
        st.requests.push(RequestRecord::new(
            seq,
            &req,
            key_ok,
            fault.clone(),
            in_flight,
        ));
        (fault, key_ok, guard, latency)
    };
    inner.changed.notify_waiters();
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }

    let response = match fault {
        None => normal(&svc, key_ok, req).await,
        Some(fault) => faults::answer(fault, req, &kill, |req| normal(&svc, key_ok, req)).await,
    };
    if let Some(r) = inner
        .lock()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.seq == seq)
    {
        r.status = response.status().as_u16();
        r.answered = Some(std::time::Instant::now());
    }
    inner.changed.notify_waiters();
    response
}

async fn normal(
    svc: &TowerToHyperService<Router>,
    key_ok: bool,
    req: Request<Incoming>,
) -> Response<Body> {
    if !key_ok {
        drain(req.into_body()).await;
        return json_error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    match svc.call(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The next body frame: `Some(data length)` or `None` at the end (or on error).
pub(super) fn next_frame(body: &mut Incoming) -> impl Future<Output = Option<usize>> + '_ {
    std::future::poll_fn(move |cx| match Pin::new(&mut *body).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame.data_ref().map_or(0, |d| d.len()))),
        Poll::Ready(_) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
}

/// Reads and discards the request body, so that the client sees the answer rather than a reset.
pub(super) async fn drain(mut body: Incoming) {
    while next_frame(&mut body).await.is_some() {}
}
