//! The stable, bounded counterpart of the `json_strict` and `sse_parse` fuzz targets
//! (which need nightly and run from docs/FUZZING.md): generated inputs biased toward the
//! tricks the parsers exist to stop — duplicate and escaped keys, surrogates, NaN,
//! CR/LF mixtures split at every point.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rampart_detect::json::{JsonError, parse_strict};
use rampart_detect::sse::{Event, parse_chunks};

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
}
