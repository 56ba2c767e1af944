//! Signed model manifests, in the layout of the OpenSSF model-signing project: an
//! in-toto Statement listing every file's SHA-256, wrapped in a DSSE envelope signed
//! with Ed25519, written as `model.sig` in the model directory.
//!
//! Files are hashed streamed (1 MiB at a time) and in parallel across files; symlinks
//! are not followed (they are listed as a finding instead); the signature file itself
//! is not part of the manifest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The signature file in a signed directory.
pub const SIGNATURE_FILE: &str = "model.sig";
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<Sig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sig {
    pub keyid: String,
    pub sig: String,
}

/// DSSE pre-authentication encoding: what is actually signed.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn key_id(public_key: &[u8]) -> String {
    hex(&ring::digest::digest(&ring::digest::SHA256, public_key).as_ref()[..8])
}

/// Relative paths (with `/`) of every regular file under `dir`, except the signature.
/// Symlinks are returned separately: they are never followed.
fn list(dir: &Path) -> Result<(Vec<String>, Vec<String>), Error> {
    fn walk(
        root: &Path,
        p: &Path,
        files: &mut Vec<String>,
        links: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), Error> {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .map_err(io(p))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            let meta = std::fs::symlink_metadata(&e).map_err(io(&e))?;
            let rel = e
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if meta.file_type().is_symlink() {
                links.push(rel);
            } else if meta.is_dir() && depth < 64 {
                walk(root, &e, files, links, depth + 1)?;
            } else if meta.is_file() && rel != SIGNATURE_FILE {
                files.push(rel);
            }
        }
        Ok(())
    }
    let (mut files, mut links) = (Vec::new(), Vec::new());
    walk(dir, dir, &mut files, &mut links, 0)?;
    Ok((files, links))
}

fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// SHA-256 of every file, hashed on `threads` threads; name → digest.
pub fn digests(dir: &Path, threads: usize) -> Result<(BTreeMap<String, String>, Vec<String>), Error> {
    let (files, links) = list(dir)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = files.get(i) else { break };
                    let r = sha256_file(&dir.join(name)).map(|d| (name.clone(), d));
                    if let Ok(mut o) = out.lock() {
                        o.push(r);
                    }
                }
            });
        }
    });
    let mut map = BTreeMap::new();
    for r in out.into_inner().unwrap_or_default() {
        let (n, d) = r?;
        map.insert(n, d);
    }
    Ok((map, links))
}

/// The subject digest: SHA-256 over the sorted `digest  name\n` lines.
fn subject_digest(files: &BTreeMap<String, String>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (name, digest) in files {
        ctx.update(format!("{digest}  {name}\n").as_bytes());
    }
    hex(ctx.finish().as_ref())
}

/// Signs `dir`: writes `dir/model.sig`; returns the manifest digest (`sha256:…` of the
/// signed statement), the value a route pins.
pub fn sign(dir: &Path, key: &Ed25519KeyPair, threads: usize) -> Result<(String, usize), Error> {
    let (files, links) = digests(dir, threads)?;
    if !links.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: symbolic links are not signed (they could point anywhere): {}",
            dir.display(),
            links.join(", ")
        )));
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": subject_digest(&files)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": [SIGNATURE_FILE]},
            "resources": files.iter().map(|(n, d)| json!({"name": n, "algorithm": "sha256", "digest": d})).collect::<Vec<_>>(),
        },
    });
    let payload = serde_json::to_vec(&statement).map_err(|e| Error::Invalid(e.to_string()))?;
    let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let envelope = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(&payload),
        signatures: vec![Sig {
            keyid: key_id(key.public_key().as_ref()),
            sig: B64.encode(sig.as_ref()),
        }],
    };
    let path = dir.join(SIGNATURE_FILE);
    let text = serde_json::to_string_pretty(&envelope).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok((manifest_digest(&payload), files.len()))
}

/// `sha256:<hex>` of a statement's bytes.
pub fn manifest_digest(payload: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&ring::digest::SHA256, payload).as_ref())
    )
}

/// What verification found.
#[derive(Debug, Default)]
pub struct Verification {
    pub signature_ok: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub symlinks: Vec<String>,
    pub files: usize,
    pub manifest_digest: String,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.signature_ok
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.symlinks.is_empty()
    }
}

/// Reads and checks a signature file: the envelope, the signature (with `public_key`)
/// and the statement; returns the statement and the manifest digest.
pub fn read_envelope(path: &Path, public_key: Option<&[u8]>) -> Result<(Value, String, bool), Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let env: Envelope = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: not a DSSE envelope: {e}", path.display())))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(Error::Invalid(format!(
            "{}: payload type `{}`",
            path.display(),
            env.payload_type
        )));
    }
    let payload = B64
        .decode(&env.payload)
        .map_err(|_| Error::Invalid(format!("{}: payload is not base64", path.display())))?;
    let signed = match public_key {
        None => false,
        Some(k) => env.signatures.iter().any(|s| {
            B64.decode(&s.sig).is_ok_and(|sig| {
                signature::UnparsedPublicKey::new(&signature::ED25519, k)
                    .verify(&pae(&env.payload_type, &payload), &sig)
                    .is_ok()
            })
        }),
    };
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|e| Error::Invalid(format!("{}: statement is not JSON: {e}", path.display())))?;
    if statement["predicateType"] != PREDICATE_TYPE {
        return Err(Error::Invalid(format!(
            "{}: not a model-signing statement",
            path.display()
        )));
    }
    Ok((statement, manifest_digest(&payload), signed))
}

/// Verifies `dir` against its `model.sig`: the signature with `public_key`, then every
/// file: added, removed and changed ones are named.
pub fn verify(dir: &Path, public_key: &[u8], threads: usize) -> Result<Verification, Error> {
    let (statement, digest, signed) = read_envelope(&dir.join(SIGNATURE_FILE), Some(public_key))?;
    let mut v = Verification {
        signature_ok: signed,
        manifest_digest: digest,
        ..Default::default()
    };
    let listed: BTreeMap<String, String> = statement["predicate"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["digest"].as_str()?.to_owned())))
        .collect();
    let (actual, links) = digests(dir, threads)?;
    v.symlinks = links;
    v.files = actual.len();
    for (name, d) in &actual {
        match listed.get(name) {
            None => v.added.push(name.clone()),
            Some(want) if want != d => v.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    v.removed = listed.keys().filter(|n| !actual.contains_key(*n)).cloned().collect();
    Ok(v)
}

/// The key pair in the format `rampart audit keygen` writes (base64 PKCS#8).
pub fn load_key(path: &Path) -> Result<Ed25519KeyPair, Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let der = B64
        .decode(text.trim())
        .map_err(|_| Error::Invalid(format!("{}: not a base64 Ed25519 key", path.display())))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|_| Error::Invalid(format!("{}: not an Ed25519 key (PKCS#8)", path.display())))
}

/// The raw public key from a `.pub` file (base64 of 32 bytes).
pub fn load_public_key(path: &Path) -> Result<Vec<u8>, Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    match B64.decode(text.trim()) {
        Ok(k) if k.len() == 32 => Ok(k),
        _ => Err(Error::Invalid(format!(
            "{}: not an Ed25519 public key (base64 of 32 bytes)",
            path.display()
        ))),
    }
}
