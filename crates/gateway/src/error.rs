//! Gateway errors, typed per phase. [`RequestError`] is the one place that maps a
//! request-phase failure to its status code, JSON body and metric label; nothing else
//! in the gateway builds an error response. [`InitError`] covers building a runtime
//! from config (certificates, keys) and binding listeners.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rampart_config::Protocol;

/// Why a request was refused or failed. The message never contains secrets or
/// request content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("no route matches this request")]
    NoRoute,
    /// 429: a rate, concurrency or quota limit refused the request.
    #[error("{}", .0.message)]
    Limited(Box<rampart_limits::Refusal>),
    /// 403: the client's address is not allowed on this route.
    #[error("the client address is not allowed on this route")]
    IpDenied,
    #[error("the request path has dot segments or encoded separators")]
    InvalidPath,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 401; the code says why without saying which part of a secret was wrong.
    #[error("authentication failed: {0}")]
    Unauthenticated(&'static str),
    /// 403 for a known caller without permission.
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("JSON body is nested deeper than the limit of {limit}")]
    JsonTooDeep { limit: u32 },
    #[error("request body is not valid JSON: {reason}")]
    InvalidJson { reason: &'static str },
    /// 400: an object in the body names a key twice; parsers disagree on which wins.
    #[error("{path}: a key appears twice in one JSON object")]
    DuplicateKey { path: String },
    /// 415: the body's media type or content coding is not one this route reads.
    #[error("{0}")]
    UnsupportedMedia(&'static str),
    /// 400: the request's framing or headers are malformed (Host, chunked encoding).
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// 502: the upstream's answer cannot be inspected as the route's policy requires
    /// (not UTF-8, an unparseable stream event, an unknown content coding).
    #[error("the response could not be inspected: {0}")]
    ResponseUninspectable(&'static str),
    #[error("request body was not received within the idle timeout")]
    BodyTimeout,
    #[error("request body could not be read")]
    BodyRead,
    #[error("no healthy upstream target is available")]
    NoHealthyUpstream,
    #[error("could not connect to the upstream")]
    UpstreamConnect,
    #[error("the upstream did not answer within the timeout")]
    UpstreamTimeout,
    #[error("the upstream failed to answer")]
    UpstreamFailed,
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// 503: the audit trail cannot take another record (its store is down or behind,
    /// and the policy is to refuse rather than lose records).
    #[error("the audit trail is not accepting records; try again shortly")]
    AuditUnavailable,
    /// 400: the request carries something the route's content policy blocks. Names
    /// the kinds, never the values.
    #[error("the request was blocked by the content policy: {kinds}")]
    ContentBlocked { kinds: String },
    /// 502: the upstream's answer carries something the policy blocks.
    #[error("the response was blocked by the content policy: {kinds}")]
    ResponseBlocked { kinds: String },
    /// 502: a response that must be inspected whole is larger than the policy allows.
    #[error("the response is larger than the {limit} bytes the content policy inspects")]
    ResponseTooLarge { limit: u64 },
    /// 429: the caller's privacy budget for noisy answers on this route is spent until
    /// the window renews.
    #[error("the privacy budget for this route's answers is spent; it renews in {retry_after} s")]
    PrivacyBudgetSpent { retry_after: u64 },
    /// 403: a detector blocked this principal (`[watch]`, `[routes.watch]`) until the
    /// penalty ends.
    #[error("requests from this client are blocked for {retry_after} s after suspicious activity")]
    PrincipalBlocked { retry_after: u64 },
    /// 429: a detector throttled this principal.
    #[error("requests from this client are throttled after suspicious activity; retry in {retry_after} s")]
    PrincipalThrottled { retry_after: u64 },
    /// 503: an operator stopped this gateway, route, model or tenant (the stop switch);
    /// `retry_after` when the stop has a planned end.
    #[error("this service was stopped by an operator{}", match .retry_after { Some(s) => format!("; it is planned to resume in {s} s"), None => String::new() })]
    Stopped { retry_after: Option<u64> },
    /// 403: a reviewer blocked this caller.
    #[error("requests from this caller were blocked by a reviewer")]
    BlockedByReviewer,
    /// 503: the request needs a reviewer's approval and too many already wait.
    #[error("the request needs a reviewer's approval and the review queue is full; try again later")]
    ReviewQueueFull,
    /// 503: the request was held for a reviewer and nobody decided in time.
    #[error("the request was held for review and no reviewer decided in time")]
    ReviewTimeout,
    /// 403: a reviewer rejected the held request.
    #[error("the request was held for review and a reviewer rejected it")]
    ReviewRejected,
    /// 400: the payload does not follow the route's protocol; `param` is the JSON path.
    #[error("{param}: {message}")]
    InvalidRequest { param: String, message: String },
}

impl RequestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::IpDenied
            | Self::PrincipalBlocked { .. }
            | Self::BlockedByReviewer
            | Self::ReviewRejected => StatusCode::FORBIDDEN,
            Self::Stopped { .. } | Self::ReviewQueueFull | Self::ReviewTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::PrincipalThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Limited(r) if r.unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Limited(_) | Self::PrivacyBudgetSpent { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::JsonTooDeep { .. }
            | Self::InvalidJson { .. }
            | Self::DuplicateKey { .. }
            | Self::BadRequest(_)
            | Self::BodyRead
            | Self::InvalidPath => StatusCode::BAD_REQUEST,
            Self::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NoHealthyUpstream | Self::ShuttingDown | Self::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamConnect | Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ContentBlocked { .. } | Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ResponseBlocked { .. } | Self::ResponseTooLarge { .. } | Self::ResponseUninspectable(_) => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// Stable machine-readable code: the JSON `code` and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidPath => "invalid_path",
            Self::Unauthenticated(code) | Self::Forbidden(code) => code,
            Self::Limited(r) => r.code,
            Self::PrivacyBudgetSpent { .. } => "privacy_budget_spent",
            Self::PrincipalBlocked { .. } => "principal_blocked",
            Self::PrincipalThrottled { .. } => "principal_throttled",
            Self::IpDenied => "ip_denied",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::JsonTooDeep { .. } => "json_too_deep",
            Self::InvalidJson { .. } => "invalid_json",
            Self::DuplicateKey { .. } => "duplicate_json_key",
            Self::UnsupportedMedia(_) => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::ResponseUninspectable(_) => "response_uninspectable",
            Self::BodyTimeout => "body_timeout",
            Self::BodyRead => "body_read_error",
            Self::NoHealthyUpstream => "no_healthy_upstream",
            Self::UpstreamConnect => "upstream_connect_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamFailed => "upstream_error",
            Self::ShuttingDown => "shutting_down",
            Self::AuditUnavailable => "audit_unavailable",
            Self::ContentBlocked { .. } => "content_blocked",
            Self::ResponseBlocked { .. } => "response_blocked",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Stopped { .. } => "stopped_by_operator",
            Self::BlockedByReviewer => "blocked_by_reviewer",
            Self::ReviewQueueFull => "review_queue_full",
            Self::ReviewTimeout => "review_timeout",
            Self::ReviewRejected => "rejected_by_reviewer",
        }
    }

    /// OpenAI's error `type` vocabulary.
    fn openai_type(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "authentication_error",
            Self::Forbidden(_)
            | Self::IpDenied
            | Self::PrincipalBlocked { .. }
            | Self::BlockedByReviewer
            | Self::ReviewRejected => "permission_error",
            Self::Limited(_) | Self::PrincipalThrottled { .. } => "rate_limit_error",
            Self::NoRoute
            | Self::MethodNotAllowed
            | Self::InvalidPath
            | Self::BodyTooLarge { .. }
            | Self::JsonTooDeep { .. }
            | Self::InvalidJson { .. }
            | Self::DuplicateKey { .. }
            | Self::UnsupportedMedia(_)
            | Self::BadRequest(_)
            | Self::BodyTimeout
            | Self::BodyRead
            | Self::ContentBlocked { .. }
            | Self::InvalidRequest { .. } => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The JSON error body for a route speaking `protocol`. OpenAI routes (and generic
    /// JSON routes) get `{"error":{"type","code","message","request_id"}}`; KServe v2
    /// routes get the protocol's `{"error": "<message>"}` plus `code` and `request_id`.
    pub fn body(&self, protocol: Protocol, request_id: &str) -> Bytes {
        let message = self.to_string();
        let value = match protocol {
            Protocol::Kserve => serde_json::json!({
                "error": message,
                "code": self.code(),
                "request_id": request_id,
            }),
            _ => serde_json::json!({
                "error": {
                    "type": self.openai_type(),
                    "code": self.code(),
                    "message": message,
                    "param": match self {
                        Self::InvalidRequest { param, .. } | Self::DuplicateKey { path: param } => {
                            serde_json::Value::String(param.clone())
                        }
                        _ => serde_json::Value::Null,
                    },
                    "request_id": request_id,
                }
            }),
        };
        Bytes::from(value.to_string())
    }

    /// Extra headers the status requires (RFC 9110, RFC 6750, the IETF RateLimit draft).
    pub fn extra_headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            Self::Unauthenticated("missing_credentials") => {
                vec![(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rampart\""),
                )]
            }
            Self::Unauthenticated(_) => vec![(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rampart\", error=\"invalid_token\""),
            )],
            Self::ShuttingDown | Self::NoHealthyUpstream | Self::AuditUnavailable => {
                vec![(header::RETRY_AFTER, HeaderValue::from_static("1"))]
            }
            // No planned end: nobody knows when; an SDK retrying in a loop only adds load.
            Self::Stopped { retry_after: None } => vec![(X_SHOULD_RETRY, HeaderValue::from_static("false"))],
            Self::Stopped {
                retry_after: Some(retry_after),
            } => {
                let mut out = vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after))];
                if *retry_after > CLIENT_RETRY_WAIT_SECS {
                    out.push((X_SHOULD_RETRY, HeaderValue::from_static("false")));
                }
                out
            }
            // The same request would be held again, and rejected or timed out again.
            Self::ReviewRejected | Self::BlockedByReviewer | Self::ReviewTimeout => {
                vec![(X_SHOULD_RETRY, HeaderValue::from_static("false"))]
            }
            Self::ReviewQueueFull => vec![(header::RETRY_AFTER, HeaderValue::from_static("30"))],
            Self::PrivacyBudgetSpent { retry_after }
            | Self::PrincipalBlocked { retry_after }
            | Self::PrincipalThrottled { retry_after } => {
                let mut out = vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after))];
                if *retry_after > CLIENT_RETRY_WAIT_SECS {
                    out.push((X_SHOULD_RETRY, HeaderValue::from_static("false")));
                }
                out
            }
            Self::Limited(r) => {
                let mut out = vec![(header::RETRY_AFTER, HeaderValue::from(r.retry_after))];
                if r.retry_after > CLIENT_RETRY_WAIT_SECS {
                    out.push((X_SHOULD_RETRY, HeaderValue::from_static("false")));
                }
                if let Ok(v) = HeaderValue::from_str(&r.policy) {
                    out.push((header::HeaderName::from_static("ratelimit-policy"), v));
                }
                let name = r.policy.split(';').next().unwrap_or("\"\"");
                if let Ok(v) = HeaderValue::from_str(&format!("{name};r=0;t={}", r.retry_after)) {
                    out.push((header::HeaderName::from_static("ratelimit"), v));
                }
                out
            }
            // The same answer would come back: an OpenAI SDK must not try again (it
            // retries every 5xx twice otherwise: three model calls, three records).
            Self::ResponseBlocked { .. } | Self::ResponseTooLarge { .. } | Self::ResponseUninspectable(_) => {
                vec![(X_SHOULD_RETRY, HeaderValue::from_static("false"))]
            }
            _ => Vec::new(),
        }
    }
}

