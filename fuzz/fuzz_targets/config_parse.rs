//! Any bytes as a config file: parsing and validation must return an error, never
//! panic, loop or allocate without bound.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rampart_config::from_str(text, "fuzz.toml", std::path::Path::new("/nonexistent"));
    }
});
