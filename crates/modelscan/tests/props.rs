//! The short fuzz run CI can afford on a stable toolchain: random and mutated inputs
//! through every parser (the cargo-fuzz targets in `fuzz/` run longer, on nightly).
//! Each must return findings or an error: no panic, no hang, no unbounded allocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rampart_modelscan::{formats, pickle};

/// Bytes biased towards pickle opcodes and small lengths, so the machine gets deep.
fn pickleish() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        Just(b'('),
        Just(b'.'),
        Just(b'0'),
        Just(b'1'),
        Just(b'2'),
        Just(b'K'),
        Just(b'N'),
        Just(b'R'),
        Just(b'b'),
        Just(b'c'),
        Just(b'h'),
        Just(b'q'),
        Just(b't'),
        Just(b')'),
        Just(b']'),
        Just(b'}'),
        Just(0x80u8),
        Just(0x85),
        Just(0x86),
        Just(0x8c),
        Just(0x93),
        Just(0x94),
        Just(0x92),
        Just(0x81),
        Just(b'B'),
        Just(b'C'),
        Just(b'\n'),
        Just(b'o'),
        Just(b's'),
        Just(b'u'),
        Just(b'e'),
        any::<u8>(),
    ];
    proptest::collection::vec(op, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn pickle_analysis_never_panics(data in pickleish()) {
        let small = pickle::Limits { max_stack: 64, max_memo: 64, max_name: 64, max_decoded: 1 << 16 };
        let _ = pickle::analyse(&data, small);
        let _ = pickle::analyse(&data, pickle::Limits::default());
    }

    #[test]
    fn containers_never_panic(pick in 0u8..5, data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut out = Vec::new();
        let bounds = formats::Bounds::default();
        let mut framed = data.clone();
        // Give each parser its magic, so the fuzzing reaches past the first check.
        match pick {
            0 => { framed.splice(0..0, *b"PK\x03\x04"); let _ = formats::zip(std::io::Cursor::new(framed), "f", &bounds, 0, &mut out); }
            1 => { let _ = formats::tar(&framed, "f", &bounds, &mut out); }
            2 => { framed.splice(0..0, *b"\x93NUMPY\x01\x00"); let _ = formats::npy(&framed, "f", &mut out); }
            3 => { let n = framed.len() as u64; let _ = formats::safetensors(&framed, n, "f", &mut out); }
            _ => { framed.splice(0..0, *b"GGUF\x03\x00\x00\x00"); let _ = formats::gguf(&framed, "f", &mut out); let _ = formats::onnx(&data, "f", &mut out); let _ = formats::hdf5(&data, "f", &mut out); }
        }
    }
}
