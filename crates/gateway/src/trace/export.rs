//! The OTLP exporter: a bounded queue the request path hands finished spans to (a full
//! queue drops them and counts `rampart_trace_spans_total{result="dropped"}`: tracing
//! never blocks or slows traffic) and one task per runtime that sends them in batches
//! — when `batch` spans are waiting or `interval` after the first — over OTLP/HTTP
//! (`application/x-protobuf`) or OTLP/gRPC (HTTP/2, `application/grpc`). A refused
//! export is retried with back-off when the OTLP spec calls the answer retryable (HTTP
//! 429, 502, 503, 504; gRPC UNAVAILABLE and kin; network errors and timeouts), up to
//! [`RETRIES`] times. The task ends, after sending what is queued, when its runtime is
//! replaced by a reload and the last exchange on it has finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_config::{OtlpProtocol, Traces};
use tokio::sync::mpsc;

use super::otlp::{self, Span, Value};
use crate::error::InitError;
use crate::metrics::Metrics;

/// Attempts after the first.
pub const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The most of a collector's answer read.
const MAX_RESPONSE: usize = 64 * 1024;

type OtlpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The request path's side: hands spans to the exporter task without waiting.
#[derive(Debug)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Vec<Span>>,
    /// Spans handed over and not yet sent (the queue's real bound).
    pending: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Starts the exporter task for `endpoint`. Must run inside a Tokio runtime.
    pub fn start(config: &Traces, endpoint: &Uri, node: &str, metrics: Arc<Metrics>) -> Result<Self, InitError> {
        let tls = crate::server::tls::client_config(
            "traces",
            &rampart_config::UpstreamTls {
                ca: config.ca.clone(),
                ..Default::default()
            },
        )?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let client: OtlpClient = match config.protocol {
            // gRPC is HTTP/2 only: ALPN h2 over TLS, prior knowledge over plain TCP.
            OtlpProtocol::Grpc => Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(builder.enable_http2().wrap_connector(http)),
            OtlpProtocol::HttpProtobuf => {
                Client::builder(TokioExecutor::new()).build(builder.enable_http1().wrap_connector(http))
            }
        };
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, secret) in &config.headers {
            let mut value = HeaderValue::from_str(secret.expose())
                .map_err(|_| InitError::Keys(format!("traces.headers.{name} is not a valid header value")))?;
            value.set_sensitive(true);
            headers.push((name.clone(), value));
        }
        let resource = vec![
            ("service.name", Value::Str(config.service_name.clone())),
            ("service.version", Value::Str(env!("CARGO_PKG_VERSION").to_owned())),
            ("service.instance.id", Value::Str(node.to_owned())),
            ("telemetry.sdk.name", Value::Str("rampart".to_owned())),
            ("telemetry.sdk.language", Value::Str("rust".to_owned())),
            (
                "telemetry.sdk.version",
                Value::Str(env!("CARGO_PKG_VERSION").to_owned()),
            ),
        ];
        let pending = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let exporter = Exporter {
            client,
            endpoint: endpoint.clone(),
            protocol: config.protocol,
            headers,
            batch: config.batch,
            interval: config.interval,
            timeout: config.timeout,
            resource,
            pending: Arc::clone(&pending),
            metrics: Arc::clone(&metrics),
        };
        #[allow(clippy::disallowed_methods)] // ends when the runtime holding the queue is dropped
        tokio::spawn(exporter.run(rx));
        Ok(Self {
            tx,
            pending,
            capacity: config.queue,
            metrics,
        })
    }

    /// Queues one exchange's spans, or drops (and counts) them when the queue is full.
    pub fn offer(&self, spans: Vec<Span>) {
        let n = spans.len();
        let before = self.pending.fetch_add(n, Ordering::AcqRel);
        if before + n > self.capacity {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            self.metrics.trace_spans("dropped", n as u64);
            return;
        }
        if self.tx.send(spans).is_err() {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            self.metrics.trace_spans("dropped", n as u64);
        }
    }
}

