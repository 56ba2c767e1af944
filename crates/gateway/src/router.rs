//! Route matching: request (listener, host, method, path) → route. Exact paths win over
//! prefixes, longer prefixes over shorter ones, and file order breaks ties. A path
//! that matches but whose method is not allowed gives 405; anything else that does not
//! match gives 404. The router never allocates on the hot path.

use std::sync::Arc;

use http::Method;
use rampart_config::PathMatch;

use crate::error::RequestError;
use crate::route::RouteRuntime;

#[derive(Debug)]
pub struct Router {
    /// Routes in match priority order.
    ordered: Vec<Arc<RouteRuntime>>,
}

impl Router {
    pub fn new(routes: &[Arc<RouteRuntime>]) -> Self {
        let mut ordered: Vec<(usize, Arc<RouteRuntime>)> = routes.iter().cloned().enumerate().collect();
        ordered.sort_by_key(|(i, r)| match &r.config.path {
            PathMatch::Exact(_) => (0, 0, *i),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len(), *i),
        });
        Self {
            ordered: ordered.into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// `host` is the request's host without port, if any; `listener` the name of the
    /// listener the request came in on.
    pub fn route(
        &self,
        listener: &str,
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<&Arc<RouteRuntime>, RequestError> {
        let mut method_mismatch = false;
        for route in &self.ordered {
            let cfg = &route.config;
            if !cfg.path.matches(path) {
                continue;
            }
            if !cfg.listeners.is_empty() && !cfg.listeners.iter().any(|l| l == listener) {
                continue;
            }
            if !cfg.hosts.is_empty() && !host.is_some_and(|h| cfg.hosts.iter().any(|x| x.eq_ignore_ascii_case(h))) {
                continue;
            }
            if !cfg.methods.is_empty() && !cfg.methods.contains(method) {
                method_mismatch = true;
                continue;
            }
            return Ok(route);
        }
        Err(if method_mismatch {
            RequestError::MethodNotAllowed
        } else {
            RequestError::NoRoute
        })
    }
}
