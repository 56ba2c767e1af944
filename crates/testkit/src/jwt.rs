//! JWT test material: signers for RS256/PS256 (fixed test-only RSA keys in `data/`,
//! since ring cannot generate RSA keys), ES256 and EdDSA (generated per test), raw token
//! assembly for forged tokens, and a JWKS server whose key set a test can change or
//! take down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::http_server::TestServer;

const RSA_1: &str = include_str!("../data/test-only-rsa-1.pem");
const RSA_2: &str = include_str!("../data/test-only-rsa-2.pem");

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key with its key id.
pub struct Signer {
    pub kid: String,
    key: Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    /// One of the two shipped test-only RSA keys (`which` = 1 or 2).
    pub fn rsa(which: u8, kid: &str) -> Result<Self, Error> {
        let pem = if which == 1 { RSA_1 } else { RSA_2 };
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| e.to_string())?;
        Ok(Self {
            kid: kid.into(),
            key: Key::Rsa(key),
        })
    }

    pub fn es256(kid: &str) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| e.to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| e.to_string())?;
        Ok(Self {
            kid: kid.into(),
            key: Key::Ec(key),
        })
    }

    pub fn ed25519(kid: &str) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
        Ok(Self {
            kid: kid.into(),
            key: Key::Ed(key),
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.key {
            Key::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Key::Ed(k) => json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())}),
        }
    }

    /// The RSA public key in PEM (SPKI) form, for the "HMAC with the public key" attack.
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.key {
            Key::Rsa(k) => k.public().as_ref().to_vec(),
            Key::Ec(k) => k.public_key().as_ref().to_vec(),
            Key::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `claims` with `alg` (RS256, PS256, ES256, EdDSA); `extra` is merged into
    /// the header (e.g. `{"jku": "..."}`); the header carries this signer's `kid`.
    pub fn sign(&self, alg: &str, extra: &Value, claims: &Value) -> Result<String, Error> {
        let mut header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        if let (Some(h), Some(e)) = (header.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                h.insert(k.clone(), v.clone());
            }
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match (&self.key, alg) {
            (Key::Rsa(k), "RS256" | "PS256") => {
                let padding: &dyn signature::RsaEncoding = if alg == "RS256" {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(padding, &rng, input.as_bytes(), &mut sig)
                    .map_err(|e| e.to_string())?;
                sig
            }
            (Key::Ec(k), "ES256") => k
                .sign(&rng, input.as_bytes())
                .map_err(|e| e.to_string())?
                .as_ref()
                .to_vec(),
            (Key::Ed(k), "EdDSA") => k.sign(input.as_bytes()).as_ref().to_vec(),
            _ => return Err(format!("{alg} does not fit this key").into()),
        };
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

/// A token from arbitrary parts, for forgeries.
pub fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// An HS256 token keyed with `secret` (the classic "public key as HMAC secret" forgery).
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// A JWKS endpoint (`GET /jwks.json`) whose keys a test controls.
#[derive(Debug)]
pub struct JwksServer {
    pub server: TestServer,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn spawn(addr: SocketAddr, keys: Vec<Value>) -> std::io::Result<Self> {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (k, f, down) = (Arc::clone(&keys), Arc::clone(&fetches), Arc::clone(&failing));
        let server = TestServer::spawn(addr, move |req: http::Request<hyper::body::Incoming>| {
            let (k, f, down) = (Arc::clone(&k), Arc::clone(&f), Arc::clone(&down));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let (status, body) = if down.load(Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"}))
                } else if req.uri().path() == "/jwks.json" {
                    let keys = k.lock().map(|g| g.clone()).unwrap_or_default();
                    (StatusCode::OK, json!({"keys": keys}))
                } else {
                    (StatusCode::NOT_FOUND, json!({"error": "not found"}))
                };
                let mut r = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|n| match n {}).boxed());
                *r.status_mut() = status;
                r
            }
        })
        .await?;
        Ok(Self {
            server,
            keys,
            fetches,
            failing,
        })
    }

    pub fn url(&self) -> String {
        format!("{}/jwks.json", self.server.url())
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        if let Ok(mut g) = self.keys.lock() {
            *g = keys;
        }
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Answer 503 to every fetch (the identity provider is down).
    pub fn fail(&self, down: bool) {
        self.failing.store(down, Ordering::SeqCst);
    }
}
