//! The KServe v2 / Triton binary tensor data extension: a body that starts with a JSON
//! header of `Inference-Header-Content-Length` bytes, followed by the raw bytes of every
//! tensor whose `parameters.binary_data_size` says how many it takes, in tensor order.
//! tritonclient sends and asks for this by default.
//!
//! This module turns such a body into a *view*: the JSON header with each binary
//! tensor's `data` decoded in place (BYTES elements as strings, and, when asked,
//! numbers), so that validation and the content policy read the same JSON whether the
//! client sent JSON or binary. It checks what a reader of the raw bytes would otherwise
//! take on trust: each tensor's byte count against its shape × its datatype's size,
//! BYTES elements' length prefixes against the tensor's size, the sizes against the
//! bytes that actually follow the header (nothing left over, nothing missing), and
//! `binary_data_size` never beside `data`.
//!
//! [`encode`] writes a view back as a binary body. Only BYTES elements are re-encoded
//! from the view (that is all the content policy rewrites); every other tensor is
//! forwarded byte for byte as it arrived, so numbers never pass through a float
//! conversion. A BYTES element that is not UTF-8 cannot be shown as a JSON string: its
//! tensor stays *opaque* (`binary_data_size` kept, no `data`), and [`Layout::opaque`]
//! says so, so that a policy that must read it can refuse.

use serde_json::{Map, Value};

use crate::protocol::Violation;

/// The request and response header naming the JSON header's length.
pub const HEADER: &str = "inference-header-content-length";

/// Which tensor list a body carries: `inputs` (requests) or `outputs` (responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensors {
    Inputs,
    Outputs,
}

impl Tensors {
    fn key(self) -> &'static str {
        match self {
            Self::Inputs => "inputs",
            Self::Outputs => "outputs",
        }
    }
}

/// One tensor that carried binary data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    /// Index in the tensor list.
    tensor: usize,
    /// The raw bytes, kept for tensors forwarded byte for byte.
    raw: Vec<u8>,
    /// Whether the view holds this tensor's elements as strings to re-encode.
    strings: bool,
    /// Whether the view holds `data` for it at all (false: opaque).
    inlined: bool,
}

/// How a view maps back to the binary body it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    parts: Vec<Part>,
}

impl Layout {
    /// Whether the body carried any binary tensor data.
    pub fn is_binary(&self) -> bool {
        !self.parts.is_empty()
    }

    /// How many binary tensors the view could not show (non-UTF-8 BYTES elements, or
    /// numbers when they were not asked for): what a reader of the view cannot see.
    pub fn opaque(&self) -> usize {
        self.parts.iter().filter(|p| !p.inlined).count()
    }

    /// Whether a BYTES tensor could not be shown as text: content an inspecting
    /// policy cannot read.
    pub fn unreadable_text(&self) -> bool {
        self.parts.iter().any(|p| p.strings && !p.inlined)
    }
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

/// Splits a body at the JSON header's length (the header's value, as sent).
pub fn split<'a>(body: &'a [u8], header_len: &str) -> Result<(&'a [u8], &'a [u8]), Violation> {
    let n: usize = header_len
        .trim()
        .parse()
        .ok()
        .filter(|_| !header_len.trim().starts_with('+'))
        .ok_or_else(|| bad("$", format!("{HEADER} must be a whole number of bytes")))?;
    if n == 0 || n > body.len() {
        return Err(bad(
            "$",
            format!("{HEADER} is {n}, but the body has {} bytes", body.len()),
        ));
    }
    Ok(body.split_at(n))
}

/// Bytes one element of a fixed-size datatype takes; `None` for BYTES and unknown types.
pub fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        "UINT64" | "INT64" | "FP64" => 8,
        _ => return None,
    })
}

