//! The pipeline: every stage, in order, in this one file.
//!
//! ```text
//! client ──TLS──▶ listener ─▶ route match ─▶ request stages ─▶ upstream pool ─▶ response stages ─▶ client
//!                                               │                                   │
//!                                               └──── findings + decision ──────────┴─▶ access log, metrics
//! ```
//!
//! Request stages run top to bottom and the first rejection wins; nothing is sent to an
//! upstream until all of them passed. Response stages run on the upstream's response
//! head, chunk stages on every body chunk as it streams, and completion stages exactly
//! once when the exchange ends — however it ends (see `body::ExchangeBody`). Stages
//! yet to come (inspect, transform, harden, audit) slot into the marked places.
//!
//! Generic HTTP concerns that are not policy live around the pipeline, not in it:
//! header-size limits and the header-read timeout (server.rs), hop-by-hop and
//! forwarding headers, the first-byte timeout and retries (proxy.rs), the idle and total
//! timeouts on bodies (body.rs).

use std::sync::Arc;

use bytes::Bytes;

use crate::context::Exchange;
use crate::error::RequestError;
use crate::identity::IdentityRuntime;
use crate::metrics::Metrics;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};
use crate::stages::access_log::{AccessLogStage, Message};
use crate::stages::audit::AuditStage;
use crate::stages::authorize::AuthorizeStage;
use crate::stages::body::BodyStage;
use crate::stages::content::ContentStage;
use crate::stages::identify::IdentifyStage;
use crate::stages::limit::LimitStage;
use crate::stages::metrics::MetricsStage;
use crate::stages::model::ModelStage;
use crate::stages::output::OutputStage;
use crate::stages::oversight::OversightStage;
use crate::stages::request_id::RequestIdStage;
use crate::stages::tokens::TokensStage;
use crate::stages::validate::ValidateStage;
use crate::stages::watch::WatchStage;
use crate::trace::{TraceStage, Tracer};

