//! HTTP client helpers for tests: HTTP/1.1, HTTP/2 with prior knowledge (h2c), and
//! HTTPS with a test CA, optional client certificate and ALPN h2.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub struct TestClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A fully read response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TestClient {
    fn build(tls: rustls::ClientConfig, h2: bool, h2_only: bool) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if h2 {
            b.enable_all_versions().build()
        } else {
            b.enable_http1().build()
        };
        let inner = Client::builder(TokioExecutor::new())
            .http2_only(h2_only)
            .pool_max_idle_per_host(4)
            .build(connector);
        Self { inner }
    }

    fn plain_tls() -> rustls::ClientConfig {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    /// HTTP/1.1 over plain TCP.
    pub fn http1() -> Self {
        Self::build(Self::plain_tls(), false, false)
    }

    /// HTTP/2 with prior knowledge over plain TCP.
    pub fn h2c() -> Self {
        Self::build(Self::plain_tls(), true, true)
    }

    /// HTTPS trusting `ca`, presenting `identity` (cert, key) if given, offering h2 when `h2`.
    pub fn tls(ca: &Path, identity: Option<(&Path, &Path)>, h2: bool) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
                builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Self::build(config, h2, false))
    }

    /// Sends a request and returns the response head with its streaming body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<http::Response<Incoming>, Error> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into()))?;
        Ok(self.inner.request(req).await?)
    }

    /// Sends a request and reads the whole response (30 s limit).
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<TestResponse, Error> {
        let fut = async {
            let resp = self.send(method, url, headers, body).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Error>(TestResponse {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), fut).await?
    }

    pub async fn get(&self, url: &str) -> Result<TestResponse, Error> {
        self.request(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn post_json(&self, url: &str, json: &serde_json::Value) -> Result<TestResponse, Error> {
        self.request(
            Method::POST,
            url,
            &[("content-type", "application/json")],
            json.to_string(),
        )
        .await
    }
}

/// A request being put together, so a test reads as its scenario:
/// `c.post(url).chat("m", "hi").header("x-request-id", "a").send().await?`.
#[derive(Debug)]
pub struct Call<'a> {
    client: &'a TestClient,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl TestClient {
    pub fn call(&self, method: Method, url: impl Into<String>) -> Call<'_> {
        Call {
            client: self,
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post(&self, url: impl Into<String>) -> Call<'_> {
        self.call(Method::POST, url)
    }
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (with its Content-Type).
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.json_text(value.to_string())
    }

    /// A body sent as JSON exactly as written (for bodies a serializer would fix).
    pub fn json_text(mut self, text: impl Into<Bytes>) -> Self {
        self.headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        self.body = text.into();
        self
    }

    /// An OpenAI chat request with one user message.
    pub fn chat(self, model: &str, content: &str) -> Self {
        self.json(&chat_body(model, content, false))
    }

    /// The same, streamed.
    pub fn chat_stream(self, model: &str, content: &str) -> Self {
        self.json(&chat_body(model, content, true))
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it and reads the whole response (30 s limit).
    pub async fn send(self) -> Result<TestResponse, Error> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.client.request(self.method, &self.url, &headers, self.body).await
    }
}

/// `{"model": model, "messages": [{"role": "user", "content": content}]}` (with
/// `"stream": true` when `stream`).
pub fn chat_body(model: &str, content: &str, stream: bool) -> serde_json::Value {
    let mut v = serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]});
    if stream {
        v["stream"] = serde_json::Value::Bool(true);
    }
    v
}

/// Reads a streaming body frame by frame, noting when each data frame arrived.
pub async fn timed_chunks(body: Incoming) -> Result<Vec<(Instant, Bytes)>, Error> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.push((Instant::now(), data));
        }
    }
    Ok(out)
}
