#![allow(clippy::disallowed_methods)] // a load generator: its tasks end with the run
//! Open-loop load generator: sends requests at a fixed rate over a fixed number of
//! keep-alive connections. When a response comes back after the next request was due,
//! that next request's latency counts from when it was due, so a stalled server cannot
//! hide its queueing (no coordinated omission); otherwise latency counts from the
//! actual send, so the client's 1 ms timer granularity is not charged to the server.
//!
//! Usage: `loadgen URL RATE_PER_SEC SECONDS CONNECTIONS [BODY] [AUTHORIZATION]`
//! Prints one line of JSON: sent, ok, errors, achieved rate, p50/p90/p99/p99.9/max µs.
//!
//! Streaming mode: `loadgen --sse URL SECONDS CONNECTIONS BODY [AUTHORIZATION]` keeps one
//! streamed request in flight per connection, back to back, and times each stream's
//! first event from the send (time to first byte) and the gap between consecutive body
//! frames. Prints one line of JSON: streams, events, errors, ttfb p50/p99 µs, gap
//! p50/p99/max µs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let idx = rank as usize;
    sorted[idx.min(sorted.len() - 1)]
}

type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// One connection's streams: time to first body frame of each, and the gaps between
/// frames.
async fn streams(
    addr: String,
    path: String,
    body: Bytes,
    auth: String,
    until: Instant,
) -> Result<(Vec<u64>, Vec<u64>, u64, u64), TaskError> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut ttfb, mut gaps, mut events, mut errors) = (Vec::new(), Vec::new(), 0u64, 0u64);
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    while Instant::now() < until {
        let mut req = Request::post(path.as_str())
            .header("host", addr.as_str())
            .header("content-type", "application/json")
            .header("accept", "text/event-stream");
        if !auth.is_empty() {
            req = req.header("authorization", auth.as_str());
        }
        let sent = Instant::now();
        let resp = match sender.send_request(req.body(Full::new(body.clone()))?).await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                errors += 1;
                let _ = r.into_body().collect().await;
                continue;
            }
            Err(_) => return Ok((ttfb, gaps, events, errors + 1)),
        };
        let mut body = resp.into_body();
        let mut last: Option<Instant> = None;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                errors += 1;
                break;
            };
            let Some(data) = frame.data_ref() else { continue };
            let now = Instant::now();
            match last {
                None => ttfb.push(micros(now - sent)),
                Some(prev) => gaps.push(micros(now - prev)),
            }
            last = Some(now);
            events += data.windows(6).filter(|w| w == b"data: ").count() as u64;
        }
    }
    Ok((ttfb, gaps, events, errors))
}

fn sse_main(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if args.len() < 6 {
        return Err("usage: loadgen --sse URL SECONDS CONNECTIONS BODY [AUTHORIZATION]".into());
    }
    let url: http::Uri = args[2].parse()?;
    let secs: f64 = args[3].parse()?;
    let conns: usize = args[4].parse()?;
    let body = Bytes::from(args[5].clone());
    let auth = args.get(6).cloned().unwrap_or_default();
    let addr = format!("{}:{}", url.host().unwrap_or("127.0.0.1"), url.port_u16().unwrap_or(80));
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut ttfb, mut gaps, events, errors) = rt.block_on(async move {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(streams(addr.clone(), path.clone(), body.clone(), auth.clone(), until)))
            .collect();
        let (mut ttfb, mut gaps, mut events, mut errors) = (Vec::new(), Vec::new(), 0, 0);
        for t in tasks {
            match t.await {
                Ok(Ok((t, g, n, e))) => {
                    ttfb.extend(t);
                    gaps.extend(g);
                    events += n;
                    errors += e;
                }
                _ => errors += 1,
            }
        }
        (ttfb, gaps, events, errors)
    });
    ttfb.sort_unstable();
    gaps.sort_unstable();
    println!(
        "{{\"streams\":{},\"events\":{},\"errors\":{},\"ttfb_p50_us\":{},\"ttfb_p99_us\":{},\"gap_p50_us\":{},\"gap_p99_us\":{},\"gap_max_us\":{}}}",
        ttfb.len(),
        events,
        errors,
        percentile(&ttfb, 50.0),
        percentile(&ttfb, 99.0),
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        gaps.last().copied().unwrap_or(0)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--sse") {
        return sse_main(&args);
    }
    if args.len() < 5 {
        return Err("usage: loadgen URL RATE_PER_SEC SECONDS CONNECTIONS [BODY]".into());
    }
    let url: http::Uri = args[1].parse()?;
    let rate: f64 = args[2].parse()?;
    let secs: f64 = args[3].parse()?;
    let conns: usize = args[4].parse()?;
    let body = Bytes::from(args.get(5).cloned().unwrap_or_default());
    let auth = args.get(6).cloned().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (latencies, errors, elapsed) = rt.block_on(async move {
        let start = Instant::now() + Duration::from_millis(200);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let total = (rate * secs) as u64;
        let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
        let mut tasks = Vec::new();
        for c in 0..conns {
            let url = url.clone();
            let body = body.clone();
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                let addr = format!("{}:{}", url.host().unwrap_or("127.0.0.1"), url.port_u16().unwrap_or(80));
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let stream = tokio::net::TcpStream::connect(&addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                let offset = per_conn_interval.mul_f64(c as f64 / conns as f64);
                let mut i = 0u64;
                let mut prev_done = start;
                loop {
                    let n = i * conns as u64 + c as u64;
                    if n >= total {
                        break;
                    }
                    let intended = start + offset + per_conn_interval.mul_f64(i as f64);
                    tokio::time::sleep_until(intended.into()).await;
                    let from = if prev_done > intended { intended } else { Instant::now() };
                    let method = if body.is_empty() { "GET" } else { "POST" };
                    let mut req = Request::builder()
                        .method(method)
                        .uri(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
                        .header("host", addr.as_str())
                        .header("content-type", "application/json");
                    if !auth.is_empty() {
                        req = req.header("authorization", auth.as_str());
                    }
                    let req = req.body(Full::new(body.clone()))?;
                    match sender.send_request(req).await {
                        Ok(resp) if resp.status().is_success() => {
                            let _ = resp.into_body().collect().await;
                            lat.push(u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX));
                        }
                        _ => errors += 1,
                    }
                    prev_done = Instant::now();
                    i += 1;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((lat, errors))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            match t.await {
                Ok(Ok((l, e))) => {
                    all.extend(l);
                    errors += e;
                }
                _ => errors += 1,
            }
        }
        (all, errors, start.elapsed())
    });
    let mut sorted = latencies;
    sorted.sort_unstable();
    println!(
        "{{\"ok\":{},\"errors\":{},\"rate\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        sorted.len(),
        errors,
        sorted.len() as f64 / elapsed.as_secs_f64(),
        percentile(&sorted, 50.0),
        percentile(&sorted, 90.0),
        percentile(&sorted, 99.0),
        percentile(&sorted, 99.9),
        sorted.last().copied().unwrap_or(0)
    );
    Ok(())
}
