//! Abuse: limits that keep one client from taking the endpoint for itself, measured
//! within the budget. A burst of requests (is there a rate limit?), requests held in
//! flight at once (is there a concurrency limit?), and a client that sends its request
//! head one byte a second (is it cut off?). A limit higher than the budget lets the
//! probe see is reported as not seen within it — the report says how many requests
//! that was.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Ctx, owasp};
use crate::report::{Case, Severity, Verdict};

/// Requests in the rate burst, at most (fewer when the budget is smaller).
const BURST: u64 = 40;
/// How long a slow client may hold a connection before the probe calls it a finding.
pub const SLOW_WINDOW: Duration = Duration::from_secs(15);

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    let left = |ctx: &Ctx| {
        ctx.prober
            .budget()
            .limits()
            .requests
            .saturating_sub(ctx.prober.budget().sent())
    };
    // Concurrency before the burst, so a rate limit the burst trips does not pose as
    // a concurrency limit.
    let mut out = vec![concurrency(ctx, left(ctx) / 4).await];
    let left = left(ctx);

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
/// held by a few clients (slowloris).
async fn slow_client(ctx: &Ctx) -> Case {
    let case = Case::new(
        "abuse.slow_client",
        "abuse",
        "A client sending its request head one byte a second is not cut off",
        Severity::Medium,
        &[owasp::API4],
    );
    if !ctx.prober.budget().take().await {
        return case.not_run();
    }
    let (mut stream, authority) = match ctx.prober.connect().await {
        Ok(c) => c,
        Err(e) => return case.inconclusive(format!("could not connect: {e}")),
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nX-Probe-Slow: ",
        ctx.request_target()
    );
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
        if stream.write_all(&[byte]).await.is_err() || stream.flush().await.is_err() {
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

/// The most requests held in flight at once by the concurrency case.
pub const HELD: u64 = 12;

/// How one held request ended.
enum Held {
    /// Answered before its body was complete: refused at admission.
    Early(u16, String),
    /// Still waiting for its last byte.
    Open(Box<dyn crate::client::Io>),
    Failed(String),
}

/// Requests in flight at once, without sending faster than the budget's rate: each
/// request sends its head and all of its body but the last byte, and is held there
/// while the next ones start. A server that admits requests before reading bodies
/// (a gateway's concurrency limit does) answers the one over its limit at once (429
/// or 503); one with no limit holds them all. Then every held request gets its last
/// byte and its answer is read, so each is an ordinary, complete request.
async fn concurrency(ctx: &Ctx, left: u64) -> Case {
    let case = Case::new(
        "abuse.concurrency_limit",
        "abuse",
        "No limit on requests in flight at once",
        Severity::Medium,
        &[owasp::API4, owasp::LLM10],
    );
    let n = HELD.min(left);
    if n < 4 {
        return case.not_run();
    }
    let body = ctx.valid_body("Hello").to_string();
    let mut held: Vec<Held> = Vec::new();
    let started = Instant::now();
    for _ in 0..n {
        if !ctx.prober.budget().take().await {
            break;
        }
        let (mut stream, authority) = match ctx.prober.connect().await {
            Ok(c) => c,
            Err(e) => {
                held.push(Held::Failed(e.to_string()));
                continue;
            }
        };
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            ctx.request_target(),
            body.len()
        );
        if let Some((k, v)) = ctx.prober.auth() {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body[..body.len() - 1]);
        if let Err(e) = async {
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await
        }
        .await
        {
            held.push(Held::Failed(e.to_string()));
            continue;
        }
        held.push(Held::Open(stream));
        // Answers that came while holding: the ones refused at admission.
        for h in &mut held {
            if let Held::Open(s) = h
                && let Some((status, text)) = peek_answer(s.as_mut()).await
            {
                *h = Held::Early(status, text);
            }
        }
    }
    let in_flight = held.iter().filter(|h| matches!(h, Held::Open(_))).count();
    let held_secs = started.elapsed().as_secs_f64();
    // Complete every held request, then read the answers, all within one timeout.
    let last = &body.as_bytes()[body.len() - 1..];
    for h in &mut held {
        if let Held::Open(s) = h
            && (s.write_all(last).await.is_err() || s.flush().await.is_err())
        {
            *h = Held::Failed("the connection closed before the last byte".into());
        }
    }
    let deadline = Instant::now() + crate::client::TIMEOUT;
    let mut completed = Vec::new();
    for h in &mut held {
        if let Held::Open(s) = h {
            completed.push(read_status(s.as_mut(), deadline.saturating_duration_since(Instant::now())).await);
        }
    }
    let mut early: Vec<(u16, &str)> = held
        .iter()
        .filter_map(|h| {
            if let Held::Early(s, t) = h {
                Some((*s, t.as_str()))
            } else {
                None
            }
        })
        .collect();
    // A refusal slower than the peek shows up as the held request's answer.
    early.extend(
        completed
            .iter()
            .flatten()
            .filter(|s| matches!(s, 429 | 503))
            .map(|s| (*s, "")),
    );
    let failed: Vec<&str> = held
        .iter()
        .filter_map(|h| {
            if let Held::Failed(e) = h {
                Some(e.as_str())
            } else {
                None
            }
        })
        .collect();
    let ok = completed
        .iter()
        .filter(|s| s.is_some_and(|s| (200..300).contains(&s)))
        .count();
    if let Some((s, text)) = early.iter().find(|(s, _)| matches!(s, 429 | 503)) {
        // Was it the requests in flight? Once they have ended, one more request must
        // be let in; a rate limit or a quota would still refuse it.
        let Some(after) = ctx.infer(&ctx.valid_body("Hello"), true).await else {
            return case.not_run();
        };
        if !after.ok() {
            return case.inconclusive(format!(
                    "refused with {s} after {in_flight} held, and still refused ({}) once they had ended: a rate limit or a quota, not a concurrency limit",
                    super::status_text(&after)
                ),
            );
        }
        return case.judge(
            Verdict::Pass,
            format!(
                "{in_flight} requests held in flight at once; the next was refused with {s} before its body was read ({} refused in all: `{}`), and let in again once they had ended",
                early.len(),
                first_line(text)
            ),
            &[&after],
        );
    }
    if !early.is_empty() || !failed.is_empty() || ok == 0 {
        return case.inconclusive(format!(
            "{in_flight} held, {} answered early ({:?}), {} could not connect ({}), {ok} answered 2xx after completion",
            early.len(),
            early.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            failed.len(),
            failed.first().copied().unwrap_or("")
        ));
    }
    case.judge(
        Verdict::Fail,
        format!(
            "{in_flight} requests in flight at once for {held_secs:.1} s, none refused; {ok} of them then answered 2xx: no concurrency limit seen within {n} requests"
        ),
        &[],
    )
}

/// An answer already waiting on `s`, if one is: its status and its first bytes.
async fn peek_answer(s: &mut dyn crate::client::Io) -> Option<(u16, String)> {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some((status_of(&buf[..n])?, String::from_utf8_lossy(&buf[..n]).into_owned())),
        _ => None,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn status_of(head: &[u8]) -> Option<u16> {
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// Reads a completed request's status, waiting at most `wait`.
async fn read_status(s: &mut dyn crate::client::Io, wait: Duration) -> Option<u16> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(wait, async {
        let mut got = 0;
        while got < 12 {
            let n = s.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                break;
            }
            got += n;
        }
        status_of(&buf[..got])
    })
    .await
    .ok()
    .flatten()
}
