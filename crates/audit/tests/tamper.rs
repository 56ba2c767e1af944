//! Tamper tests on real segment files: flip one byte, delete a record, insert one,
//! swap two, truncate the tail, replace a checkpoint signature — each detected and
//! named by `verify_dir`; an untouched trail verifies, across segment rotation and a
//! reopened store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rampart_audit::{FileStore, Problem, verify_dir};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// A trail of 20 records with a checkpoint after every 5, in small segments.
fn trail(name: &str, key: &Ed25519KeyPair) -> Dir {
    let dir = Dir(std::env::temp_dir().join(format!("rampart-audit-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let mut store = FileStore::open(&dir.0, "n1", 2048).unwrap();
    for i in 0..20 {
        store
            .append(json!({"kind": "exchange", "request_id": format!("r{i}"), "status": 200}))
            .unwrap();
        if i % 5 == 4 {
            store.checkpoint(key, &format!("2026-11-22T00:00:{i:02}Z")).unwrap();
        }
    }
    store.sync().unwrap();
    dir
}

fn lines(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    rampart_audit::store::segments(dir, "n1")
        .unwrap()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let l = text.lines().map(str::to_owned).collect();
            (p, l)
        })
        .collect()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

#[test]
fn an_untouched_trail_verifies_across_segments_and_reopening() {
    let k = key();
    let dir = trail("clean", &k);
    assert!(lines(&dir.0).len() > 1, "the trail rotated into several segments");
    // Reopen and continue the same chain.
    let mut store = FileStore::open(&dir.0, "n1", 2048).unwrap();
    let e = store.append(json!({"kind": "admin", "event": "reload"})).unwrap();
    assert_eq!(e.seq, 20);
    let r = verify_dir(&dir.0, "n1", Some(k.public_key().as_ref())).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.checkpoints), (21, 4));
}

fn problems(dir: &Path, k: &Ed25519KeyPair) -> Vec<Problem> {
    verify_dir(dir, "n1", Some(k.public_key().as_ref())).unwrap().problems
}

#[test]
fn each_kind_of_tampering_is_detected_and_named() {
    let k = key();

    // Flip one byte inside a record.
    let dir = trail("flip", &k);
    let (path, mut l) = lines(&dir.0).remove(0);
    l[2] = l[2].replacen("\"status\":200", "\"status\":500", 1);
    write(&path, &l);
    let p = problems(&dir.0, &k);
    assert!(matches!(&p[..], [Problem::Altered { seq: 2, line: 3, .. }]), "{p:?}");

    // Delete a record.
    let dir = trail("delete", &k);
    let (path, mut l) = lines(&dir.0).remove(0);
    l.remove(1);
    write(&path, &l);
    let p = problems(&dir.0, &k);
    assert!(
        matches!(
            &p[..],
            [Problem::Missing {
                expected: 1,
                found: 2,
                ..
            }]
        ),
        "{p:?}"
    );

    // Insert a forged record (well-formed, its own hash right) after record 0.
    let dir = trail("insert", &k);
    let (path, mut l) = lines(&dir.0).remove(0);
    let first: rampart_audit::Entry = serde_json::from_str(&l[0]).unwrap();
    let forged_record = json!({"kind": "exchange", "request_id": "forged", "status": 200});
    let forged = rampart_audit::Entry {
        seq: 1,
        prev: first.hash.clone(),
        hash: rampart_audit::chain::record_hash(&first.hash, &forged_record.to_string()),
        record: serde_json::value::RawValue::from_string(forged_record.to_string()).unwrap(),
    };
    l.insert(1, serde_json::to_string(&forged).unwrap());
    write(&path, &l);
    let p = problems(&dir.0, &k);
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::OutOfPlace { seq: 1, line: 3, .. })),
        "the real record 1 no longer follows: {p:?}"
    );

    // Swap two records.
    let dir = trail("swap", &k);
    let (path, mut l) = lines(&dir.0).remove(0);
    l.swap(1, 2);
    write(&path, &l);
    let p = problems(&dir.0, &k);
    assert!(
        p.iter().any(|x| matches!(
            x,
            Problem::Missing { line: 2, .. } | Problem::OutOfPlace { line: 2, .. }
        )),
        "{p:?}"
    );
    assert!(!p.is_empty());

    // Truncate the tail: drop the last segment's records after a checkpoint covered them.
    let dir = trail("truncate", &k);
    let segs = lines(&dir.0);
    let (path, l) = segs.last().unwrap().clone();
    let cut: Vec<String> = l.iter().filter(|x| x.contains("\"checkpoint\"")).cloned().collect();
    write(&path, &cut);
    let p = problems(&dir.0, &k);
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::Truncated { checkpoint_seq: 19, .. })),
        "{p:?}"
    );

    // Replace a checkpoint signature with another key's.
    let dir = trail("sig", &k);
    let other = key();
    let (path, mut l) = lines(&dir.0).remove(0);
    let at = l.iter().position(|x| x.contains("\"checkpoint\"")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&l[at]).unwrap();
    let cp: rampart_audit::Checkpoint = serde_json::from_value(v["checkpoint"].clone()).unwrap();
    let forged = {
        use base64::Engine as _;
        let sig = other.sign(&rampart_audit::Checkpoint::message(
            &cp.node, cp.seq, &cp.head, &cp.time,
        ));
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    };
    v["checkpoint"]["sig"] = json!(forged);
    l[at] = v.to_string();
    write(&path, &l);
    let p = problems(&dir.0, &k);
    assert!(
        matches!(&p[..], [Problem::BadSignature { line, .. }] if *line == at + 1),
        "{p:?}"
    );
    // Without the public key the chain itself is still intact.
    assert!(verify_dir(&dir.0, "n1", None).unwrap().ok());
}

#[test]
fn a_purge_of_every_record_a_checkpoint_covers_still_verifies() {
    // One line per segment: the newest segment holds only the final checkpoint, so
    // retention may delete every record; the anchor, not a record, ends the chain.
    let k = key();
    let dir = Dir(std::env::temp_dir().join(format!("rampart-audit-purge-all-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let mut store = FileStore::open(&dir.0, "n1", 1).unwrap();
    for i in 0..3 {
        store
            .append(json!({"type": "exchange", "time": "2020-01-01T00:00:00Z", "i": i}))
            .unwrap();
    }
    store.checkpoint(&k, "2020-01-01T00:00:01Z").unwrap();
    store.sync().unwrap();
    let purged = rampart_audit::retention::purge_dir(
        &dir.0,
        "n1",
        |_| rampart_audit::retention::Fate::After(0),
        1,
        &k,
        "2020-01-02T00:00:00Z",
        false,
    )
    .unwrap();
    assert_eq!((purged.records, purged.through), (3, Some(2)));
    let r = verify_dir(&dir.0, "n1", Some(k.public_key().as_ref())).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.purged_through), (0, Some(2)));
}
