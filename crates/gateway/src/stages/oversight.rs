//! Oversight: the stop switches (`crate::oversight`) in the request path.
//!
//! - Admission (before identify): a stop on the whole gateway, on the route or on the
//!   tenant that owns the route refuses at once — 503 `stopped_by_operator`, with
//!   `Retry-After` when the stop has a planned end. No credential is needed to learn
//!   that a service is stopped, and none is checked.
//! - Request (after `model`, when the caller and the model are known): stops on the
//!   model, the caller's tenant, and a reviewer's block on the caller (403
//!   `blocked_by_reviewer`).
//!
//! Event streams in flight when a stop that cuts streams is set end with an error event
//! (`body::ExchangeBody`).

use std::sync::Arc;

use rampart_oversight::Target;

use crate::context::Exchange;
use crate::error::RequestError;
use crate::oversight::{Oversight, OwnedTarget};
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct OversightStage {
    oversight: Option<Arc<Oversight>>,
}

/// Where the exchange stands, as stops see it.
pub fn target<'a>(ex: &'a Exchange, route: &'a RouteRuntime) -> Target<'a> {
    let principal = ex.principal.as_ref();
    Target {
        route: Some(&route.name),
        route_tenant: route.config.tenant.as_deref(),
        caller_tenant: principal.and_then(|p| p.tenant.as_deref()),
        model: ex.model.as_deref(),
        principal: principal.map(|p| p.subject.as_str()),
    }
}

impl OversightStage {
    pub fn new(oversight: Option<Arc<Oversight>>) -> Self {
        Self { oversight }
    }

    pub fn oversight(&self) -> Option<&Arc<Oversight>> {
        self.oversight.as_ref()
    }

    /// Admission: stops that do not need the caller.
    pub fn admit(&self, route: &RouteRuntime) -> Result<(), RequestError> {
        let Some(o) = &self.oversight else { return Ok(()) };
        let t = Target {
            route: Some(&route.name),
            route_tenant: route.config.tenant.as_deref(),
            ..Target::default()
        };
        o.refusal(&t).map_or(Ok(()), Err)
    }

    /// What an event stream's cut signal watches.
    pub fn owned_target(ex: &Exchange, route: &RouteRuntime) -> OwnedTarget {
        let t = target(ex, route);
        OwnedTarget {
            route: t.route.map(str::to_owned),
            route_tenant: t.route_tenant.map(str::to_owned),
            caller_tenant: t.caller_tenant.map(str::to_owned),
            model: t.model.map(str::to_owned),
            principal: t.principal.map(str::to_owned),
        }
    }
}

impl Stage for OversightStage {
    const NAME: &'static str = "oversight";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, _req: &mut RequestParts) -> Flow {
        let Some(o) = &self.oversight else {
            return Flow::Continue;
        };
        match o.refusal(&target(ex, route)) {
            Some(e) => Flow::Reject(e),
            None => Flow::Continue,
        }
    }
}
