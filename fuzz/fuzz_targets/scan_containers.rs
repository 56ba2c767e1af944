#![no_main]
// Every container parser on any bytes (the first byte picks which): findings or an
// error, never a panic. Zip, tar, NumPy, safetensors, GGUF, ONNX, Keras HDF5, 7z,
// gzip/zlib streams.
use libfuzzer_sys::fuzz_target;
use rampart_modelscan::formats;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else { return };
    let mut out = Vec::new();
    let bounds = formats::Bounds::default();
    let _ = match pick % 9 {
        0 => formats::zip(std::io::Cursor::new(data), "f", &bounds, 0, &mut out),
        1 => formats::tar(data, "f", &bounds, &mut out),
        2 => formats::npy(data, "f", &mut out),
        3 => formats::safetensors(data, data.len() as u64, "f", &mut out),
        4 => formats::onnx(data, "f", &mut out),
        5 => formats::hdf5(data, "f", &mut out),
        6 => formats::seven_zip(std::io::Cursor::new(data), "f", &bounds, 0, &mut out),
        7 => formats::compressed(data, "f", &bounds, 0, &mut out),
        _ => formats::gguf(data, "f", &mut out),
    };
});
