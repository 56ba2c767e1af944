//! The stable, bounded counterpart of the `json_strict`, `sse_parse` and
//! `kserve_binary` fuzz targets (which need nightly and run from docs/FUZZING.md):
//! generated inputs biased toward the tricks the parsers exist to stop — duplicate and
//! escaped keys, surrogates, NaN, CR/LF mixtures split at every point, tensor sizes that
//! do not add up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rampart_detect::json::{JsonError, parse_strict};
use rampart_detect::kserve_binary::{Tensors, decode, encode};
use rampart_detect::sse::{Event, parse_chunks};

/// A binary-extension request: tensors of random datatypes and contents, each with a
/// size that is right or (when `lie` picks it) off by a few bytes, and maybe junk after
/// the last tensor. Returns the header, the tail, and whether it is honest.
fn tensors() -> impl Strategy<Value = (serde_json::Value, Vec<u8>, bool)> {
    let tensor = (
        prop::sample::select(vec!["FP32", "INT8", "BOOL", "BYTES", "FP16", "UINT64"]),
        1usize..4,
        prop::collection::vec(any::<u8>(), 0..24),
        prop::sample::select(vec![0i64, 0, 0, 1, -1, 4]),
    );
    (
        prop::collection::vec(tensor, 1..4),
        prop::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(list, junk)| {
            let mut inputs = Vec::new();
            let mut tail = Vec::new();
            let mut honest = junk.is_empty();
            for (i, (dt, n, bytes, lie)) in list.into_iter().enumerate() {
                let raw: Vec<u8> = if dt == "BYTES" {
                    let mut out = Vec::new();
                    for k in 0..n {
                        let piece = bytes.get(k * 3..(k * 3 + 3).min(bytes.len())).unwrap_or(&[]);
                        out.extend_from_slice(&u32::try_from(piece.len()).unwrap().to_le_bytes());
                        out.extend_from_slice(piece);
                    }
                    out
                } else {
                    let width = match dt {
                        "FP32" => 4,
                        "FP16" => 2,
                        "UINT64" => 8,
                        _ => 1,
                    };
                    (0..n * width)
                        .map(|j| match dt {
                            // Keep floats finite and BOOL bytes 0/1 in honest bodies.
                            "BOOL" => bytes.get(j).copied().unwrap_or(0) & 1,
                            "FP32" | "FP16" => bytes.get(j).copied().unwrap_or(0) & 0x3f,
                            _ => bytes.get(j).copied().unwrap_or(0),
                        })
                        .collect()
                };
                let size = i64::try_from(raw.len()).unwrap() + lie;
                honest &= lie == 0;
                inputs.push(
                    serde_json::json!({"name": format!("t{i}"), "datatype": dt, "shape": [n],
                                           "parameters": {"binary_data_size": size.max(0)}}),
                );
                tail.extend(raw);
            }
            tail.extend(junk);
            (serde_json::json!({"inputs": inputs}), tail, honest)
        })
}

/// JSON-ish text from fragments that make parsers disagree.
fn jsonish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"model\"",
        "\"mod\\u0065l\"",
        "\"a\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "NaN",
        "-Infinity",
        "1e999",
        "0",
        "-1.5",
        "true",
        "null",
        " ",
        "\n",
        "\"x\"",
        "//",
        "\u{feff}",
        "\"\\/\"",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

/// Objects with generated keys, sometimes repeated.
fn object() -> impl Strategy<Value = (String, bool)> {
    prop::collection::vec(
        (prop::sample::select(vec!["a", "b", "model", "messages"]), 0u32..100),
        1..6,
    )
    .prop_map(|pairs| {
        let mut seen = std::collections::HashSet::new();
        let dup = pairs.iter().any(|(k, _)| !seen.insert(*k));
        let body = pairs
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect::<Vec<_>>()
            .join(",");
        (format!("{{\"outer\":[{{{body}}}]}}"), dup)
    })
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let parts = prop::sample::select(vec![
        &b"data: "[..],
        b"data:",
        b"event: e",
        b"id: 1",
        b": c",
        b"retry: 5",
        b"{\"k\":\"v\"}",
        b"\r",
        b"\n",
        b"\r\n",
        b"x",
        b"\xef\xbb\xbf",
    ]);
    prop::collection::vec(parts, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn strict_json_accepts_only_what_serde_reads_the_same(text in jsonish()) {
        if let Ok(v) = parse_strict(text.as_bytes(), 64) {
            let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&v, &theirs);
            let again = parse_strict(serde_json::to_string(&v).unwrap().as_bytes(), 64).unwrap();
            prop_assert_eq!(again, v);
        }
    }

    #[test]
    fn duplicate_keys_are_always_refused_with_their_path((text, dup) in object()) {
        match parse_strict(text.as_bytes(), 64) {
            Err(JsonError::DuplicateKey { path }) => {
                prop_assert!(dup);
                prop_assert!(path.starts_with("outer[0]."), "{}", path);
            }
            Ok(_) => prop_assert!(!dup),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn events_do_not_depend_on_chunking(bytes in stream(), cut in any::<prop::sample::Index>()) {
        let at = cut.index(bytes.len() + 1);
        prop_assert_eq!(parse_chunks(&[&bytes]), parse_chunks(&[&bytes[..at], &bytes[at..]]));
        if let Ok(events) = parse_chunks(&[&bytes]) {
            let mut written = Vec::new();
            for e in &events {
                e.write(&mut written);
            }
            let data = |es: &[Event]| es.iter().filter(|e| e.data.is_some()).cloned().collect::<Vec<_>>();
            prop_assert_eq!(data(&parse_chunks(&[&written]).unwrap()), data(&events));
        }
    }

    #[test]
    fn binary_tensors_read_only_when_sizes_add_up_and_write_back_as_read((header, tail, honest) in tensors()) {
        match decode(header, &tail, Tensors::Inputs, true) {
            Ok((view, layout)) => {
                prop_assert!(honest, "a dishonest body was accepted: {}", view);
                let (body, n) = encode(&view, &layout, Tensors::Inputs).unwrap();
                let again: serde_json::Value = serde_json::from_slice(&body[..n]).unwrap();
                prop_assert_eq!(&body[n..], &tail[..]);
                let (reread, _) = decode(again, &body[n..], Tensors::Inputs, true).unwrap();
                prop_assert_eq!(reread, view);
            }
            Err(v) => prop_assert!(!honest, "an honest body was refused: {}", v),
        }
    }
}
