//! Validate: checks the request body against the route's protocol (OpenAI chat,
//! completions and embeddings; KServe v2 inference), its validation policy, and the
//! route's JSON Schema when it has one. An
//! invalid request gets 400 `invalid_request` naming the JSON path of the problem
//! (also in OpenAI's `param` field) before anything reaches the upstream. The rules
//! live in `rampart_detect::protocol`.

use rampart_config::Validation;
use rampart_detect::protocol;

use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct ValidateStage;

impl Stage for ValidateStage {
    const NAME: &'static str = "validate";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        if route.config.validation.is_none() && route.config.json_schema.is_none() {
            return Flow::Continue;
        }
        // Only bodies sent with a method that has one; GETs have nothing to check.
        let RequestBody::Buffered(body) = &req.body else {
            return Flow::Continue;
        };
        if body.is_empty() && req.head.method == http::Method::GET {
            return Flow::Continue;
        }
        // The body stage parsed it (strictly) on every JSON route; an empty body is null.
        let null = serde_json::Value::Null;
        let value = match &ex.body_json {
            Some(v) => v,
            None if body.is_empty() => &null,
            None => {
                return Flow::Reject(RequestError::InvalidJson {
                    reason: "the body does not parse as JSON (RFC 8259)",
                });
            }
        };
        let post = req.head.method == http::Method::POST;
        let result = match &route.config.validation {
            Some(Validation::Openai(r)) if post => protocol::openai(&ex.path, value, r),
            Some(Validation::Kserve(r)) if post => protocol::kserve(&ex.path, value, r),
            _ => Ok(()),
        }
        .and_then(|()| match &route.config.json_schema {
            Some(schema) if !body.is_empty() => schema.validate(value),
            _ => Ok(()),
        });
        match result {
            Ok(()) => Flow::Continue,
            Err(v) => Flow::Reject(RequestError::InvalidRequest {
                param: v.path,
                message: v.message,
            }),
        }
    }
}
