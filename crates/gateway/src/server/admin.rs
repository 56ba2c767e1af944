//! The admin listener (loopback by default, separate from client traffic): liveness
//! (`GET /healthz`), readiness (`GET /readyz`: every pool has a target in rotation and
//! the gateway is not draining), Prometheus metrics (`GET /metrics`) and config reload
//! (`POST /admin/reload`), and the right to erasure (`POST /admin/audit/erase` with
//! `{"subject": "…"}`: destroys the subject's payload key and records the erasure in the
//! audit trail, and clears the subject's review previews). The stop switch and the
//! review queue are `oversight_api`'s. It never proxies anything. Health and readiness
//! are open (for orchestrators); metrics need a credential whose roles grant `metrics`
//! unless `admin.public_metrics` (loopback only); reload and erase need `admin`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use rampart_identity::Action;

use crate::runtime::Gateway;
use crate::server::guard::{authorize, json};

/// Largest admin request body read (a console form with a long reason fits; nothing larger is needed).
const MAX_ADMIN_BODY: u64 = 16 * 1024;

async fn route(
    gateway: Arc<Gateway>,
    method: Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Option<Bytes>,
    draining: bool,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    if path == "/console" || path.starts_with("/console/") {
        return crate::server::console::handle(gateway, &method, uri, headers, body).await;
    }
    if crate::server::oversight_api::owns(path) {
        return crate::server::oversight_api::handle(gateway, &method, uri, headers, body, "admin_api").await;
    }
    let needs = match (&method, path) {
        (&Method::GET, "/metrics") if !gateway.current().config.admin.public_metrics => Some(Action::Metrics),
        (&Method::POST, "/admin/reload" | "/admin/audit/erase") => Some(Action::Admin),
        _ => None,
    };
    let mut actor = String::new();
    if let Some(action) = needs {
        match authorize(&gateway, headers, &[action]).await {
            Ok(p) => actor = crate::server::oversight_api::actor_name(&p),
            Err(refused) => return refused,
        }
    }
    match (method, path) {
        (Method::GET, "/healthz") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        (Method::GET, "/readyz") => {
            let ready = !draining && gateway.current().ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let text = if draining {
                "draining"
            } else if ready {
                "ready"
            } else {
                "no healthy upstream target"
            };
            json(status, serde_json::json!({"status": text}))
        }
        (Method::GET, "/metrics") => {
            gateway.refresh_gauges();
            let mut r = Response::new(Full::new(Bytes::from(gateway.metrics.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        (Method::POST, "/admin/reload") => {
            let gw = Arc::clone(&gateway);
            match tokio::task::spawn_blocking(move || gw.reload("admin_api")).await {
                Ok(Ok(())) => json(StatusCode::OK, serde_json::json!({"status": "reloaded"})),
                Ok(Err(e)) => json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({"error": {"code": "invalid_config", "message": e.to_string()}}),
                ),
                Err(_) => json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": {"code": "reload_failed", "message": "reload task failed"}}),
                ),
            }
        }
        (Method::POST, "/admin/audit/erase") => {
            crate::server::erasure::erase(&gateway, body, "admin_api", &actor).await
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/admin/reload" | "/admin/audit/erase") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "method not allowed"}}),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": "not_found", "message": "no such admin endpoint"}}),
        ),
    }
}

pub async fn serve(
    socket: TcpListener,
    gateway: Arc<Gateway>,
    drain: crate::server::conn::Drain,
    mut stop: watch::Receiver<bool>,
) {
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let (stream, _) = tokio::select! {
            r = socket.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let gateway = Arc::clone(&gateway);
        let draining = Arc::clone(&draining);
        let Some(watcher) = crate::server::conn::watcher(&drain) else {
            return;
        };
        #[allow(clippy::disallowed_methods)] // one admin connection: ends with it, watched by `drain`
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let gateway = Arc::clone(&gateway);
                let draining = draining.load(std::sync::atomic::Ordering::Relaxed);
                async move {
                    let (parts, incoming) = req.into_parts();
                    let body = if parts.method == Method::POST {
                        crate::body::read_bounded(incoming, MAX_ADMIN_BODY, Duration::from_secs(5))
                            .await
                            .ok()
                    } else {
                        None
                    };
                    Ok::<_, Infallible>(
                        route(
                            gateway,
                            parts.method.clone(),
                            &parts.uri,
                            &parts.headers,
                            body,
                            draining,
                        )
                        .await,
                    )
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
}
