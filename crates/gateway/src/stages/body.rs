//! Body: enforces the route's body-size limit (413, before reading when
//! Content-Length already says too much), reads JSON routes' bodies completely
//! (bounded, with the idle timeout) and parses them once, strictly
//! (`rampart_detect::json`: duplicate keys, UTF-8, depth, RFC 8259 grammar), into
//! `ex.body_json`, which every later stage reads. On JSON routes (`openai`, `kserve`,
//! `json`) a body in another media type or in a content coding (gzip, …) is refused
//! with 415: what the gateway cannot read, it does not forward. KServe routes also
//! read the binary tensor extension (`Inference-Header-Content-Length`) into the same
//! JSON view ([`kserve_body`]). Opaque `http` routes keep streaming, still size-bounded.

use http::header;
use rampart_config::Protocol;
use rampart_detect::kserve_binary;

use crate::body::{RequestBody, read_bounded};
use crate::context::Exchange;
use crate::error::RequestError;
use crate::json::parse_body;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct BodyStage;

/// Whether the declared media type is JSON (no Content-Type counts: model APIs speak
/// JSON even when a client forgets the header). Several Content-Type headers, or one
/// that is not text, are not JSON.
fn declares_json(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (first, second) = (values.next(), values.next());
    match (first, second) {
        (None, _) => true,
        (Some(v), None) => v.to_str().is_ok_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        }),
        (Some(_), Some(_)) => false,
    }
}

/// Whether the body carries a content coding other than `identity`.
fn encoded(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|c| !c.trim().eq_ignore_ascii_case("identity") && !c.trim().is_empty())
            })
            .unwrap_or(true)
    })
}

const ENCODED: RequestError =
    RequestError::UnsupportedMedia("this route reads request bodies without a content coding; send them uncompressed");

/// The one reading of a JSON route's body, given its headers: refused when it is in a
/// content coding or another media type, parsed strictly otherwise. `None` for an
/// empty body. (The body stage runs this; the fuzz target `request_body` too.)
pub fn json_body(
    headers: &http::HeaderMap,
    body: &[u8],
    max_depth: u32,
) -> Result<Option<serde_json::Value>, RequestError> {
    if encoded(headers) {
        return Err(ENCODED);
    }
    if body.is_empty() {
        return Ok(None);
    }
    if !declares_json(headers) {
        return Err(RequestError::UnsupportedMedia(
            "this route reads JSON request bodies (Content-Type: application/json)",
        ));
    }
    parse_body(body, max_depth).map(Some)
}

/// A KServe route's body: JSON, or the binary tensor extension when
/// `Inference-Header-Content-Length` is sent (tritonclient's default). Either way the
/// result is the JSON view later stages read (`rampart_detect::kserve_binary`: binary
/// tensors' sizes checked against their shapes, their BYTES elements — and with
/// `numbers`, their numbers — shown as `data`), plus the layout to write it back.
/// `binary_data_size` in a plain JSON body is refused: there is nothing it could
/// describe.
pub fn kserve_body(
    headers: &http::HeaderMap,
    body: &[u8],
    max_depth: u32,
    numbers: bool,
) -> Result<(Option<serde_json::Value>, Option<kserve_binary::Layout>), RequestError> {
    let invalid = |v: rampart_detect::protocol::Violation| RequestError::InvalidRequest {
        param: v.path,
        message: v.message,
    };
    let mut lengths = headers.get_all(kserve_binary::HEADER).iter();
    let Some(length) = lengths.next() else {
        let Some(v) = json_body(headers, body, max_depth)? else {
            return Ok((None, None));
        };
        let (view, _) = kserve_binary::decode(v, &[], kserve_binary::Tensors::Inputs, false).map_err(invalid)?;
        return Ok((Some(view), None));
    };
    if lengths.next().is_some() {
        return Err(RequestError::BadRequest(
            "Inference-Header-Content-Length is sent twice",
        ));
    }
    if encoded(headers) {
        return Err(ENCODED);
    }
    if !declares_binary(headers) {
        return Err(RequestError::UnsupportedMedia(
            "a binary tensor body is sent as application/octet-stream (or without a Content-Type)",
        ));
    }
    let length = length
        .to_str()
        .map_err(|_| RequestError::BadRequest("Inference-Header-Content-Length is not text"))?;
    let (header, tail) = kserve_binary::split(body, length).map_err(invalid)?;
    let header = parse_body(header, max_depth)?;
    let (view, layout) =
        kserve_binary::decode(header, tail, kserve_binary::Tensors::Inputs, numbers).map_err(invalid)?;
    Ok((Some(view), Some(layout)))
}

/// Media types a binary tensor body may be declared as.
fn declares_binary(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => v.to_str().is_ok_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/octet-stream" || essence == "application/json"
        }),
        (Some(_), Some(_)) => false,
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
        if encoded(&req.head.headers) {
            // Before reading: a coded body is never buffered.
            return Flow::Reject(ENCODED);
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
        if route.config.protocol == Protocol::Kserve && !rampart_detect::protocol::is_kserve_infer(&ex.path) {
            // The binary extension exists only for inference; elsewhere the header
            // describes nothing (tritonclient leaves it in a reused headers dict), and
            // it does not go upstream.
            req.head.headers.remove(kserve_binary::HEADER);
        }
        let read = if route.config.protocol == Protocol::Kserve {
            let numbers = matches!(route.config.validation, Some(rampart_config::Validation::Kserve(_)));
            kserve_body(&req.head.headers, &bytes, limits.max_json_depth, numbers).map(|(v, layout)| {
                if let Some(layout) = layout {
                    ex.stash.put(layout);
                }
                v
            })
        } else if req.head.headers.contains_key(kserve_binary::HEADER) {
            Err(RequestError::BadRequest(
                "Inference-Header-Content-Length (the binary tensor extension) is read on kserve routes only",
            ))
        } else {
            json_body(&req.head.headers, &bytes, limits.max_json_depth)
        };
        match read {
            Ok(v) => ex.body_json = v,
            Err(e) => return Flow::Reject(e),
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
