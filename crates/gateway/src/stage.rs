//! The stage contract. A stage is a small type with named phases, called by the
//! pipeline in a fixed order (see `pipeline.rs`). Each phase may add findings to the
//! exchange and returns [`Flow::Continue`] or [`Flow::Reject`]. Stages never build
//! responses themselves: a rejection's response comes from `RequestError`.
//!
//! Every stage must pass the compliance test in `pipeline.rs` (`stage_compliance`):
//! phases with nothing to do must be no-ops, a rejecting stage must reject before the
//! upstream is contacted, and `on_complete` runs exactly once per exchange.

use std::future::Future;

use bytes::Bytes;

use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::route::RouteRuntime;

/// What the pipeline does after a phase.
#[derive(Debug)]
pub enum Flow {
    Continue,
    Reject(RequestError),
}

/// The request as request stages see it: head plus a body that is either still
/// streaming or (after the body stage) buffered.
#[derive(Debug)]
pub struct RequestParts {
    pub head: http::request::Parts,
    pub body: RequestBody,
}

pub trait Stage: Send + Sync + 'static {
    /// Name used in logs and metrics.
    const NAME: &'static str;

    /// Runs before anything is sent upstream, in pipeline order.
    fn on_request(
        &self,
        _ex: &mut Exchange,
        _route: &RouteRuntime,
        _req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        std::future::ready(Flow::Continue)
    }

    /// Runs on the upstream's response head, before anything is sent to the client.
    fn on_response(&self, _ex: &mut Exchange, _route: &RouteRuntime, _head: &mut http::response::Parts) -> Flow {
        Flow::Continue
    }

    /// Whether this stage wants to see response body chunks on this route. The
    /// pipeline skips chunk handling entirely when no stage does.
    fn wants_chunks(&self, _route: &RouteRuntime) -> bool {
        false
    }

    /// Runs on each response body chunk as it passes (streaming included).
    fn on_response_chunk(&self, _ex: &mut Exchange, _chunk: &mut Bytes) -> Flow {
        Flow::Continue
    }

    /// Runs exactly once when the exchange ends, however it ended.
    fn on_complete(&self, _ex: &Exchange) {}
}
