//! Model containers, recognised by content (not by extension): PyTorch zip checkpoints,
//! 7z archives, gzip/zlib streams (compressed joblib)
//! and other zips (NumPy `.npz`, Keras `.keras`), PyTorch's legacy tar format, raw
//! pickle streams (`.pkl`, `.bin`, joblib, PyTorch legacy), NumPy `.npy`, safetensors
//! and GGUF. Each parser is bounded: sizes are checked against the file before
//! anything is allocated, counts are capped, and tensor data is never read.

use std::io::{Read, Seek};

use serde_json::Value;

use crate::rules::Severity;
use crate::{Finding, pickle};

/// Bounds for one scan.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest pickle (or pickle-bearing member) read into memory.
    pub max_pickle_bytes: u64,
    /// Zips nested in zips are followed this deep.
    pub max_depth: usize,
    /// Uncompressed bytes per compressed byte above which a member is a zip bomb.
    pub max_ratio: u64,
    pub max_members: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_pickle_bytes: 1 << 30,
            max_depth: 3,
            max_ratio: 200,
            max_members: 100_000,
        }
    }
}

/// The format a file's first bytes say it is.
pub fn sniff(head: &[u8], len: u64) -> &'static str {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        "zip"
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        "tar"
    } else if head.starts_with(SEVEN_ZIP_MAGIC) {
        "7z"
    } else if is_compressed(head) {
        "compressed"
    } else if head.starts_with(b"\x93NUMPY") {
        "npy"
    } else if head.starts_with(b"GGUF") {
        "gguf"
    } else if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        "hdf5"
    } else if head.len() >= 9 && head[8] == b'{' && {
        let n = u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
        n >= 2 && n <= len.saturating_sub(8)
    } {
        "safetensors"
    } else if head.first() == Some(&0x80) {
        "pickle"
    } else if head.first().is_some_and(|b| {
        matches!(
            b,
            b'(' | b'c'
                | b']'
                | b'}'
                | b')'
                | b'N'
                | b'S'
                | b'V'
                | b'I'
                | b'K'
                | b'J'
                | b'X'
                | b'U'
                | b'T'
                | b'l'
                | b'd'
                | b'F'
                | b'G'
        )
    }) {
        "pickle?"
    } else {
        "unknown"
    }
}

/// Pickle analysis as findings. A stream that breaks partway still yields what was
/// read before the break (a loader would have run it), and then the error.
pub fn pickle_findings(data: &[u8], at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let (a, error) = pickle::analyse_partial(data, pickle::Limits::default());
    for imp in &a.imports {
        let v = crate::rules::classify_use(&imp.module, &imp.name, imp.called);
        if let Some(severity) = v.severity {
            out.push(Finding {
                severity,
                rule: v.rule,
                message: format!(
                    "{}{} `{}.{}` ({}){}",
                    if imp.called { "calls" } else { "imports" },
                    if imp.depth > 0 { " (in a nested pickle)" } else { "" },
                    imp.module,
                    imp.name,
                    v.reason,
                    if imp.via == "GLOBAL" {
                        String::new()
                    } else {
                        format!(", via {}", imp.via)
                    }
                ),
                location: format!("{at} @ byte {}", imp.offset),
            });
        }
    }
    for odd in &a.oddities {
        if odd.what.starts_with("persistent id") {
            continue; // PyTorch's storage references; harmless on their own
        }
        out.push(Finding {
            severity: Severity::Low,
            rule: "pickle.oddity",
            message: odd.what.clone(),
            location: format!("{at} @ byte {}", odd.offset),
        });
    }
    match error {
        Some(e) => Err(format!("{at}: not a readable pickle: {e}")),
        None => Ok(()),
    }
}

/// Whether the file ends with a zip's end-of-central-directory record (within the
/// 64 KiB a zip comment may take).
pub fn zip_at_end(path: &std::path::Path) -> bool {
    use std::io::SeekFrom;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    let tail = len.min(65_557);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(len - tail)).is_err() || f.take(tail).read_to_end(&mut buf).is_err() {
        return false;
    }
    buf.windows(4).any(|w| w == b"PK\x05\x06")
}

