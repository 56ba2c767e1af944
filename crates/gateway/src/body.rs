//! Body types. Owns the request body as stages see it ([`RequestBody`]), bounded
//! buffering with an idle timeout, the size- and time-bounded streaming request body
//! sent upstream, and [`ExchangeBody`], the response body every client receives: it
//! passes upstream frames through as they arrive (no buffering), enforces the idle
//! and total timeouts, runs chunk stages, and ends the exchange exactly once (on the
//! last frame, on error, or when the client goes away).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::context::{Exchange, Outcome};
use crate::error::RequestError;
use crate::pipeline::Pipeline;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use crate::upstream::UpstreamBody;

/// The request body at some point of the request stages.
#[derive(Debug)]
pub enum RequestBody {
    /// Not read yet; will be streamed to the upstream.
    Streaming(Incoming),
    /// Read completely (bounded) by the body stage.
    Buffered(Bytes),
}

/// Reads a whole body, refusing more than `limit` bytes and a silence longer than `idle`.
pub async fn read_bounded(mut body: Incoming, limit: u64, idle: Duration) -> Result<Bytes, RequestError> {
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(RequestError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(RequestError::BodyRead),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(RequestError::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// [`BoundedStream`] exceeded its byte limit.
pub const TRIP_TOO_LARGE: u8 = 1;
/// [`BoundedStream`] saw no data for its idle timeout.
pub const TRIP_IDLE: u8 = 2;
/// The client's body failed: shorter than its Content-Length, bad chunked framing,
/// the connection closed mid-body.
pub const TRIP_CLIENT: u8 = 4;
/// The whole request body was handed to the upstream connection.
pub const SENT_ALL: u8 = 8;
/// The last poll of the body waited on the client (it had nothing to send yet).
pub const WAITING_CLIENT: u8 = 16;

/// Whether the request's flags say the client, not the upstream, caused a failure;
/// with the error to answer. `timed_out`: the upstream's first-byte wait ran out.
pub fn client_fault(flags: u8, timed_out: bool, limit: u64) -> Option<RequestError> {
    if flags & TRIP_TOO_LARGE != 0 {
        Some(RequestError::BodyTooLarge { limit })
    } else if flags & TRIP_IDLE != 0 {
        Some(RequestError::BodyTimeout)
    } else if flags & TRIP_CLIENT != 0 {
        Some(RequestError::BadRequest(
            "the request body ended early or its chunked framing is malformed",
        ))
    } else if timed_out && flags & SENT_ALL == 0 && flags & WAITING_CLIENT != 0 {
        // The upstream was still waiting for a body the client had not sent.
        Some(RequestError::BodyTimeout)
    } else {
        None
    }
}

/// Error raised inside a streaming request body; the proxy maps it back.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeded its limit or idle timeout")]
pub struct StreamLimitError;

pin_project_lite::pin_project! {
    /// A streaming request body with a byte limit and an idle timeout. Its flags
    /// (`tripped`: [`TRIP_TOO_LARGE`], [`TRIP_IDLE`], [`TRIP_CLIENT`], [`SENT_ALL`],
    /// [`WAITING_CLIENT`]) tell the proxy when a failure was the client's doing, so it
    /// answers 413/408/400 and never charges the upstream's health for it.
    pub struct BoundedStream {
        #[pin]
        inner: Incoming,
        #[pin]
        idle: Sleep,
        idle_for: Duration,
        seen: u64,
        limit: u64,
        tripped: Arc<AtomicU8>,
    }
}

impl BoundedStream {
    pub fn new(inner: Incoming, limit: u64, idle_for: Duration, tripped: Arc<AtomicU8>) -> Self {
        Self {
            inner,
            idle: tokio::time::sleep(idle_for),
            idle_for,
            seen: 0,
            limit,
            tripped,
        }
    }
}

impl Body for BoundedStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.tripped.fetch_and(!WAITING_CLIENT, Ordering::Relaxed);
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if *this.seen > *this.limit {
                        this.tripped.fetch_or(TRIP_TOO_LARGE, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(StreamLimitError))));
                    }
                }
                let deadline = Instant::now() + *this.idle_for;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.tripped.fetch_or(TRIP_CLIENT, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.tripped.fetch_or(SENT_ALL, Ordering::Relaxed);
                this.tripped.fetch_and(!WAITING_CLIENT, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.tripped.fetch_or(WAITING_CLIENT, Ordering::Relaxed);
                ready!(this.idle.poll(cx));
                this.tripped.fetch_or(TRIP_IDLE, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(StreamLimitError))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Turns a request body into the upstream body.
pub fn upstream_body(body: RequestBody, limit: u64, idle: Duration, tripped: Arc<AtomicU8>) -> UpstreamBody {
    match body {
        RequestBody::Buffered(bytes) => {
            tripped.fetch_or(SENT_ALL, Ordering::Relaxed);
            Full::new(bytes).map_err(|never| match never {}).boxed()
        }
        RequestBody::Streaming(incoming) => BoundedStream::new(incoming, limit, idle, tripped).boxed(),
    }
}

/// Where the response body comes from.
pub enum Source {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Upstream(_) => f.write_str("Source::Upstream"),
            Source::Full(b) => write!(f, "Source::Full({:?} bytes)", b.as_ref().map(Bytes::len)),
        }
    }
}

