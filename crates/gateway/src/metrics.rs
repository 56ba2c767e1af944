//! Every metric the gateway exports, typed and named in this one module. Other code
//! calls the recording methods here; it never registers metrics or formats names.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A shared label value (route, upstream, target and listener names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Name,
    pub status: u16,
    pub decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    pub route: Name,
    pub code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TargetLabels {
    pub upstream: Name,
    pub target: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub upstream: Name,
    pub target: Name,
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: Name,
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitNameLabels {
    pub limit: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AuditLabels {
    pub event: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~105 s in 21 doubling buckets.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

fn overhead_histogram() -> Histogram {
    // 10 µs .. ~82 ms in 14 doubling buckets: gateway-added time is small.
    Histogram::new(exponential_buckets(0.00001, 2.0, 14))
}

/// The gateway's metrics. Cheap to clone handles live inside.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    gateway_added: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    upstream_ejections: Family<TargetLabels, Counter>,
    target_healthy: Family<TargetLabels, Gauge>,
    open_connections: Family<ListenerLabels, Gauge>,
    connections: Family<ListenerLabels, Counter>,
    connections_refused: Family<ListenerLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    limits: Family<LimitLabels, Counter>,
    limit_keys: Family<LimitNameLabels, Gauge>,
    fail_open: Family<RouteLabels, Counter>,
    limit_backend_errors: Counter,
    access_log_dropped: Counter,
    audit_records: Family<AuditLabels, Counter>,
    audit_refused: Counter,
    audit_queue: Gauge,
    audit_queue_capacity: Gauge,
    detections: Family<DetectionLabels, Counter>,
    alerts: Family<DetectionLabels, Counter>,
    alert_deliveries: Family<ResultLabels, Counter>,
    trace_spans: Family<ResultLabels, Counter>,
    certificate_expiry: Family<CertificateLabels, Gauge>,
}

/// A certificate the gateway presents: a listener's (`role="listener"`) or an upstream
/// pool's client certificate (`role="upstream_client"`), by listener or upstream name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertificateLabels {
    pub role: &'static str,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DetectionLabels {
    pub detector: &'static str,
    pub action: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rampart");
        let m = Self {
            requests: Family::default(),
            errors: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            upstream_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            gateway_added: Family::new_with_constructor(overhead_histogram as fn() -> Histogram),
            upstream_errors: Family::default(),
            upstream_ejections: Family::default(),
            target_healthy: Family::default(),
            open_connections: Family::default(),
            connections: Family::default(),
            connections_refused: Family::default(),
            config_reloads: Family::default(),
            limits: Family::default(),
            limit_keys: Family::default(),
            fail_open: Family::default(),
            limit_backend_errors: Counter::default(),
            access_log_dropped: Counter::default(),
            audit_records: Family::default(),
            audit_refused: Counter::default(),
            audit_queue: Gauge::default(),
            audit_queue_capacity: Gauge::default(),
            detections: Family::default(),
            alerts: Family::default(),
            alert_deliveries: Family::default(),
            trace_spans: Family::default(),
            certificate_expiry: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "detections",
            "Detector signals by detector and the action the policy took",
            m.detections.clone(),
        );
        registry.register(
            "alerts",
            "Alerts raised (after the per-principal cooldown), by detector and action",
            m.alerts.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Webhook deliveries of alerts: delivered, retried, failed (retries exhausted), dropped (queue full)",
            m.alert_deliveries.clone(),
        );
        registry.register(
            "trace_spans",
            "Spans given to the OTLP exporter: exported, failed (the collector refused or retries ran out), dropped (queue full)",
            m.trace_spans.clone(),
        );
        registry.register(
            "requests",
            "Exchanges by route, status and decision",
            m.requests.clone(),
        );
        registry.register(
            "errors",
            "Exchanges answered with an error (a refusal or a failure), by route and error code",
            m.errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Total exchange time, first request byte to last response byte",
            m.request_duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending the request upstream to receiving its response headers",
            m.upstream_duration.clone(),
        );
        registry.register(
            "gateway_added_seconds",
            "Time the gateway added: first request byte read to last response byte written, minus the upstream's time",
            m.gateway_added.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            m.upstream_errors.clone(),
        );
        registry.register(
            "upstream_ejections",
            "Targets ejected by passive or active health checks",
            m.upstream_ejections.clone(),
        );
        registry.register(
            "upstream_target_healthy",
            "1 if the target is in rotation",
            m.target_healthy.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open",
            m.open_connections.clone(),
        );
        registry.register("connections", "Client connections accepted", m.connections.clone());
        registry.register(
            "connections_refused",
            "Client connections closed at once because their IP had max_connections_per_ip open",
            m.connections_refused.clone(),
        );
        registry.register("config_reloads", "Config reloads by result", m.config_reloads.clone());
        registry.register(
            "limit_refusals",
            "Requests a limit refused (or, in shadow mode, would have refused)",
            m.limits.clone(),
        );
        registry.register(
            "fail_open",
            "Responses a policy's fail_open let through without inspection",
            m.fail_open.clone(),
        );
        registry.register(
            "limit_keys",
            "Keys an in-process limit tracks (bounded per limit; the idlest are evicted past the bound)",
            m.limit_keys.clone(),
        );
        registry.register(
            "limit_backend_errors",
            "Limit decisions that could not reach Redis (on_backend_error applied)",
            m.limit_backend_errors.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            m.access_log_dropped.clone(),
        );
        registry.register(
            "audit_records",
            "Audit writer events: records written, spilled (store down), delivered from spill; store errors; checkpoints",
            m.audit_records.clone(),
        );
        registry.register(
            "audit_refused",
            "Requests refused (503) because the audit trail could not take another record",
            m.audit_refused.clone(),
        );
        registry.register(
            "audit_queue_capacity",
            "Audit records that may wait for the writer before on_backlog applies (audit.queue)",
            m.audit_queue_capacity.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When each certificate the gateway presents expires (its notAfter, Unix seconds), by role and name",
            m.certificate_expiry.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit records waiting for the writer (sampled when a record is handed over)",
            m.audit_queue.clone(),
        );
        Self { registry, ..m }
    }

    pub fn request(&self, route: &Name, status: u16, decision: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
                decision,
            })
            .inc();
    }

    /// Replaces the certificate expiry series with the given (role, name, notAfter) set:
    /// a reload that drops a listener drops its series.
    pub fn certificates(&self, certs: &[(&'static str, Name, i64)]) {
        self.certificate_expiry.clear();
        for (role, name, not_after) in certs {
            self.certificate_expiry
                .get_or_create(&CertificateLabels {
                    role,
                    name: name.clone(),
                })
                .set(*not_after);
        }
    }

    /// An exchange answered with an error: its code (`stopped_by_operator`, …).
    pub fn error(&self, route: &Name, code: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                route: route.clone(),
                code,
            })
            .inc();
    }

    pub fn timings(&self, route: &Name, total: Duration, upstream: Option<Duration>, added: Option<Duration>) {
        let labels = RouteLabels { route: route.clone() };
        self.request_duration
            .get_or_create(&labels)
            .observe(total.as_secs_f64());
        if let Some(u) = upstream {
            self.upstream_duration.get_or_create(&labels).observe(u.as_secs_f64());
        }
        if let Some(a) = added {
            self.gateway_added.get_or_create(&labels).observe(a.as_secs_f64());
        }
    }

    pub fn upstream_error(&self, upstream: &Name, target: &Name, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: upstream.clone(),
                target: target.clone(),
                kind,
            })
            .inc();
    }

    pub fn ejected(&self, upstream: &Name, target: &Name) {
        let labels = TargetLabels {
            upstream: upstream.clone(),
            target: target.clone(),
        };
        self.upstream_ejections.get_or_create(&labels).inc();
        self.target_healthy.get_or_create(&labels).set(0);
    }

    pub fn target_up(&self, upstream: &Name, target: &Name) {
        let labels = TargetLabels {
            upstream: upstream.clone(),
            target: target.clone(),
        };
        self.target_healthy.get_or_create(&labels).set(1);
    }

    pub fn connection_opened(&self, listener: &Name) {
        let labels = ListenerLabels {
            listener: listener.clone(),
        };
        self.connections.get_or_create(&labels).inc();
        self.open_connections.get_or_create(&labels).inc();
    }

    pub fn connection_refused(&self, listener: &Name) {
        self.connections_refused
            .get_or_create(&ListenerLabels {
                listener: listener.clone(),
            })
            .inc();
    }

    pub fn connection_closed(&self, listener: &Name) {
        self.open_connections
            .get_or_create(&ListenerLabels {
                listener: listener.clone(),
            })
            .dec();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn limit(&self, limit: &Name, result: &'static str) {
        self.limits
            .get_or_create(&LimitLabels {
                limit: limit.clone(),
                result,
            })
            .inc();
    }

    pub fn fail_open(&self, route: &Name) {
        self.fail_open
            .get_or_create(&RouteLabels { route: route.clone() })
            .inc();
    }

    /// Sets how many keys `limit` tracks (called when metrics are scraped).
    pub fn limit_keys(&self, limit: &str, keys: usize) {
        self.limit_keys
            .get_or_create(&LimitNameLabels {
                limit: Name(Arc::from(limit)),
            })
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    pub fn limit_backend_error(&self) {
        self.limit_backend_errors.inc();
    }

    pub fn detection(&self, detector: &'static str, action: &'static str) {
        self.detections
            .get_or_create(&DetectionLabels { detector, action })
            .inc();
    }

    pub fn alert(&self, detector: &'static str, action: &'static str) {
        self.alerts.get_or_create(&DetectionLabels { detector, action }).inc();
    }

    /// `delivered`, `retried`, `failed` or `dropped`.
    pub fn alert_delivery(&self, result: &'static str) {
        self.alert_deliveries.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// `exported`, `failed` or `dropped`, `n` spans at once.
    pub fn trace_spans(&self, result: &'static str, n: u64) {
        self.trace_spans.get_or_create(&ResultLabels { result }).inc_by(n);
    }

    pub fn audit_event(&self, e: rampart_audit::writer::Event) {
        use rampart_audit::writer::Event;
        let n = match e {
            Event::Written(n) | Event::Spilled(n) | Event::Delivered(n) => n,
            Event::StoreError | Event::Checkpoint => 1,
        };
        self.audit_records
            .get_or_create(&AuditLabels {
                event: audit_event_name(e),
            })
            .inc_by(n);
    }

    pub fn audit_refused(&self) {
        self.audit_refused.inc();
    }

    pub fn audit_queue_depth(&self, n: usize) {
        self.audit_queue.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn audit_queue_capacity(&self, n: usize) {
        self.audit_queue_capacity.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Prometheus / OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The audit writer's observer events as metric labels.
fn audit_event_name(e: rampart_audit::writer::Event) -> &'static str {
    use rampart_audit::writer::Event;
    match e {
        Event::Written(_) => "written",
        Event::Spilled(_) => "spilled",
        Event::Delivered(_) => "delivered",
        Event::StoreError => "store_error",
        Event::Checkpoint => "checkpoint",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Metrics, Name};

    /// The registry with a series in every family (an empty family is not exported).
    fn every_family() -> String {
        let m = Metrics::new();
        let n = |s: &str| Name(Arc::from(s));
        let ms = Duration::from_millis(1);
        m.request(&n("r"), 200, "allow");
        m.certificates(&[("listener", n("l"), 1)]);
        m.error(&n("r"), "rate_limited");
        m.timings(&n("r"), ms, Some(ms), Some(ms));
        m.upstream_error(&n("u"), &n("t"), "connect");
        m.ejected(&n("u"), &n("t"));
        m.target_up(&n("u"), &n("t"));
        m.connection_opened(&n("l"));
        m.connection_refused(&n("l"));
        m.reload(false);
        m.limit(&n("x"), "refused");
        m.fail_open(&n("r"));
        m.limit_keys("x", 1);
        m.limit_backend_error();
        m.detection("extraction", "alert");
        m.alert("extraction", "alert");
        m.alert_delivery("failed");
        m.access_log_dropped();
        m.trace_spans("dropped", 1);
        m.audit_event(rampart_audit::writer::Event::StoreError);
        m.audit_refused();
        m.audit_queue_depth(1);
        m.audit_queue_capacity(2);
        m.render()
    }

    /// The `rampart_…` names a file mentions (label values never start so).
    fn metric_names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut at = 0;
        while let Some(i) = text[at..].find("rampart_") {
            let start = at + i;
            let after_word = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |k| start + k);
            if !after_word {
                names.insert(text[start..end].to_owned());
            }
            at = end;
        }
        names
    }

    /// Whether `name` is a series of one of `families` (name → type): a gauge by its
    /// name, a counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`.
    fn exported(name: &str, families: &BTreeMap<&str, &str>) -> bool {
        let series = |suffix: &str, kind: &str| {
            name.strip_suffix(suffix)
                .is_some_and(|base| families.get(base) == Some(&kind))
        };
        families.get(name) == Some(&"gauge")
            || series("_total", "counter")
            || ["_bucket", "_sum", "_count"].iter().any(|s| series(s, "histogram"))
    }

    #[test]
    fn alert_rules_and_dashboard_query_only_exported_metrics() {
        let text = every_family();
        let families: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
            .collect();
        assert_eq!(families.len(), 26, "every registered family has a series: {families:?}");
        for file in ["deploy/prometheus/rampart-alerts.yml", "deploy/grafana/rampart.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(file);
            let names = metric_names(&std::fs::read_to_string(&path).unwrap());
            assert!(names.len() >= 15, "{file} names only {names:?}");
            let missing: Vec<_> = names.iter().filter(|n| !exported(n, &families)).collect();
            assert!(
                missing.is_empty(),
                "{file} queries metrics the gateway does not export: {missing:?}"
            );
        }
        // The check can fail: misspelt or mis-suffixed names are not exported.
        assert!(!exported("rampart_request_total", &families));
        assert!(!exported("rampart_audit_queue_depth_total", &families));
        assert!(!exported("rampart_requests_bucket", &families));
        assert!(!exported("rampart_requests", &families));
        assert!(exported("rampart_gateway_added_seconds_bucket", &families));
    }
}
