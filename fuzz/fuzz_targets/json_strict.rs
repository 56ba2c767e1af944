//! The strict request-body parser (duplicate keys, UTF-8, depth, RFC 8259): never
//! panics; whatever it accepts, serde_json reads as the same value, and the value
//! written back parses strictly to itself (what the upstream receives after a rewrite
//! is what every stage checked).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(v) = rampart_detect::json::parse_strict(data, 64) else { return };
    let theirs: serde_json::Value = serde_json::from_slice(data).expect("serde_json refused what the strict parser accepted");
    assert_eq!(v, theirs, "the two readings differ");
    let written = serde_json::to_vec(&v).expect("re-encode");
    let again = rampart_detect::json::parse_strict(&written, 64).expect("the re-encoded body is refused");
    assert_eq!(again, v);
});
