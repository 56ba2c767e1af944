//! Forwarding one request to an upstream pool: header hygiene (hop-by-hop headers
//! removed both ways, X-Forwarded-* and Forwarded set, credentials for the upstream
//! added), target choice with one retry on another target when the connection could
//! not be made and the body can be replayed, the first-byte timeout, and passive
//! health reporting. It never inspects bodies; stages do that.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::body::{RequestBody, client_fault, upstream_body};
use crate::context::{ConnInfo, Exchange};
use crate::error::RequestError;
use crate::route::RouteRuntime;
use crate::upstream::Outstanding;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers that proxies and CDNs use to pass a client address. From an untrusted peer
/// they are dropped: an upstream that believes one would log or rate-limit the wrong
/// client. `X-Real-IP` is then set to the peer.
const CLIENT_ADDRESS_HEADERS: [&str; 8] = [
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1) besides those a `Connection` header names.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of nine removals.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(&k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// Sets X-Forwarded-For/-Proto/-Host and Forwarded. Unless the listener trusts the
/// client's forwarding headers, any the client sent are replaced and other client
/// address headers (`X-Real-IP`, `True-Client-IP`, …) are dropped, so a client cannot
/// pose as another address. Call after [`strip_hop_by_hop`].
pub fn set_forwarding(headers: &mut HeaderMap, conn: &ConnInfo, original_host: Option<&str>, trust: bool) {
    let ip = conn.peer.ip().to_canonical();
    let proto = if conn.tls { "https" } else { "http" };
    let prior_xff = if trust {
        headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    } else {
        None
    };
    let prior_fwd = if trust {
        headers.get(&FORWARDED).and_then(|v| v.to_str().ok()).map(str::to_owned)
    } else {
        None
    };
    let ip_text = ip.to_string();
    if !trust {
        if headers.keys().any(|k| CLIENT_ADDRESS_HEADERS.contains(&k.as_str())) {
            for name in CLIENT_ADDRESS_HEADERS {
                headers.remove(name);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&ip_text) {
            headers.insert(X_REAL_IP.clone(), v);
        }
    }
    let xff = match prior_xff {
        Some(p) => format!("{p}, {ip_text}"),
        None => ip_text.clone(),
    };
    let mut fwd = String::with_capacity(64);
    fwd.push_str("for=");
    match ip {
        IpAddr::V4(_) => fwd.push_str(&ip_text),
        IpAddr::V6(_) => fwd.push_str(&forwarded_for(ip)),
    }
    fwd.push_str(";proto=");
    fwd.push_str(proto);
    if let Some(host) = original_host
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        fwd.push_str(";host=");
        fwd.push_str(host);
    }
    let fwd = match prior_fwd {
        Some(p) => format!("{p}, {fwd}"),
        None => fwd,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(FORWARDED.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    match original_host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST.clone(), h);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// RFC 9110 §9.2.2 idempotent methods: safe to send again after a connection died
/// before any response (nginx's `proxy_next_upstream` rule).
fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::PUT | http::Method::DELETE
    )
}

/// The connection closed or was reset before any byte of a response arrived (for
/// example a pooled keep-alive connection to a target that just died: a close seen
/// before the request was written, or a reset or broken pipe while writing it).
fn closed_before_response(err: &hyper_util::client::legacy::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            );
        }
        source = e.source();
    }
    false
}

/// The upstream's answer plus the outstanding-request guard for its target, which
/// must live until the response body ends.
#[derive(Debug)]
pub struct Upstreamed {
    pub response: Response<Incoming>,
    pub guard: Outstanding,
}

