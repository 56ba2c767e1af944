//! Abuse: limits that keep one client from taking the endpoint for itself, measured
//! within the budget. A burst of requests (is there a rate limit?) and a client that
//! sends its request head one byte a second (is it cut off?). A limit higher than the budget lets the probe see is reported as not
//! seen within it — the report says how many requests that was.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Ctx, owasp};
use crate::report::{Case, Severity, Verdict};

/// Requests in the rate burst, at most (fewer when the budget is smaller).
const BURST: u64 = 40;
/// How long a slow client may hold a connection before the probe calls it a finding.
pub const SLOW_WINDOW: Duration = Duration::from_secs(15);

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    let mut out = Vec::new();
    let left = ctx
        .prober
        .budget()
        .limits()
        .requests
        .saturating_sub(ctx.prober.budget().sent());

    // A burst: as fast as the budget's rate allows.
    let rate = Case::new(
        "abuse.rate_limit",
        "abuse",
        "No rate limit within a burst of requests",
        Severity::Medium,
        &[owasp::API4, owasp::LLM10],
    );
    let n = BURST.min(left / 2);
    if n < 10 {
        out.push(rate.not_run());
    } else {
        let started = Instant::now();
        let mut sent = 0;
        let mut limited = None;
        let mut last = None;
        for _ in 0..n {
            let Some(a) = ctx.infer(&ctx.valid_body("Hello"), true).await else {
                break;
            };
            sent += 1;
            if a.status == Some(429) {
                limited = Some(a);
                break;
            }
            last = Some(a);
        }
        let secs = started.elapsed().as_secs_f64();
        out.push(match (limited, last) {
            (Some(a), _) => rate.judge(
                Verdict::Pass,
                format!("429 after {sent} requests in {secs:.1} s"),
                &[&a],
            ),
            (None, Some(a)) => rate.judge(
                Verdict::Fail,
                format!("{sent} requests in {secs:.1} s, none refused with 429: no rate limit seen within the budget"),
                &[&a],
            ),
            (None, None) => rate.not_run(),
        });
    }

    out.push(slow_client(ctx).await);
    out
}

/// A request head sent one byte a second: a server that waits for it forever can be
/// held by a few clients (slowloris). Plain HTTP only (the probe does not trickle
/// through TLS).
async fn slow_client(ctx: &Ctx) -> Case {
    let case = Case::new(
        "abuse.slow_client",
        "abuse",
        "A client sending its request head one byte a second is not cut off",
        Severity::Medium,
        &[owasp::API4],
    );
    let Some(rest) = ctx.prober.base.strip_prefix("http://") else {
        return case.skip("plain http:// endpoints only");
    };
    let (authority, prefix) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{}", p.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    if !ctx.prober.budget().take().await {
        return case.not_run();
    }
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr)).await
    else {
        let mut c = case.skip("could not connect");
        c.verdict = Verdict::Inconclusive;
        return c;
    };
    let target = format!("{prefix}{}", ctx.path());
    let target = if target.is_empty() { "/".to_owned() } else { target };
    let head = format!("POST {target} HTTP/1.1\r\nHost: {authority}\r\nX-Probe-Slow: ");
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in head.bytes().chain(std::iter::repeat(b'a')) {
        if started.elapsed() >= SLOW_WINDOW {
            return case.judge(
                Verdict::Fail,
                format!("still connected after {} s of one byte a second", SLOW_WINDOW.as_secs()),
                &[],
            );
        }
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        // Did the server close or answer (408)?
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]);
                return case.judge(
                    Verdict::Pass,
                    format!(
                        "answered after {:.0} s: {}",
                        started.elapsed().as_secs_f64(),
                        answer.lines().next().unwrap_or("")
                    ),
                    &[],
                );
            }
            Err(_) => {}
        }
    }
    case.judge(
        Verdict::Pass,
        format!(
            "the connection was closed after {:.0} s",
            started.elapsed().as_secs_f64()
        ),
        &[],
    )
}
