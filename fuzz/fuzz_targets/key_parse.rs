//! Any text as a presented API key and as a key file: parsing and verification never
//! panic, and a key store built from fuzzed records never accepts a fuzzed key.
#![no_main]

use std::sync::Arc;

use rampart_identity::{ApiKey, KeyFile, KeyStore, Pepper};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ApiKey::parse(text);
    let store = match toml::from_str::<KeyFile>(text) {
        Ok(file) => KeyStore::from_file(Arc::new(Pepper::new(b"fuzz")), &file),
        Err(_) => KeyStore::new(Arc::new(Pepper::new(b"fuzz")), &[]),
    };
    // The fuzzer cannot produce a key whose HMAC under this pepper matches a stored hash
    // it also wrote, except by breaking HMAC-SHA256.
    assert!(store.verify(text, 0).is_err());
});