/// Reads at most `limit` bytes of `r`. A read that fails partway (a checksum that does not
/// match, a stream cut short) returns what was read and why it stopped: loaders that
/// do not check what the archive says still load those bytes.
fn read_tolerant(mut r: impl Read, limit: u64, what: &str) -> Result<(Vec<u8>, Option<String>), String> {
    let mut buf = Vec::new();
    let damaged = match r.by_ref().take(limit + 1).read_to_end(&mut buf) {
        Ok(_) => None,
        Err(e) if !buf.is_empty() => Some(e.to_string()),
        Err(e) => return Err(format!("{what}: cannot be read: {e}")),
    };
    if buf.len() as u64 > limit {
        return Err(format!("{what}: larger than the {limit}-byte limit for pickles"));
    }
    Ok((buf, damaged))
}

/// What an archive member holds, by name and first bytes; `None`: not inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Pickle,
    Npy,
    Zip,
    SevenZip,
    Compressed,
    KerasConfig,
}

impl Member {
    fn of(name: &str, peek: &[u8]) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".pkl") || lower.ends_with(".pickle") || pickle::looks_like_pickle_start(peek) {
            Some(Member::Pickle)
        } else if peek.starts_with(b"\x93NUMPY") {
            Some(Member::Npy)
        } else if peek.starts_with(b"PK\x03\x04") {
            Some(Member::Zip)
        } else if peek.starts_with(SEVEN_ZIP_MAGIC) {
            Some(Member::SevenZip)
        } else if is_compressed(peek)
            && (name.is_empty()
                || [".gz", ".gzip", ".z", ".zlib", ".joblib", ".pkl.gz"]
                    .iter()
                    .any(|e| lower.ends_with(e)))
        {
            // Only where the name says so: tensor data may start with these bytes by chance.
            Some(Member::Compressed)
        } else if lower == "config.json" || lower.ends_with("/config.json") {
            Some(Member::KerasConfig)
        } else {
            None
        }
    }
}

/// The signature every 7z archive starts with.
pub const SEVEN_ZIP_MAGIC: &[u8] = b"7z\xbc\xaf\x27\x1c";

/// gzip, or a zlib stream (joblib's `compress=` files are one of these around a pickle).
pub fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(b"\x1f\x8b")
        || (head.len() >= 2
            && head[0] == 0x78
            && matches!(head[1], 0x01 | 0x5e | 0x9c | 0xda)
            && (u16::from(head[0]) << 8 | u16::from(head[1])).is_multiple_of(31))
}

/// Inflates a gzip or zlib stream, bounded by the zip-bomb ratio and the pickle limit;
/// what it holds is scanned like an archive member.
pub fn compressed(data: &[u8], at: &str, bounds: &Bounds, depth: usize, out: &mut Vec<Finding>) -> Result<(), String> {
    // Inflate no more than the zip-bomb ratio allows (and never past the pickle limit):
    // a stream that would go further is a bomb, reported, not inflated.
    let by_ratio = (data.len() as u64).saturating_mul(bounds.max_ratio).max(1 << 20);
    let limit = bounds.max_pickle_bytes.min(by_ratio);
    let inflate = |limit: u64| {
        if data.starts_with(b"\x1f\x8b") {
            read_tolerant(flate2::read::MultiGzDecoder::new(data), limit, at)
        } else {
            read_tolerant(flate2::read::ZlibDecoder::new(data), limit, at)
        }
    };
    let (inner, damaged) = match inflate(limit) {
        Err(e) if limit < bounds.max_pickle_bytes && e.contains("larger than the") => {
            out.push(Finding {
                severity: Severity::High,
                rule: "compressed.bomb",
                message: format!(
                    "expands more than {}× ({} compressed bytes)",
                    bounds.max_ratio,
                    data.len()
                ),
                location: at.to_owned(),
            });
            return Ok(());
        }
        r => r?,
    };
    if let Some(why) = damaged {
        out.push(Finding {
            severity: Severity::Medium,
            rule: "compressed.damaged",
            message: format!("the compressed stream is damaged ({why}); scanned as far as it inflates"),
            location: at.to_owned(),
        });
    }
    let head = &inner[..inner.len().min(8)];
    let kind = Member::of("", head).unwrap_or(Member::Pickle);
    inspect_member(kind, &inner, &format!("{at} (inflated)"), bounds, depth, out)
}

