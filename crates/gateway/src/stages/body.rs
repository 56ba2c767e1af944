//! Body: enforces the route's body-size limit (413, before reading when
//! Content-Length already says too much), reads JSON bodies completely (bounded, with
//! the idle timeout) so inspection stages can see them, and refuses JSON nested deeper
//! than the route allows. Opaque `http` routes keep streaming, still size-bounded.

use http::header;
use rampart_config::Protocol;

use crate::body::{RequestBody, read_bounded};
use crate::context::Exchange;
use crate::error::RequestError;
use crate::json::check_depth;
use crate::runtime::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct BodyStage;

fn is_json(headers: &http::HeaderMap, protocol: Protocol) -> bool {
    match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        }
        // Model APIs speak JSON even when a client forgets the header.
        None => matches!(protocol, Protocol::Openai | Protocol::Kserve),
    }
}

impl Stage for BodyStage {
    const NAME: &'static str = "body";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        let limits = route.config.limits;
        let declared = req
            .head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return Flow::Reject(RequestError::BodyTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        if route.config.protocol == Protocol::Http {
            return Flow::Continue;
        }
        let bytes = match std::mem::replace(&mut req.body, RequestBody::Buffered(bytes::Bytes::new())) {
            RequestBody::Streaming(incoming) => {
                match read_bounded(incoming, limits.max_body_bytes, route.config.timeouts.idle).await {
                    Ok(b) => b,
                    Err(e) => return Flow::Reject(e),
                }
            }
            RequestBody::Buffered(b) if b.len() as u64 > limits.max_body_bytes => {
                return Flow::Reject(RequestError::BodyTooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            RequestBody::Buffered(b) => b,
        };
        ex.request_bytes = bytes.len() as u64;
        if !bytes.is_empty()
            && is_json(&req.head.headers, route.config.protocol)
            && let Err(e) = check_depth(&bytes, limits.max_json_depth)
        {
            return Flow::Reject(e);
        }
        // The body is now known; forward it with an exact length.
        req.head.headers.remove(header::TRANSFER_ENCODING);
        if let Ok(v) = http::HeaderValue::from_str(&bytes.len().to_string()) {
            req.head.headers.insert(header::CONTENT_LENGTH, v);
        }
        req.body = RequestBody::Buffered(bytes);
        Flow::Continue
    }
}
