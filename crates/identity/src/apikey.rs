//! API keys. Format: `rk_<env>_<id>_<secret>` — `rk_` makes them easy to spot for
//! humans and secret scanners, `<env>` is `live` or `test`, `<id>` (12 base62
//! characters) is the public key id used for lookup and logs, `<secret>` (40 base62
//! characters, ~238 bits) is never stored. Only `HMAC-SHA256(pepper, whole key)` is
//! stored; the pepper is a server-side secret, so a stolen key file cannot be
//! brute-forced offline. Verification is constant-time (ring's `hmac::verify`).

use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 40;
/// Longest credential we look at; anything longer is refused before parsing.
pub const MAX_KEY_LEN: usize = 128;
const HASH_PREFIX: &str = "hmac-sha256:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("not a Rampart API key")]
    Malformed,
}

/// Which environment a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEnv::Live => "live",
            KeyEnv::Test => "test",
        }
    }
}

fn random_base62(rng: &SystemRandom, n: usize) -> Result<String, KeyError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf).map_err(|_| KeyError::Random)?;
        // Rejection sampling keeps every character uniform: 248 = 4 × 62.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

/// A full API key. Its `Debug` hides the secret; `expose` returns the text.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    text: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.text.get(..8 + ID_LEN).unwrap_or("rk_"))
    }
}

impl ApiKey {
    /// A new random key.
    pub fn generate(env: KeyEnv) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let id = random_base62(&rng, ID_LEN)?;
        let secret = random_base62(&rng, SECRET_LEN)?;
        Ok(Self {
            text: format!("rk_{}_{id}_{secret}", env.as_str()),
        })
    }

    /// Parses the text a client sent. Does not say whether the key is valid.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.len() > MAX_KEY_LEN {
            return Err(KeyError::Malformed);
        }
        let mut parts = text.split('_');
        let ok = parts.next() == Some("rk")
            && matches!(parts.next(), Some("live" | "test"))
            && parts
                .next()
                .is_some_and(|id| id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            && parts
                .next()
                .is_some_and(|s| s.len() == SECRET_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            && parts.next().is_none();
        if ok {
            Ok(Self { text: text.to_owned() })
        } else {
            Err(KeyError::Malformed)
        }
    }

    /// The public key id.
    pub fn id(&self) -> &str {
        self.text.get(8..8 + ID_LEN).unwrap_or("")
    }

    /// The whole key. Show it to its owner once; never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

/// The server-side secret keys are hashed with.
pub struct Pepper(hmac::Key);

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(***)")
    }
}

impl Pepper {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The stored form of `key`: `hmac-sha256:<hex>`.
    pub fn hash(&self, key: &ApiKey) -> String {
        let tag = hmac::sign(&self.0, key.expose().as_bytes());
        let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
        out.push_str(HASH_PREFIX);
        for b in tag.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Constant-time check of `key` against a stored tag (from [`decode_hash`]).
    pub fn verify(&self, key: &ApiKey, tag: &[u8]) -> bool {
        hmac::verify(&self.0, key.expose().as_bytes(), tag).is_ok()
    }
}

/// Decodes a stored `hmac-sha256:<hex>` into the tag bytes.
pub fn decode_hash(stored: &str) -> Option<Vec<u8>> {
    let hex = stored.strip_prefix(HASH_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = ApiKey::generate(KeyEnv::Live).unwrap();
        assert!(key.expose().starts_with("rk_live_"));
        assert_eq!(key.expose().len(), 8 + ID_LEN + 1 + SECRET_LEN);
        let parsed = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(parsed.id(), key.id());
        let pepper = Pepper::new(b"pepper");
        let tag = decode_hash(&pepper.hash(&key)).unwrap();
        assert!(pepper.verify(&parsed, &tag));
        assert!(!Pepper::new(b"other").verify(&parsed, &tag));
        let other = ApiKey::generate(KeyEnv::Live).unwrap();
        assert_ne!(other.id(), key.id());
        assert!(!pepper.verify(&other, &tag));
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = ApiKey::generate(KeyEnv::Test).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[20..]), "{shown}");
        assert!(shown.contains(key.id()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = ApiKey::generate(KeyEnv::Live).unwrap().expose().to_owned();
        let cases = [
            String::new(),
            "rk_live".into(),
            good.replace("rk_", "sk_"),
            good.replace("_live_", "_prod_"),
            format!("{good}x"),
            format!("{good}_x"),
            good[..good.len() - 1].to_owned(),
            good.replacen('A', "-", 1).replacen('a', "-", 1),
            "rk_live_../../etc/pass_x".into(),
            "x".repeat(10_000),
        ];
        for c in cases {
            if c != good {
                assert_eq!(ApiKey::parse(&c), Err(KeyError::Malformed), "{c}");
            }
        }
        assert_eq!(decode_hash("sha1:abcd"), None);
        assert_eq!(decode_hash("hmac-sha256:zz"), None);
    }
}