/// Sends the request to the route's pool. `budget` is what is left of the total
/// timeout; the first-byte timeout applies within it.
pub async fn forward(
    ex: &mut Exchange,
    route: &RouteRuntime,
    mut head: http::request::Parts,
    body: RequestBody,
    budget: Duration,
) -> Result<Upstreamed, RequestError> {
    let pool = &route.pool;
    // Hop-by-hop headers were removed before the forwarding headers were set
    // (`pipeline::handle`), so `Connection` cannot name those away.
    head.headers.remove(header::HOST);
    for (name, value) in &pool.headers {
        head.headers.insert(name.clone(), value.expose().clone());
    }
    let path_and_query = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    // A retry is possible only with a buffered body and another target to try.
    let replayable = match &body {
        RequestBody::Buffered(b) if pool.targets.len() > 1 => Some(b.clone()),
        _ => None,
    };
    let mut headers = Some(std::mem::take(&mut head.headers));
    let limits = route.config.limits;
    let timeouts = route.config.timeouts;
    let wait = timeouts.first_byte.min(budget);
    let tripped = Arc::new(AtomicU8::new(0));
    let mut body = Some(body);
    let mut exclude = None;

    // At most two attempts, the second on another target and only with a buffered body:
    // when the first could not connect (the upstream never saw the request), or when
    // an idempotent request's connection closed before any response.
    for attempt in 0..2 {
        let Some((index, guard)) = pool.pick(exclude) else {
            return Err(RequestError::NoHealthyUpstream);
        };
        let target = &pool.targets[index];
        ex.target = Some(Arc::clone(&target.label.0));
        let uri = pool
            .uri(index, &path_and_query)
            .map_err(|_| RequestError::UpstreamFailed)?;
        let this_body = match (body.take(), &replayable) {
            (Some(b), _) => b,
            (None, Some(bytes)) => RequestBody::Buffered(Bytes::clone(bytes)),
            (None, None) => return Err(RequestError::UpstreamConnect),
        };
        let mut builder = Request::builder()
            .method(head.method.clone())
            .uri(uri)
            .version(Version::HTTP_11);
        if let Some(h) = builder.headers_mut() {
            // Move the headers on the last possible attempt; copy them when a retry may follow.
            match (&replayable, headers.take()) {
                (Some(_), Some(saved)) => {
                    h.clone_from(&saved);
                    headers = Some(saved);
                }
                (_, Some(saved)) => *h = saved,
                (_, None) => {}
            }
            if !pool.http2
                && let Ok(v) = HeaderValue::from_str(target.target.authority.as_str())
            {
                h.insert(header::HOST, v);
            }
        }
        let request = builder
            .body(upstream_body(
                this_body,
                limits.max_body_bytes,
                timeouts.idle,
                Arc::clone(&tripped),
            ))
            .map_err(|_| RequestError::UpstreamFailed)?;
        ex.timings.upstream_sent = Some(ex.started.elapsed());
        let result = tokio::time::timeout(wait, pool.client().request(request)).await;
        match result {
            Ok(Ok(response)) => {
                ex.timings.upstream_headers = Some(ex.started.elapsed());
                let status = response.status().as_u16();
                pool.report(index, !matches!(status, 502..=504));
                return Ok(Upstreamed { response, guard });
            }
            Ok(Err(err)) => {
                // The client's own doing (a short or malformed body, a stall, too much):
                // answered as such and never charged to the target's health.
                if let Some(e) = client_fault(tripped.load(Ordering::Relaxed), false, limits.max_body_bytes) {
                    return Err(e);
                }
                let connect = err.is_connect();
                pool.record_error(index, if connect { "connect" } else { "protocol" });
                pool.report(index, false);
                tracing::debug!(target = %target.label.0, attempt, error = %err, "upstream request failed");
                let retry = connect || (idempotent(&head.method) && closed_before_response(&err));
                if retry && replayable.is_some() && attempt == 0 {
                    exclude = Some(index);
                    continue;
                }
                return Err(if connect {
                    RequestError::UpstreamConnect
                } else {
                    RequestError::UpstreamFailed
                });
            }
            Err(_) => {
                if let Some(e) = client_fault(tripped.load(Ordering::Relaxed), true, limits.max_body_bytes) {
                    return Err(e);
                }
                pool.record_error(index, "timeout");
                pool.report(index, false);
                return Err(RequestError::UpstreamTimeout);
            }
        }
    }
    Err(RequestError::UpstreamConnect)
}
