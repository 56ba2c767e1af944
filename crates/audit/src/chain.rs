//! The hash chain and checkpoints: what a line of the trail holds and how its hash and
//! signature are computed.

use ring::digest;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record line: `{"seq":N,"prev":"…","hash":"…","record":{…}}`. The record is
/// kept as the exact JSON text that was hashed, so verification hashes the very bytes
/// on disk and nothing depends on how a JSON library orders keys or prints numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    /// The record itself (schema in docs/AUDIT.md), as written.
    pub record: Box<RawValue>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && self.prev == other.prev
            && self.hash == other.hash
            && self.record.get() == other.record.get()
    }
}

impl Entry {
    /// The record parsed (for readers; the writer never parses).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.record.get()).unwrap_or(Value::Null)
    }

    /// The entry as one line of a segment file (no newline), byte for byte what
    /// serde would write, without re-encoding the record.
    pub fn line(&self) -> String {
        let r = self.record.get();
        let mut s = String::with_capacity(r.len() + 180);
        s.push_str("{\"seq\":");
        s.push_str(&self.seq.to_string());
        s.push_str(",\"prev\":\"");
        s.push_str(&self.prev);
        s.push_str("\",\"hash\":\"");
        s.push_str(&self.hash);
        s.push_str("\",\"record\":");
        s.push_str(r);
        s.push('}');
        s
    }
}

/// A signed statement about the chain head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub node: String,
    /// Sequence number and hash of the last record covered.
    pub seq: u64,
    pub head: String,
    pub time: String,
    /// Identifies the signing key (first 16 hex digits of SHA-256 of the public key).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::message`], base64.
    pub sig: String,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// `hash = SHA-256(prev || "\n" || record)`, hex, over the record's JSON text as
/// written.
pub fn record_hash(prev: &str, record: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(record.as_bytes());
    hex(ctx.finish().as_ref())
}

/// A new Ed25519 signing key: (PKCS#8 DER, raw 32-byte public key).
pub fn generate_key() -> Result<(Vec<u8>, Vec<u8>), ring::error::Unspecified> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ring::error::Unspecified)?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// The key that signs checkpoints and anchors.
pub type SigningKey = Ed25519KeyPair;

/// Parses a PKCS#8 Ed25519 signing key.
pub fn signing_key(pkcs8: &[u8]) -> Option<SigningKey> {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()
}

/// The raw public key of a PKCS#8 Ed25519 key.
pub fn public_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .ok()
        .map(|k| k.public_key().as_ref().to_vec())
}

pub fn key_id(public_key: &[u8]) -> String {
    hex(&digest::digest(&digest::SHA256, public_key).as_ref()[..8])
}

impl Checkpoint {
    /// The signed bytes: a fixed text layout, so any field change breaks the signature.
    pub fn message(node: &str, seq: u64, head: &str, time: &str) -> Vec<u8> {
        format!("rampart-audit-checkpoint-v1\n{node}\n{seq}\n{head}\n{time}\n").into_bytes()
    }

    /// Whether the signature is valid for `public_key` (raw 32-byte Ed25519).
    pub fn verify(&self, public_key: &[u8]) -> bool {
        use base64::Engine as _;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.sig) else {
            return false;
        };
        let key = signature::UnparsedPublicKey::new(&signature::ED25519, public_key);
        key.verify(&Self::message(&self.node, self.seq, &self.head, &self.time), &sig)
            .is_ok()
    }
}

/// The writer's side of one node's chain.
#[derive(Debug)]
pub struct Chain {
    node: String,
    next_seq: u64,
    head: String,
}

impl Chain {
    /// A chain continuing after `head` (the last record's hash) at `next_seq`.
    pub fn resume(node: &str, next_seq: u64, head: &str) -> Self {
        Self {
            node: node.to_owned(),
            next_seq,
            head: head.to_owned(),
        }
    }

    pub fn new(node: &str) -> Self {
        Self::resume(node, 0, GENESIS)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn head(&self) -> &str {
        &self.head
    }

    /// Links a record (its JSON text) into the chain. Text that is not one JSON value
    /// is wrapped as `{"type":"invalid","text":…}` so the trail stays parseable.
    pub fn link(&mut self, record: String) -> Entry {
        let record = RawValue::from_string(record).unwrap_or_else(|e| {
            let wrapped = serde_json::json!({"type": "invalid", "error": e.to_string()}).to_string();
            RawValue::from_string(wrapped).unwrap_or_else(|_| RawValue::NULL.to_owned())
        });
        let hash = record_hash(&self.head, record.get());
        let entry = Entry {
            seq: self.next_seq,
            prev: std::mem::replace(&mut self.head, hash.clone()),
            hash,
            record,
        };
        self.next_seq += 1;
        entry
    }

    /// A checkpoint over the current head, signed with `key`. `None` before any record.
    pub fn checkpoint(&self, key: &Ed25519KeyPair, time: &str) -> Option<Checkpoint> {
        let seq = self.next_seq.checked_sub(1)?;
        Some(Checkpoint::sign(&self.node, seq, &self.head, key, time))
    }
}

impl Checkpoint {
    /// A checkpoint over record `seq` whose hash is `head`, signed with `key`.
    pub fn sign(node: &str, seq: u64, head: &str, key: &Ed25519KeyPair, time: &str) -> Self {
        use base64::Engine as _;
        let sig = key.sign(&Checkpoint::message(node, seq, head, time));
        Checkpoint {
            node: node.to_owned(),
            seq,
            head: head.to_owned(),
            time: time.to_owned(),
            key_id: key_id(key.public_key().as_ref()),
            sig: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_chain_and_checkpoints_verify() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut chain = Chain::new("n1");
        assert!(chain.checkpoint(&key, "t").is_none());
        let a = chain.link(json!({"b": 1, "a": 2}).to_string());
        let b = chain.link(json!({"x": "y"}).to_string());
        assert_eq!(a.prev, GENESIS);
        assert_eq!(b.prev, a.hash);
        assert_eq!(
            a.hash,
            record_hash(GENESIS, r#"{"a":2,"b":1}"#),
            "the hash covers the text as written"
        );
        assert_ne!(a.hash, record_hash(GENESIS, r#"{"a":2, "b":1}"#), "every byte counts");
        // The line format is what serde writes, so readers can use either.
        assert_eq!(a.line(), serde_json::to_string(&a).unwrap());
        let back: Entry = serde_json::from_str(&a.line()).unwrap();
        assert_eq!(back, a);
        let bad = chain.link("not json".into());
        assert_eq!(bad.value()["type"], "invalid");
        let cp = chain.checkpoint(&key, "2026-11-22T00:00:00Z").unwrap();
        assert_eq!((cp.seq, cp.head.as_str()), (2, bad.hash.as_str()));
        assert!(cp.verify(key.public_key().as_ref()));
        let mut forged = cp.clone();
        forged.seq = 5;
        assert!(!forged.verify(key.public_key().as_ref()));
    }
}
