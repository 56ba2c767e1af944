//! Hostile clients: slowloris and malformed HTTP are cut off while everyone else is
//! served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::{Duration, Instant};

use crate::common::*;
use http::StatusCode;
use rampart_testkit::DemoOptions;
use rampart_testkit::client::TestClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF or error; returns what was read and whether the peer closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_while_others_are_served() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url())); // header_read_timeout = 1s
    let addr = gw.addr("main");

    // Ten slow clients each send a header byte every 300 ms and never finish.
    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n").await.unwrap();
            let started = Instant::now();
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if s.write_all(b"x").await.is_err() {
                    return (started.elapsed(), true);
                }
                let mut probe = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), true),
                    Ok(Ok(_)) => return (started.elapsed(), true),
                    Err(_) => {}
                }
            }
            (started.elapsed(), false)
        }));
    }
    // Meanwhile normal clients are served.
    let c = TestClient::http1();
    for _ in 0..20 {
        let r = c.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in slow {
        let (after, cut) = t.await.unwrap();
        assert!(cut, "a slowloris client was never disconnected");
        // Cut near the 1 s header timeout, long before its 9 s of dribbling ended.
        assert!(after < Duration::from_secs(5), "cut only after {after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_refused_and_others_are_served() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let addr = gw.addr("main");
    let garbage: [&[u8]; 6] = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
        b"GET /v1/models HTTP/9.9\r\nhost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nzz\r\n",
    ];
    for g in garbage {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(g).await;
        let (resp, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(closed, "connection left open after {:?}", String::from_utf8_lossy(g));
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 4"),
            "unexpected answer to {:?}: {text}",
            String::from_utf8_lossy(g)
        );
    }
    // Headers far over the limit (16 KiB by default) are refused too.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let _ = s.write_all(huge.as_bytes()).await;
    let (resp, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&resp);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 431"), "{text}");

    let c = TestClient::http1();
    let r = c.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
}
