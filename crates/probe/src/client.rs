//! Sending one probe request through the budget and keeping it as evidence: the
//! request and response as a reviewer reads them, bodies cut at 2 KiB, credentials
//! masked (the probe's own key, any `Authorization` value, anything shaped like a JWT).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::budget::Budget;

/// Evidence kept per body.
const EVIDENCE_BYTES: usize = 2048;
/// The most of an answer read.
const MAX_ANSWER: usize = 1024 * 1024;
/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One exchange as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: String,
    /// `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
    pub millis: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a case sees of an answer (the whole body, unmasked, for judging).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Option<u16>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub evidence: Evidence,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A byte stream to the endpoint, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The probe's view of the target: where it is, how to call it, and the budget.
#[derive(Debug)]
pub struct Prober {
    pub base: String,
    pub key: Option<String>,
    budget: Arc<Budget>,
    client: HttpClient,
    roots: Arc<rustls::RootCertStore>,
}

/// Masks a secret: its first 4 and last 2 characters stay, so a reader can tell keys
/// apart without reading one.
pub fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let head: String = secret.chars().take(4).collect();
    let tail: String = secret.chars().skip(n - 2).collect();
    format!("{head}…{tail}")
}

/// Replaces credentials in text: the probe's key, and JWT-shaped tokens.
fn scrub(text: &str, key: Option<&str>) -> String {
    let mut out = match key.filter(|k| !k.is_empty()) {
        Some(k) => text.replace(k, &mask(k)),
        None => text.to_owned(),
    };
    // JWTs: three base64url parts, the first starting with `eyJ`.
    while let Some(start) = out.find("eyJ") {
        let rest = &out[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(rest.len());
        if rest[..len].matches('.').count() < 2 {
            break;
        }
        out.replace_range(start..start + len, "eyJ…(a JWT, masked)");
    }
    out
}

fn cut(text: &str) -> String {
    if text.len() <= EVIDENCE_BYTES {
        return text.to_owned();
    }
    let mut end = EVIDENCE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

impl Prober {
    /// `ca`: a PEM bundle trusted beside the public roots.
    pub fn new(
        base: &str,
        key: Option<String>,
        ca: Option<&std::path::Path>,
        budget: Arc<Budget>,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("--ca {}: no PEM certificate in it", path.display()));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("--ca {}: {e}", path.display()))?;
            }
        }
        let roots = Arc::new(roots);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(Arc::clone(&roots))
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            budget,
            client: Client::builder(TokioExecutor::new()).build(connector),
            roots,
        })
    }

    /// A raw connection to the endpoint (TLS for https, with the probe's roots), for
    /// cases that must control the bytes on the wire: a slow client, a held body.
    /// Takes no budget: the caller does.
    pub async fn connect(&self) -> std::io::Result<(Box<dyn Io>, String)> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
        let (scheme, rest) = self.base.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest).to_owned();
        let https = scheme == "https";
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']');
        let addr = if has_port {
            authority.clone()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok((Box::new(tcp), authority));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
            None => authority
                .rsplit_once(':')
                .filter(|_| has_port)
                .map_or(authority.as_str(), |(h, _)| h)
                .to_owned(),
        };
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|_| bad("not a server name"))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e.to_string()))?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_no_client_auth();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await?;
        Ok((Box::new(stream), authority))
    }

    /// The roots the probe trusts (public ones and `--ca`).
    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        Arc::clone(&self.roots)
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The probe's credential as an `Authorization` header, when it has one.
    pub fn auth(&self) -> Option<(String, String)> {
        self.key
            .as_ref()
            .map(|k| ("authorization".to_owned(), format!("Bearer {k}")))
    }

    /// The base URL's scheme and authority (`https://host:port`).
    pub fn origin(&self) -> String {
        let (scheme, rest) = self.base.split_once("://").unwrap_or(("http", &self.base));
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("{scheme}://{authority}")
    }

    /// Sends one request to `path` under the base URL if the budget allows (`None`: it
    /// did not).
    pub async fn send(&self, method: Method, path: &str, headers: &[(String, String)], body: Bytes) -> Option<Answer> {
        self.send_url(method, &format!("{}{path}", self.base), headers, body)
            .await
    }

    /// The same for a whole URL.
    pub async fn send_url(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Option<Answer> {
        if !self.budget.take().await {
            return None;
        }
        let url = url.to_owned();
        let key = self.key.as_deref();
        let request_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                let shown = if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key") {
                    match v.split_once(' ') {
                        Some((scheme, cred)) => format!("{scheme} {}", mask(cred)),
                        None => mask(v),
                    }
                } else {
                    scrub(v, key)
                };
                (k.clone(), shown)
            })
            .collect();
        let mut evidence = Evidence {
            method: method.to_string(),
            url: scrub(&url, key),
            request_headers,
            request_body: cut(&scrub(&String::from_utf8_lossy(&body), key)),
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            millis: 0,
            error: None,
        };
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let started = Instant::now();
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                evidence.error = Some(e.to_string());
                return Some(Answer {
                    status: None,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    evidence,
                });
            }
        };
        let result = tokio::time::timeout(TIMEOUT, async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((parts, bytes))
        })
        .await;
        evidence.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(Ok((parts, bytes))) => {
                evidence.status = Some(parts.status.as_u16());
                evidence.response_headers = parts
                    .headers
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "set-cookie" | "date"))
                    .map(|(k, v)| (k.to_string(), scrub(&String::from_utf8_lossy(v.as_bytes()), key)))
                    .collect();
                evidence.response_body = cut(&scrub(&String::from_utf8_lossy(&bytes), key));
                Some(Answer {
                    status: Some(parts.status.as_u16()),
                    headers: parts.headers,
                    body: bytes,
                    evidence,
                })
            }
            Ok(Err(e)) => {
                evidence.error = Some(e);
                Some(Answer {
                    status: None,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    evidence,
                })
            }
            Err(_) => {
                evidence.error = Some(format!("no answer within {} s", TIMEOUT.as_secs()));
                Some(Answer {
                    status: None,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    evidence,
                })
            }
        }
    }

    /// A JSON POST with the probe's credential (and `extra` headers).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value, with_key: bool) -> Option<Answer> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if with_key && let Some(a) = self.auth() {
            headers.push(a);
        }
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_drops_the_path() {
        let budget = std::sync::Arc::new(crate::budget::Budget::new(
            crate::budget::Limits::default(),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        ));
        let p = Prober::new("https://api.example.com:8443/v1/predict/", None, None, budget);
        assert_eq!(
            p.map(|p| p.origin()).ok().as_deref(),
            Some("https://api.example.com:8443")
        );
    }

    #[test]
    fn evidence_never_shows_a_credential() {
        let key = "rk_live_ABCDEFGHIJKL_secretsecretsecret";
        let text = format!("the key {key} and a token eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl here");
        let s = scrub(&text, Some(key));
        assert!(!s.contains("secretsecret") && !s.contains("c2lnbmF0dXJl"), "{s}");
        assert!(s.contains("rk_l…et") && s.contains("a JWT, masked"), "{s}");
        assert_eq!(mask("short"), "****");
    }
}
