//! Connection idleness: [`IdleGuard`] wraps a client connection from the moment it is
//! accepted and closes it when it has no request in flight and has sent nothing for
//! the listener's header-read timeout. That bounds silent sockets (which would
//! otherwise hold a connection slot forever, TLS handshake not even begun), HTTP/2
//! connections left idle, and the wait for a first request, independently of what the
//! HTTP layer times itself. It never looks at the bytes. It also notes when the first
//! byte of the next request arrived ([`Activity::take_began`]), so an exchange is timed
//! from there and not from when HTTP parsing finished. [`Drain`] hands every new
//! connection a graceful-shutdown watcher until shutdown begins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Hands out a connection watcher per accepted connection until shutdown takes it.
pub type Drain = Arc<std::sync::Mutex<Option<GracefulShutdown>>>;

/// A watcher for one new connection; `None` once draining started.
pub fn watcher(drain: &Drain) -> Option<Watcher> {
    drain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(GracefulShutdown::watcher)
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds after `base` at which the connection last became idle.
    idle_since_ms: AtomicU64,
    /// Nanoseconds after `base`, plus one, at which the first byte read while no
    /// request was in flight arrived; 0 when none is waiting to be taken.
    began_ns: AtomicU64,
    base: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            began_ns: AtomicU64::new(0),
            base: Instant::now(),
        }
    }
}

impl Activity {
    /// One request starts; it is in flight until the returned guard is dropped.
    pub fn start(this: &Arc<Self>) -> Busy {
        this.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(this))
    }

    /// When the first byte of the request now starting was read, if this connection
    /// saw it arrive while idle (HTTP/1; the first stream of an HTTP/2 connection).
    pub fn take_began(&self) -> Option<std::time::Instant> {
        match self.began_ns.swap(0, Ordering::Relaxed) {
            0 => None,
            ns => Some((self.base + Duration::from_nanos(ns - 1)).into_std()),
        }
    }

    /// Forgets a first byte noted so far (the TLS handshake's, which is not a request's).
    pub fn clear_began(&self) {
        self.began_ns.store(0, Ordering::Relaxed);
    }

    fn note_read(&self, at: Instant) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.began_ns.load(Ordering::Relaxed) == 0 {
            let ns = u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1);
            self.began_ns.store(ns + 1, Ordering::Relaxed);
        }
    }

    fn idle_since(&self) -> Instant {
        self.base + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }
}

/// A request in flight (held by its response body until the body ends).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// See the module docs. `Unpin` when the connection is (TLS needs that).
#[derive(Debug)]
pub struct IdleGuard<I> {
    inner: I,
    sleep: Pin<Box<Sleep>>,
    last_read: Instant,
    timeout: Duration,
    activity: Arc<Activity>,
}

impl<I> IdleGuard<I> {
    pub fn new(inner: I, timeout: Duration, activity: Arc<Activity>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            last_read: now,
            timeout,
            activity,
        }
    }

    pub fn get_ref(&self) -> &I {
        &self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleGuard<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_read = Instant::now();
                    this.activity.note_read(this.last_read);
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.activity.in_flight.load(Ordering::Relaxed) > 0 {
                    return Poll::Pending;
                }
                // Idle: the clock runs from the last byte read or the last response.
                let due = this.last_read.max(this.activity.idle_since()) + this.timeout;
                if this.sleep.deadline() != due {
                    this.sleep.as_mut().reset(due);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connection idle past the header-read timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleGuard<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_a_busy_one_is_not() {
        let short = Duration::from_millis(200);
        let (client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut guarded = IdleGuard::new(server, short, Arc::clone(&activity));
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        // A request in flight: silence is the upstream's time, not idleness.
        let (mut client2, server2) = tokio::io::duplex(64);
        let mut guarded = IdleGuard::new(server2, short, Arc::clone(&activity));
        let busy = Activity::start(&activity);
        #[allow(clippy::disallowed_methods)] // awaited below
        let read = tokio::spawn(async move { guarded.read(&mut [0u8; 8]).await.map(|_| guarded) });
        tokio::time::sleep(short * 4).await;
        assert!(!read.is_finished(), "a busy connection was cut");
        drop(busy);
        client2.write_all(b"x").await.unwrap();
        let mut guarded = read.await.unwrap().unwrap();
        // Idle again: closed once the timeout passes without a byte.
        assert_eq!(
            guarded.read(&mut buf).await.unwrap_err().kind(),
            std::io::ErrorKind::TimedOut
        );
        drop(client);
    }

    #[tokio::test]
    async fn the_first_byte_of_a_request_is_noted_once_and_not_while_one_is_in_flight() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut guarded = IdleGuard::new(server, Duration::from_secs(5), Arc::clone(&activity));
        let mut buf = [0u8; 4];
        assert_eq!(activity.take_began(), None);
        let before = std::time::Instant::now();
        client.write_all(b"GET ").await.unwrap();
        guarded.read_exact(&mut buf).await.unwrap();
        client.write_all(b"/ HT").await.unwrap();
        guarded.read_exact(&mut buf).await.unwrap();
        // The first read, not the second, and only once.
        let began = activity.take_began().unwrap();
        assert!(began >= before && began <= std::time::Instant::now());
        assert_eq!(activity.take_began(), None);
        // Bytes read while a request is in flight belong to it.
        let busy = Activity::start(&activity);
        client.write_all(b"TP/1").await.unwrap();
        guarded.read_exact(&mut buf).await.unwrap();
        assert_eq!(activity.take_began(), None);
        drop(busy);
        client.write_all(b".1\r\n").await.unwrap();
        guarded.read_exact(&mut buf).await.unwrap();
        assert!(activity.take_began().is_some());
    }
}
