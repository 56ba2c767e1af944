//! Captured payloads and crypto-shredding. A route with `capture_payloads = true` keeps
//! the request body as sent upstream (after the content policy redacted it) and the
//! response body as the client got it, in its audit records — encrypted with a data key
//! that belongs to one data subject (AES-256-GCM, bound to the node and request id).
//! Each subject key is wrapped by the master key and kept in its own file,
//! `<audit.dir>/subject-keys/<pseudonym>.key`. Erasing a subject deletes that file: the
//! records stay and the chain still verifies, but their payloads can no longer be read.
//!
//! Keys are created and used on the audit writer thread (file I/O never runs on the
//! request path). This module never writes a plaintext payload or a raw subject id to
//! disk; subjects are named by their keyed pseudonym.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Unwrapped subject keys kept in memory; the cache is cleared when it fills.
const CACHE: usize = 10_000;

/// An encrypted payload as it appears in a record.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Sealed {
    /// Pseudonym of the data subject (whose key encrypts it).
    pub subject: String,
    /// Which of the subject's keys: a new key after an erasure has a new id, so
    /// payloads sealed before stay unreadable rather than failing to decrypt.
    pub key_id: String,
    pub alg: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// A subject's data key and its id.
#[derive(Clone, Copy)]
struct SubjectKey {
    id: [u8; 8],
    key: [u8; 32],
}

/// What is encrypted: the two bodies, as text where they are UTF-8, else base64.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Plain {
    pub request: String,
    pub response: String,
    /// A body was longer than `max_payload_bytes` and was cut.
    pub truncated: bool,
}

/// Body bytes collected during one exchange.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    pub subject: String,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    pub truncated: bool,
    pub limit: usize,
}

impl Capture {
    pub fn push_response(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.response.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.response.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| format!("base64:{}", B64.encode(e.as_bytes())))
}

use rampart_audit::chain::hex;

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn aead_key(bytes: &[u8]) -> io::Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| io::Error::other("not a 256-bit key"))
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> io::Result<(String, String)> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| io::Error::other("no randomness"))?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .map_err(|_| io::Error::other("encryption failed"))?;
    Ok((B64.encode(nonce), B64.encode(buf)))
}

fn open_with(key: &LessSafeKey, aad: &[u8], nonce: &str, ciphertext: &str) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = B64.decode(nonce).ok()?.try_into().ok()?;
    let mut buf = B64.decode(ciphertext).ok()?;
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

/// Associated data of a payload: it cannot be moved to another record.
pub fn payload_aad(node: &str, request_id: &str) -> Vec<u8> {
    format!("rampart-payload-v1\n{node}\n{request_id}").into_bytes()
}

/// Per-subject data keys in a directory, wrapped by the master key.
pub struct SubjectKeys {
    dir: PathBuf,
    /// With the PostgreSQL store, wrapped keys live in its `rampart_audit_subject_keys`
    /// table, shared by every node; otherwise in `dir`.
    pg: Option<crate::pg::PgKeys>,
    master: LessSafeKey,
    cache: Mutex<HashMap<String, SubjectKey>>,
    /// Serialises key creation in this process (the audit writer and review items
    /// seal concurrently): two first uses of one subject must end with one key.
    creating: Mutex<()>,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeys")
            .field("dir", &self.dir)
            .field("postgres", &self.pg.is_some())
            .finish_non_exhaustive()
    }
}

impl SubjectKeys {
    /// `audit_dir/subject-keys`, with the 32-byte master key.
    pub fn new(audit_dir: &Path, master_key: &[u8]) -> io::Result<Self> {
        Ok(Self {
            dir: audit_dir.join("subject-keys"),
            pg: None,
            master: aead_key(master_key)?,
            cache: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
        })
    }

    /// Keys in PostgreSQL (`postgres_url`), shared by every node; connects on first use.
    pub fn in_postgres(audit_dir: &Path, master_key: &[u8], postgres_url: &str) -> io::Result<Self> {
        Ok(Self {
            pg: Some(crate::pg::PgKeys::new(postgres_url)?),
            ..Self::new(audit_dir, master_key)?
        })
    }

