//! The one-pass depth check never panics, and never counts deeper than a parser
//! does: a document serde_json accepts (its own limit is 128 levels) passes a check
//! at 128.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rampart_detect::json::check_depth(data, 64);
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        assert!(rampart_detect::json::check_depth(data, 128).is_ok(), "depth miscounted");
    }
});