/// Every stage of the gateway. Fields are listed in the order they run.
#[derive(Debug)]
pub struct Pipeline {
    /// Request: stamp the request id on the upstream request. Response: return it.
    pub(crate) request_id: RequestIdStage,
    /// Request: who is calling; non-public routes need a valid credential (fail
    /// closed); credential headers are stripped before forwarding.
    pub(crate) identify: IdentifyStage,
    /// Request: roles → route and action, tenant isolation (deny by default).
    pub(crate) authorize: AuthorizeStage,
    /// Request: IP rules, rate / concurrency / quota limits. Response: RateLimit headers.
    pub(crate) limit: LimitStage,
    /// Request: body size limit, bounded buffering, JSON depth.
    pub(crate) body: BodyStage,
    /// Admission (before identify): 503 when the audit trail cannot take a record.
    /// Request: digest of the client's body. Chunks: digest of the response.
    /// Completion: the exchange's audit record (sync mode: durable before the last
    /// frame reaches the client).
    pub(crate) audit: AuditStage,
    /// Request: the model the request names, and whether the caller may use it.
    pub(crate) model: ModelStage,
    /// Request: the body follows the route's protocol (OpenAI, KServe v2) and its
    /// validation policy; 400 `invalid_request` with the JSON path otherwise.
    pub(crate) validate: ValidateStage,
    /// Admission (before identify): a stop switch on the gateway, the route or the
    /// route's tenant refuses (503). Request (after `model`): stops on the model or the
    /// caller's tenant, a reviewer's block on the caller (403). Hold (after `content`):
    /// a request marked `hold` waits for a reviewer. Completion: an exchange marked
    /// `review` is queued for a reviewer.
    pub(crate) oversight: OversightStage,
    /// Admission (before identify): a client address under a detector's penalty is
    /// refused. Request: the same for the principal; a classifier's feature rows feed
    /// the extraction, out-of-distribution and drift detectors. Answers (after
    /// `output`, through `handle`): the rows before hardening feed the boundary and
    /// output drift detectors. Completion: status and decision feed the behaviour
    /// detectors. Signals become findings, alerts, throttles or blocks per policy.
    pub(crate) watch: WatchStage,
    /// Request: PII and secrets per the route's content policy (flag, mask, redact,
    /// hash, pseudonymise, block), canary in the system prompt. Response: restore
    /// placeholders, response rules, canary leaks — on streamed chunks here, on whole
    /// bodies before the head is sent (`handle`).
    pub(crate) content: ContentStage,
    /// Request: reserve the LLM token cost (of what is sent upstream, after `content`).
    /// Chunks: watch usage. Completion: settle.
    pub(crate) tokens: TokensStage,
    /// Request: ask for an uncoded answer on hardened routes. Response (whole bodies,
    /// after `content`, through `handle`): a classifier's probability rows hardened —
    /// label only, noise with a privacy budget per principal, top-k, rounding.
    pub(crate) output: OutputStage,
    /// Completion: counters and latency histograms.
    pub(crate) metrics: MetricsStage,
    /// Completion: one ECS JSON line per exchange.
    pub(crate) access_log: AccessLogStage,
    /// Before the stages: the exchange's trace context (`trace::Tracer::begin`).
    /// Chunks: an LLM answer's head and tail, for the GenAI attributes. Completion: a
    /// sampled exchange's spans to the OTLP exporter.
    pub(crate) trace: TraceStage,
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)] // one argument per engine the stages share
    pub fn new(
        metrics: Arc<Metrics>,
        log: std::sync::mpsc::SyncSender<Message>,
        config: &rampart_config::Config,
        identity: Arc<IdentityRuntime>,
        limiter: Arc<rampart_limits::Limiter>,
        tokens: rampart_limits::tokens::TokenLimiter,
        audit: Option<Arc<crate::audit::AuditTrail>>,
        oversight: Option<Arc<crate::oversight::Oversight>>,
    ) -> Result<Self, crate::error::InitError> {
        let watch = crate::watch::Shared::build(
            config,
            audit.clone(),
            Arc::clone(&metrics),
            log.clone(),
            limiter.redis(),
        )?;
        let node: Arc<str> = Arc::from(config.server.node_id.as_str());
        let tracer = match &config.traces {
            Some(t) => Some(Arc::new(Tracer::start(t, &node, Arc::clone(&metrics))?)),
            None => None,
        };
        Ok(Self {
            trace: TraceStage::new(tracer, Arc::clone(&node)),
            request_id: RequestIdStage::new(),
            identify: IdentifyStage::new(Arc::clone(&identity)),
            authorize: AuthorizeStage::new(Arc::clone(&identity)),
            limit: LimitStage::new(limiter, Arc::clone(&metrics)),
            body: BodyStage,
            audit: AuditStage::new(audit, &config.digest),
            model: ModelStage::new(identity),
            oversight: OversightStage::new(oversight),
            validate: ValidateStage,
            watch: WatchStage::new(watch),
            content: ContentStage,
            tokens: TokensStage::new(tokens, Arc::clone(&metrics)),
            output: OutputStage,
            metrics: MetricsStage::new(Arc::clone(&metrics)),
            access_log: AccessLogStage::new(config.server.access_log, node, log, metrics),
        })
    }

    pub(crate) async fn request_stages(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        req: &mut RequestParts,
    ) -> Result<(), RequestError> {
        run(&self.request_id, ex, route, req).await?;
        self.audit.admit(ex)?;
        self.oversight.admit(route)?;
        self.watch.admit(ex)?;
        run(&self.identify, ex, route, req).await?;
        run(&self.authorize, ex, route, req).await?;
        run(&self.limit, ex, route, req).await?;
        run(&self.body, ex, route, req).await?;
        run(&self.audit, ex, route, req).await?;
        run(&self.model, ex, route, req).await?;
        run(&self.oversight, ex, route, req).await?;
        run(&self.validate, ex, route, req).await?;
        run(&self.watch, ex, route, req).await?;
        run(&self.content, ex, route, req).await?;
        ex.timed("oversight.hold", async |ex| {
            self.oversight.hold(ex, route, req, &self.audit).await
        })
        .await?;
        run(&self.tokens, ex, route, req).await?;
        run(&self.output, ex, route, req).await?;
        self.audit.capture_request(ex, route, req);
        Ok(())
    }

    pub(crate) fn response_stages(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        head: &mut http::response::Parts,
    ) -> Result<(), RequestError> {
        flow(self.request_id.on_response(ex, route, head))?;
        flow(self.limit.on_response(ex, route, head))?;
        flow(self.content.on_response(ex, route, head))?;
        flow(self.tokens.on_response(ex, route, head))?;
        flow(self.output.on_response(ex, route, head))?;
        Ok(())
    }

    /// Whether any stage inspects response chunks on this route.
    pub fn wants_chunks(&self, route: &RouteRuntime) -> bool {
        self.request_id.wants_chunks(route)
            || self.identify.wants_chunks(route)
            || self.authorize.wants_chunks(route)
            || self.limit.wants_chunks(route)
            || self.body.wants_chunks(route)
            || self.audit.wants_chunks(route)
            || self.model.wants_chunks(route)
            || self.oversight.wants_chunks(route)
            || self.validate.wants_chunks(route)
            || self.watch.wants_chunks(route)
            || self.content.wants_chunks(route)
            || self.tokens.wants_chunks(route)
            || self.output.wants_chunks(route)
            || self.metrics.wants_chunks(route)
            || self.access_log.wants_chunks(route)
            || self.trace.wants_chunks(route)
    }

    /// Chunk stages, in order, on one response body chunk.
    pub fn response_chunk(&self, ex: &mut Exchange, chunk: &mut Bytes) -> Result<(), RequestError> {
        flow(self.request_id.on_response_chunk(ex, chunk))?;
        flow(self.identify.on_response_chunk(ex, chunk))?;
        flow(self.authorize.on_response_chunk(ex, chunk))?;
        flow(self.limit.on_response_chunk(ex, chunk))?;
        flow(self.body.on_response_chunk(ex, chunk))?;
        flow(self.model.on_response_chunk(ex, chunk))?;
        flow(self.validate.on_response_chunk(ex, chunk))?;
        flow(self.content.on_response_chunk(ex, chunk))?;
        flow(self.tokens.on_response_chunk(ex, chunk))?;
        flow(self.output.on_response_chunk(ex, chunk))?;
        flow(self.trace.on_response_chunk(ex, chunk))?;
        // Last: the digest is of what the client receives.
        flow(self.audit.on_response_chunk(ex, chunk))?;
        Ok(())
    }

    /// The end of a response stream: bytes a chunk stage still holds (the content
    /// stage's hold-back), to send before the body ends.
    pub fn response_end(&self, ex: &mut Exchange) -> Option<Bytes> {
        let tail = self.content.on_stream_end(ex);
        self.output.on_stream_end(ex, tail)
    }

    /// Completion stages. Called exactly once per exchange, by `ExchangeBody`. Returns
    /// what the body must wait for before its last frame (the audit record, in sync
    /// mode). The audit stage runs last and takes the exchange's audit state.
    pub fn complete(
        &self,
        ex: &mut Exchange,
        route: Option<&RouteRuntime>,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        ex.timings.response_end = Some(ex.started.elapsed());
        self.request_id.on_complete(ex);
        self.identify.on_complete(ex);
        self.authorize.on_complete(ex);
        self.limit.on_complete(ex);
        self.body.on_complete(ex);
        self.model.on_complete(ex);
        self.validate.on_complete(ex);
        self.content.on_complete(ex);
        self.tokens.on_complete(ex);
        // Before the log and the audit record, which carry its findings.
        self.watch.on_complete(ex, route);
        // After the detectors (which may mark it for review), before the audit stage
        // takes the captured payload.
        self.oversight.on_complete(ex, route, &self.audit);
        self.metrics.on_complete(ex);
        self.trace.on_complete(ex);
        self.access_log.on_complete(ex);
        self.audit.on_complete(ex);
        self.audit.record(ex, route)
    }

    pub fn assign_request_id(&self, ex: &mut Exchange, headers: &http::HeaderMap) {
        self.request_id.assign(ex, headers);
    }

    /// The exchange's trace context, when `[traces]` is configured; whether it is.
    pub fn begin_trace(&self, ex: &mut Exchange, headers: &http::HeaderMap) -> bool {
        let Some(tracer) = self.trace.tracer() else {
            return false;
        };
        let trace = tracer.begin(ex, headers);
        if trace.sampled && tracer.stages() {
            ex.stage_times = Some(Vec::with_capacity(16));
        }
        ex.stash.put(trace);
        true
    }
}

async fn run<S: Stage>(
    stage: &S,
    ex: &mut Exchange,
    route: &RouteRuntime,
    req: &mut RequestParts,
) -> Result<(), RequestError> {
    ex.timed(S::NAME, async |ex| flow(stage.on_request(ex, route, req).await))
        .await
}

fn flow(f: Flow) -> Result<(), RequestError> {
    match f {
        Flow::Continue => Ok(()),
        Flow::Reject(e) => Err(e),
    }
}
