//! Listeners and connections: binds every configured listener and the admin listener,
//! accepts connections up to each listener's cap, terminates TLS (ALPN picks HTTP/2 or
//! HTTP/1.1; client certificates are verified when a CA is configured), serves HTTP/1.1
//! and HTTP/2 (h2c by prior knowledge where enabled) with bounded header sizes and a
//! header-read timeout, and drains gracefully: on shutdown it stops accepting, lets
//! in-flight exchanges finish up to the grace period, then cuts the rest.
//!
//! Threading: `server.workers` threads each run their own single-threaded event loop
//! with their own socket per listener (SO_REUSEPORT, so the kernel spreads
//! connections) and their own upstream connections. A request never changes thread,
//! which removes cross-thread wake-ups from the hot path (nginx's worker model). The
//! admin listener, signals, reloads and health checks run on the main runtime.

pub mod admin;
pub mod conn;
pub mod console;
pub mod erasure;
pub mod guard;
pub mod oidc;
pub mod oversight_api;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};

use crate::server::conn::{Drain, watcher};

use rampart_config::{Config, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::context::ConnInfo;
use crate::error::InitError;
use crate::metrics::Name;
use crate::runtime::Gateway;

/// Open connections per client IP on one listener, shared by its workers.
type PerIp = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One worker's share of a listener: its socket, the listener's connection cap and
/// per-IP counts.
type WorkerSocket = (Listener, std::net::TcpListener, Arc<Semaphore>, PerIp);

/// Releases a client IP's connection slot when the connection ends.
struct IpSlot {
    map: PerIp,
    ip: std::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Takes a connection slot for `ip`, or `None` when it already has `cap` open.
fn ip_slot(map: &PerIp, ip: std::net::IpAddr, cap: Option<usize>) -> Option<Option<IpSlot>> {
    let Some(cap) = cap else { return Some(None) };
    let mut counts = map.lock().unwrap_or_else(|p| p.into_inner());
    let n = counts.entry(ip).or_insert(0);
    if *n >= cap {
        return None;
    }
    *n += 1;
    Some(Some(IpSlot {
        map: Arc::clone(map),
        ip,
    }))
}

/// Concurrent HTTP/2 streams per client connection.
const H2_MAX_STREAMS: u32 = 256;

#[derive(Debug)]
struct Bound {
    config: Listener,
    /// One socket per worker, all bound to the same address with SO_REUSEPORT.
    sockets: Vec<std::net::TcpListener>,
}

/// Bound sockets, ready to serve.
#[derive(Debug)]
pub struct Server {
    gateway: Arc<Gateway>,
    listeners: Vec<Bound>,
    admin: Option<TcpListener>,
    grace: Duration,
    workers: usize,
}

/// Backlog of pending connections per socket.
const LISTEN_BACKLOG: i32 = 1024;

fn reuseport_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // The kernel only lets sockets of the same user share the port.
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

fn bind_workers(name: &str, addr: SocketAddr, workers: usize) -> Result<Vec<std::net::TcpListener>, InitError> {
    let err = |source| InitError::Bind {
        name: name.to_owned(),
        addr,
        source,
    };
    let first = reuseport_socket(addr).map_err(err)?;
    // With port 0 the kernel picked a port: the other workers join that one.
    let actual = first.local_addr().map_err(err)?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(reuseport_socket(actual).map_err(err)?);
    }
    Ok(sockets)
}

impl Server {
    /// Binds every listener of `config` (the config the gateway was built from).
    pub async fn bind(gateway: Arc<Gateway>, config: &Config) -> Result<Self, InitError> {
        let workers = config.server.workers.max(1);
        let mut listeners = Vec::new();
        for l in &config.listeners {
            listeners.push(Bound {
                config: l.clone(),
                sockets: bind_workers(&l.name, l.addr, workers)?,
            });
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| InitError::Bind {
                name: "admin".into(),
                addr,
                source,
            })?),
            None => None,
        };
        Ok(Self {
            gateway,
            listeners,
            admin,
            grace: config.server.shutdown_grace,
            workers,
        })
    }

    /// `(name, address)` of every bound listener, admin last as `"admin"`.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let mut out: Vec<(String, SocketAddr)> = self
            .listeners
            .iter()
            .filter_map(|b| {
                b.sockets
                    .first()
                    .and_then(|s| s.local_addr().ok())
                    .map(|a| (b.config.name.clone(), a))
            })
            .collect();
        if let Some(a) = self.admin.as_ref().and_then(|s| s.local_addr().ok()) {
            out.push(("admin".into(), a));
        }
        out
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut per_worker: Vec<Vec<WorkerSocket>> = (0..self.workers).map(|_| Vec::new()).collect();
        for bound in self.listeners {
            let limit = Arc::new(Semaphore::new(bound.config.max_connections));
            let per_ip: PerIp = Arc::default();
            for (w, socket) in bound.sockets.into_iter().enumerate() {
                per_worker[w].push((bound.config.clone(), socket, Arc::clone(&limit), Arc::clone(&per_ip)));
            }
        }
        let mut threads = Vec::new();
        for (w, sockets) in per_worker.into_iter().enumerate() {
            let gateway = Arc::clone(&self.gateway);
            let stop = stop_rx.clone();
            let grace = self.grace;
            let spawned = std::thread::Builder::new()
                .name(format!("rampart-worker-{w}"))
                .spawn(move || worker(w, sockets, gateway, stop, grace));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => tracing::error!(worker = w, error = %e, "cannot start worker thread"),
            }
        }
        let admin_drain: Drain = Arc::new(std::sync::Mutex::new(Some(GracefulShutdown::new())));
        let admin_task = self.admin.map(|admin| {
            #[allow(clippy::disallowed_methods)] // joined at shutdown (admin_task)
            tokio::spawn(crate::server::admin::serve(
                admin,
                Arc::clone(&self.gateway),
                Arc::clone(&admin_drain),
                stop_rx.clone(),
            ))
        });
        shutdown.await;
        tracing::info!(
            event = "shutdown",
            grace_ms = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX),
            "draining connections"
        );
        let _ = stop_tx.send(true);
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        let drained = tokio::task::spawn_blocking(move || {
            // Join every worker (no short-circuit), then report whether all drained.
            let results: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap_or(false)).collect();
            results.iter().all(|&drained| drained)
        })
        .await
        .unwrap_or(false);
        let _ = tokio::time::timeout(Duration::from_millis(200), drain(&admin_drain)).await;
        if drained {
            tracing::info!(event = "shutdown", "all connections drained");
        } else {
            tracing::warn!(event = "shutdown", "grace period over; remaining connections were cut");
        }
        self.gateway.access_log.flush(Duration::from_secs(2));
        self.gateway.close_audit();
    }
}

