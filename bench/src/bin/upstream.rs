//! A fast upstream for load benchmarks: answers every request with the same
//! chat-completion-sized JSON body (about 300 bytes), as quickly as hyper can.
//!
//! Usage: `upstream ADDR` (for example 127.0.0.1:18000). Runs until killed.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

const BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"This is a fixed answer from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".into())
        .parse()
        .map_err(std::io::Error::other)?;
    let threads = std::env::var("UPSTREAM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = rampart_testkit::TestServer::spawn(addr, |req: http::Request<hyper::body::Incoming>| async move {
            // Read (and discard) the request body like a real server would.
            let _ = req.into_body().collect().await;
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
