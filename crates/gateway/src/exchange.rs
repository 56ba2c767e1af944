//! One exchange end to end: the request's Host and path checked, the route matched,
//! the pipeline's request stages run, the upstream called (`proxy`), the response
//! stages run and the response built around an `ExchangeBody` — and every failure on
//! the way turned into one JSON error response (`error_response`, the only place one
//! is built). `server.rs` calls [`handle`] for every request.

use crate::body::{BodyTimers, ExchangeBody, RequestBody, Source};
use crate::context::{ConnInfo, Decision, Exchange};
use crate::error::RequestError;
use crate::pipeline::Pipeline;
use crate::route::RouteRuntime;
use crate::runtime::Runtime;
use crate::stage::RequestParts;
use crate::stages::request_id::X_REQUEST_ID;
use crate::trace::Trace;
use crate::upstream::forward as proxy;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use rampart_config::Protocol;
use std::sync::Arc;

/// Refuses paths an upstream could read as another path than the router did: dot
/// segments (plain or percent-encoded, also with path parameters as in `..;x`, which
/// Tomcat, Jetty and Spring treat as `..`), empty segments inside the path (`//`,
/// which many servers merge), encoded separators and backslashes.
fn path_is_clean(path: &str) -> bool {
    fn is_dot(seg: &[u8]) -> bool {
        // "." or "..", each dot possibly written as %2e / %2E, ignoring any path
        // parameters after `;` (or its encoding %3b).
        let mut dots = 0;
        let mut rest = seg;
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2].eq_ignore_ascii_case(&b'e') {
                rest = &rest[3..];
            } else if rest[0] == b';'
                || (rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'3' && rest[2].eq_ignore_ascii_case(&b'b'))
            {
                break;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    }
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.contains(&b'\\') {
        return false;
    }
    // Encoded slash or backslash: %2f / %5c in any case.
    let encoded_separator = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && ((w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
                || (w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')))
    });
    let segments: Vec<&[u8]> = bytes[1..].split(|&b| b == b'/').collect();
    // An empty segment is allowed only last (a trailing slash).
    let empty_inside = segments.iter().rev().skip(1).any(|s| s.is_empty());
    !encoded_separator && !empty_inside && !segments.iter().any(|s| is_dot(s))
}

/// Whether `authority` is `host` or `host:port` with a decimal port (an IPv6 host in
/// brackets). `http::uri::Authority` keeps a non-numeric port without complaint.
fn port_ok(authority: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok();
    match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, "")) => true,
            Some((_, rest)) => rest.strip_prefix(':').is_some_and(digits),
            None => false,
        },
        None => authority.split_once(':').is_none_or(|(_, p)| digits(p)),
    }
}

/// The request's Host, checked as RFC 9112 §3.2 asks: HTTP/1.1 requests carry exactly
/// one Host header; it (and HTTP/2's `:authority`) is a host with an optional port, no
/// user information. Returns the lower-cased host without port, `Ok(None)` when an
/// HTTP/1.0 request has none.
fn request_host(req: &Request<Incoming>) -> Result<Option<String>, RequestError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(RequestError::BadRequest("more than one Host header"));
    }
    let header_value = match first {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| RequestError::BadRequest("the Host header is not text"))?,
        ),
        None => None,
    };
    let authority = match (req.uri().authority(), header_value) {
        (Some(a), Some(h)) if req.version() == http::Version::HTTP_2 && !a.as_str().eq_ignore_ascii_case(h) => {
            return Err(RequestError::BadRequest(":authority and Host differ"));
        }
        (Some(a), _) => a.as_str().to_owned(),
        (None, Some(h)) => h.to_owned(),
        (None, None) if req.version() <= http::Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(RequestError::BadRequest("the request has no Host")),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(RequestError::BadRequest("the Host is not a valid host[:port]"));
    }
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|_| RequestError::BadRequest("the Host is not a valid host[:port]"))?;
    let bad_port = !port_ok(&authority);
    if parsed.host().is_empty() || bad_port {
        return Err(RequestError::BadRequest("the Host is not a valid host[:port]"));
    }
    Ok(Some(parsed.host().to_ascii_lowercase()))
}

