//! Rampart's model scanner: tells, per file, whether a model file is safe to load,
//! without ever loading, executing or unpickling it. Files are recognised by content;
//! pickles are disassembled symbolically (`pickle.rs`) and their imports judged by
//! rules (`rules.rs`); containers are walked with bounded parsers (`formats.rs`);
//! reports come as a table, JSON or SARIF (`report.rs`); directories are signed and
//! verified against DSSE-wrapped in-toto manifests (`manifest.rs`).
//!
//! This crate never executes what it inspects, never follows a path out of the
//! directories it was given, and bounds every read.

pub mod decode;
pub mod formats;
pub mod manifest;
pub mod pickle;
pub mod report;
pub mod rules;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use formats::Bounds;
pub use rules::Severity;

/// One thing wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: &'static str,
    pub message: String,
    /// File, archive member and byte offset where it was found.
    pub location: String,
}

/// The verdict on one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub format: &'static str,
    pub bytes: u64,
    pub findings: Vec<Finding>,
    /// Why the file could not be scanned (it is then not known to be safe).
    pub error: Option<String>,
}

impl FileReport {
    /// The worst finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn status(&self) -> &'static str {
        if self.error.is_some() {
            "unscannable"
        } else if self.findings.is_empty() {
            "clean"
        } else {
            "findings"
        }
    }
}

/// The files under `paths` (directories walked, symlinks not followed), sorted.
pub fn files(paths: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    fn walk(p: &Path, out: &mut Vec<Result<PathBuf, String>>, depth: usize) {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) => {
                out.push(Err(format!("{}: {e}", p.display())));
                return;
            }
        };
        if meta.is_file() {
            out.push(Ok(p.to_owned()));
        } else if meta.is_dir() && depth < 32 {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
                    children.sort();
                    for c in children {
                        walk(&c, out, depth + 1);
                    }
                }
                Err(e) => out.push(Err(format!("{}: {e}", p.display()))),
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, 0);
    }
    out
}

/// Scans one file.
pub fn scan_file(path: &Path, bounds: &Bounds) -> FileReport {
    let name = path.display().to_string();
    let mut report = FileReport {
        path: name.clone(),
        format: "unknown",
        bytes: 0,
        findings: Vec::new(),
        error: None,
    };
    let result = (|| -> Result<(), String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
        let len = file.metadata().map_err(|e| format!("{name}: {e}"))?.len();
        report.bytes = len;
        let mut head = vec![0u8; 512];
        let n = read_up_to(&mut file, &mut head).map_err(|e| format!("{name}: {e}"))?;
        head.truncate(n);
        report.format = formats::sniff(&head, len);
        let whole = |file: std::fs::File, limit: u64| -> Result<Vec<u8>, String> {
            if len > limit {
                return Err(format!(
                    "{name}: {len} bytes, larger than the {limit}-byte limit for this format"
                ));
            }
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .map_err(|e| format!("{name}: {e}"))?;
            drop(file);
            Ok(buf)
        };
        match report.format {
            "zip" => formats::zip(file, &name, bounds, 0, &mut report.findings),
            "7z" => formats::seven_zip(file, &name, bounds, 0, &mut report.findings),
            "compressed" => formats::compressed(
                &whole(file, bounds.max_pickle_bytes)?,
                &name,
                bounds,
                0,
                &mut report.findings,
            ),
            "tar" => formats::tar(
                &whole(file, bounds.max_pickle_bytes)?,
                &name,
                bounds,
                &mut report.findings,
            ),
            "npy" => {
                // Only the header (and an object array's pickle) matters; numeric data
                // is never read.
                let head = read_prefix(path, 64 * 1024).map_err(|e| format!("{name}: {e}"))?;
                let text = String::from_utf8_lossy(&head[..head.len().min(4096)]).into_owned();
                let data = if text.contains("|O") || text.contains("'O'") {
                    whole(file, bounds.max_pickle_bytes)?
                } else {
                    head
                };
                formats::npy(&data, &name, &mut report.findings)
            }
            "gguf" => {
                // Metadata comes first; read more only while it runs past what was read.
                let mut size: u64 = 16 << 20;
                loop {
                    let data = read_prefix(path, size).map_err(|e| format!("{name}: {e}"))?;
                    let mut found = Vec::new();
                    match formats::gguf(&data, &name, &mut found) {
                        Err(_) if (data.len() as u64) < len && size < bounds.max_pickle_bytes => size *= 4,
                        r => {
                            report.findings.extend(found);
                            break r;
                        }
                    }
                }
            }
            "safetensors" => {
                let header_len = u64::from_le_bytes(head.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
                let data = read_prefix(path, header_len.saturating_add(8).min(100 * 1024 * 1024 + 8))
                    .map_err(|e| format!("{name}: {e}"))?;
                formats::safetensors(&data, len, &name, &mut report.findings)
            }
            "pickle" | "pickle?" => {
                let data = whole(file, bounds.max_pickle_bytes)?;
                match formats::pickle_findings(&data, &name, &mut report.findings) {
                    Ok(()) => {
                        report.format = "pickle";
                        Ok(())
                    }
                    Err(e) if report.format == "pickle?" => {
                        report.format = "unknown";
                        Err(format!("{name}: not a model format Rampart knows ({e})"))
                    }
                    Err(e) => Err(e),
                }
            }
            "hdf5" => {
                let data = whole(file, bounds.max_pickle_bytes)?;
                formats::hdf5(&data, &name, &mut report.findings)
            }
            _ if name.to_ascii_lowercase().ends_with(".onnx") => {
                report.format = "onnx";
                let data = whole(file, bounds.max_pickle_bytes)?;
                formats::onnx(&data, &name, &mut report.findings)
            }
            // A zip with bytes in front of it (zip readers, PyTorch's included, find
            // the archive from its end).
            _ if formats::zip_at_end(path) => {
                report.format = "zip";
                formats::zip(file, &name, bounds, 0, &mut report.findings)
            }
            _ => Err(format!("{name}: not a model format Rampart knows")),
        }
    })();
    if let Err(e) = result {
        report.error = Some(e);
    }
    report.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    report
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let m = f.read(&mut buf[n..])?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

fn read_prefix(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Scans every file under `paths`, in parallel over `threads`, in path order.
pub fn scan(paths: &[PathBuf], bounds: &Bounds, threads: usize) -> Vec<FileReport> {
    let items = files(paths);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<FileReport>>> = std::sync::Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = match item {
                        Ok(p) => scan_file(p, bounds),
                        Err(e) => FileReport {
                            path: e.split(':').next().unwrap_or("").to_owned(),
                            format: "unknown",
                            bytes: 0,
                            findings: Vec::new(),
                            error: Some(e.clone()),
                        },
                    };
                    if let Ok(mut v) = results.lock()
                        && let Some(slot) = v.get_mut(i)
                    {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default().into_iter().flatten().collect()
}
