//! One route as the data plane runs it: its config, its upstream pool and its compiled
//! content policy. Plain data that the router returns and every stage reads; it knows
//! nothing of the runtime that builds it.

use std::sync::Arc;

use rampart_config::Route;

use crate::upstream::Pool;

#[derive(Debug)]
pub struct RouteRuntime {
    pub name: Arc<str>,
    pub config: Route,
    pub pool: Arc<Pool>,
    /// The route's content policy, compiled.
    pub policy: Option<Arc<crate::content::PolicyRuntime>>,
    /// The route's output hardening, with its privacy budgets and noise source.
    pub output: Option<Arc<crate::output::OutputRuntime>>,
    /// The route's detectors (`[routes.watch]`) and their state.
    pub watch: Option<Arc<crate::watch::RouteWatch>>,
}
