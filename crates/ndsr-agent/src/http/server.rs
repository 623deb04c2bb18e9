//! The agent's HTTP server: HTTP/1 connections, each on its own task, with
//! limits `axum::serve` does not have.
//!
//! - At most `[http] max_connections` connections are served at once; more
//!   wait, unaccepted, in the listen queue until one closes.
//! - A connection must send a request's headers within `header_timeout`
//!   (from its accept, or from the first bytes of a later request), and may
//!   wait at most `idle_timeout` for its next request; else it is closed.
//! - A request in progress (a blocking query, an SSE stream) is never cut
//!   by either: those end within their own limits (`max_wait`, shutdown).
//!
//! At shutdown the listener closes, connections between requests close at
//! once, and the others finish their response (streams end on the same
//! signal); `serve` returns when every connection task has ended.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Agent;

/// How long the accept loop pauses after a failed accept (out of file
/// descriptors, say) before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until the agent's cancel token fires, then
/// waits for every connection to end.
pub async fn serve(listener: TcpListener, router: Router, agent: Arc<Agent>) {
    let stop = agent.cancel.clone();
    let slots = Arc::new(Semaphore::new(agent.config().http.max_connections));
    let connections = TaskTracker::new();
    loop {
        // A slot first: beyond the cap, connections are not accepted.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    }
                }
            },
        };
        let config = agent.config();
        let limits = Limits { header: config.http.header_timeout, idle: config.http.idle_timeout };
        connections.spawn(connection(stream, router.clone(), limits, stop.clone(), slot));
    }
    // New connections are refused from here on.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A connection's time limits between requests.
#[derive(Clone, Copy, Debug)]
struct Limits {
    header: Duration,
    idle: Duration,
}

/// Serves one connection until it ends, a limit closes it, or shutdown.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::new();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { stream, activity: activity.clone() });
    let inner = TowerToHyperService::new(router);
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<Incoming>| {
            let guard = InFlight::begin(&activity);
            let call = hyper::service::Service::call(&inner, request);
            async move { call.await.map(|response| response.map(|body| Tracked { body, _guard: guard })) }
        }
    });
    let mut builder = http1::Builder::new();
    // Our own limits below; hyper's would also cut idle keep-alive
    // connections at the header timeout.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = activity.nudge.notified() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("connection closed: no request within {:?}/{:?} (header/idle timeout)",
                        limits.header, limits.idle);
                    return;
                }
            }
            () = stop.cancelled(), if !stopping => {
                if activity.deadline(limits).is_some() {
                    return; // between requests: nothing to finish
                }
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// What a connection is doing, for its time limits.
struct Activity {
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    wait: Mutex<Wait>,
    /// Wakes the connection's task when its deadline may have come nearer.
    nudge: Notify,
}

/// Between requests: since when, and when the next request's first bytes
/// came (if they did).
#[derive(Clone, Copy, Debug)]
struct Wait {
    since: Instant,
    first_request: bool,
    bytes_since: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            wait: Mutex::new(Wait { since: Instant::now(), first_request: true, bytes_since: None }),
            nudge: Notify::new(),
        }
    }

    fn wait(&self) -> MutexGuard<'_, Wait> {
        self.wait.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection is to be closed, `None` while a request is in
    /// progress: the headers within `header` of the accept or of the next
    /// request's first bytes, the next request within `idle`.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        let wait = self.wait();
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(match (wait.first_request, wait.bytes_since) {
            (true, _) => wait.since + limits.header,
            (false, Some(bytes)) => bytes + limits.header,
            (false, None) => wait.since + limits.idle,
        })
    }

    /// Bytes were read.
    fn read(&self) {
        let mut wait = self.wait();
        if self.in_flight.load(Ordering::SeqCst) == 0 && wait.bytes_since.is_none() {
            wait.bytes_since = Some(Instant::now());
            drop(wait);
            self.nudge.notify_one();
        }
    }
}

/// A request in progress, from its headers to the end of its response.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        let mut wait = activity.wait();
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        wait.first_request = false;
        wait.bytes_since = None;
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut wait = self.0.wait();
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *wait = Wait { since: Instant::now(), first_request: false, bytes_since: None };
        }
        drop(wait);
        self.0.nudge.notify_one();
    }
}

/// A response body that ends its request's `InFlight` when it is dropped
/// (hyper drops it once it is sent, or when the connection ends).
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket, telling its `Activity` when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts an open connection in `ndsr_http_connections_open`.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        ::metrics::gauge!("ndsr_http_connections_open").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        ::metrics::gauge!("ndsr_http_connections_open").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a five-argument function returns.
    fn future_size<A, B, C, D, E, F: std::future::Future>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task lives as long as the connection (one per
    /// waiting client): keep its future small (1,224 bytes when written;
    /// hyper's buffers are on the heap, 8 KB each but paged in as used).
    #[test]
    fn a_connection_task_costs_little_memory() {
        assert!(future_size(connection) <= 2048, "connection: {} bytes", future_size(connection));
    }
}
