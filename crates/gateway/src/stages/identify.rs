//! Identify: decides who is calling. Fail closed: a route that config does not mark
//! `public = true` needs a valid credential (an API key today), else 401 with a reason
//! code that never says which part of a secret was wrong. The explicit exemption list
//! is the set of routes with `public = true`. Credential headers are stripped here
//! before anything is forwarded, unless the route sets `forward_credentials`.

use std::sync::Arc;

use rampart_identity::Principal;

use crate::context::Exchange;
use crate::error::RequestError;
use crate::identity::IdentityRuntime;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug)]
pub struct IdentifyStage {
    identity: Arc<IdentityRuntime>,
}

impl IdentifyStage {
    pub fn new(identity: Arc<IdentityRuntime>) -> Self {
        Self { identity }
    }
}

impl Stage for IdentifyStage {
    const NAME: &'static str = "identify";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        let flow = if route.config.public {
            ex.principal = Some(Principal::anonymous());
            Flow::Continue
        } else {
            match self
                .identity
                .authenticate(&req.head.headers, ex.conn.client_cert.as_deref())
                .await
            {
                Ok(p) => {
                    ex.principal = Some(p);
                    Flow::Continue
                }
                Err(e) => Flow::Reject(RequestError::Unauthenticated(e.code())),
            }
        };
        if !route.config.forward_credentials {
            for name in &self.identity.headers {
                req.head.headers.remove(name);
            }
            req.head.headers.remove(http::header::AUTHORIZATION);
        }
        flow
    }
}