/// Whether a Content-Type value names an event stream (media types are
/// case-insensitive: `TEXT/EVENT-STREAM` is one too).
pub fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Set once at shutdown, just before the grace period ends: every open event stream
/// ends with a well-formed `event: error` instead of being cut mid-event.
static CUT: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Ends every open event stream of this process with an error event (shutdown).
pub fn cut_streams() {
    CUT.send_replace(true);
}

/// Why an event stream is ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Shutdown,
    /// An operator's stop switch that ends streams in flight covers this exchange.
    Stopped,
}

/// Resolves when [`cut_streams`] was called, or when `stop` (a stop switch's signal)
/// resolves.
fn cut_signal(stop: Option<impl Future<Output = ()> + Send + 'static>) -> Pin<Box<dyn Future<Output = Cut> + Send>> {
    let mut rx = CUT.subscribe();
    Box::pin(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|cut| *cut).await;
        };
        match stop {
            Some(stop) => tokio::select! {
                () = shutdown => Cut::Shutdown,
                () = stop => Cut::Stopped,
            },
            None => {
                shutdown.await;
                Cut::Shutdown
            }
        }
    })
}

/// The last event of a stream that ends early: a well-formed `event: error`. When the
/// bytes sent so far stopped inside an event, blank lines end that event first.
fn sse_error_event(code: &str, message: &str, request_id: &str, at_boundary: bool) -> Bytes {
    let error = serde_json::json!({"error": {
        "type": "api_error",
        "code": code,
        "message": message,
        "request_id": request_id,
    }});
    let lead = if at_boundary { "" } else { "\n\n" };
    Bytes::from(format!("{lead}event: error\ndata: {error}\n\n"))
}

/// A completed exchange's last frame waiting for its audit record to be durable.
struct Held {
    frame: Option<Frame<Bytes>>,
    ack: tokio::sync::oneshot::Receiver<bool>,
    timeout: Pin<Box<Sleep>>,
}

/// Timing rules for a response body.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimers {
    pub idle: Duration,
    pub deadline: Instant,
    /// The response is a Server-Sent-Events stream: a timeout ends it with an
    /// `event: error` message instead of an abrupt reset.
    pub sse: bool,
}

pin_project_lite::pin_project! {
    /// The body of every response the gateway sends. See the module docs.
    pub struct ExchangeBody {
        source: Source,
        #[pin]
        idle: Sleep,
        #[pin]
        deadline: Sleep,
        timers: Option<BodyTimers>,
        exchange: Option<Box<Exchange>>,
        pipeline: Arc<Pipeline>,
        route: Option<Arc<crate::route::RouteRuntime>>,
        chunk_stages: bool,
        trailer: Option<Bytes>,
        finished: bool,
        guard: Option<crate::upstream::Outstanding>,
        // Marks the client connection busy (not idle) until the body is done.
        busy: Option<crate::server::conn::Busy>,
        // The last frame (or the end), held until the audit record is durable.
        held: Option<Held>,
        // Event streams: resolves at shutdown (see `cut_streams`) or when a stop switch
        // that ends streams covers the exchange.
        cut: Option<Pin<Box<dyn Future<Output = Cut> + Send>>>,
        // Event streams: the bytes sent so far end between two events.
        at_boundary: bool,
    }

    impl PinnedDrop for ExchangeBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ex) = this.exchange.take() {
                let mut ex = ex;
                ex.outcome.get_or_insert(Outcome::ClientGone);
                this.pipeline.complete(&mut ex, this.route.as_deref());
            }
        }
    }
}