/// Half precision to f64 (exact).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Decodes fixed-size elements into JSON values; refuses non-finite floats and BOOL
/// bytes other than 0 and 1.
fn numbers(raw: &[u8], datatype: &str, path: &str) -> Result<Vec<Value>, Violation> {
    let size = element_size(datatype).unwrap_or(1);
    let mut out = Vec::with_capacity(raw.len() / size);
    for (i, e) in raw.chunks_exact(size).enumerate() {
        let float = |x: f64| {
            serde_json::Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| bad(format!("{path}[{i}]"), "must be a finite number"))
        };
        let b = |k: usize| e.get(k).copied().unwrap_or(0);
        let v = match datatype {
            "BOOL" => match b(0) {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                x => {
                    return Err(bad(
                        format!("{path}[{i}]"),
                        format!("BOOL byte must be 0 or 1, not {x}"),
                    ));
                }
            },
            "UINT8" => Value::from(b(0)),
            "INT8" => Value::from(i8::from_le_bytes([b(0)])),
            "UINT16" => Value::from(u16::from_le_bytes([b(0), b(1)])),
            "INT16" => Value::from(i16::from_le_bytes([b(0), b(1)])),
            "UINT32" => Value::from(u32::from_le_bytes([b(0), b(1), b(2), b(3)])),
            "INT32" => Value::from(i32::from_le_bytes([b(0), b(1), b(2), b(3)])),
            "UINT64" => Value::from(u64::from_le_bytes([b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)])),
            "INT64" => Value::from(i64::from_le_bytes([b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)])),
            "FP16" => float(f16_to_f64(u16::from_le_bytes([b(0), b(1)])))?,
            "BF16" => float(f64::from(f32::from_bits(
                u32::from(u16::from_le_bytes([b(0), b(1)])) << 16,
            )))?,
            "FP32" => float(f64::from(f32::from_le_bytes([b(0), b(1), b(2), b(3)])))?,
            "FP64" => float(f64::from_le_bytes([b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)]))?,
            _ => return Err(bad(path, format!("unknown datatype {datatype}"))),
        };
        out.push(v);
    }
    Ok(out)
}

/// Splits a BYTES tensor into its elements (each a 4-byte little-endian length, then
/// that many bytes); the elements must fill the tensor exactly.
fn byte_elements<'a>(mut raw: &'a [u8], path: &str) -> Result<Vec<&'a [u8]>, Violation> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(bad(path, "ends inside a BYTES element's 4-byte length"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad(
                format!("{path}[{}]", out.len()),
                format!("claims {len} bytes, but only {} remain", rest.len()),
            ));
        }
        let (element, rest) = rest.split_at(len);
        out.push(element);
        raw = rest;
    }
    Ok(out)
}

fn shape_elements(tensor: &Map<String, Value>, path: &str) -> Result<u64, Violation> {
    let dims = tensor
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("{path}.shape"), "is required and must be an array"))?;
    dims.iter().try_fold(1u64, |acc, d| {
        let d = d.as_u64().ok_or_else(|| {
            bad(
                format!("{path}.shape"),
                "must be an array of non-negative whole numbers",
            )
        })?;
        acc.checked_mul(d)
            .ok_or_else(|| bad(format!("{path}.shape"), "is too large"))
    })
}

/// Reads `header` (the parsed JSON header) and `tail` (the bytes after it) into a view.
/// `with_numbers`: also decode numeric tensors (for validation); otherwise they stay
/// opaque in the view and are only size-checked. A JSON body without the extension is
/// `decode(body, &[], ..)`: any `binary_data_size` in it is then refused unless zero.
pub fn decode(
    mut header: Value,
    tail: &[u8],
    which: Tensors,
    with_numbers: bool,
) -> Result<(Value, Layout), Violation> {
    let key = which.key();
    let mut layout = Layout::default();
    let mut offset = 0usize;
    if let Some(list) = header.get_mut(key).and_then(Value::as_array_mut) {
        for (i, tensor) in list.iter_mut().enumerate() {
            let path = format!("{key}[{i}]");
            let Some(t) = tensor.as_object_mut() else { continue };
            let size = match t.get("parameters").and_then(|p| p.get("binary_data_size")) {
                None => continue,
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(
                        format!("{path}.parameters.binary_data_size"),
                        "must be a non-negative whole number",
                    )
                })?,
            };
            let size_path = format!("{path}.parameters.binary_data_size");
            if t.contains_key("data") {
                return Err(bad(
                    format!("{path}.data"),
                    "must be absent when binary_data_size is given",
                ));
            }
            let size = usize::try_from(size).map_err(|_| bad(size_path.as_str(), "is too large"))?;
            let end = offset.checked_add(size).filter(|e| *e <= tail.len()).ok_or_else(|| {
                bad(
                    size_path.as_str(),
                    format!(
                        "says {size} bytes, but only {} bytes of binary data remain after the header",
                        tail.len().saturating_sub(offset)
                    ),
                )
            })?;
            let raw = &tail[offset..end];
            offset = end;
            let datatype = t.get("datatype").and_then(Value::as_str).unwrap_or("").to_owned();
            let count = shape_elements(t, &path)?;
            let data_path = format!("{path}.data");
            let (data, strings) = if datatype == "BYTES" {
                let elements = byte_elements(raw, &data_path)?;
                if elements.len() as u64 != count {
                    return Err(bad(
                        data_path,
                        format!("holds {} BYTES elements but the shape needs {count}", elements.len()),
                    ));
                }
                let text: Option<Vec<Value>> = elements
                    .iter()
                    .map(|e| std::str::from_utf8(e).ok().map(|s| Value::String(s.to_owned())))
                    .collect();
                (text, true)
            } else {
                let Some(width) = element_size(&datatype) else {
                    return Err(bad(format!("{path}.datatype"), "must be a KServe v2 datatype"));
                };
                let want = count.checked_mul(width as u64);
                if want != Some(size as u64) {
                    return Err(bad(
                        size_path,
                        format!("is {size}, but the shape holds {count} {datatype} elements of {width} bytes"),
                    ));
                }
                let data = if with_numbers {
                    Some(numbers(raw, &datatype, &data_path)?)
                } else {
                    None
                };
                (data, false)
            };
            let inlined = data.is_some();
            if let Some(data) = data {
                if let Some(Value::Object(p)) = t.get_mut("parameters") {
                    p.remove("binary_data_size");
                }
                t.insert("data".to_owned(), Value::Array(data));
            }
            layout.parts.push(Part {
                tensor: i,
                // Strings are re-encoded from the view; everything else goes as it came.
                raw: if strings && inlined { Vec::new() } else { raw.to_vec() },
                strings,
                inlined,
            });
        }
    }
    if offset != tail.len() {
        return Err(bad(
            key,
            format!(
                "binary_data_size values add up to {offset} bytes, but {} bytes follow the header",
                tail.len()
            ),
        ));
    }
    Ok((header, layout))
}