/// Handles one request end to end. Never fails: every error becomes a JSON response.
/// `began` is when the request's first byte was read, when the connection knows it.
pub async fn handle(
    rt: Arc<Runtime>,
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    began: Option<std::time::Instant>,
) -> Response<ExchangeBody> {
    let pipeline = Arc::clone(&rt.pipeline);
    let mut ex = Box::new(Exchange::new(
        conn,
        req.method().clone(),
        req.uri().path().to_owned(),
        began,
    ));
    let host = request_host(&req);
    ex.user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    pipeline.assign_request_id(&mut ex, req.headers());
    // Without `[traces]` the exchange never looks for a trace in its stash.
    let traced = pipeline.begin_trace(&mut ex, req.headers());
    ex.client_ip = rt.client_ip(&ex.conn.listener, ex.conn.peer.ip(), req.headers());

    ex.host = match host {
        Ok(h) => h,
        Err(e) => return error_response(pipeline, ex, None, e),
    };
    if !path_is_clean(&ex.path) {
        return error_response(pipeline, ex, None, RequestError::InvalidPath);
    }
    let route = match rt
        .router
        .route(&ex.conn.listener, ex.host.as_deref(), &ex.method, &ex.path)
    {
        Ok(r) => Arc::clone(r),
        Err(e) => return error_response(pipeline, ex, None, e),
    };
    ex.route = Some(Arc::clone(&route.name));
    ex.protocol = route.config.protocol;
    ex.upstream = Some(Arc::clone(&route.pool.name.0));
    let total = route.config.timeouts.total;
    let deadline = tokio::time::Instant::now() + total;

    let (head, incoming) = req.into_parts();
    let mut parts = RequestParts {
        head,
        body: RequestBody::Streaming(incoming),
    };
    let http1 = parts.head.version <= http::Version::HTTP_11;
    let staged = tokio::time::timeout(total, pipeline.request_stages(&mut ex, &route, &mut parts)).await;
    if traced && let (Some(t), Some(body)) = (ex.stash.get_mut::<Trace>(), ex.body_json.as_ref()) {
        t.llm_request(body);
    }
    // The parsed body served the request stages; it need not live as long as a stream.
    ex.body_json = None;
    let refused = match staged {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(RequestError::BodyTimeout),
    };
    if let Some(e) = refused {
        // A refused request's body may be unread: on HTTP/1.1 the connection cannot be
        // reused safely, so say so instead of letting the client send into a closing socket.
        let unread = matches!(parts.body, RequestBody::Streaming(_))
            || matches!(
                e,
                RequestError::BodyTooLarge { .. } | RequestError::BodyTimeout | RequestError::BodyRead
            );
        let mut response = error_response(pipeline, ex, Some(route), e);
        if http1 && unread {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }

    let host = ex.host.clone();
    // Hop-by-hop headers go first, so a client naming X-Forwarded-For or Forwarded in
    // `Connection` cannot remove what the gateway sets next.
    proxy::strip_hop_by_hop(&mut parts.head.headers);
    proxy::set_forwarding(
        &mut parts.head.headers,
        &ex.conn,
        host.as_deref(),
        rt.trusts_peer(&ex.conn.listener, ex.conn.peer.ip()),
    );
    if traced && let Some(t) = ex.stash.get::<Trace>() {
        t.propagate(&mut parts.head.headers);
    }
    let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
    let upstreamed = match proxy::forward(&mut ex, &route, parts.head, parts.body, budget).await {
        Ok(u) => u,
        Err(e) => return error_response(pipeline, ex, Some(route), e),
    };

    let (mut head, incoming) = upstreamed.response.into_parts();
    if traced && let Some(t) = ex.stash.get_mut::<Trace>() {
        t.upstream_answered(head.status);
    }
    proxy::strip_hop_by_hop(&mut head.headers);
    if let Err(e) = pipeline.response_stages(&mut ex, &route, &mut head) {
        return error_response(pipeline, ex, Some(route), e);
    }
    let content_holds = pipeline.content.holds_response(&ex, &head);
    let output_holds = pipeline.output.holds_response(&ex, &route, &head);
    if content_holds || output_holds {
        // The content policy and the output hardening see the whole body before the
        // client sees the head, so a block can still be a clean 502.
        let limit = if content_holds {
            pipeline.content.max_response_bytes(&ex)
        } else {
            rampart_config::defaults::MAX_INSPECTED_RESPONSE_BYTES
        };
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let read = tokio::time::timeout(
            budget,
            crate::body::read_bounded(incoming, limit, route.config.timeouts.idle),
        )
        .await;
        ex.timings.upstream_end = Some(ex.started.elapsed());
        let body = match read {
            Ok(Ok(b)) => b,
            Ok(Err(RequestError::BodyTooLarge { .. })) => {
                return error_response(pipeline, ex, Some(route), RequestError::ResponseTooLarge { limit });
            }
            Ok(Err(RequestError::BodyTimeout)) | Err(_) => {
                return error_response(pipeline, ex, Some(route), RequestError::UpstreamTimeout);
            }
            Ok(Err(_)) => return error_response(pipeline, ex, Some(route), RequestError::UpstreamFailed),
        };
        let body = match pipeline.content.on_response_body(&mut ex, &mut head.headers, body) {
            Ok(b) => b,
            Err(e) => return error_response(pipeline, ex, Some(route), e),
        };
        // Only what the output stage asked to hold is hardened: a body held for the
        // content policy alone (health, metadata) passes as it is.
        let body = if output_holds {
            match pipeline.output.on_response_body(&mut ex, &route, &mut head, body).await {
                Ok(b) => b,
                Err(e) => return error_response(pipeline, ex, Some(route), e),
            }
        } else {
            body
        };
        if let Err(e) = pipeline.watch.on_answers(&mut ex, &route) {
            return error_response(pipeline, ex, Some(route), e);
        }
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        ex.status = Some(head.status);
        ex.timings.response_headers = Some(ex.started.elapsed());
        let body =
            ExchangeBody::new(Source::Full(Some(body)), ex, pipeline, Some(route), None).with_guard(upstreamed.guard);
        return Response::from_parts(head, body);
    }
    let sse = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::body::is_event_stream);
    ex.status = Some(head.status);
    ex.timings.response_headers = Some(ex.started.elapsed());
    let timers = BodyTimers {
        idle: route.config.timeouts.idle,
        deadline,
        sse,
    };
    let body = ExchangeBody::new(Source::Upstream(incoming), ex, pipeline, Some(route), Some(timers))
        .with_guard(upstreamed.guard);
    Response::from_parts(head, body)
}