/// Scans one member's bytes as what it holds; archives nest up to `bounds.max_depth`.
fn inspect_member(
    kind: Member,
    data: &[u8],
    at: &str,
    bounds: &Bounds,
    depth: usize,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    let nested = matches!(kind, Member::Zip | Member::SevenZip | Member::Compressed);
    if nested && depth >= bounds.max_depth {
        out.push(Finding {
            severity: Severity::Medium,
            rule: "zip.nesting",
            message: format!("archives nested deeper than {} are not inspected", bounds.max_depth),
            location: at.to_owned(),
        });
        return Ok(());
    }
    match kind {
        Member::Pickle => pickle_findings(data, at, out),
        Member::Npy => npy(data, at, out),
        Member::Zip => zip(std::io::Cursor::new(data), at, bounds, depth + 1, out),
        Member::SevenZip => seven_zip(std::io::Cursor::new(data), at, bounds, depth + 1, out),
        Member::Compressed => compressed(data, at, bounds, depth + 1, out),
        Member::KerasConfig => {
            keras_config(data, at, out);
            Ok(())
        }
    }
}

/// A 7z archive (pure-Rust reader): every member is inspected like a zip member.
/// Encrypted archives or members cannot be read without the password: high, since a
/// model file has no reason to be encrypted.
pub fn seven_zip<R: Read + Seek>(
    mut reader: R,
    name: &str,
    bounds: &Bounds,
    depth: usize,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    use sevenz_rust2::{ArchiveReader, EntryDecision, Error as SzError, Password};
    let encrypted = |out: &mut Vec<Finding>, at: &str| {
        out.push(Finding {
            severity: Severity::High,
            rule: "7z.encrypted",
            message: "encrypted 7z content: it cannot be inspected, and a model file has no reason to be encrypted"
                .into(),
            location: at.to_owned(),
        });
    };
    let is_password = |e: &SzError| {
        matches!(e, SzError::PasswordRequired | SzError::MaybeBadPassword(_))
            || matches!(e, SzError::UnsupportedCompressionMethod(m) if m.to_ascii_lowercase().contains("aes"))
    };
    // Solid archives share compressed blocks, so there is no per-member ratio: what all
    // inspected members expand to together is bounded by the zip-bomb ratio of the
    // whole archive (at least 1 MiB).
    let packed = reader
        .seek(std::io::SeekFrom::End(0))
        .and_then(|len| reader.seek(std::io::SeekFrom::Start(0)).map(|_| len))
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mut budget = packed.saturating_mul(bounds.max_ratio).max(1 << 20);
    let mut archive = match ArchiveReader::new_with_memory_limit(reader, Password::empty(), 256 * 1024) {
        Ok(a) => a,
        Err(e) if is_password(&e) => {
            encrypted(out, name);
            return Ok(());
        }
        Err(e) => return Err(format!("{name}: not a readable 7z archive: {e}")),
    };
    archive.set_thread_count(1);
    if archive.archive().files.len() > bounds.max_members {
        return Err(format!("{name}: more than {} members", bounds.max_members));
    }
    let mut found = Vec::new();
    let mut failure: Option<String> = None;
    let walked = archive.for_each_entries_with_decision(|entry, r| {
        let member = entry.name().to_owned();
        let at = format!("{name}:{member}");
        if member.starts_with('/') || member.contains("..") || member.contains('\\') {
            found.push(Finding {
                severity: Severity::High,
                rule: "7z.path-traversal",
                message: format!("member path `{member}` escapes the extraction directory"),
                location: at.clone(),
            });
        }
        if entry.is_directory() || !entry.has_stream() {
            return Ok(EntryDecision::Continue);
        }
        let mut peek = [0u8; 8];
        let mut n = 0;
        while n < peek.len() {
            match r.read(&mut peek[n..])? {
                0 => break,
                k => n += k,
            }
        }
        let Some(kind) = Member::of(&member, &peek[..n]) else {
            return Ok(EntryDecision::Continue);
        };
        if entry.size() > bounds.max_pickle_bytes {
            failure = Some(format!(
                "{at}: {} bytes, larger than the limit for inspected members",
                entry.size()
            ));
            return Ok(EntryDecision::Stop);
        }
        let mut data = peek[..n].to_vec();
        let limit = bounds.max_pickle_bytes.min(budget.saturating_sub(n as u64));
        if entry.size() <= budget {
            r.take(limit.saturating_add(1)).read_to_end(&mut data)?;
        }
        if entry.size() > budget || data.len() as u64 > limit.saturating_add(n as u64) {
            found.push(Finding {
                severity: Severity::High,
                rule: "7z.bomb",
                message: format!(
                    "the archive's members expand to more than {} times its {packed} bytes: not inflated further",
                    bounds.max_ratio
                ),
                location: at,
            });
            return Ok(EntryDecision::Stop);
        }
        budget = budget.saturating_sub(data.len() as u64);
        if let Err(e) = inspect_member(kind, &data, &at, bounds, depth, &mut found) {
            failure = Some(e);
            return Ok(EntryDecision::Stop);
        }
        Ok(EntryDecision::Continue)
    });
    out.extend(found);
    match walked {
        Err(e) if is_password(&e) => encrypted(out, name),
        Err(e) => return Err(format!("{name}: 7z member cannot be read: {e}")),
        Ok(()) => {}
    }
    failure.map_or(Ok(()), Err)
}

