//! Metrics: when an exchange ends, counts it by route, status and decision, records
//! its total, upstream and gateway-added times, and counts responses a policy's
//! `fail_open` let through uninspected.

use std::sync::Arc;

use crate::context::Exchange;
use crate::metrics::{Metrics, Name};
use crate::stage::Stage;

#[derive(Debug)]
pub struct MetricsStage {
    metrics: Arc<Metrics>,
    unmatched: Name,
}

impl MetricsStage {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            unmatched: Name(Arc::from("")),
        }
    }
}

impl Stage for MetricsStage {
    const NAME: &'static str = "metrics";

    fn on_complete(&self, ex: &Exchange) {
        let route = ex
            .route
            .as_ref()
            .map(|r| Name(Arc::clone(r)))
            .unwrap_or_else(|| self.unmatched.clone());
        let status = ex.status.map(|s| s.as_u16()).unwrap_or(0);
        self.metrics.request(&route, status, ex.decision.as_str());
        if let Some(e) = &ex.error {
            self.metrics.error(&route, e.code());
        }
        self.metrics
            .timings(&route, ex.started.elapsed(), ex.upstream_time(), ex.gateway_added());
        // A response the policy could not inspect that still went out: only a policy's
        // `fail_open` does that, and it is counted.
        if ex.findings.iter().any(|f| f.kind == "response.uninspectable")
            && !matches!(ex.error, Some(crate::error::RequestError::ResponseUninspectable(_)))
        {
            self.metrics.fail_open(&route);
        }
    }
}
