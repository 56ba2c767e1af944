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

/// A trail written by the real writer: one lifecycle record naming the durability,
/// then `n` exchange records, sealed. Checkpoint every 10 records; a witness file.
fn written(name: &str, key_pkcs8: &[u8], durability: rampart_audit::Durability, n: usize) -> (Dir, PathBuf) {
    use std::sync::Arc;
    let dir = Dir(std::env::temp_dir().join(format!("rampart-audit-w-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let store = FileStore::open(&dir.0, "n1", 1 << 20).unwrap();
    let witness = dir.0.join("witness.json");
    let opts = rampart_audit::writer::Options {
        node: "n1".into(),
        durability,
        batch_interval: std::time::Duration::from_millis(5),
        checkpoint_interval: std::time::Duration::from_secs(3600),
        checkpoint_every: 10,
        witness: Some(witness.clone()),
        queue: 10_000,
        spill_dir: None,
        max_segment_bytes: 1 << 20,
    };
    let key = Ed25519KeyPair::from_pkcs8(key_pkcs8).unwrap();
    let (w, _h) = rampart_audit::Writer::start(Box::new(store), key, opts, Arc::new(|_| {})).unwrap();
    let mode = if durability == rampart_audit::Durability::Sync {
        "sync"
    } else {
        "batch"
    };
    w.submit(
        Box::new(move || {
            json!({"type": "lifecycle", "event": "start", "durability": mode, "checkpoint_every": 10}).to_string()
        }),
        None,
    );
    for i in 0..n {
        w.submit(
            Box::new(move || json!({"type": "exchange", "request_id": format!("r{i}")}).to_string()),
            None,
        );
    }
    assert!(w.seal(std::time::Duration::from_secs(10)));
    (dir, witness)
}

/// `n` records forged after the last record of `lines`, each with a correct hash and
/// link (what someone who can edit the files can do without the signing key).
fn forged(lines: &[String], n: usize) -> Vec<String> {
    let last: rampart_audit::Entry =
        serde_json::from_str(lines.iter().rev().find(|l| !l.starts_with("{\"checkpoint\"")).unwrap()).unwrap();
    let (mut seq, mut prev) = (last.seq, last.hash);
    (0..n)
        .map(|i| {
            seq += 1;
            let record = json!({"type": "exchange", "request_id": format!("forged{i}")}).to_string();
            let hash = rampart_audit::chain::record_hash(&prev, &record);
            let line = format!("{{\"seq\":{seq},\"prev\":\"{prev}\",\"hash\":\"{hash}\",\"record\":{record}}}");
            prev = hash;
            line
        })
        .collect()
}

/// The report names a problem `is` recognises.
fn assert_problem(r: &rampart_audit::Report, is: impl Fn(&Problem) -> bool) {
    assert!(r.problems.iter().any(is), "{:?}", r.problems);
}

fn pkcs8() -> Vec<u8> {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn public(pkcs8: &[u8]) -> Vec<u8> {
    Ed25519KeyPair::from_pkcs8(pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

fn verify_limited(dir: &Path, pkcs8: &[u8], witness: Option<&Path>) -> rampart_audit::Report {
    let limits = rampart_audit::Limits {
        max_unsigned: Some(10),
        witness: witness.map(|w| rampart_audit::read_witness(w).unwrap()),
    };
    rampart_audit::verify_dir_with(dir, "n1", Some(&public(pkcs8)), limits).unwrap()
}

#[test]
fn the_writer_never_leaves_more_unsigned_records_than_it_promises() {
    let k = pkcs8();
    for durability in [rampart_audit::Durability::Batch, rampart_audit::Durability::Sync] {
        let (dir, witness) = written(&format!("clean-{durability:?}"), &k, durability, 95);
        let r = verify_limited(&dir.0, &k, Some(&witness));
        assert!(r.ok(), "{durability:?}: {:?}", r.problems);
        assert_eq!(r.records, 96);
        assert_eq!(r.unsealed(), 0, "sealed trails end signed");
        // No run of more than 10 records without a checkpoint, anywhere.
        let mut run = 0;
        for (_, ls) in lines(&dir.0) {
            for l in ls {
                run = if l.starts_with("{\"checkpoint\"") { 0 } else { run + 1 };
                assert!(run <= 10, "{durability:?}: {run} records in a row unsigned");
            }
        }
    }
}

#[test]
fn stripped_checkpoints_an_extended_tail_and_a_cut_back_trail_fail() {
    let k = pkcs8();
    let (dir, witness) = written("strip", &k, rampart_audit::Durability::Batch, 95);
    let (path, original) = lines(&dir.0).pop().unwrap();

    // Every checkpoint stripped (the chain recomputed is not even needed: the records
    // are untouched): no checkpoint at all, and runs far beyond the window.
    let stripped: Vec<String> = original
        .iter()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .cloned()
        .collect();
    write(&path, &stripped);
    let r = verify_limited(&dir.0, &k, None);
    assert_problem(&r, |p| matches!(p, Problem::NoCheckpoint { records: 96 }));
    assert_problem(&r, |p| matches!(p, Problem::Unsigned { tail: true, .. }));

    // One checkpoint in the middle removed: a gap of 20.
    let mut gap = original.clone();
    let middle = gap.iter().position(|l| l.starts_with("{\"checkpoint\"")).unwrap() + 1;
    let second = middle
        + gap[middle..]
            .iter()
            .position(|l| l.starts_with("{\"checkpoint\""))
            .unwrap();
    gap.remove(second);
    write(&path, &gap);
    let r = verify_limited(&dir.0, &k, None);
    assert_problem(&r, |p| matches!(p, Problem::Unsigned { tail: false, .. }));

    // Eleven forged records appended after the last checkpoint, hashes recomputed.
    let mut extended = original.clone();
    extended.extend(forged(&original, 11));
    write(&path, &extended);
    let r = verify_limited(&dir.0, &k, None);
    assert_problem(&r, |p| matches!(p, Problem::Unsigned { tail: true, .. }));

    // Cut back to an earlier checkpoint (records and checkpoints after it deleted):
    // the chain alone cannot tell, the witness can.
    let mut cut = original.clone();
    let keep = cut
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("{\"checkpoint\""))
        .nth(3)
        .unwrap()
        .0;
    cut.truncate(keep + 1);
    write(&path, &cut);
    assert!(
        verify_limited(&dir.0, &k, None).ok(),
        "without a witness a clean cut looks whole"
    );
    let r = verify_limited(&dir.0, &k, Some(&witness));
    assert!(
        r.problems.iter().any(|p| matches!(p, Problem::Truncated { .. })),
        "{:?}",
        r.problems
    );
}

#[test]
fn a_sync_trail_has_no_unsigned_tail_so_one_forged_record_fails() {
    let k = pkcs8();
    let (dir, _) = written("sync-tail", &k, rampart_audit::Durability::Sync, 25);
    let (path, mut ls) = lines(&dir.0).pop().unwrap();
    assert!(verify_limited(&dir.0, &k, None).ok());
    ls.extend(forged(&ls.clone(), 1));
    write(&path, &ls);
    let r = verify_limited(&dir.0, &k, None);
    assert_problem(&r, |p| matches!(p, Problem::Unsigned { tail: true, .. }));
}
