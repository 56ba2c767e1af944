//! Request id: keeps a well-formed `X-Request-Id` from the client (so traces join up
//! across systems) or generates one, sends it upstream and returns it to the client.
//! Generated ids are a per-process random prefix plus a counter: unique, cheap, and
//! not guessable across restarts.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use http::header::HeaderName;

use crate::context::Exchange;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id we keep; longer ones are replaced.
const MAX_CLIENT_ID_LEN: usize = 128;

#[derive(Debug)]
pub struct RequestIdStage {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIdStage {
    pub fn new() -> Self {
        let mut seed = [0u8; 6];
        // Fall back to time-derived bits if the OS RNG is unavailable; ids stay unique
        // within the process either way because of the counter.
        if rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut seed)
            .is_err()
        {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            seed.copy_from_slice(&nanos.to_le_bytes()[..6]);
        }
        let prefix: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    fn generate(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:010x}", self.prefix)
    }
}

impl Default for RequestIdStage {
    fn default() -> Self {
        Self::new()
    }
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl RequestIdStage {
    /// Assigns the exchange's id. Runs before routing so that even a 404 carries one.
    pub fn assign(&self, ex: &mut Exchange, headers: &http::HeaderMap) {
        ex.request_id = match headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
            Some(id) if acceptable(id) => id.to_owned(),
            _ => self.generate(),
        };
    }
}

impl Stage for RequestIdStage {
    const NAME: &'static str = "request_id";

    fn on_request(
        &self,
        ex: &mut Exchange,
        _route: &RouteRuntime,
        req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
            req.head.headers.insert(X_REQUEST_ID.clone(), v);
        }
        std::future::ready(Flow::Continue)
    }

    fn on_response(&self, ex: &mut Exchange, _route: &RouteRuntime, head: &mut http::response::Parts) -> Flow {
        if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
            head.headers.insert(X_REQUEST_ID.clone(), v);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_well_formed() {
        let stage = RequestIdStage::new();
        let a = stage.generate();
        let b = stage.generate();
        assert_ne!(a, b);
        assert!(acceptable(&a), "{a}");
    }

    #[test]
    fn hostile_client_ids_are_replaced() {
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\"}{"));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(acceptable("req-123_abc.def:9"));
    }
}