/// A zip archive: member names, encryption, compression ratios, and every member that
/// holds a pickle, an array or a Keras config.
pub fn zip<R: Read + Seek>(
    reader: R,
    name: &str,
    bounds: &Bounds,
    depth: usize,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    let mut z = zip::ZipArchive::new(reader).map_err(|e| format!("{name}: not a readable zip: {e}"))?;
    if z.len() > bounds.max_members {
        return Err(format!(
            "{name}: {} members, more than the {} allowed",
            z.len(),
            bounds.max_members
        ));
    }
    let mut total: u64 = 0;
    for i in 0..z.len() {
        let (member, size, compressed, encrypted) = {
            let f = z.by_index_raw(i).map_err(|e| format!("{name}: member {i}: {e}"))?;
            (
                String::from_utf8_lossy(f.name_raw()).into_owned(),
                f.size(),
                f.compressed_size(),
                f.encrypted(),
            )
        };
        let at = format!("{name}:{member}");
        if member.starts_with('/') || member.contains("..") || member.contains('\\') || member.contains(':') {
            out.push(Finding {
                severity: Severity::High,
                rule: "zip.path-traversal",
                message: format!("member path `{member}` escapes the extraction directory"),
                location: at.clone(),
            });
        }
        total = total.saturating_add(size);
        if size > (1 << 20) && size / compressed.max(1) > bounds.max_ratio {
            out.push(Finding {
                severity: Severity::High,
                rule: "zip.bomb",
                message: format!(
                    "member expands {}× ({compressed} → {size} bytes)",
                    size / compressed.max(1)
                ),
                location: at.clone(),
            });
            continue;
        }
        if encrypted {
            out.push(Finding {
                severity: Severity::High,
                rule: "zip.encrypted",
                message:
                    "encrypted member: its content cannot be inspected, and a model file has no reason to be encrypted"
                        .into(),
                location: at,
            });
            continue;
        }
        let peek = {
            let mut f = z.by_index(i).map_err(|e| format!("{at}: {e}"))?;
            let mut head = [0u8; 8];
            let n = f.read(&mut head).unwrap_or(0);
            head[..n].to_vec()
        };
        let Some(kind) = Member::of(&member, &peek) else {
            continue; // tensor data and other payloads are not read
        };
        if size > bounds.max_pickle_bytes {
            return Err(format!(
                "{at}: {size} bytes, larger than the limit for inspected members"
            ));
        }
        let (data, damaged) = read_tolerant(
            z.by_index(i).map_err(|e| format!("{at}: {e}"))?,
            bounds.max_pickle_bytes,
            &at,
        )?;
        if let Some(why) = damaged {
            // PyTorch's reader does not check member checksums: a tampered member
            // still loads, so it is scanned as read.
            out.push(Finding {
                severity: Severity::Medium,
                rule: "zip.damaged-member",
                message: format!("member fails its integrity check ({why}); scanned as read"),
                location: at.clone(),
            });
        }
        inspect_member(kind, &data, &at, bounds, depth, out)?;
    }
    if total > (1 << 30) && total / 1024 > bounds.max_ratio * 1024 * 1024 {
        out.push(Finding {
            severity: Severity::High,
            rule: "zip.bomb",
            message: format!("members expand to {total} bytes in all"),
            location: name.to_owned(),
        });
    }
    Ok(())
}