impl std::fmt::Debug for ExchangeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeBody")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ExchangeBody {
    pub fn new(
        source: Source,
        exchange: Box<Exchange>,
        pipeline: Arc<Pipeline>,
        route: Option<Arc<crate::route::RouteRuntime>>,
        timers: Option<BodyTimers>,
    ) -> Self {
        let now = Instant::now();
        let (idle_at, deadline_at) = match timers {
            Some(t) => (now + t.idle, t.deadline),
            // Full bodies never wait; the sleeps are never polled.
            None => (now, now),
        };
        let chunk_stages = route.as_ref().is_some_and(|r| pipeline.wants_chunks(r));
        Self {
            source,
            idle: tokio::time::sleep_until(idle_at),
            deadline: tokio::time::sleep_until(deadline_at),
            timers,
            exchange: Some(exchange),
            pipeline,
            route,
            chunk_stages,
            trailer: None,
            finished: false,
            guard: None,
            busy: None,
            held: None,
            cut: None,
            at_boundary: true,
        }
    }

    /// Keeps the client connection counted as busy until the body is done.
    pub fn with_busy(mut self, busy: crate::server::conn::Busy) -> Self {
        self.busy = Some(busy);
        self
    }

    /// Keeps the target's outstanding-request count raised until the body ends.
    pub fn with_guard(mut self, guard: crate::upstream::Outstanding) -> Self {
        self.guard = Some(guard);
        self
    }
}

/// Ends the exchange; returns what the last frame must wait for (sync-mode audit).
fn finish(
    pipeline: &Pipeline,
    exchange: &mut Option<Box<Exchange>>,
    route: Option<&crate::route::RouteRuntime>,
    outcome: Outcome,
) -> Option<tokio::sync::oneshot::Receiver<bool>> {
    let mut ex = exchange.take()?;
    ex.outcome = Some(outcome);
    pipeline.complete(&mut ex, route)
}

/// Ends a complete exchange: the frame goes out now, or once the audit record is
/// durable.
fn finish_complete(
    pipeline: &Pipeline,
    exchange: &mut Option<Box<Exchange>>,
    route: Option<&crate::route::RouteRuntime>,
    held: &mut Option<Held>,
    frame: Option<Frame<Bytes>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    match finish(pipeline, exchange, route, Outcome::Complete) {
        None => Poll::Ready(frame.map(Ok)),
        Some(ack) => {
            *held = Some(Held {
                frame,
                ack,
                timeout: Box::pin(tokio::time::sleep(crate::audit::ACK_TIMEOUT)),
            });
            poll_held(held, cx)
        }
    }
}

fn poll_held(held: &mut Option<Held>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let Some(h) = held.as_mut() else {
        return Poll::Ready(None);
    };
    let durable = match Pin::new(&mut h.ack).poll(cx) {
        Poll::Ready(r) => r.unwrap_or(false),
        Poll::Pending => {
            if h.timeout.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            false
        }
    };
    let frame = held.take().and_then(|h| h.frame);
    if durable {
        Poll::Ready(frame.map(Ok))
    } else {
        // Fail closed: the client must not see a complete response whose record is
        // not durable. The connection is cut before the last frame.
        Poll::Ready(Some(Err(Box::new(AuditNotDurable))))
    }
}

/// A sync-mode response whose audit record could not be made durable in time.
#[derive(Debug, thiserror::Error)]
#[error("the audit record could not be made durable")]
pub struct AuditNotDurable;