/// Writes a view back as a binary body: the JSON header (with `binary_data_size` set
/// again and inlined `data` removed), then the tensors' bytes. Returns the body and
/// the header's length for [`HEADER`].
pub fn encode(view: &Value, layout: &Layout, which: Tensors) -> Result<(Vec<u8>, usize), Violation> {
    let key = which.key();
    let mut header = view.clone();
    let mut tail = Vec::new();
    for part in &layout.parts {
        let path = format!("{key}[{}]", part.tensor);
        let t = header
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .and_then(|l| l.get_mut(part.tensor))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| bad(path.as_str(), "disappeared from the body"))?;
        let start = tail.len();
        if part.strings && part.inlined {
            let data = t
                .remove("data")
                .ok_or_else(|| bad(format!("{path}.data"), "disappeared from the body"))?;
            for (j, e) in data.as_array().into_iter().flatten().enumerate() {
                let s = e
                    .as_str()
                    .ok_or_else(|| bad(format!("{path}.data[{j}]"), "must be a string"))?;
                let len = u32::try_from(s.len()).map_err(|_| bad(format!("{path}.data[{j}]"), "is too long"))?;
                tail.extend_from_slice(&len.to_le_bytes());
                tail.extend_from_slice(s.as_bytes());
            }
        } else {
            t.remove("data");
            tail.extend_from_slice(&part.raw);
        }
        let size = tail.len() - start;
        let params = t.entry("parameters").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = params {
            p.insert("binary_data_size".to_owned(), Value::from(size));
        }
    }
    let mut body = serde_json::to_vec(&header).map_err(|e| bad("$", e.to_string()))?;
    let header_len = body.len();
    body.extend_from_slice(&tail);
    Ok((body, header_len))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data is small
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes_tensor(items: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in items {
            out.extend_from_slice(&(i.len() as u32).to_le_bytes());
            out.extend_from_slice(i);
        }
        out
    }

    fn body(header: &Value, tail: &[u8]) -> (Vec<u8>, String) {
        let mut b = serde_json::to_vec(header).unwrap();
        let n = b.len();
        b.extend_from_slice(tail);
        (b, n.to_string())
    }

    fn read(header: &Value, tail: &[u8], numbers: bool) -> Result<(Value, Layout), Violation> {
        let (b, n) = body(header, tail);
        let (h, t) = split(&b, &n)?;
        decode(serde_json::from_slice(h).unwrap(), t, Tensors::Inputs, numbers)
    }

    #[test]
    fn numbers_and_strings_are_shown_and_checked_against_the_shape() {
        let mut tail = Vec::new();
        for x in [5.1f32, 3.5, 1.4, 0.2] {
            tail.extend_from_slice(&x.to_le_bytes());
        }
        let words = bytes_tensor(&[b"hello", b"mail ann@example.com"]);
        tail.extend_from_slice(&words);
        let header = json!({"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
            {"name": "t", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": words.len()}},
        ]});
        let (view, layout) = read(&header, &tail, true).unwrap();
        assert_eq!(view["inputs"][0]["data"][0].as_f64().unwrap() as f32, 5.1f32);
        assert_eq!(view["inputs"][1]["data"], json!(["hello", "mail ann@example.com"]));
        assert!(view["inputs"][1]["parameters"].get("binary_data_size").is_none());
        assert_eq!(layout.opaque(), 0);
        // Unchanged, it encodes back to the same tensor bytes.
        let (out, n) = encode(&view, &layout, Tensors::Inputs).unwrap();
        assert_eq!(&out[n..], &tail[..]);
        // Rewritten strings change only their own tensor's bytes and size.
        let mut v2 = view.clone();
        v2["inputs"][1]["data"][1] = json!("mail <EMAIL_1>");
        let (out, n) = encode(&v2, &layout, Tensors::Inputs).unwrap();
        let h: Value = serde_json::from_slice(&out[..n]).unwrap();
        let (again, _) = decode(h, &out[n..], Tensors::Inputs, true).unwrap();
        assert_eq!(again["inputs"][1]["data"][1], "mail <EMAIL_1>");
        assert_eq!(again["inputs"][0]["data"], view["inputs"][0]["data"]);
    }

    #[test]
    fn sizes_that_do_not_add_up_are_refused() {
        let f = |size: u64, shape: Value, tail: &[u8]| {
            read(
                &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "parameters": {"binary_data_size": size}}]}),
                tail,
                false,
            )
        };
        // Size disagrees with shape × 4.
        assert!(
            f(12, json!([4]), &[0; 12])
                .unwrap_err()
                .message
                .contains("shape holds 4")
        );
        // More bytes follow than the sizes claim (a smuggled tail).
        assert!(
            f(16, json!([4]), &[0; 20])
                .unwrap_err()
                .message
                .contains("20 bytes follow")
        );
        // Fewer bytes than claimed.
        assert!(f(16, json!([4]), &[0; 8]).unwrap_err().message.contains("remain"));
        // Both data and binary_data_size.
        let both = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": {"binary_data_size": 4}}]});
        assert!(read(&both, &[0; 4], false).unwrap_err().path.ends_with(".data"));
        // A JSON body claiming binary data it does not carry.
        let claim =
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]});
        assert!(decode(claim, &[], Tensors::Inputs, false).is_err());
        // A BYTES element whose length runs past the tensor.
        let mut lying = 100u32.to_le_bytes().to_vec();
        lying.extend_from_slice(b"abc");
        let t = json!({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}}]});
        assert!(read(&t, &lying, false).unwrap_err().message.contains("claims 100"));
        // NaN in a float tensor, and a BOOL byte of 2.
        let nan =
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]});
        assert!(
            read(&nan, &f32::NAN.to_le_bytes(), true)
                .unwrap_err()
                .message
                .contains("finite")
        );
        let b =
            json!({"inputs": [{"name": "b", "datatype": "BOOL", "shape": [1], "parameters": {"binary_data_size": 1}}]});
        assert!(read(&b, &[2], true).is_err());
        // Header length beyond the body, zero, or not a number.
        assert!(split(b"{}", "3").is_err());
        assert!(split(b"{}", "0").is_err());
        assert!(split(b"{}", "+2").is_err());
        assert!(split(b"{}", "-1").is_err());
    }

    #[test]
    fn non_text_bytes_stay_opaque_and_go_as_they_came() {
        let raw = bytes_tensor(&[&[0xff, 0xfe, 0x00]]);
        let header = json!({"inputs": [{"name": "img", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": raw.len()}}]});
        let (view, layout) = read(&header, &raw, true).unwrap();
        assert!(view["inputs"][0].get("data").is_none());
        assert_eq!(layout.opaque(), 1);
        assert!(layout.unreadable_text());
        let (out, n) = encode(&view, &layout, Tensors::Inputs).unwrap();
        assert_eq!(&out[n..], &raw[..]);
    }

    #[test]
    fn half_precision_decodes_exactly() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert!(f16_to_f64(0x7c00).is_infinite());
        assert!(f16_to_f64(0x7e00).is_nan());
    }
}