/// The one place an error becomes a response.
fn error_response(
    pipeline: Arc<Pipeline>,
    mut ex: Box<Exchange>,
    route: Option<Arc<RouteRuntime>>,
    err: RequestError,
) -> Response<ExchangeBody> {
    let status = err.status();
    let protocol = match &route {
        Some(r) => r.config.protocol,
        None if crate::error::kserve_path(&ex.path) => Protocol::Kserve,
        None => Protocol::Json,
    };
    let body = err.body(protocol, &ex.request_id);
    let extra = err.extra_headers();
    ex.decide(if status.is_server_error() {
        Decision::Error
    } else {
        Decision::Block
    });
    ex.status = Some(status);
    ex.error = Some(err);
    ex.timings.response_headers = Some(ex.started.elapsed());
    let request_id = HeaderValue::from_str(&ex.request_id).ok();
    let mut response = Response::new(ExchangeBody::new(Source::Full(Some(body)), ex, pipeline, route, None));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = request_id {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    for (name, value) in extra {
        headers.insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ConnInfo;
    use crate::metrics::Metrics;
    use crate::runtime::Runtime;
    use crate::stage::{Flow, Stage};
    use crate::stages::access_log::AccessLogWriter;
    use bytes::Bytes;

    const CONFIG: &str = r#"
[admin]
enabled = false
[[listeners]]
name = "main"
listen = "127.0.0.1:0"
[defaults.limits]
max_body_bytes = 1000
max_json_depth = 8
[[upstreams]]
name = "u"
targets = ["http://127.0.0.1:9"]
[[routes]]
name = "public"
path_prefix = "/v1/"
upstream = "u"
protocol = "openai"
public = true
[[routes]]
name = "closed"
path_prefix = "/closed/"
upstream = "u"
"#;

    fn runtime() -> Runtime {
        let config = rampart_config::from_str(CONFIG, "test.toml", std::path::Path::new(".")).unwrap();
        let log = AccessLogWriter::start().unwrap();
        let store = rampart_limits::LimitStore::default();
        Runtime::build(config, &Arc::new(Metrics::new()), &log, &store, None, None).unwrap()
    }

    fn route(rt: &Runtime, path: &str) -> Arc<RouteRuntime> {
        Arc::clone(rt.router.route("main", None, &http::Method::POST, path).unwrap())
    }

    fn exchange() -> Exchange {
        let conn = Arc::new(ConnInfo {
            listener: Arc::from("main"),
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            tls: false,
            client_cert: None,
        });
        let mut ex = Exchange::new(conn, http::Method::POST, "/v1/chat/completions".into(), None);
        ex.request_id = "test-1".into();
        ex
    }

    fn request(body: &'static str) -> RequestParts {
        let (head, ()) = http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        RequestParts {
            head,
            body: RequestBody::Buffered(Bytes::from_static(body.as_bytes())),
        }
    }

    /// The contract every stage must meet. Add each new stage to `stage_compliance`.
    async fn compliance<S: Stage>(stage: &S, rt: &Runtime) {
        let public = route(rt, "/v1/chat/completions");
        // A benign request on a public route passes every stage (as the body stage
        // leaves it: parsed once, for every stage after it).
        let mut ex = exchange();
        let text = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;
        ex.body_json = serde_json::from_str(text).ok();
        let mut req = request(text);
        assert!(
            matches!(stage.on_request(&mut ex, &public, &mut req).await, Flow::Continue),
            "{} refused a benign request",
            S::NAME
        );
        // A benign response head passes and keeps its status.
        let (mut head, ()) = http::Response::new(()).into_parts();
        assert!(matches!(stage.on_response(&mut ex, &public, &mut head), Flow::Continue));
        assert_eq!(head.status, http::StatusCode::OK);
        // Stages that do not ask for chunks leave them alone.
        if !stage.wants_chunks(&public) {
            let mut chunk = Bytes::from_static(b"data: {}\n\n");
            assert!(matches!(stage.on_response_chunk(&mut ex, &mut chunk), Flow::Continue));
            assert_eq!(&chunk[..], b"data: {}\n\n");
        }
        // Findings never carry raw values: the type has no field for them. Completion
        // must not panic, whatever the exchange looks like.
        ex.status = Some(http::StatusCode::OK);
        stage.on_complete(&ex);
        let bare = exchange();
        stage.on_complete(&bare);
    }

    #[tokio::test]
    async fn stage_compliance() {
        let rt = runtime();
        let p = &rt.pipeline;
        compliance(&p.request_id, &rt).await;
        compliance(&p.identify, &rt).await;
        compliance(&p.authorize, &rt).await;
        compliance(&p.limit, &rt).await;
        compliance(&p.body, &rt).await;
        compliance(&p.audit, &rt).await;
        compliance(&p.model, &rt).await;
        compliance(&p.validate, &rt).await;
        compliance(&p.content, &rt).await;
        compliance(&p.tokens, &rt).await;
        compliance(&p.metrics, &rt).await;
        compliance(&p.access_log, &rt).await;
        compliance(&p.trace, &rt).await;
    }

    #[tokio::test]
    async fn identify_fails_closed() {
        let rt = runtime();
        let closed = route(&rt, "/closed/x");
        let mut req = request("{}");
        let flow = rt
            .pipeline
            .identify
            .on_request(&mut exchange(), &closed, &mut req)
            .await;
        assert!(matches!(
            flow,
            Flow::Reject(RequestError::Unauthenticated("missing_credentials"))
        ));
    }

    #[tokio::test]
    async fn body_stage_enforces_size_and_depth() {
        let rt = runtime();
        let public = route(&rt, "/v1/chat/completions");
        let stage = &rt.pipeline.body;
        let mut deep = request("[[[[[[[[[[]]]]]]]]]]");
        let flow = stage.on_request(&mut exchange(), &public, &mut deep).await;
        assert!(matches!(flow, Flow::Reject(RequestError::JsonTooDeep { limit: 8 })));
        let mut big = request("x");
        big.body = RequestBody::Buffered(Bytes::from(vec![b' '; 1001]));
        let flow = stage.on_request(&mut exchange(), &public, &mut big).await;
        assert!(matches!(flow, Flow::Reject(RequestError::BodyTooLarge { limit: 1000 })));
        let mut declared = request("{}");
        declared
            .head
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5000"));
        let flow = stage.on_request(&mut exchange(), &public, &mut declared).await;
        assert!(matches!(flow, Flow::Reject(RequestError::BodyTooLarge { .. })));
        // Accepted bodies are forwarded with an exact length.
        let mut ok = request(r#"{"a":[1,2]}"#);
        assert!(matches!(
            stage.on_request(&mut exchange(), &public, &mut ok).await,
            Flow::Continue
        ));
        assert_eq!(ok.head.headers[header::CONTENT_LENGTH], "11");
    }

    #[test]
    fn dot_segments_are_refused() {
        assert!(path_is_clean("/v1/chat/completions"));
        assert!(path_is_clean("/v2/models/iris/infer"));
        assert!(path_is_clean("/v1/files/a.b.c"));
        assert!(path_is_clean("/v2/models/iris/"));
        assert!(path_is_clean("/"));
        assert!(path_is_clean("/v1/x;y/z"));
        assert!(path_is_clean("/v1/...;/z"));
        for good in ["a.test", "a.test:8080", "[::1]", "[::1]:443", "10.0.0.1:1"] {
            assert!(port_ok(good), "{good}");
        }
        for bad in ["a.test:port", "a.test:", "a.test:1:2", "[::1]x", "[::1", "a:99999"] {
            assert!(!port_ok(bad), "{bad}");
        }
        for bad in [
            "/v1/../admin",
            "/v1/./x",
            "/v1/%2e%2e/admin",
            "/v1/.%2E/admin",
            "/v1/%2E/x",
            "/v1%2fadmin",
            "/v1\\..\\admin",
            "relative",
            "/public/..;/internal/admin",
            "/public/..;jsessionid=x/internal",
            "/public/.;/x",
            "/public/%2e%2e;/internal",
            "/public/..%3b/internal",
            "/public/%2E%2E%3Bx/internal",
            "/v2/models//iris/infer",
            "/v2//models/iris/infer",
            "//v2/models/iris",
        ] {
            assert!(!path_is_clean(bad), "{bad}");
        }
    }
}