impl Body for ExchangeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if this.held.is_some() {
            return poll_held(this.held, cx);
        }
        if *this.finished {
            return Poll::Ready(None);
        }
        let route = this.route.as_deref();
        if let Some(trailer) = this.trailer.take() {
            *this.finished = true;
            finish(this.pipeline, this.exchange, route, Outcome::Failed);
            return Poll::Ready(Some(Ok(Frame::data(trailer))));
        }
        let polled = match this.source {
            Source::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Source::Upstream(incoming) => Pin::new(incoming)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(BoxError::from))),
        };
        match polled {
            Poll::Ready(Some(Ok(mut frame))) => {
                if let Some(data) = frame.data_mut() {
                    if let Some(ex) = this.exchange.as_mut() {
                        ex.response_bytes += data.len() as u64;
                        if *this.chunk_stages
                            && let Err(err) = this.pipeline.response_chunk(ex, data)
                        {
                            *this.finished = true;
                            ex.error = Some(err);
                            finish(this.pipeline, this.exchange, route, Outcome::Failed);
                            return Poll::Ready(Some(Err(Box::new(StreamLimitError))));
                        }
                        if ex.end_stream {
                            // A stage ended the stream (a block, with its error event in
                            // this chunk): drop the upstream and end after this frame.
                            *this.source = Source::Full(None);
                        }
                    }
                    if let Some(t) = this.timers {
                        this.idle.as_mut().reset(Instant::now() + t.idle);
                        if t.sse && !data.is_empty() {
                            *this.at_boundary = data.ends_with(b"\n\n") || data.ends_with(b"\r\r");
                        }
                    }
                }
                let ended = match this.source {
                    Source::Full(rest) => rest.is_none(),
                    Source::Upstream(incoming) => incoming.is_end_stream(),
                };
                if ended {
                    // Whatever a chunk stage still holds goes out with the last frame.
                    if *this.chunk_stages
                        && let Some(ex) = this.exchange.as_mut()
                        && let Some(extra) = this.pipeline.response_end(ex)
                        && let Some(data) = frame.data_mut()
                    {
                        let mut joined = BytesMut::with_capacity(data.len() + extra.len());
                        joined.extend_from_slice(data);
                        joined.extend_from_slice(&extra);
                        *data = joined.freeze();
                    }
                    *this.finished = true;
                    return finish_complete(this.pipeline, this.exchange, route, this.held, Some(frame), cx);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(ex) = this.exchange.as_mut() {
                    ex.error.get_or_insert(RequestError::UpstreamFailed);
                }
                if this.timers.is_some_and(|t| t.sse) {
                    // An event stream says why it ends instead of breaking off.
                    *this.source = Source::Full(None);
                    let request_id = this.exchange.as_ref().map(|e| e.request_id.clone()).unwrap_or_default();
                    *this.trailer = Some(sse_error_event(
                        "upstream_error",
                        "the upstream stream failed before it ended",
                        &request_id,
                        *this.at_boundary,
                    ));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                *this.finished = true;
                finish(this.pipeline, this.exchange, route, Outcome::Failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                *this.finished = true;
                if let (Source::Upstream(_), Some(ex)) = (&*this.source, this.exchange.as_mut()) {
                    ex.timings.upstream_end = Some(ex.started.elapsed());
                }
                let extra = match this.exchange.as_mut() {
                    Some(ex) if *this.chunk_stages => this.pipeline.response_end(ex),
                    _ => None,
                };
                // Whatever a chunk stage still holds goes out as a last frame.
                finish_complete(
                    this.pipeline,
                    this.exchange,
                    route,
                    this.held,
                    extra.map(Frame::data),
                    cx,
                )
            }
            Poll::Pending => {
                let Some(t) = *this.timers else { return Poll::Pending };
                let idle = this.idle.as_mut().poll(cx).is_ready();
                let total = this.deadline.as_mut().poll(cx).is_ready();
                if t.sse && this.cut.is_none() {
                    let stop = match (this.pipeline.oversight.oversight(), this.exchange.as_deref(), route) {
                        (Some(o), Some(ex), Some(r)) => Some(o.cut_signal(crate::oversight::owned_target(ex, r))),
                        _ => None,
                    };
                    *this.cut = Some(cut_signal(stop));
                }
                let cut = match this.cut.as_mut().map(|c| c.as_mut().poll(cx)) {
                    Some(Poll::Ready(why)) => Some(why),
                    _ => None,
                };
                if !idle && !total && cut.is_none() {
                    return Poll::Pending;
                }
                if let Some(ex) = this.exchange.as_mut() {
                    ex.error = Some(match cut {
                        Some(Cut::Shutdown) => RequestError::ShuttingDown,
                        Some(Cut::Stopped) => RequestError::Stopped { retry_after: None },
                        None => RequestError::UpstreamTimeout,
                    });
                }
                // Dropping the upstream body closes that connection.
                *this.source = Source::Full(None);
                if t.sse {
                    let request_id = this.exchange.as_ref().map(|e| e.request_id.clone()).unwrap_or_default();
                    let (code, message) = if cut == Some(Cut::Shutdown) {
                        (
                            "shutting_down",
                            "the gateway is shutting down; the stream was ended early".to_owned(),
                        )
                    } else if cut == Some(Cut::Stopped) {
                        (
                            "stopped_by_operator",
                            "this service was stopped by an operator; the stream was ended early".to_owned(),
                        )
                    } else {
                        let which = if total { "total" } else { "idle" };
                        (
                            "upstream_timeout",
                            format!("the upstream stream exceeded the {which} timeout"),
                        )
                    };
                    *this.trailer = Some(sse_error_event(code, &message, &request_id, *this.at_boundary));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                *this.finished = true;
                finish(this.pipeline, this.exchange, route, Outcome::Failed);
                Poll::Ready(Some(Err(Box::new(StreamLimitError))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.finished {
            return SizeHint::with_exact(0);
        }
        match &self.source {
            Source::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Source::Full(None) if self.trailer.is_none() => SizeHint::with_exact(0),
            Source::Upstream(incoming) if !self.chunk_stages => incoming.size_hint(),
            _ => SizeHint::default(),
        }
    }
}
