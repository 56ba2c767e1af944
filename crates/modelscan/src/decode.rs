//! What a pickle's decoder calls would produce at load time: `base64.b64decode`,
//! `binascii.unhexlify`, `bytes.fromhex`, `codecs.decode(…, "base64" | "hex" |
//! "zlib")`, `zlib.decompress`, `gzip.decompress` and `_codecs.encode(…, "latin1")`
//! (how protocol 2 writes bytes). The pickle machine hands the decoded bytes back to
//! itself, so `pickle.loads(zlib.decompress(base64.b64decode(…)))` is analysed to the
//! innermost pickle. Output is bounded by the caller's budget; a decoder whose output
//! would exceed it yields nothing (the call itself is still a finding).

use std::io::Read;

use base64::Engine as _;

/// The bytes `module.name(input, codec)` returns, when it is a decoder this module
/// knows and the input decodes within `budget` bytes.
pub fn call(module: &str, name: &str, codec: Option<&str>, input: &[u8], budget: usize) -> Option<Vec<u8>> {
    let out = match (module, name) {
        ("base64", "b64decode" | "standard_b64decode" | "decodebytes" | "decodestring")
        | ("binascii", "a2b_base64") => base64(input, false)?,
        ("base64", "urlsafe_b64decode") => base64(input, true)?,
        ("base64", "b16decode") | ("binascii", "unhexlify" | "a2b_hex") | ("builtins", "bytes.fromhex") => hex(input)?,
        ("zlib", "decompress") => inflate(flate2::read::ZlibDecoder::new(input), budget)?,
        ("gzip", "decompress") => inflate(flate2::read::GzDecoder::new(input), budget)?,
        ("codecs" | "_codecs", "decode") => match codec.unwrap_or("utf_8") {
            "base64" | "base_64" | "base64_codec" => base64(input, false)?,
            "hex" | "hex_codec" => hex(input)?,
            "zlib" | "zip" | "zlib_codec" => inflate(flate2::read::ZlibDecoder::new(input), budget)?,
            _ => return None,
        },
        ("codecs" | "_codecs", "encode") | ("builtins" | "__builtin__", "bytes" | "bytearray") => {
            match codec.unwrap_or("utf_8") {
                "latin1" | "latin_1" | "iso_8859_1" | "iso8859_1" | "l1" => latin1(input)?,
                "utf_8" | "utf8" | "ascii" => input.to_vec(),
                _ => return None,
            }
        }
        _ => return None,
    };
    (out.len() <= budget).then_some(out)
}

/// Python's `b64decode` without `validate`: characters outside the alphabet are
/// dropped before decoding.
fn base64(input: &[u8], urlsafe: bool) -> Option<Vec<u8>> {
    let clean: Vec<u8> = input
        .iter()
        .filter_map(|&c| match c {
            b'-' if urlsafe => Some(b'+'),
            b'_' if urlsafe => Some(b'/'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(c),
            _ => None,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean).ok()
}

/// Hex digits, whitespace ignored (as `bytes.fromhex` does).
fn hex(input: &[u8]) -> Option<Vec<u8>> {
    let digits: Vec<u8> = input.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    digits
        .chunks_exact(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

/// A `str` (as UTF-8) encoded as Latin-1: every character must be below U+0100.
fn latin1(input: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(input)
        .ok()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

fn inflate(r: impl Read, budget: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    r.take(u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .ok()?;
    (out.len() <= budget).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(call("base64", "b64decode", None, b"aGk=\n", 10).unwrap(), b"hi");
        assert_eq!(
            call("base64", "urlsafe_b64decode", None, b"_-8=", 10).unwrap(),
            vec![0xff, 0xef]
        );
        assert_eq!(call("binascii", "unhexlify", None, b"6869", 10).unwrap(), b"hi");
        assert_eq!(call("builtins", "bytes.fromhex", None, b"68 69", 10).unwrap(), b"hi");
        assert_eq!(call("codecs", "decode", Some("hex"), b"6869", 10).unwrap(), b"hi");
        assert_eq!(
            call("_codecs", "encode", Some("latin1"), "\u{80}a".as_bytes(), 10).unwrap(),
            vec![0x80, b'a']
        );
        assert!(call("_codecs", "encode", Some("latin1"), "\u{100}".as_bytes(), 10).is_none());
        assert!(call("binascii", "unhexlify", None, b"686", 10).is_none());
        assert!(call("os", "system", None, b"6869", 10).is_none(), "not a decoder");
    }

    #[test]
    fn zlib_is_bounded() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&[0u8; 100_000]).unwrap();
        let packed = z.finish().unwrap();
        assert_eq!(
            call("zlib", "decompress", None, &packed, 200_000).unwrap().len(),
            100_000
        );
        assert!(
            call("zlib", "decompress", None, &packed, 1_000).is_none(),
            "over budget: nothing"
        );
    }
}
