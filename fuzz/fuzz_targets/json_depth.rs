//! The JSON depth check must never panic, and must agree with serde_json about
//! documents serde_json accepts: those within the depth limit pass.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ours = rampart_gateway::json::check_depth(data, 64);
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() && ours.is_err() {
        // serde_json's own recursion limit is 128: anything it parsed and we refused
        // must be deeper than our 64.
        assert!(matches!(ours, Err(rampart_gateway::RequestError::JsonTooDeep { .. })));
    }
});
