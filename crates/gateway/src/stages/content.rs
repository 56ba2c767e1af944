//! Content: applies the route's content policy (see `content.rs`) — PII and secrets in
//! the request body flagged, masked, redacted, hashed, pseudonymised or blocked, a
//! canary added to the system prompt — and, on the way back, restores placeholders and
//! applies the response rules to streamed chunks. Whole (non-streamed) responses are
//! inspected by the pipeline through [`ContentStage::on_response_body`] before their
//! head is sent, so a block can still answer 502.

use bytes::Bytes;
use http::header;
use rampart_config::Protocol;
use rampart_detect::kserve_binary;

use crate::body::RequestBody;
use crate::content::ContentState;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct ContentStage;

fn is_sse(head: &http::response::Parts) -> bool {
    head.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::body::is_event_stream)
}

/// Whether the response carries a content coding other than `identity`.
pub(crate) fn encoded(head: &http::response::Parts) -> bool {
    head.headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
            })
            .unwrap_or(true)
    })
}

impl ContentStage {
    /// Whether the pipeline must hold this (non-streamed) response whole for the policy.
    pub fn holds_response(&self, ex: &Exchange, head: &http::response::Parts) -> bool {
        ex.stash
            .get::<ContentState>()
            .is_some_and(|c| c.policy.inspects_responses() && !c.skip_response)
            && !is_sse(head)
    }

    /// The response body limit for [`Self::holds_response`] bodies.
    pub fn max_response_bytes(&self, ex: &Exchange) -> u64 {
        ex.stash
            .get::<ContentState>()
            .map(|c| c.policy.max_response_bytes)
            .unwrap_or(0)
    }

    /// Inspects a whole response body; returns the body to send or the refusal.
    pub fn on_response_body(
        &self,
        ex: &mut Exchange,
        headers: &mut http::HeaderMap,
        body: Bytes,
    ) -> Result<Bytes, RequestError> {
        let Some(mut state) = ex.stash.take::<ContentState>() else {
            return Ok(body);
        };
        let out = match headers.get(kserve_binary::HEADER) {
            Some(length) if ex.protocol == Protocol::Kserve => {
                binary_response(&mut state, ex, headers, length.clone(), body)
            }
            _ => state.on_response_body(ex, body),
        };
        ex.stash.put(state);
        out
    }
}

impl ContentStage {
    /// The end of a streamed response: what the content stage still holds back.
    pub fn on_stream_end(&self, ex: &mut Exchange) -> Option<Bytes> {
        let mut state = ex.stash.take::<ContentState>()?;
        let out = state.on_stream_end(ex);
        ex.stash.put(state);
        out
    }
}