/// Keras `config.json`: Lambda layers carry Python code; custom objects name modules
/// that run when the model is loaded.
fn keras_config(data: &[u8], at: &str, out: &mut Vec<Finding>) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    fn walk(v: &Value, at: &str, out: &mut Vec<Finding>, depth: usize) {
        if depth > 64 {
            return;
        }
        match v {
            Value::Object(m) => {
                if m.get("class_name").and_then(Value::as_str) == Some("Lambda") {
                    out.push(Finding {
                        severity: Severity::Critical,
                        rule: "keras.lambda-layer",
                        message: "a Lambda layer: its Python code runs when the model loads".into(),
                        location: at.to_owned(),
                    });
                }
                if let Some(module) = m.get("module").and_then(Value::as_str)
                    && !module.starts_with("keras")
                    && !module.starts_with("tensorflow")
                    && m.contains_key("class_name")
                {
                    out.push(Finding {
                        severity: Severity::Medium,
                        rule: "keras.custom-object",
                        message: format!("custom object from module `{module}`: its code runs when the model loads"),
                        location: at.to_owned(),
                    });
                }
                m.values().for_each(|x| walk(x, at, out, depth + 1));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, at, out, depth + 1)),
            _ => {}
        }
    }
    walk(&v, at, out, 0);
}

