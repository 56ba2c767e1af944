//! Authorize: deny by default. A non-public route needs a principal whose roles grant
//! `infer` on it, within the principal's own scopes, and of the route's tenant when
//! the route has one (403 otherwise). Model permissions are checked by the `model`
//! stage once the body names the model.

use std::sync::Arc;

use rampart_identity::Action;

use crate::context::Exchange;
use crate::error::RequestError;
use crate::identity::IdentityRuntime;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug)]
pub struct AuthorizeStage {
    identity: Arc<IdentityRuntime>,
}

impl AuthorizeStage {
    pub fn new(identity: Arc<IdentityRuntime>) -> Self {
        Self { identity }
    }
}

impl Stage for AuthorizeStage {
    const NAME: &'static str = "authorize";

    fn on_request(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        _req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        let flow = if route.config.public {
            Flow::Continue
        } else {
            match &ex.principal {
                None => Flow::Reject(RequestError::Unauthenticated("missing_credentials")),
                Some(p) => {
                    match self
                        .identity
                        .policy
                        .route(p, &route.name, route.config.tenant.as_deref(), Action::Infer)
                    {
                        Ok(()) => Flow::Continue,
                        Err(denied) => Flow::Reject(RequestError::Forbidden(denied.code())),
                    }
                }
            }
        };
        std::future::ready(flow)
    }
}