/// `x-should-retry`: the header OpenAI's SDKs (Python, Node, and those generated
/// alike) obey before their own status-based retry rule.
pub const X_SHOULD_RETRY: header::HeaderName = header::HeaderName::from_static("x-should-retry");

/// Longest `Retry-After` an OpenAI SDK waits for (it falls back to its own short
/// back-off beyond it, which cannot succeed before the limit resets).
pub const CLIENT_RETRY_WAIT_SECS: u64 = 60;

/// Whether an unrouted path belongs to the KServe v2 protocol (`/v2`, `/v2/…`), so
/// that its error speaks that protocol's shape: v2 clients read `error` as a string.
pub fn kserve_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// Failure while building a runtime from a validated config or binding listeners.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("routes[{index}].model: {reason}")]
    ModelPin { index: usize, reason: String },
    #[error("audit: {reason}")]
    Audit { reason: String },
    #[error("oversight: {reason}")]
    Oversight { reason: String },
    #[error("{key}: cannot use `{path}`: {reason}")]
    Tls { key: String, path: String, reason: String },
    #[error("identity.api_keys: {0}")]
    Keys(String),
    #[error("listener \"{name}\": cannot bind {addr}: {source}")]
    Bind {
        name: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn should_retry(e: &RequestError) -> Option<String> {
        e.extra_headers()
            .into_iter()
            .find(|(n, _)| *n == X_SHOULD_RETRY)
            .map(|(_, v)| v.to_str().unwrap_or_default().to_owned())
    }

    fn limited(retry_after: u64) -> RequestError {
        RequestError::Limited(Box::new(rampart_limits::Refusal {
            code: "quota_exceeded",
            limit: "q".into(),
            message: "quota".into(),
            retry_after,
            policy: "\"q\";q=10;w=86400".into(),
            unavailable: false,
        }))
    }

    #[test]
    fn refusals_that_would_repeat_tell_sdks_not_to_retry() {
        for e in [
            RequestError::ResponseBlocked {
                kinds: "canary_leak".into(),
            },
            RequestError::ResponseTooLarge { limit: 10 },
            RequestError::ResponseUninspectable("x"),
            limited(3600),
        ] {
            assert_eq!(should_retry(&e).as_deref(), Some("false"), "{e:?}");
        }
        // Worth retrying: a short wait, or the gateway or upstream being busy.
        for e in [
            limited(CLIENT_RETRY_WAIT_SECS),
            RequestError::NoHealthyUpstream,
            RequestError::UpstreamTimeout,
            RequestError::AuditUnavailable,
        ] {
            assert_eq!(should_retry(&e), None, "{e:?}");
        }
    }

    #[test]
    fn kserve_paths_are_told_apart_by_segment() {
        assert!(kserve_path("/v2"));
        assert!(kserve_path("/v2/models/x"));
        assert!(!kserve_path("/v2x"));
        assert!(!kserve_path("/v1/models"));
        let body: serde_json::Value =
            serde_json::from_slice(&RequestError::NoRoute.body(Protocol::Kserve, "id")).unwrap_or_default();
        assert!(body["error"].is_string(), "{body}");
    }
}
