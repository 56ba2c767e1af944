//! Validate: checks the request body against the route's protocol (OpenAI chat,
//! completions and embeddings; KServe v2 inference) and its validation policy. An
//! invalid request gets 400 `invalid_request` naming the JSON path of the problem
//! (also in OpenAI's `param` field) before anything reaches the upstream. The rules
//! live in `rampart_detect::protocol`.

use rampart_config::Validation;
use rampart_detect::protocol;

use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::runtime::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct ValidateStage;

impl Stage for ValidateStage {
    const NAME: &'static str = "validate";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        let Some(rules) = &route.config.validation else {
            return Flow::Continue;
        };
        // Only bodies sent with a method that has one; GETs have nothing to check.
        let RequestBody::Buffered(body) = &req.body else {
            return Flow::Continue;
        };
        if body.is_empty() && req.head.method == http::Method::GET {
            return Flow::Continue;
        }
        let value = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => v,
            Err(_) if body.is_empty() => serde_json::Value::Null,
            Err(_) => {
                return Flow::Reject(RequestError::InvalidJson {
                    reason: "the body does not parse",
                });
            }
        };
        let result = match rules {
            Validation::Openai(r) if req.head.method == http::Method::POST => protocol::openai(&ex.path, &value, r),
            Validation::Kserve(r) if req.head.method == http::Method::POST => protocol::kserve(&ex.path, &value, r),
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                ex.body_json = Some(value);
                Flow::Continue
            }
            Err(v) => Flow::Reject(RequestError::InvalidRequest {
                param: v.path,
                message: v.message,
            }),
        }
    }
}