    /// The wrapped key line of a subject, from wherever keys live.
    fn load(&self, subject: &str) -> io::Result<Option<String>> {
        let path = self.path(subject)?;
        if let Some(pg) = &self.pg {
            return pg.load(subject);
        }
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn path(&self, subject: &str) -> io::Result<PathBuf> {
        // Pseudonyms are hex; anything else must not become a path.
        if subject.is_empty() || !subject.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::other("a subject pseudonym is hex"));
        }
        Ok(self.dir.join(format!("{subject}.key")))
    }

    fn wrap_aad(subject: &str, id: &str) -> Vec<u8> {
        format!("rampart-subject-key-v1\n{subject}\n{id}").into_bytes()
    }

    /// The subject's current key, if it exists (was not erased).
    fn get(&self, subject: &str) -> io::Result<Option<SubjectKey>> {
        let path = self.path(subject)?;
        // In PostgreSQL another node may erase a key at any time: always ask (the
        // writer thread does this, never the request path).
        if self.pg.is_none()
            && let Some(k) = self.cache.lock().ok().and_then(|c| c.get(subject).copied())
        {
            // Another process (`rampart audit erase`) may have destroyed the key: a
            // cached copy must not outlive the file, or new payloads would be sealed
            // with a key nobody can read again.
            if path.exists() {
                return Ok(Some(k));
            }
            if let Ok(mut c) = self.cache.lock() {
                c.remove(subject);
            }
        }
        let Some(text) = self.load(subject)? else {
            return Ok(None);
        };
        let mut parts = text.trim().splitn(3, ':');
        let (Some(id), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(io::Error::other("malformed subject key file"));
        };
        let id: [u8; 8] = decode_hex(id).ok_or_else(|| io::Error::other("malformed subject key id"))?;
        let key: [u8; 32] = open_with(&self.master, &Self::wrap_aad(subject, &hex(&id)), nonce, ct)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| io::Error::other("the subject key does not open with this master key"))?;
        let k = SubjectKey { id, key };
        self.remember(subject, k);
        Ok(Some(k))
    }

    fn remember(&self, subject: &str, key: SubjectKey) {
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE {
                c.clear();
            }
            c.insert(subject.to_owned(), key);
        }
    }

    /// The subject's key, created (and durably written) on first use.
    fn get_or_create(&self, subject: &str) -> io::Result<SubjectKey> {
        if let Some(k) = self.get(subject)? {
            return Ok(k);
        }
        let _one_at_a_time = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        // Someone may have created it while this thread waited.
        if let Some(k) = self.get(subject)? {
            return Ok(k);
        }
        let mut k = SubjectKey {
            id: [0; 8],
            key: [0; 32],
        };
        let rng = SystemRandom::new();
        rng.fill(&mut k.id).map_err(|_| io::Error::other("no randomness"))?;
        rng.fill(&mut k.key).map_err(|_| io::Error::other("no randomness"))?;
        let id = hex(&k.id);
        let (nonce, ct) = seal_with(&self.master, &Self::wrap_aad(subject, &id), &k.key)?;
        if let Some(pg) = &self.pg {
            // Another node may have created one first: then that one is the key.
            if !pg.insert(subject, &format!("{id}:{nonce}:{ct}"))? {
                return self
                    .get(subject)?
                    .ok_or_else(|| io::Error::other("the subject key vanished while it was created"));
            }
            return Ok(k);
        }
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(subject)?;
        let tmp = path.with_extension(format!("{id}.tmp"));
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(format!("{id}:{nonce}:{ct}\n").as_bytes())?;
            f.sync_all()?;
        }
        // Never over an existing key (another process may have made one): a link
        // fails where a rename would silently replace it and orphan its payloads.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                self.remember(subject, k);
                Ok(k)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self
                .get(subject)?
                .ok_or_else(|| io::Error::other("the subject key vanished while it was created")),
            Err(e) => Err(e),
        }
    }

    /// Crypto-shredding: destroys the subject's key. Returns whether there was one.
    pub fn erase(&self, subject: &str) -> io::Result<bool> {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(subject);
        }
        let path = self.path(subject)?;
        if let Some(pg) = &self.pg {
            return pg.delete(subject);
        }
        match std::fs::remove_file(path) {
            Ok(()) => {
                // Make the removal itself durable.
                if let Ok(d) = std::fs::File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Encrypts a capture under its subject's key.
    pub fn seal(&self, capture: Capture, aad: &[u8]) -> io::Result<Sealed> {
        let k = self.get_or_create(&capture.subject)?;
        let key = aead_key(&k.key)?;
        let plain = Plain {
            request: text(capture.request),
            response: text(capture.response),
            truncated: capture.truncated,
        };
        let json = serde_json::to_vec(&plain).map_err(io::Error::other)?;
        let (nonce, ciphertext) = seal_with(&key, aad, &json)?;
        Ok(Sealed {
            subject: capture.subject,
            key_id: hex(&k.id),
            alg: "AES-256-GCM".into(),
            nonce,
            ciphertext,
        })
    }

    /// Decrypts a payload: `Ok(None)` when the subject was erased.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> io::Result<Option<Plain>> {
        let Some(k) = self.get(&sealed.subject)?.filter(|k| hex(&k.id) == sealed.key_id) else {
            // No key, or a newer one: the key this payload was sealed with is destroyed.
            return Ok(None);
        };
        let plain = open_with(&aead_key(&k.key)?, aad, &sealed.nonce, &sealed.ciphertext)
            .ok_or_else(|| io::Error::other("the payload does not decrypt (altered, or moved from another record)"))?;
        serde_json::from_slice(&plain).map(Some).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test code; its threads are joined
    use super::*;

    #[test]
    fn first_uses_racing_on_one_subject_end_with_one_key_that_opens_everything() {
        let dir = std::env::temp_dir().join(format!("rampart-subject-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = std::sync::Arc::new(SubjectKeys::new(&dir, &[9u8; 32]).unwrap());
        let subject = "ab12".to_owned();
        let sealed: Vec<Sealed> = (0..8)
            .map(|i| {
                let keys = std::sync::Arc::clone(&keys);
                let subject = subject.clone();
                std::thread::spawn(move || {
                    let capture = Capture {
                        subject,
                        request: format!("request {i}").into_bytes(),
                        ..Default::default()
                    };
                    keys.seal(capture, b"aad").unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let reopened = SubjectKeys::new(&dir, &[9u8; 32]).unwrap();
        for (i, s) in sealed.iter().enumerate() {
            let plain = reopened
                .open(s, b"aad")
                .unwrap()
                .expect("sealed with the one key that exists");
            assert_eq!(plain.request, format!("request {i}"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seal_open_erase() {
        let dir = std::env::temp_dir().join(format!("rampart-subject-keys-{}", std::process::id()));
        let keys = SubjectKeys::new(&dir, &[7u8; 32]).unwrap();
        let capture = |s: &str| Capture {
            subject: s.into(),
            request: b"{\"q\":1}".to_vec(),
            response: b"ok".to_vec(),
            truncated: false,
            limit: 10,
        };
        let a = keys.seal(capture("aa"), b"n\nr1").unwrap();
        let b = keys.seal(capture("bb"), b"n\nr2").unwrap();
        assert_eq!(keys.open(&a, b"n\nr1").unwrap().unwrap().request, "{\"q\":1}");
        assert!(keys.open(&a, b"n\nr2").is_err(), "bound to its record");
        // A fresh instance (a restart, the CLI) reads the wrapped key from disk.
        let again = SubjectKeys::new(&dir, &[7u8; 32]).unwrap();
        assert_eq!(again.open(&b, b"n\nr2").unwrap().unwrap().response, "ok");
        assert!(
            SubjectKeys::new(&dir, &[8u8; 32]).unwrap().open(&b, b"n\nr2").is_err(),
            "wrong master key"
        );
        assert!(again.erase("aa").unwrap());
        assert!(again.open(&a, b"n\nr1").unwrap().is_none(), "erased");
        assert!(
            keys.open(&a, b"n\nr1").unwrap().is_none(),
            "erased for every instance once the cache is gone"
        );
        assert!(again.open(&b, b"n\nr2").unwrap().is_some(), "others unaffected");
        let fresh = keys.seal(capture("aa"), b"n\nr3").unwrap();
        assert_ne!(fresh.key_id, a.key_id, "a new key after erasure");
        assert!(keys.open(&fresh, b"n\nr3").unwrap().is_some());
        assert!(keys.open(&a, b"n\nr1").unwrap().is_none(), "still erased, not an error");
        assert!(keys.path("../x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