struct Exporter {
    client: OtlpClient,
    endpoint: Uri,
    protocol: OtlpProtocol,
    headers: Vec<(HeaderName, HeaderValue)>,
    batch: usize,
    interval: Duration,
    timeout: Duration,
    resource: Vec<(&'static str, Value)>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// Why an export attempt failed, and whether trying again may help.
enum Failure {
    Retry(String),
    Final(String),
}

impl Exporter {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Vec<Span>>) {
        let mut batch: Vec<Span> = Vec::new();
        let mut open = true;
        while open {
            match rx.recv().await {
                Some(spans) => batch.extend(spans),
                None => break,
            }
            let deadline = tokio::time::Instant::now() + self.interval;
            while batch.len() < self.batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(spans)) => batch.extend(spans),
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
            while !batch.is_empty() {
                let n = batch.len().min(self.batch);
                let chunk: Vec<Span> = batch.drain(..n).collect();
                self.send(&chunk).await;
                self.pending.fetch_sub(n, Ordering::AcqRel);
            }
        }
    }

    async fn send(&self, spans: &[Span]) {
        let n = spans.len() as u64;
        let message = otlp::export_request(&self.resource, env!("CARGO_PKG_VERSION"), spans);
        let body = match self.protocol {
            OtlpProtocol::HttpProtobuf => Bytes::from(message),
            OtlpProtocol::Grpc => {
                // The gRPC frame: not compressed, then the length, big-endian.
                let mut framed = BytesMut::with_capacity(message.len() + 5);
                framed.put_u8(0);
                framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
                framed.extend_from_slice(&message);
                framed.freeze()
            }
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=RETRIES {
            let outcome = match tokio::time::timeout(self.timeout, self.attempt(body.clone())).await {
                Ok(o) => o,
                Err(_) => Err(Failure::Retry("timed out".to_owned())),
            };
            match outcome {
                Ok(rejected) => {
                    let rejected = rejected.min(n);
                    self.metrics.trace_spans("exported", n - rejected);
                    if rejected > 0 {
                        self.metrics.trace_spans("failed", rejected);
                        tracing::warn!(event = "trace_export_partial", rejected, "the collector dropped spans");
                    }
                    return;
                }
                Err(Failure::Retry(reason)) if attempt < RETRIES => {
                    tracing::debug!(event = "trace_export_retry", attempt, %reason);
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(Failure::Retry(reason) | Failure::Final(reason)) => {
                    self.metrics.trace_spans("failed", n);
                    tracing::warn!(
                        event = "trace_export_failed",
                        spans = n,
                        attempts = attempt + 1,
                        %reason,
                        "spans could not be exported"
                    );
                    return;
                }
            }
        }
    }

    /// One export request; `Ok(rejected spans)`.
    async fn attempt(&self, body: Bytes) -> Result<u64, Failure> {
        let grpc = self.protocol == OtlpProtocol::Grpc;
        let mut request = http::Request::post(self.endpoint.clone())
            .header(http::header::USER_AGENT, concat!("rampart/", env!("CARGO_PKG_VERSION")))
            .header(
                http::header::CONTENT_TYPE,
                if grpc {
                    "application/grpc"
                } else {
                    "application/x-protobuf"
                },
            );
        if grpc {
            request = request.header(http::header::TE, "trailers");
        }
        let mut request = request
            .body(Full::new(body))
            .map_err(|e| Failure::Final(e.to_string()))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Retry(format!("{e}")))?;
        let status = response.status();
        let (head, body) = response.into_parts();
        let collected = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| Failure::Retry(format!("reading the answer: {e}")))?;
        let trailers = collected.trailers().cloned();
        let bytes = collected.to_bytes();
        if !status.is_success() {
            let reason = format!("HTTP {status}");
            return Err(if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
                Failure::Retry(reason)
            } else {
                Failure::Final(reason)
            });
        }
        if !grpc {
            return otlp::rejected_spans(&bytes).ok_or_else(|| Failure::Final("the answer is not OTLP".to_owned()));
        }
        // A trailers-only answer carries the status in its headers.
        let field = |name: &str| {
            trailers
                .as_ref()
                .and_then(|t| t.get(name))
                .or_else(|| head.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let code: u32 = field("grpc-status")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Failure::Retry("the answer has no grpc-status".to_owned()))?;
        if code != 0 {
            let reason = format!("gRPC status {code}: {}", field("grpc-message").unwrap_or_default());
            // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
            return Err(if matches!(code, 1 | 4 | 10 | 11 | 14 | 15) {
                Failure::Retry(reason)
            } else {
                Failure::Final(reason)
            });
        }
        let message = bytes.get(5..).unwrap_or_default();
        otlp::rejected_spans(message).ok_or_else(|| Failure::Final("the answer is not OTLP".to_owned()))
    }
}
