//! Listeners and connections: binds every configured listener and the admin listener,
//! accepts connections up to each listener's cap, terminates TLS (ALPN picks HTTP/2 or
//! HTTP/1.1; client certificates are verified when a CA is configured), serves HTTP/1.1
//! and HTTP/2 (h2c by prior knowledge where enabled) with bounded header sizes and a
//! header-read timeout, and drains gracefully: on shutdown it stops accepting, lets
//! in-flight exchanges finish up to the grace period, then cuts the rest.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};

/// Hands out a connection watcher per accepted connection until shutdown takes it.
pub type Drain = Arc<std::sync::Mutex<Option<GracefulShutdown>>>;

/// A watcher for one new connection; `None` once draining started.
pub fn watcher(drain: &Drain) -> Option<Watcher> {
    drain.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(GracefulShutdown::watcher)
}
use rampart_config::{Config, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::context::ConnInfo;
use crate::error::InitError;
use crate::metrics::Name;
use crate::runtime::Gateway;

/// Concurrent HTTP/2 streams per client connection.
const H2_MAX_STREAMS: u32 = 256;

#[derive(Debug)]
struct Bound {
    config: Listener,
    socket: TcpListener,
}

/// Bound sockets, ready to serve.
#[derive(Debug)]
pub struct Server {
    gateway: Arc<Gateway>,
    listeners: Vec<Bound>,
    admin: Option<TcpListener>,
    grace: Duration,
}

async fn bind(name: &str, addr: SocketAddr) -> Result<TcpListener, InitError> {
    TcpListener::bind(addr).await.map_err(|source| InitError::Bind {
        name: name.to_owned(),
        addr,
        source,
    })
}

impl Server {
    /// Binds every listener of `config` (the config the gateway was built from).
    pub async fn bind(gateway: Arc<Gateway>, config: &Config) -> Result<Self, InitError> {
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let socket = bind(&l.name, l.addr).await?;
            listeners.push(Bound {
                config: l.clone(),
                socket,
            });
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(bind("admin", addr).await?),
            None => None,
        };
        Ok(Self {
            gateway,
            listeners,
            admin,
            grace: config.server.shutdown_grace,
        })
    }

    /// `(name, address)` of every bound listener, admin last as `"admin"`.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let mut out: Vec<(String, SocketAddr)> = self
            .listeners
            .iter()
            .filter_map(|b| b.socket.local_addr().ok().map(|a| (b.config.name.clone(), a)))
            .collect();
        if let Some(a) = self.admin.as_ref().and_then(|s| s.local_addr().ok()) {
            out.push(("admin".into(), a));
        }
        out
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let drain: Drain = Arc::new(std::sync::Mutex::new(Some(GracefulShutdown::new())));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for bound in self.listeners {
            tasks.spawn(accept_loop(
                bound,
                Arc::clone(&self.gateway),
                Arc::clone(&drain),
                stop_rx.clone(),
            ));
        }
        if let Some(admin) = self.admin {
            tasks.spawn(crate::admin::serve(
                admin,
                Arc::clone(&self.gateway),
                Arc::clone(&drain),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        tracing::info!(event = "shutdown", grace_ms = self.grace.as_millis() as u64, "draining connections");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        let graceful = drain.lock().unwrap_or_else(|p| p.into_inner()).take();
        let drained = async move {
            if let Some(g) = graceful {
                g.shutdown().await;
            }
        };
        match tokio::time::timeout(self.grace, drained).await {
            Ok(()) => tracing::info!(event = "shutdown", "all connections drained"),
            Err(_) => tracing::warn!(event = "shutdown", "grace period over; cutting remaining connections"),
        }
        self.gateway.access_log.flush(Duration::from_secs(2));
    }
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

async fn accept_loop(bound: Bound, gateway: Arc<Gateway>, drain: Drain, mut stop: watch::Receiver<bool>) {
    let Bound { config, socket } = bound;
    let name = Name(Arc::from(config.name.as_str()));
    let builder = Arc::new(http_builder(&config));
    let limit = Arc::new(Semaphore::new(config.max_connections));
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
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let builder = Arc::clone(&builder);
        let Some(watcher) = watcher(&drain) else { return };
        let name = name.clone();
        let header_timeout = config.header_read_timeout;
        let tls = gateway.current().listener_tls.get(&config.name).cloned();
        let local = stream.local_addr().ok().or(local).unwrap_or(peer);
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
                None => serve(stream, info, &builder, &gateway, watcher).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            info.client_cert = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::from(c.as_ref()));
                            serve(tls_stream, info, &builder, &gateway, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
            }
            gateway.metrics.connection_closed(&name);
            drop(permit);
        });
    }
}

async fn serve<I>(io: I, info: ConnInfo, builder: &auto::Builder<TokioExecutor>, gateway: &Arc<Gateway>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let gw = Arc::clone(gateway);
    let service = service_fn(move |req| {
        let runtime = gw.current();
        let info = Arc::clone(&info);
        async move { Ok::<_, Infallible>(crate::pipeline::handle(runtime, req, info).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