/// NumPy `.npy`: the header, and for object arrays the pickle that follows it.
pub fn npy(data: &[u8], at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let bad = |why: &str| format!("{at}: not a valid .npy file: {why}");
    let major = *data.get(6).ok_or_else(|| bad("truncated header"))?;
    let (len, start): (usize, usize) = match major {
        1 => (
            usize::from(u16::from_le_bytes([
                *data.get(8).ok_or_else(|| bad("truncated header"))?,
                *data.get(9).ok_or_else(|| bad("truncated header"))?,
            ])),
            10,
        ),
        2 | 3 => {
            let b = data.get(8..12).ok_or_else(|| bad("truncated header"))?;
            (
                usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(usize::MAX),
                12,
            )
        }
        v => return Err(bad(&format!("unknown version {v}"))),
    };
    let header = data
        .get(start..start.saturating_add(len))
        .ok_or_else(|| bad("header longer than the file"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    if !header.contains("descr") {
        return Err(bad("header has no descr"));
    }
    let object = header.contains("'|O'") || header.contains("\"|O\"") || header.contains("'O'");
    if object {
        // np.load(allow_pickle=True) unpickles the data: an array of plain objects
        // (strings, numbers, dicts) imports nothing off the allow list and is clean;
        // anything else is a finding at its own severity.
        pickle_findings(&data[start + len..], &format!("{at} (object data)"), out)?;
    }
    Ok(())
}

/// PyTorch's legacy tar checkpoint: members that are pickles are analysed.
pub fn tar(data: &[u8], name: &str, bounds: &Bounds, out: &mut Vec<Finding>) -> Result<(), String> {
    let mut pos = 0usize;
    let mut members = 0;
    while pos.saturating_add(512) <= data.len() {
        let h = &data[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        members += 1;
        if members > bounds.max_members {
            return Err(format!("{name}: more than {} tar members", bounds.max_members));
        }
        let member = String::from_utf8_lossy(&h[..100]).trim_end_matches('\0').to_owned();
        let size_text = String::from_utf8_lossy(&h[124..136])
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_owned();
        let size =
            u64::from_str_radix(&size_text, 8).map_err(|_| format!("{name}: tar member `{member}` has a bad size"))?;
        let start = pos + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|e| *e <= data.len())
            .ok_or_else(|| format!("{name}: tar member `{member}` runs past the end of the file"))?;
        let body = &data[start..end];
        let at = format!("{name}:{member}");
        if member.contains("..") || member.starts_with('/') {
            out.push(Finding {
                severity: Severity::High,
                rule: "tar.path-traversal",
                message: format!("member path `{member}` escapes the extraction directory"),
                location: at.clone(),
            });
        }
        if pickle::looks_like_pickle_start(body) {
            pickle_findings(body, &at, out)?;
        }
        pos = start.saturating_add(usize::try_from(size.div_ceil(512) * 512).unwrap_or(usize::MAX));
    }
    Ok(())
}

/// safetensors: the header's size, JSON, dtypes, shapes and offsets (inside the data,
/// consistent with dtype × shape, not overlapping), and suspicious metadata.
pub fn safetensors(head: &[u8], file_len: u64, at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let bad = |why: String| format!("{at}: not a valid safetensors file: {why}");
    let n = u64::from_le_bytes(
        head.get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("truncated".into()))?,
    );
    if n > 100 * 1024 * 1024 {
        return Err(bad(format!("header of {n} bytes (limit 100 MiB)")));
    }
    let header = head
        .get(8..8 + usize::try_from(n).unwrap_or(usize::MAX))
        .ok_or_else(|| bad("header longer than the file".into()))?;
    let v: Value = serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("header is not an object".into()))?;
    let data_len = file_len.saturating_sub(8).saturating_sub(n);
    let mut spans = Vec::new();
    for (key, t) in obj {
        if key == "__metadata__" {
            for (mk, mv) in t.as_object().into_iter().flatten() {
                let s = mv.as_str().unwrap_or("");
                let lower = s.to_ascii_lowercase();
                if [
                    "__import__",
                    "import os",
                    "os.system",
                    "subprocess",
                    "eval(",
                    "exec(",
                    "<script",
                    "pickle.loads",
                ]
                .iter()
                .any(|p| lower.contains(p))
                {
                    out.push(Finding {
                        severity: Severity::Medium,
                        rule: "safetensors.suspicious-metadata",
                        message: format!("metadata `{mk}` holds code-like text"),
                        location: at.to_owned(),
                    });
                }
            }
            continue;
        }
        let dtype = t["dtype"]
            .as_str()
            .ok_or_else(|| bad(format!("tensor `{key}` has no dtype")))?;
        let width: u64 = match dtype {
            "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
            "U16" | "I16" | "F16" | "BF16" => 2,
            "U32" | "I32" | "F32" => 4,
            "U64" | "I64" | "F64" => 8,
            other => return Err(bad(format!("tensor `{key}` has unknown dtype `{other}`"))),
        };
        let shape: Vec<u64> = t["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("tensor `{key}` has no shape")))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| bad(format!("tensor `{key}` has a bad dimension")))
            })
            .collect::<Result<_, _>>()?;
        let offsets = t["data_offsets"]
            .as_array()
            .filter(|o| o.len() == 2)
            .ok_or_else(|| bad(format!("tensor `{key}` has no data_offsets")))?;
        let (b, e) = (
            offsets[0]
                .as_u64()
                .ok_or_else(|| bad(format!("tensor `{key}`: bad offset")))?,
            offsets[1]
                .as_u64()
                .ok_or_else(|| bad(format!("tensor `{key}`: bad offset")))?,
        );
        let elements = shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
        let expect = elements.and_then(|n| n.checked_mul(width));
        if b > e || e > data_len || expect != Some(e - b) {
            return Err(bad(format!(
                "tensor `{key}`: offsets {b}..{e} do not fit {dtype} × {shape:?} inside {data_len} data bytes"
            )));
        }
        spans.push((b, e, key.clone()));
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!("tensors `{}` and `{}` overlap", w[0].2, w[1].2)));
        }
    }
    Ok(())
}

/// Text patterns of Jinja template injection (server-side template escapes).
const TEMPLATE_INJECTION: &[&str] = &[
    "__class__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__mro__",
    "__base__",
    "__init__.__",
    "popen",
    "os.system",
    "subprocess",
    "eval(",
    "exec(",
    "lipsum",
    "cycler.__",
    "joiner.__",
    "namespace.__",
];

