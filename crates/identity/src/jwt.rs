//! JWT verification (RFC 7519) with the RFC 8725 rules: only asymmetric algorithms
//! (RS256, PS256, ES256, EdDSA) and only those on the issuer's allow-list; `alg: none`
//! and HMAC algorithms are refused outright (so a public key can never be used as an
//! HMAC secret); the key's type must match the algorithm; `jku`, `x5u`, `x5c` and `jwk`
//! headers are never followed — keys come only from the issuer's configured key set;
//! `crit` is refused; `iss`, `aud` and `exp` are required, `nbf` and `iat` honoured, all
//! with a bounded leeway. Signatures are checked with ring.
//!
//! Error detail stays inside: every failure before the signature verified is
//! `Invalid`; only a correctly signed token can be told `Expired` or `NotYetValid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

use crate::principal::{Credential, Principal, Scope};

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest leeway configuration may set.
pub const MAX_LEEWAY_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "RS256" => Alg::RS256,
            "PS256" => Alg::PS256,
            "ES256" => Alg::ES256,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] = &["RS256", "PS256", "ES256", "EdDSA"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not valid")]
    Invalid,
    /// The token names a key id the issuer's key set does not have (yet).
    #[error("the token's key is unknown")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    /// The JWK's own `alg`, if it pins one.
    alg: Option<String>,
    key: PublicKey,
}

/// An issuer's public keys (a JWKS document).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

impl KeySet {
    /// Parses a JWKS document. Keys of unknown types, encryption keys and keys with
    /// bad parameters are skipped; the result may be empty.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawJwks = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = raw
            .keys
            .into_iter()
            .filter(|k| k.use_.as_deref() != Some("enc"))
            .filter_map(|k| {
                let key = match (k.kty.as_str(), k.crv.as_deref()) {
                    ("RSA", _) => {
                        let n = b64(k.n.as_deref()?)?;
                        // ring refuses moduli under 2048 bits anyway; refuse early.
                        (n.len() >= 256).then_some(())?;
                        PublicKey::Rsa {
                            n,
                            e: b64(k.e.as_deref()?)?,
                        }
                    }
                    ("EC", Some("P-256")) => {
                        let (x, y) = (b64(k.x.as_deref()?)?, b64(k.y.as_deref()?)?);
                        (x.len() == 32 && y.len() == 32).then_some(())?;
                        let mut point = vec![0x04];
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        PublicKey::P256(point)
                    }
                    ("OKP", Some("Ed25519")) => {
                        let x = b64(k.x.as_deref()?)?;
                        (x.len() == 32).then_some(())?;
                        PublicKey::Ed25519(x)
                    }
                    _ => return None,
                };
                Some(Jwk {
                    kid: k.kid,
                    alg: k.alg,
                    key,
                })
            })
            .collect();
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// How one issuer's tokens are checked and mapped to a principal.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Alg>,
    pub leeway: i64,
    pub subject_claim: String,
    pub tenant_claim: Option<String>,
    pub roles_claim: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The parts of a token, decoded but not verified.
#[derive(Debug)]
pub struct Unverified {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: serde_json::Map<String, Value>,
    signing_input_len: usize,
    signature: Vec<u8>,
}

impl Unverified {
    /// The `iss` claim, to pick the issuer's rules before verifying.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// Whether `token` is shaped like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES
        && token.bytes().filter(|&b| b == b'.').count() == 2
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Splits and decodes a token without trusting anything in it.
pub fn decode(token: &str) -> Result<Unverified, JwtError> {
    if !looks_like_jwt(token) {
        return Err(JwtError::Invalid);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Invalid);
    };
    let header: Header = b64(h)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Invalid)?;
    if header.crit.is_some() {
        return Err(JwtError::Invalid);
    }
    let claims: serde_json::Map<String, Value> = b64(p)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Invalid)?;
    Ok(Unverified {
        alg: header.alg,
        kid: header.kid,
        claims,
        signing_input_len: h.len() + 1 + p.len(),
        signature: b64(s).ok_or(JwtError::Invalid)?,
    })
}

fn check_signature(alg: Alg, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    match (alg, key) {
        (Alg::RS256, PublicKey::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
            .is_ok(),
        (Alg::PS256, PublicKey::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PSS_2048_8192_SHA256, message, sig)
            .is_ok(),
        (Alg::ES256, PublicKey::P256(point)) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(message, sig)
            .is_ok(),
        (Alg::EdDSA, PublicKey::Ed25519(x)) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(message, sig)
            .is_ok(),
        // The key's type does not fit the algorithm: never "try anyway".
        _ => false,
    }
}

/// A NumericDate claim (RFC 7519 allows fractions; `as` saturates out-of-range values).
#[allow(clippy::cast_possible_truncation)]
fn number(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or(JwtError::Invalid),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The `aud` claim: a string is one audience, whitespace and all (RFC 7519 §4.1.3);
/// an array lists several.
fn audiences(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Verifies `token` (already decoded) against one issuer's rules and keys.
pub fn verify(
    token: &str,
    t: &Unverified,
    rules: &IssuerRules,
    keys: &KeySet,
    now: i64,
) -> Result<Principal, JwtError> {
    let alg = Alg::parse(&t.alg).ok_or(JwtError::Invalid)?;
    if !rules.algorithms.contains(&alg) {
        return Err(JwtError::Invalid);
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| match &t.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == t.alg))
        .collect();
    if candidates.is_empty() {
        return Err(if t.kid.is_some() {
            JwtError::UnknownKey
        } else {
            JwtError::Invalid
        });
    }
    let message = token.as_bytes().get(..t.signing_input_len).ok_or(JwtError::Invalid)?;
    if !candidates
        .iter()
        .any(|k| check_signature(alg, &k.key, message, &t.signature))
    {
        return Err(JwtError::Invalid);
    }
    // Signed by the issuer's key: now the claims can be trusted and checked.
    let c = &t.claims;
    if c.get("iss").and_then(Value::as_str) != Some(rules.issuer.as_str()) {
        return Err(JwtError::Invalid);
    }
    let aud = audiences(c.get("aud"));
    if !aud.iter().any(|a| rules.audiences.iter().any(|want| want == a)) {
        return Err(JwtError::Invalid);
    }
    let leeway = rules.leeway.clamp(0, MAX_LEEWAY_SECS);
    let exp = number(c, "exp")?.ok_or(JwtError::Invalid)?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if number(c, "nbf")?.is_some_and(|nbf| now < nbf.saturating_sub(leeway)) {
        return Err(JwtError::NotYetValid);
    }
    if number(c, "iat")?.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(JwtError::NotYetValid);
    }
    let subject = c
        .get(&rules.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(JwtError::Invalid)?;
    Ok(Principal {
        subject: subject.to_owned(),
        tenant: rules
            .tenant_claim
            .as_ref()
            .and_then(|name| c.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned),
        roles: rules
            .roles_claim
            .as_ref()
            .map(|name| strings(c.get(name)))
            .unwrap_or_default(),
        credential: Credential::Jwt,
        key_id: t.kid.clone(),
        routes: Scope::default(),
        models: Scope::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_audience_is_one_value() {
        let one = serde_json::json!("other rampart");
        assert_eq!(audiences(Some(&one)), vec!["other rampart"]);
        let many = serde_json::json!(["a", "rampart", 3]);
        assert_eq!(audiences(Some(&many)), vec!["a", "rampart"]);
        assert!(audiences(Some(&serde_json::json!(5))).is_empty());
        assert!(audiences(None).is_empty());
    }
}
