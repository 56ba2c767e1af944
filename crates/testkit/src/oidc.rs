//! A small OpenID Connect provider for the console's sign-in tests: discovery, an
//! authorization endpoint that signs in one fixed user at once (no login form: a
//! test's browser has no one to type), a token endpoint that enforces what a real
//! provider enforces — the registered client and redirect URI, the client secret
//! (HTTP Basic), single-use codes that expire, and PKCE `S256` (RFC 7636) — and issues
//! ES256 ID tokens with the request's nonce, and a JWKS endpoint.
//!
//! A test can make it misbehave the ways a hostile or broken provider would: send an ID
//! token with another nonce.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::http_server::{ResponseBody, TestServer};
use crate::jwt::{Error, Signer};

#[derive(Debug)]
struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
    issued: Instant,
}

#[derive(Debug)]
struct Inner {
    signer: Signer,
    issuer: Mutex<String>,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    subject: String,
    roles: Vec<String>,
    codes: Mutex<HashMap<String, Grant>>,
    wrong_nonce: AtomicBool,
    tokens: AtomicUsize,
    refused: AtomicUsize,
}

/// The provider; it stops when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    pub server: TestServer,
    inner: Arc<Inner>,
}

fn query(uri: &http::Uri) -> HashMap<String, String> {
    form(uri.query().unwrap_or("").as_bytes())
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| -> String {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn reply(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

fn random(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    crate::jwt::b64(&b)
}

impl Inner {
    fn refuse(&self, error: &str) -> Response<ResponseBody> {
        self.refused.fetch_add(1, Ordering::SeqCst);
        reply(StatusCode::BAD_REQUEST, &json!({"error": error}))
    }

    fn authorize(&self, uri: &http::Uri) -> Response<ResponseBody> {
        let q = query(uri);
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        if get("response_type") != "code" {
            return self.refuse("unsupported_response_type");
        }
        if get("client_id") != self.client_id || get("redirect_uri") != self.redirect_uri {
            return self.refuse("invalid_client");
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").len() < 43 {
            return self.refuse("invalid_request");
        }
        if !get("scope").split(' ').any(|s| s == "openid") {
            return self.refuse("invalid_scope");
        }
        let code = random(24);
        if let Ok(mut codes) = self.codes.lock() {
            codes.insert(
                code.clone(),
                Grant {
                    challenge: get("code_challenge"),
                    nonce: get("nonce"),
                    redirect_uri: get("redirect_uri"),
                    issued: Instant::now(),
                },
            );
        }
        let location = format!(
            "{}?code={code}&state={}",
            self.redirect_uri,
            crate::oidc::encode(&get("state"))
        );
        let mut r = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }

    fn token(&self, headers: &http::HeaderMap, body: &[u8]) -> Response<ResponseBody> {
        let f = form(body);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret))
        );
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return self.refuse("invalid_client");
        }
        if get("grant_type") != "authorization_code" {
            return self.refuse("unsupported_grant_type");
        }
        // A code works once, for a minute.
        let grant = self.codes.lock().ok().and_then(|mut c| c.remove(&get("code")));
        let Some(grant) = grant.filter(|g| g.issued.elapsed() < Duration::from_secs(60)) else {
            return self.refuse("invalid_grant");
        };
        if grant.redirect_uri != get("redirect_uri") {
            return self.refuse("invalid_grant");
        }
        let verifier = get("code_verifier");
        let challenge = crate::jwt::b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
        if verifier.len() < 43 || challenge != grant.challenge {
            return self.refuse("invalid_grant");
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let nonce = if self.wrong_nonce.load(Ordering::SeqCst) {
            "not-the-nonce".to_owned()
        } else {
            grant.nonce
        };
        let issuer = self.issuer.lock().map(|i| i.clone()).unwrap_or_default();
        let claims = json!({
            "iss": issuer, "aud": self.client_id, "sub": self.subject, "iat": now, "exp": now + 300,
            "nonce": nonce, "roles": self.roles,
        });
        match self.signer.sign("ES256", &json!({}), &claims) {
            Ok(id_token) => {
                self.tokens.fetch_add(1, Ordering::SeqCst);
                reply(
                    StatusCode::OK,
                    &json!({"access_token": random(16), "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
                )
            }
            Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"})),
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl OidcProvider {
    /// A provider for one client (`client_id`, `client_secret`, `redirect_uri`) that
    /// signs in `subject` with `roles` (the `roles` claim).
    pub async fn spawn(
        addr: SocketAddr,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        subject: &str,
        roles: &[&str],
    ) -> Result<Self, Error> {
        let inner = Arc::new(Inner {
            signer: Signer::es256("idp-key-1")?,
            issuer: Mutex::new(String::new()),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            subject: subject.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            codes: Mutex::new(HashMap::new()),
            wrong_nonce: AtomicBool::new(false),
            tokens: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let state = Arc::clone(&inner);
        let server = TestServer::spawn(addr, move |req: http::Request<hyper::body::Incoming>| {
            let state = Arc::clone(&state);
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let issuer = state.issuer.lock().map(|i| i.clone()).unwrap_or_default();
                match (parts.method.as_str(), parts.uri.path()) {
                    ("GET", "/.well-known/openid-configuration") => reply(
                        StatusCode::OK,
                        &json!({
                            "issuer": issuer,
                            "authorization_endpoint": format!("{issuer}/authorize"),
                            "token_endpoint": format!("{issuer}/token"),
                            "jwks_uri": format!("{issuer}/jwks.json"),
                            "response_types_supported": ["code"],
                            "code_challenge_methods_supported": ["S256"],
                            "id_token_signing_alg_values_supported": ["ES256"],
                        }),
                    ),
                    ("GET", "/authorize") => state.authorize(&parts.uri),
                    ("POST", "/token") => state.token(&parts.headers, &body),
                    ("GET", "/jwks.json") => reply(StatusCode::OK, &json!({"keys": [state.signer.jwk()]})),
                    _ => reply(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
                }
            }
        })
        .await?;
        if let Ok(mut i) = inner.issuer.lock() {
            *i = server.url();
        }
        Ok(Self { server, inner })
    }

    /// The issuer URL (also the base of every endpoint).
    pub fn issuer(&self) -> String {
        self.server.url()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.server.url())
    }

    /// Issue ID tokens whose nonce is not the one the client sent.
    pub fn send_wrong_nonce(&self, on: bool) {
        self.inner.wrong_nonce.store(on, Ordering::SeqCst);
    }

    /// ID tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.inner.tokens.load(Ordering::SeqCst)
    }

    /// Requests refused so far (bad client, code, verifier, …).
    pub fn refusals(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }
}