/// GGUF: header, metadata keys and values (bounded by the file), and chat templates
/// that try to escape the template sandbox.
pub fn gguf(data: &[u8], at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let bad = |why: String| format!("{at}: not a valid GGUF file: {why}");
    let mut r = Cursor { data, pos: 4 };
    let version = r.u32().ok_or_else(|| bad("truncated".into()))?;
    if !(1..=3).contains(&version) {
        return Err(bad(format!("unknown version {version}")));
    }
    let count = |r: &mut Cursor| if version == 1 { r.u32().map(u64::from) } else { r.u64() };
    let tensors = count(&mut r).ok_or_else(|| bad("truncated".into()))?;
    let kvs = count(&mut r).ok_or_else(|| bad("truncated".into()))?;
    if tensors > 1_000_000 || kvs > 1_000_000 {
        return Err(bad(format!("{tensors} tensors and {kvs} metadata keys: implausible")));
    }
    for _ in 0..kvs {
        let key = r.string(version).ok_or_else(|| bad("truncated metadata key".into()))?;
        let ty = r.u32().ok_or_else(|| bad(format!("`{key}`: truncated")))?;
        let value = r
            .value(ty, version, 0)
            .ok_or_else(|| bad(format!("`{key}`: bad value of type {ty}")))?;
        if key.starts_with("tokenizer.chat_template")
            && let Some(t) = value
        {
            let lower = t.to_ascii_lowercase();
            if let Some(p) = TEMPLATE_INJECTION.iter().find(|p| lower.contains(*p)) {
                out.push(Finding {
                    severity: Severity::High,
                    rule: "gguf.template-injection",
                    message: format!("chat template `{key}` contains `{p}`: a template-sandbox escape"),
                    location: at.to_owned(),
                });
            }
        }
    }
    Ok(())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn string(&mut self, version: u32) -> Option<String> {
        let n = if version == 1 {
            u64::from(self.u32()?)
        } else {
            self.u64()?
        };
        let b = self.take(usize::try_from(n).ok()?)?;
        Some(String::from_utf8_lossy(b).into_owned())
    }
    /// Skips (or, for strings, returns) one value; arrays are walked, bounded by the data.
    fn value(&mut self, ty: u32, version: u32, depth: usize) -> Option<Option<String>> {
        match ty {
            0 | 1 | 7 => self.take(1).map(|_| None),
            2 | 3 => self.take(2).map(|_| None),
            4..=6 => self.take(4).map(|_| None),
            10..=12 => self.take(8).map(|_| None),
            8 => self.string(version).map(Some),
            9 if depth < 4 => {
                let elem = self.u32()?;
                let n = if version == 1 {
                    u64::from(self.u32()?)
                } else {
                    self.u64()?
                };
                // Every element takes at least one byte: more than the rest of the file is a lie.
                if n > (self.data.len() - self.pos) as u64 {
                    return None;
                }
                for _ in 0..n {
                    self.value(elem, version, depth + 1)?;
                }
                Some(None)
            }
            _ => None,
        }
    }
}

/// Operator domains the ONNX runtimes implement themselves.
const ONNX_DOMAINS: &[&str] = &[
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
];

/// A protobuf field: number, and either a varint or the bytes of a length-delimited value.
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Other,
}

/// Iterates the fields of one protobuf message, bounded by its bytes.
fn pb_fields(mut b: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), String>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&x, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(x & 0x7f) << (7 * i);
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let Some(key) = varint(&mut b) else {
            b = &[];
            return Some(Err("truncated field key".into()));
        };
        let (num, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => varint(&mut b).map(|_| Field::Varint),
            1 => b.get(8..).map(|rest| {
                b = rest;
                Field::Other
            }),
            5 => b.get(4..).map(|rest| {
                b = rest;
                Field::Other
            }),
            2 => varint(&mut b).and_then(|n| {
                let n = usize::try_from(n).ok()?;
                let v = b.get(..n)?;
                b = &b[n..];
                Some(Field::Bytes(v))
            }),
            _ => None,
        };
        match field {
            Some(f) => Some(Ok((num, f))),
            None => {
                b = &[];
                Some(Err(format!("field {num}: wire type {wire} runs past its message")))
            }
        }
    })
}