/// Waits for every connection watched by `drain` to finish.
async fn drain(drain: &Drain) {
    let graceful = drain.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(g) = graceful {
        g.shutdown().await;
    }
}

/// One worker thread: its own event loop, accept loops and connections. Returns
/// whether every connection finished within the grace period.
fn worker(
    id: usize,
    sockets: Vec<WorkerSocket>,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> bool {
    crate::upstream::set_worker(id);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, error = %e, "cannot start worker event loop");
            return false;
        }
    };
    let gw = Arc::clone(&gateway);
    let drained = rt.block_on(async move {
        let drain_handle: Drain = Arc::new(std::sync::Mutex::new(Some(GracefulShutdown::new())));
        let mut tasks = JoinSet::new();
        for (config, socket, limit, per_ip) in sockets {
            match TcpListener::from_std(socket) {
                Ok(socket) => {
                    tasks.spawn(accept_loop(
                        config,
                        socket,
                        limit,
                        per_ip,
                        Arc::clone(&gateway),
                        Arc::clone(&drain_handle),
                        stop.clone(),
                    ));
                }
                Err(e) => tracing::error!(worker = id, error = %e, "cannot register listener socket"),
            }
        }
        // Hand buffered access-log lines to the writer regularly.
        let flusher = {
            let gateway = Arc::clone(&gateway);
            #[allow(clippy::disallowed_methods)] // aborted at shutdown (flusher)
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::stages::access_log::FLUSH_INTERVAL);
                loop {
                    tick.tick().await;
                    gateway.access_log.flush_thread(&gateway.metrics);
                }
            })
        };
        let _ = stop.changed().await;
        while tasks.join_next().await.is_some() {}
        // Most of the grace period for exchanges to finish; then event streams still
        // open are ended with an error event, and get the rest to deliver it.
        let margin = (grace / 4).min(Duration::from_secs(1));
        let mut all_done = std::pin::pin!(drain(&drain_handle));
        let mut drained = tokio::time::timeout(grace - margin, &mut all_done).await.is_ok();
        if !drained {
            crate::body::cut_streams();
            drained = tokio::time::timeout(margin, &mut all_done).await.is_ok();
        }
        flusher.abort();
        gateway.access_log.flush_thread(&gateway.metrics);
        drained
    });
    // Exchanges cut at the end of the grace period complete when their tasks are
    // dropped with the event loop; hand over their log lines too.
    drop(rt);
    gw.access_log.flush_thread(&gw.metrics);
    drained
}

