//! Limit: network rules (a route's `deny_ips` and `allow_ips`) and abuse limits (rates,
//! concurrency, quotas; see `limits.rs`). Runs after authorization, so limits can count
//! per principal and tenant, and before the body is read, so a refused request costs
//! almost nothing. Refusals are 429 with `Retry-After` and the IETF `RateLimit` /
//! `RateLimit-Policy` headers; successful responses carry `RateLimit` headers of the
//! tightest rate limit. Shadow limits add a `limit.shadow` finding and never refuse.

use std::sync::Arc;

use http::HeaderValue;
use http::header::HeaderName;

use crate::context::{Decision, Exchange, Finding, Location};
use crate::error::RequestError;
use crate::metrics::{Metrics, Name};
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};
use rampart_limits::Limiter;

#[derive(Debug)]
pub struct LimitStage {
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
}

impl LimitStage {
    pub fn new(limiter: Arc<Limiter>, metrics: Arc<Metrics>) -> Self {
        Self { limiter, metrics }
    }
}

impl Stage for LimitStage {
    const NAME: &'static str = "limit";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, _req: &mut RequestParts) -> Flow {
        let ip = ex.client_ip;
        let cfg = &route.config;
        if cfg.deny_ips.iter().any(|c| c.contains(ip))
            || (!cfg.allow_ips.is_empty() && !cfg.allow_ips.iter().any(|c| c.contains(ip)))
        {
            Flow::Reject(RequestError::IpDenied)
        } else if self.limiter.is_empty() {
            Flow::Continue
        } else {
            match self.limiter.check(&caller(ex, route)).await {
                Ok(outcome) => {
                    for name in &outcome.shadow_refusals {
                        self.metrics.limit(&Name(Arc::from(name.as_str())), "shadow_refused");
                        ex.add_finding(
                            Finding {
                                kind: "limit.shadow",
                                confidence: 1.0,
                                location: Location::RequestHeaders,
                                span: None,
                            },
                            Decision::Flag,
                        );
                    }
                    if !outcome.holds.is_empty() {
                        ex.stash.put(outcome.holds);
                    }
                    if let Some(status) = outcome.status {
                        ex.stash.put(status);
                    }
                    Flow::Continue
                }
                Err(refusal) => {
                    self.metrics.limit(&Name(Arc::from(refusal.limit.as_str())), "refused");
                    Flow::Reject(RequestError::Limited(Box::new(refusal)))
                }
            }
        }
    }

    fn on_response(&self, ex: &mut Exchange, _route: &RouteRuntime, head: &mut http::response::Parts) -> Flow {
        if let Some(s) = ex.stash.get::<rampart_limits::RateStatus>() {
            if let Ok(v) = HeaderValue::from_str(&s.policy) {
                head.headers.insert(HeaderName::from_static("ratelimit-policy"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\";r={};t={}", s.name, s.remaining, s.reset)) {
                head.headers.insert(HeaderName::from_static("ratelimit"), v);
            }
        }
        Flow::Continue
    }
}

/// The exchange's caller as the limit engines count it.
pub(crate) fn caller<'a>(ex: &'a Exchange, route: &'a RouteRuntime) -> rampart_limits::Caller<'a> {
    rampart_limits::Caller {
        principal: ex.principal.as_ref(),
        ip: ex.client_ip,
        route: &route.name,
    }
}
