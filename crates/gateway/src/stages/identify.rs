//! Identify: decides who is calling. Fail closed: a route that config does not mark
//! `public = true` needs an authenticated principal. Until identity providers (API
//! keys, JWT, client certificates) are configured, every non-public route answers
//! 401, so nothing is ever reachable by accident. The explicit exemption list is the
//! set of routes with `public = true`.

use crate::context::Exchange;
use crate::error::RequestError;
use crate::runtime::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug, Default)]
pub struct IdentifyStage;

impl Stage for IdentifyStage {
    const NAME: &'static str = "identify";

    fn on_request(
        &self,
        _ex: &mut Exchange,
        route: &RouteRuntime,
        _req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        let flow = if route.config.public {
            Flow::Continue
        } else {
            Flow::Reject(RequestError::Unauthenticated)
        };
        std::future::ready(flow)
    }
}