fn http_builder(cfg: &Listener) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    if cfg.tls.is_none() && !cfg.h2c {
        builder = builder.http1_only();
    }
    builder
}

async fn accept_loop(
    config: Listener,
    socket: TcpListener,
    limit: Arc<Semaphore>,
    per_ip: PerIp,
    gateway: Arc<Gateway>,
    drain: Drain,
    mut stop: watch::Receiver<bool>,
) {
    let name = Name(Arc::from(config.name.as_str()));
    let builder = Arc::new(http_builder(&config));
    let local = socket.local_addr().ok();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = socket.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(listener = %config.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let peer_ip = peer.ip().to_canonical();
        // An explicit cap holds for every peer; the default spares trusted proxies,
        // whose address every client behind them shares.
        let cap = config.max_connections_per_ip.or_else(|| {
            (!config.trusted_proxies.iter().any(|c| c.contains(peer_ip)))
                .then_some(rampart_config::defaults::MAX_CONNECTIONS_PER_IP)
        });
        let Some(ip_slot) = ip_slot(&per_ip, peer_ip, cap) else {
            gateway.metrics.connection_refused(&name);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let builder = Arc::clone(&builder);
        let Some(watcher) = watcher(&drain) else { return };
        let name = name.clone();
        let header_timeout = config.header_read_timeout;
        let tls = gateway.current().listener_tls.get(&config.name).cloned();
        let local = stream.local_addr().ok().or(local).unwrap_or(peer);
        // From accept on: a connection with no request in flight that sends nothing
        // for the header-read timeout is closed (silent sockets, idle HTTP/2, a TLS
        // handshake that never starts).
        let activity = Arc::new(crate::server::conn::Activity::default());
        let stream = crate::server::conn::IdleGuard::new(stream, header_timeout, Arc::clone(&activity));
        #[allow(clippy::disallowed_methods)] // one connection: ends with it, watched by the worker's graceful shutdown
        tokio::spawn(async move {
            gateway.metrics.connection_opened(&name);
            let mut info = ConnInfo {
                listener: Arc::clone(&name.0),
                peer,
                local,
                tls: tls.is_some(),
                client_cert: None,
            };
            match tls {
                None => serve(stream, info, &builder, &gateway, watcher, activity).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            activity.clear_began();
                            info.client_cert = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::from(c.as_ref()));
                            serve(tls_stream, info, &builder, &gateway, watcher, activity).await;
                        }
                        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
            }
            gateway.metrics.connection_closed(&name);
            drop(ip_slot);
            drop(permit);
        });
    }
}

async fn serve<I>(
    io: I,
    info: ConnInfo,
    builder: &auto::Builder<TokioExecutor>,
    gateway: &Arc<Gateway>,
    watcher: Watcher,
    activity: Arc<crate::server::conn::Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let gw = Arc::clone(gateway);
    let service = service_fn(move |req| {
        let runtime = gw.current();
        let info = Arc::clone(&info);
        // In flight from here until the response body is done or dropped.
        let began = activity.take_began();
        let busy = crate::server::conn::Activity::start(&activity);
        let hsts = if info.tls {
            runtime.listener_hsts.get(&*info.listener).cloned()
        } else {
            None
        };
        async move {
            let mut response = crate::exchange::handle(runtime, req, info, began).await;
            // The listener's, replacing any the upstream sent: the gateway owns the
            // transport, and an upstream must not turn HSTS off with `max-age=0`.
            if let Some(v) = hsts {
                response
                    .headers_mut()
                    .insert(http::header::STRICT_TRANSPORT_SECURITY, v);
            }
            Ok::<_, Infallible>(response.map(|body| body.with_busy(busy)))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