/// ONNX: custom operator domains (they need a native library that runs on load) and
/// external-data paths that leave the model's directory. Subgraphs are followed.
pub fn onnx(data: &[u8], at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let bad = |why: String| format!("{at}: not a valid ONNX model: {why}");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut saw_graph = false;
    let mut domains = std::collections::BTreeSet::new();
    let mut locations = Vec::new();
    fn graph(
        g: &[u8],
        depth: usize,
        domains: &mut std::collections::BTreeSet<String>,
        locations: &mut Vec<String>,
    ) -> Result<(), String> {
        if depth > 16 {
            return Err("subgraphs nested deeper than 16".into());
        }
        for f in pb_fields(g) {
            match f? {
                (1, Field::Bytes(node)) => {
                    for nf in pb_fields(node) {
                        match nf? {
                            (7, Field::Bytes(d)) => {
                                domains.insert(String::from_utf8_lossy(d).into_owned());
                            }
                            (5, Field::Bytes(attr)) => {
                                for af in pb_fields(attr) {
                                    match af? {
                                        (6, Field::Bytes(sub)) | (11, Field::Bytes(sub)) => {
                                            graph(sub, depth + 1, domains, locations)?;
                                        }
                                        (5, Field::Bytes(t)) | (10, Field::Bytes(t)) => tensor(t, locations)?,
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                (5, Field::Bytes(t)) => tensor(t, locations)?,
                _ => {}
            }
        }
        Ok(())
    }
    fn tensor(t: &[u8], locations: &mut Vec<String>) -> Result<(), String> {
        for f in pb_fields(t) {
            if let (13, Field::Bytes(entry)) = f? {
                let (mut key, mut value) = (String::new(), String::new());
                for ef in pb_fields(entry) {
                    match ef? {
                        (1, Field::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
                        (2, Field::Bytes(v)) => value = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
                if key == "location" {
                    locations.push(value);
                }
            }
        }
        Ok(())
    }
    for f in pb_fields(data) {
        match f.map_err(&bad)? {
            (8, Field::Bytes(opset)) => {
                for of in pb_fields(opset) {
                    if let (1, Field::Bytes(d)) = of.map_err(&bad)? {
                        domains.insert(text(d));
                    }
                }
            }
            (7, Field::Bytes(g)) => {
                saw_graph = true;
                graph(g, 0, &mut domains, &mut locations).map_err(&bad)?;
            }
            _ => {}
        }
    }
    if !saw_graph {
        return Err(bad("no graph".into()));
    }
    for d in domains.iter().filter(|d| !ONNX_DOMAINS.contains(&d.as_str())) {
        out.push(Finding {
            severity: Severity::High,
            rule: "onnx.custom-operator-domain",
            message: format!("operator domain `{d}`: running the model needs a native library that implements it"),
            location: at.to_owned(),
        });
    }
    for l in &locations {
        if l.starts_with('/') || l.starts_with('\\') || l.contains("..") || l.contains(':') {
            out.push(Finding {
                severity: Severity::High,
                rule: "onnx.external-data-escape",
                message: format!("external data `{l}` lies outside the model's directory"),
                location: at.to_owned(),
            });
        }
    }
    Ok(())
}

/// Keras HDF5 (`.h5`): the HDF5 object tree is not parsed; the `model_config` attribute
/// (JSON text that h5py stores contiguously) is found by scanning for it, and checked
/// like a `.keras` config. A file without one is reported as unscannable.
pub fn hdf5(data: &[u8], at: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let needle = b"{\"class_name\"";
    let mut found = 0;
    let mut i = 0;
    while let Some(off) = data
        .get(i..)
        .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
    {
        let start = i + off;
        let mut it = serde_json::Deserializer::from_slice(&data[start..]).into_iter::<Value>();
        if let Some(Ok(v)) = it.next() {
            found += 1;
            let text = serde_json::to_vec(&v).unwrap_or_default();
            keras_config(&text, &format!("{at} (model_config)"), out);
            i = start + it.byte_offset().max(1);
        } else {
            i = start + 1;
        }
        if found > 64 {
            break;
        }
    }
    if found == 0 {
        return Err(format!(
            "{at}: HDF5 file without a Keras model_config attribute: not inspected (convert to .keras or safetensors)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_compressed_bomb_is_reported_not_inflated() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 256 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let mut out = Vec::new();
        compressed(&bomb, "bomb.gz", &Bounds::default(), 0, &mut out).unwrap();
        assert!(
            out.iter()
                .any(|f| f.rule == "compressed.bomb" && f.severity == Severity::High),
            "{out:?}"
        );
    }
}
