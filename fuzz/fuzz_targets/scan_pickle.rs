#![no_main]
// The pickle disassembler on any bytes: an analysis or an error, never a panic, hang or
// unbounded allocation.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rampart_modelscan::pickle::analyse(data, rampart_modelscan::pickle::Limits::default());
});
