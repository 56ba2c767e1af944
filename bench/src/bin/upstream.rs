//! A fast upstream for load benchmarks: answers every request with the same
//! chat-completion-sized JSON body (about 300 bytes), as quickly as hyper can. A request
//! whose body asks for `"stream":true` gets a chat-completion stream instead: `SSE_CHUNKS`
//! Server-Sent Events (20 by default) `SSE_GAP_MS` apart (10 by default), the last with a
//! `usage` object, then `data: [DONE]` — an LLM server's streaming answer at a steady
//! pace, so a proxy's added time to first byte and between chunks can be measured.
//! Streams carry `X-Accel-Buffering: no`, as LLM servers behind nginx send, so nginx
//! passes each chunk on as it arrives.
//!
//! `POST /v1/traces` is answered as an OTLP/HTTP collector that keeps nothing would
//! (the trace-overhead rows of `bench/run.sh` export to it).
//!
//! Usage: `upstream ADDR` (for example 127.0.0.1:18000). Runs until killed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

const BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"This is a fixed answer from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The events of one streamed answer: `n` content chunks, a final chunk with the usage,
/// and the `[DONE]` line.
fn stream_events(n: u64) -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        ))
    };
    let mut events: Vec<Bytes> = (0..n)
        .map(|i| chunk(&format!("{{\"content\":\"word{i} \"}}"), "null", ""))
        .collect();
    events.push(chunk(
        "{}",
        "\"stop\"",
        &format!(
            ",\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{n},\"total_tokens\":{}}}",
            n + 12
        ),
    ));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".into())
        .parse()
        .map_err(std::io::Error::other)?;
    let threads = env_number("UPSTREAM_THREADS", 1);
    let chunks = env_number("SSE_CHUNKS", 20);
    let gap = Duration::from_millis(env_number("SSE_GAP_MS", 10));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::try_from(threads).unwrap_or(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server =
            rampart_testkit::TestServer::spawn(addr, move |req: http::Request<hyper::body::Incoming>| async move {
                let collector = req.uri().path() == "/v1/traces";
                // Read the request body like a real server would.
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if collector {
                    // An OTLP/HTTP collector that keeps nothing: an empty
                    // ExportTraceServiceResponse (full success).
                    let mut r = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/x-protobuf"),
                    );
                    return r;
                }
                if body.windows(13).any(|w| w == b"\"stream\":true") {
                    let mut r = rampart_testkit::demo::sse(stream_events(chunks), gap);
                    r.headers_mut()
                        .insert("x-accel-buffering", http::HeaderValue::from_static("no"));
                    return r;
                }
                let mut r = Response::new(
                    Full::new(Bytes::from_static(BODY.as_bytes()))
                        .map_err(|n| match n {})
                        .boxed(),
                );
                *r.status_mut() = StatusCode::OK;
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                r
            })
            .await?;
        eprintln!("upstream listening on {}", server.addr);
        server.wait().await;
        Ok(())
    })
}
