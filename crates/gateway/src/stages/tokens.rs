//! Tokens: reserves a request's LLM token cost in the route's token budgets before it
//! is forwarded (429 `token_limited` when it does not fit), asks the upstream for usage
//! on streamed requests, watches the response (usage object, or streamed text) as it
//! passes, and settles the real cost when the exchange ends. See `tokens.rs`.

use std::sync::Arc;

use crate::body::RequestBody;
use crate::context::{Decision, Exchange, Finding, Location};
use crate::error::RequestError;
use crate::metrics::{Metrics, Name};
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};
use rampart_limits::tokens::TokenLimiter;

#[derive(Debug)]
pub struct TokensStage {
    limiter: TokenLimiter,
    metrics: Arc<Metrics>,
}

impl TokensStage {
    pub fn new(limiter: TokenLimiter, metrics: Arc<Metrics>) -> Self {
        Self { limiter, metrics }
    }

    async fn reserve(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        let RequestBody::Buffered(body) = &req.body else {
            return Flow::Continue;
        };
        // The body stage parsed every JSON route's body; an empty body costs nothing
        // but the completion. A body nobody could read is refused, not guessed at.
        let mut parsed = match ex.body_json.take() {
            Some(v) => v,
            None if body.is_empty() => serde_json::Value::Null,
            None => {
                return Flow::Reject(RequestError::InvalidJson {
                    reason: "the body does not parse as JSON (RFC 8259)",
                });
            }
        };
        let who = crate::stages::limit::caller(ex, route);
        match self.limiter.reserve(&who, route.config.tokenizer, &parsed).await {
            Ok((mut account, shadow)) => {
                for name in shadow {
                    self.metrics.limit(&Name(Arc::from(name.as_str())), "shadow_refused");
                    ex.add_finding(
                        Finding {
                            kind: "limit.shadow",
                            confidence: 1.0,
                            location: Location::RequestBody,
                            span: None,
                        },
                        Decision::Flag,
                    );
                }
                if route.config.request_usage
                    && let Some(rewritten) = rampart_limits::tokens::request_stream_usage(&mut parsed)
                {
                    req.head
                        .headers
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(rewritten.len()));
                    req.body = RequestBody::Buffered(rewritten);
                    account.strip_usage_event();
                }
                ex.stash.put(account);
                ex.body_json = Some(parsed);
                Flow::Continue
            }
            Err(refusal) => {
                self.metrics.limit(&Name(Arc::from(refusal.limit.as_str())), "refused");
                Flow::Reject(RequestError::Limited(Box::new(refusal)))
            }
        }
    }
}

impl Stage for TokensStage {
    const NAME: &'static str = "tokens";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        if self.limiter.applies(&route.name) {
            self.reserve(ex, route, req).await
        } else {
            Flow::Continue
        }
    }

    fn on_response(&self, ex: &mut Exchange, _route: &RouteRuntime, head: &mut http::response::Parts) -> Flow {
        if let Some(acc) = ex.stash.get_mut::<rampart_limits::TokenAccount>() {
            let sse = head
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(crate::body::is_event_stream);
            acc.set_sse(sse);
            if sse {
                // The stream may be shortened (the usage event the gateway asked for).
                head.headers.remove(http::header::CONTENT_LENGTH);
            }
        }
        Flow::Continue
    }

    fn wants_chunks(&self, route: &RouteRuntime) -> bool {
        self.limiter.applies(&route.name)
    }

    fn on_response_chunk(&self, ex: &mut Exchange, chunk: &mut bytes::Bytes) -> Flow {
        if let Some(acc) = ex.stash.get_mut::<rampart_limits::TokenAccount>() {
            acc.observe(chunk);
        }
        Flow::Continue
    }

    fn on_complete(&self, ex: &Exchange) {
        if let Some(acc) = ex.stash.get::<rampart_limits::TokenAccount>() {
            let success = ex.status.is_some_and(|s| s.is_success())
                && !matches!(ex.outcome, Some(crate::context::Outcome::Failed));
            acc.settle(success);
        }
    }
}
