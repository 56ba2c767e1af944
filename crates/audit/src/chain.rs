//! The hash chain and checkpoints: what a line of the trail holds and how its hash and
//! signature are computed.

use ring::digest;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    /// The record itself (schema in docs/AUDIT.md); hashed in canonical form.
    pub record: Value,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Canonical JSON: object keys sorted (serde_json's map is ordered), no spaces.
pub fn canonical(v: &Value) -> String {
    v.to_string()
}

/// `hash = SHA-256(prev || "\n" || canonical(record))`, hex.
pub fn record_hash(prev: &str, record: &Value) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(canonical(record).as_bytes());
    hex(ctx.finish().as_ref())
}

/// A new Ed25519 signing key: (PKCS#8 DER, raw 32-byte public key).
pub fn generate_key() -> Result<(Vec<u8>, Vec<u8>), ring::error::Unspecified> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ring::error::Unspecified)?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
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

    /// Links a record into the chain.
    pub fn link(&mut self, record: Value) -> Entry {
        let hash = record_hash(&self.head, &record);
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
        use base64::Engine as _;
        let seq = self.next_seq.checked_sub(1)?;
        let sig = key.sign(&Checkpoint::message(&self.node, seq, &self.head, time));
        Some(Checkpoint {
            node: self.node.clone(),
            seq,
            head: self.head.clone(),
            time: time.to_owned(),
            key_id: key_id(key.public_key().as_ref()),
            sig: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        })
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
        let a = chain.link(json!({"b": 1, "a": 2}));
        let b = chain.link(json!({"x": "y"}));
        assert_eq!(a.prev, GENESIS);
        assert_eq!(b.prev, a.hash);
        assert_eq!(
            a.hash,
            record_hash(GENESIS, &json!({"a": 2, "b": 1})),
            "key order does not matter"
        );
        let cp = chain.checkpoint(&key, "2026-11-22T00:00:00Z").unwrap();
        assert_eq!((cp.seq, cp.head.as_str()), (1, b.hash.as_str()));
        assert!(cp.verify(key.public_key().as_ref()));
        let mut forged = cp.clone();
        forged.seq = 5;
        assert!(!forged.verify(key.public_key().as_ref()));
    }
}
