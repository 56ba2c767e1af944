//! The generated corpus (`scripts/gen_model_corpus.py`): every malicious sample is
//! flagged with the rule and at least the severity `expected.json` names, every benign
//! checkpoint is clean, every broken file is reported as unscannable with a message
//! that names it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rampart_modelscan::{Bounds, Severity, scan_file};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "the {kind} corpus is there: {}", dir.display());
    files
}

#[test]
fn every_malicious_sample_is_flagged() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/expected.json")).unwrap(),
    )
    .unwrap();
    let files = corpus("malicious");
    assert_eq!(
        files.len(),
        expected.as_object().unwrap().len(),
        "expected.json covers every sample"
    );
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = &expected[name];
        let r = scan_file(&path, &Bounds::default());
        if want["broken"].as_bool() == Some(true) {
            assert!(r.error.is_some(), "{name}: the break is reported too");
        } else {
            assert!(r.error.is_none(), "{name} must be scannable: {:?}", r.error);
        }
        let min = Severity::parse(want["severity"].as_str().unwrap()).unwrap();
        let rule = want["rule"].as_str().unwrap();
        assert!(
            r.findings.iter().any(|f| f.rule == rule && f.severity >= min),
            "{name}: expected {rule} at {min:?} or worse, got {:#?}",
            r.findings
        );
    }
}

#[test]
fn every_benign_checkpoint_is_clean() {
    for path in corpus("benign") {
        let r = scan_file(&path, &Bounds::default());
        assert_eq!(r.status(), "clean", "{}: {:?} {:#?}", r.path, r.error, r.findings);
    }
}

#[test]
fn every_broken_file_is_unscannable_with_a_clear_message() {
    for path in corpus("broken") {
        let r = scan_file(&path, &Bounds::default());
        let e = r
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{} must be unscannable: {:#?}", r.path, r.findings));
        assert!(
            e.contains(path.file_name().unwrap().to_str().unwrap()),
            "the message names the file: {e}"
        );
        assert!(e.len() > r.path.len() + 10, "and says why: {e}");
    }
}

#[test]
fn scanning_never_panics_on_mutations_of_the_corpus() {
    // Every sample with bytes flipped, truncated at several points and doubled: each
    // scan ends with a report (findings or an error), never a panic.
    let dir = std::env::temp_dir().join(format!("rampart-modelscan-mut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for kind in ["malicious", "benign", "broken"] {
        for path in corpus(kind) {
            let data = std::fs::read(&path).unwrap();
            let mut variants = Vec::new();
            for cut in [1, 2, 7, data.len() / 2, data.len().saturating_sub(1)] {
                variants.push(data[..cut.min(data.len())].to_vec());
            }
            for step in [3usize, 17, 61] {
                let mut v = data.clone();
                for i in (0..v.len()).step_by(step) {
                    v[i] ^= 0x5a;
                }
                variants.push(v);
            }
            variants.push([data.clone(), data.clone()].concat());
            for v in variants {
                let p = dir.join(format!("m{n}"));
                std::fs::write(&p, &v).unwrap();
                let r = scan_file(&p, &Bounds::default());
                assert!(r.error.is_some() || r.findings.iter().all(|f| !f.message.is_empty()));
                n += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(n > 400);
}