impl Stage for ContentStage {
    const NAME: &'static str = "content";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        let Some(policy) = &route.policy else {
            return Flow::Continue;
        };
        if policy.inspects_responses() {
            // The answer must come in a form the policy can read.
            req.head
                .headers
                .insert(header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
        }
        let tenant = ex.principal.as_ref().and_then(|p| p.tenant.clone());
        let mut state = ContentState::new(std::sync::Arc::clone(policy), tenant.as_deref());
        let parsed = ex.body_json.take();
        if policy.inspects_requests()
            && ex
                .stash
                .get::<kserve_binary::Layout>()
                .is_some_and(|l| l.unreadable_text())
        {
            // A BYTES tensor in the binary extension that is not text: the policy
            // cannot read it, so it does not pass unless the policy says fail_open.
            let pass = policy.fail_open;
            ex.add_finding(
                crate::context::Finding {
                    kind: "request.uninspectable",
                    confidence: 1.0,
                    location: crate::context::Location::RequestBody,
                    span: None,
                },
                if pass {
                    crate::context::Decision::Flag
                } else {
                    crate::context::Decision::Block
                },
            );
            if !pass {
                return Flow::Reject(RequestError::UnsupportedMedia(
                    "a binary BYTES tensor holds bytes that are not UTF-8 text, which this route's content policy must read",
                ));
            }
        }
        let result = match &req.body {
            RequestBody::Buffered(body) if !body.is_empty() => state.on_request(ex, route.config.protocol, parsed),
            _ => Ok(None),
        };
        ex.stash.put(state);
        match result {
            Ok(Some(body)) => {
                // A binary tensor body goes on as binary: the rewritten view is encoded
                // back (only BYTES elements change; numbers go byte for byte).
                let body = match (ex.stash.get::<kserve_binary::Layout>(), &ex.body_json) {
                    (Some(layout), Some(view)) if layout.is_binary() => {
                        match kserve_binary::encode(view, layout, kserve_binary::Tensors::Inputs) {
                            Ok((bytes, header_len)) => {
                                req.head.headers.insert(
                                    http::HeaderName::from_static(kserve_binary::HEADER),
                                    http::HeaderValue::from(header_len),
                                );
                                Bytes::from(bytes)
                            }
                            Err(v) => {
                                return Flow::Reject(RequestError::InvalidRequest {
                                    param: v.path,
                                    message: v.message,
                                });
                            }
                        }
                    }
                    _ => body,
                };
                req.head
                    .headers
                    .insert(header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
                req.body = RequestBody::Buffered(body);
                Flow::Continue
            }
            Ok(None) => Flow::Continue,
            Err(e) => Flow::Reject(e),
        }
    }

    fn on_response(&self, ex: &mut Exchange, route: &RouteRuntime, head: &mut http::response::Parts) -> Flow {
        let Some(mut state) = ex.stash.take::<ContentState>() else {
            return Flow::Continue;
        };
        let mut flow = Flow::Continue;
        if state.policy.inspects_responses() {
            if encoded(head) {
                // Asked for identity, answered compressed: not readable as it is.
                let pass = state.policy.fail_open;
                crate::content::note_uninspectable(ex, pass, "the response is in a content coding");
                if pass {
                    state.skip_response = true;
                } else {
                    flow = Flow::Reject(RequestError::ResponseUninspectable(
                        "the upstream answered in a content coding the gateway does not decode",
                    ));
                }
            } else if is_sse(head) {
                state.start_stream(route.config.protocol == Protocol::Openai);
                head.headers.remove(header::CONTENT_LENGTH);
            }
        }
        ex.stash.put(state);
        flow
    }

    fn wants_chunks(&self, route: &RouteRuntime) -> bool {
        route.policy.as_ref().is_some_and(|p| p.inspects_responses())
    }

    fn on_response_chunk(&self, ex: &mut Exchange, chunk: &mut Bytes) -> Flow {
        let Some(mut state) = ex.stash.take::<ContentState>() else {
            return Flow::Continue;
        };
        if state.streaming() {
            *chunk = state.on_stream_chunk(ex, chunk);
            if state.ended {
                ex.end_stream = true;
            }
        }
        ex.stash.put(state);
        Flow::Continue
    }
}

/// A KServe response in the binary tensor extension: its JSON view (BYTES outputs as
/// strings) goes through the policy like a JSON response; when the policy rewrote it,
/// it is encoded back and the header length updated, otherwise the upstream's bytes
/// go on untouched.
fn binary_response(
    state: &mut ContentState,
    ex: &mut Exchange,
    headers: &mut http::HeaderMap,
    length: http::HeaderValue,
    body: Bytes,
) -> Result<Bytes, RequestError> {
    let read = length
        .to_str()
        .ok()
        .and_then(|l| kserve_binary::split(&body, l).ok())
        .and_then(|(h, t)| {
            let header = rampart_detect::json::parse_strict(h, crate::content::RESPONSE_MAX_DEPTH).ok()?;
            kserve_binary::decode(header, t, kserve_binary::Tensors::Outputs, false).ok()
        });
    let Some((view, layout)) = read else {
        return state.uninspectable(ex, body, "the binary tensor response does not add up");
    };
    if layout.unreadable_text() {
        return state.uninspectable(ex, body, "a binary BYTES output is not UTF-8 text");
    }
    let shown = Bytes::from(serde_json::to_vec(&view).unwrap_or_default());
    let out = state.on_response_body(ex, shown.clone())?;
    if out == shown {
        return Ok(body);
    }
    let rewritten: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|_| RequestError::ResponseUninspectable("the rewritten response is not JSON"))?;
    let (bytes, header_len) = kserve_binary::encode(&rewritten, &layout, kserve_binary::Tensors::Outputs)
        .map_err(|_| RequestError::ResponseUninspectable("the rewritten response cannot be encoded"))?;
    headers.insert(
        http::HeaderName::from_static(kserve_binary::HEADER),
        http::HeaderValue::from(header_len),
    );
    Ok(Bytes::from(bytes))
}
