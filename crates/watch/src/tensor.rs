//! Where a response's probability rows are, read and written back in place:
//!
//! - **KServe v2** (Open Inference Protocol): each output tensor named in the policy
//!   (every FP16/BF16/FP32/FP64 output when none is named) is a row-major tensor whose last
//!   dimension is the classes: `shape [N, C]` holds N rows of C. `data` may be flat or
//!   nested; it is written back in the same form. An answer in the binary extension
//!   (`parameters.binary_data_size`) is hardened in its tail, in place, in the tensor's
//!   own type ([`harden_kserve_binary`]); FP16 and BF16 there are refused.
//! - **JSON model APIs**: a path such as `predictions[*].probabilities` (keys, `[n]`,
//!   and `[*]` for every element; a leading `$.` is allowed) selects arrays of numbers
//!   (one row each) or arrays of such arrays.
//!
//! Anything else where rows were promised — a named output missing, a shape that does
//! not match the data, a non-number — is an error, so the caller fails closed.

use serde_json::{Number, Value};

use crate::harden::RowError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("the response has no output tensors")]
    NoOutputs,
    #[error("output `{0}` is not in the response")]
    MissingOutput(String),
    #[error("output `{0}`: {1}")]
    Malformed(String, &'static str),
    #[error("output `{0}` is in the binary extension, which is not inspected")]
    Binary(String),
    #[error("nothing in the response at `{0}`")]
    MissingPath(String),
    #[error("`{0}`: {1}")]
    Row(String, RowError),
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
    Each,
}

/// A path into a JSON document: keys, `[n]` and `[*]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a JSON path (keys, [n] and [*], e.g. `predictions[*].scores`): {0}")]
pub struct PathError(&'static str);

impl JsonPath {
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let body = text
            .strip_prefix("$.")
            .or_else(|| text.strip_prefix('$'))
            .unwrap_or(text);
        let mut segs = Vec::new();
        for part in body.split('.') {
            let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_owned()));
            } else if rest.is_empty() {
                return Err(PathError("an empty key"));
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let close = inner.find(']').ok_or(PathError("a `[` without `]`"))?;
                let index = &inner[..close];
                segs.push(if index == "*" {
                    Seg::Each
                } else {
                    Seg::Index(
                        index
                            .parse()
                            .map_err(|_| PathError("an index that is not a number or *"))?,
                    )
                });
                rest = &inner[close + 1..];
            }
            if !rest.is_empty() {
                return Err(PathError("text after `]`"));
            }
        }
        if segs.is_empty() {
            return Err(PathError("an empty path"));
        }
        Ok(Self {
            text: text.to_owned(),
            segs,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn select<'a>(&self, v: &'a mut Value) -> Vec<&'a mut Value> {
        let mut at = vec![v];
        for seg in &self.segs {
            let mut next = Vec::new();
            for node in at {
                match (seg, node) {
                    (Seg::Key(k), Value::Object(map)) => next.extend(map.get_mut(k)),
                    (Seg::Index(i), Value::Array(items)) => next.extend(items.get_mut(*i)),
                    (Seg::Each, Value::Array(items)) => next.extend(items.iter_mut()),
                    _ => {}
                }
            }
            at = next;
        }
        at
    }
}

/// The numbers of a (possibly nested) array in row-major order.
fn numbers<'a>(v: &'a mut Value, out: &mut Vec<&'a mut Value>) -> Result<(), &'static str> {
    match v {
        Value::Number(_) => {
            out.push(v);
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| numbers(i, out)),
        _ => Err("a value that is not a number"),
    }
}

/// Runs `f` on each row of `cells` (rows of `width`) and writes back the values it
/// changed (a pass that changes nothing, such as counting rows, leaves the document
/// as it was).
fn each_row(
    cells: &mut [&mut Value],
    width: usize,
    what: &str,
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    let mut row = Vec::with_capacity(width);
    let mut rows = 0;
    for chunk in cells.chunks_mut(width.max(1)) {
        row.clear();
        row.extend(chunk.iter().map(|c| c.as_f64().unwrap_or(f64::NAN)));
        f(&mut row).map_err(|e| TensorError::Row(what.to_owned(), e))?;
        for (cell, v) in chunk.iter_mut().zip(&row) {
            if cell.as_f64() != Some(*v) {
                **cell = Number::from_f64(*v).map_or(Value::Null, Value::Number);
            }
        }
        rows += 1;
    }
    Ok(rows)
}

/// Hardens the rows of a KServe v2 inference response's output tensors (`names`; every
/// floating-point output when empty). Returns the rows changed.
pub fn harden_kserve(
    body: &mut Value,
    names: &[String],
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    harden_kserve_with(body, None, names, f)
}

/// [`harden_kserve`] for an answer in the binary tensor extension: `body` is its JSON
/// header, `tail` the bytes after it. Outputs whose data is in the tail
/// (`parameters.binary_data_size`, in the header's order) are hardened there in place —
/// little-endian FP32 or FP64, written back in the same type, so every size and offset
/// stays as it was; outputs in the header are hardened as in JSON answers.
pub fn harden_kserve_binary(
    body: &mut Value,
    tail: &mut [u8],
    names: &[String],
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    harden_kserve_with(body, Some(tail), names, f)
}

/// A tensor's last dimension (its row width), when its shape has one above zero.
fn last_dim(tensor: &Value) -> Option<usize> {
    tensor
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|d| d.last())
        .and_then(Value::as_u64)
        .and_then(|w| usize::try_from(w).ok())
        .filter(|w| *w > 0)
}

/// Rows of `width` little-endian floats of `size` bytes each, in place.
fn each_binary_row(
    bytes: &mut [u8],
    size: usize,
    width: usize,
    what: &str,
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    let mut row = Vec::with_capacity(width);
    let mut rows = 0;
    for chunk in bytes.chunks_mut(size * width.max(1)) {
        row.clear();
        for e in chunk.chunks(size) {
            row.push(match size {
                4 => f64::from(f32::from_le_bytes([e[0], e[1], e[2], e[3]])),
                _ => f64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]),
            });
        }
        let before = row.clone();
        f(&mut row).map_err(|e| TensorError::Row(what.to_owned(), e))?;
        if row != before {
            for (e, v) in chunk.chunks_mut(size).zip(&row) {
                if size == 4 {
                    // Back to the tensor's own type.
                    #[allow(clippy::cast_possible_truncation)]
                    e.copy_from_slice(&(*v as f32).to_le_bytes());
                } else {
                    e.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        rows += 1;
    }
    Ok(rows)
}

fn harden_kserve_with(
    body: &mut Value,
    mut tail: Option<&mut [u8]>,
    names: &[String],
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    let outputs = body
        .get_mut("outputs")
        .and_then(Value::as_array_mut)
        .ok_or(TensorError::NoOutputs)?;
    for name in names {
        if !outputs
            .iter()
            .any(|o| o.get("name").and_then(Value::as_str) == Some(name))
        {
            return Err(TensorError::MissingOutput(name.clone()));
        }
    }
    let mut rows = 0;
    // Where the next binary output's bytes start in the tail.
    let mut offset = 0usize;
    for output in outputs.iter_mut() {
        let name = output.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        let datatype = output.get("datatype").and_then(Value::as_str).unwrap_or("").to_owned();
        let floating = matches!(datatype.as_str(), "FP16" | "BF16" | "FP32" | "FP64");
        let chosen = if names.is_empty() {
            floating
        } else {
            names.contains(&name)
        };
        let binary = match output.pointer("/parameters/binary_data_size") {
            None => None,
            Some(v) => {
                let size = v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| TensorError::Malformed(name.clone(), "a binary_data_size that is not a size"))?;
                let start = offset;
                offset = offset
                    .checked_add(size)
                    .ok_or_else(|| TensorError::Malformed(name.clone(), "a binary_data_size past the body"))?;
                Some((start, size))
            }
        };
        if !chosen {
            continue;
        }
        if !floating {
            return Err(TensorError::Malformed(name, "not a floating-point tensor"));
        }
        if let Some((start, size)) = binary {
            let Some(bytes) = tail.as_deref_mut() else {
                return Err(TensorError::Binary(name));
            };
            let element = match datatype.as_str() {
                "FP32" => 4,
                "FP64" => 8,
                _ => {
                    return Err(TensorError::Malformed(
                        name,
                        "FP16 and BF16 in the binary extension are not hardened",
                    ));
                }
            };
            let width = last_dim(output).ok_or_else(|| TensorError::Malformed(name.clone(), "no shape"))?;
            let total = output.get("shape").and_then(Value::as_array).and_then(|d| {
                d.iter()
                    .try_fold(1usize, |a, x| a.checked_mul(usize::try_from(x.as_u64()?).ok()?))
            });
            let bytes = bytes
                .get_mut(start..start + size)
                .ok_or_else(|| TensorError::Malformed(name.clone(), "a binary_data_size past the body"))?;
            if total.and_then(|t| t.checked_mul(element)) != Some(size) {
                return Err(TensorError::Malformed(name, "the data does not match the shape"));
            }
            rows += each_binary_row(bytes, element, width, &name, f)?;
            continue;
        }
        let shape: Vec<usize> = match output.get("shape").and_then(Value::as_array) {
            Some(dims) => dims
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| TensorError::Malformed(name.clone(), "a shape that is not a list of sizes"))?,
            None => return Err(TensorError::Malformed(name, "no shape")),
        };
        let width = shape.last().copied().unwrap_or(0);
        let total = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        let data = output
            .get_mut("data")
            .ok_or_else(|| TensorError::Malformed(name.clone(), "no data"))?;
        let mut cells = Vec::new();
        numbers(data, &mut cells).map_err(|e| TensorError::Malformed(name.clone(), e))?;
        if width == 0 || total != Some(cells.len()) {
            return Err(TensorError::Malformed(name, "the data does not match the shape"));
        }
        rows += each_row(&mut cells, width, &name, f)?;
    }
    Ok(rows)
}

/// The feature rows of a KServe v2 inference request: the input tensor `name` (the
/// first input when `None`), of any numeric datatype, as rows of its last dimension.
pub fn kserve_input_rows(body: &Value, name: Option<&str>) -> Result<Vec<Vec<f64>>, TensorError> {
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or(TensorError::MissingOutput("inputs".to_owned()))?;
    let input = match name {
        Some(n) => inputs
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(n))
            .ok_or_else(|| TensorError::MissingOutput(n.to_owned()))?,
        None => inputs.first().ok_or(TensorError::NoOutputs)?,
    };
    let label = input.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
    if input.pointer("/parameters/binary_data_size").is_some() {
        return Err(TensorError::Binary(label));
    }
    let width = last_dim(input).ok_or_else(|| TensorError::Malformed(label.clone(), "no shape"))?;
    let mut flat = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) -> Result<(), &'static str> {
        match v {
            Value::Number(n) => {
                out.push(n.as_f64().unwrap_or(f64::NAN));
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|i| walk(i, out)),
            _ => Err("a value that is not a number"),
        }
    }
    walk(
        input
            .get("data")
            .ok_or_else(|| TensorError::Malformed(label.clone(), "no data"))?,
        &mut flat,
    )
    .map_err(|e| TensorError::Malformed(label.clone(), e))?;
    if flat.len() % width != 0 {
        return Err(TensorError::Malformed(label, "the data does not match the shape"));
    }
    Ok(flat.chunks(width).map(<[f64]>::to_vec).collect())
}

/// The rows at `path` (arrays of numbers), read without changing anything.
pub fn json_rows(body: &mut Value, path: &JsonPath) -> Result<Vec<Vec<f64>>, TensorError> {
    let mut rows = Vec::new();
    harden_json(body, path, &mut |row| {
        rows.push(row.to_vec());
        Ok(())
    })?;
    Ok(rows)
}

/// Hardens the rows at `path` in a JSON response. Returns the rows changed.
pub fn harden_json(
    body: &mut Value,
    path: &JsonPath,
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    let nodes = path.select(body);
    if nodes.is_empty() {
        return Err(TensorError::MissingPath(path.text.clone()));
    }
    let mut rows = 0;
    for node in nodes {
        match node {
            // An array of rows.
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_array) => {
                for item in items.iter_mut() {
                    rows += harden_json_row(item, &path.text, f)?;
                }
            }
            // One row (anything else is refused there).
            row => rows += harden_json_row(row, &path.text, f)?,
        }
    }
    Ok(rows)
}

/// One row at a JSON path: an array of numbers.
fn harden_json_row(
    item: &mut Value,
    what: &str,
    f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>,
) -> Result<usize, TensorError> {
    let Value::Array(cells) = item else {
        return Err(TensorError::Malformed(what.to_owned(), "not an array of numbers"));
    };
    let mut cells: Vec<&mut Value> = cells.iter_mut().collect();
    if !cells.iter().all(|c| c.is_number()) {
        return Err(TensorError::Malformed(what.to_owned(), "not an array of numbers"));
    }
    let width = cells.len();
    each_row(&mut cells, width, what, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::{Policy, harden_row};
    use crate::rng::KeyedStream;
    use serde_json::json;

    fn label_only() -> impl FnMut(&mut [f64]) -> Result<(), RowError> {
        let mut rng = KeyedStream::from_seed(b"t").unwrap();
        let p = Policy {
            label_only: true,
            ..Policy::passthrough()
        };
        move |row| harden_row(row, &p, &mut rng)
    }

    #[test]
    fn kserve_rows_flat_and_nested_other_outputs_untouched() {
        let mut body = json!({"model_name": "iris", "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [2, 3], "data": [0.1, 0.7, 0.2, 0.5, 0.3, 0.2]},
            {"name": "nested", "datatype": "FP64", "shape": [1, 2], "data": [[0.4, 0.6]]},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]}
        ]});
        assert_eq!(harden_kserve(&mut body, &[], &mut label_only()), Ok(3));
        assert_eq!(body["outputs"][0]["data"], json!([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]));
        assert_eq!(body["outputs"][1]["data"], json!([[0.0, 1.0]]));
        assert_eq!(body["outputs"][2]["data"], json!([1, 0]));
    }

    #[test]
    fn kserve_refuses_what_it_cannot_read() {
        let out = |o: Value| json!({"outputs": [o]});
        let cases = [
            (json!({"model_name": "x"}), vec![]),
            (
                out(json!({"name": "p", "datatype": "FP32", "shape": [2, 3], "data": [0.5, 0.5]})),
                vec![],
            ),
            (
                out(json!({"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [0.5, "x"]})),
                vec![],
            ),
            (
                out(json!({"name": "p", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}})),
                vec![],
            ),
            (
                out(json!({"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 0.5]})),
                vec!["q".to_owned()],
            ),
            (
                out(json!({"name": "p", "datatype": "INT64", "shape": [1, 2], "data": [0, 1]})),
                vec!["p".to_owned()],
            ),
            (
                out(json!({"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [3.0, -2.0]})),
                vec![],
            ),
        ];
        for (mut body, names) in cases {
            assert!(harden_kserve(&mut body, &names, &mut label_only()).is_err(), "{body}");
        }
    }

    #[test]
    fn json_paths_select_rows() {
        let mut body = json!({"predictions": [{"probabilities": [0.2, 0.8]}, {"probabilities": [0.9, 0.1]}]});
        let path = JsonPath::parse("$.predictions[*].probabilities").unwrap();
        assert_eq!(harden_json(&mut body, &path, &mut label_only()), Ok(2));
        assert_eq!(
            body,
            json!({"predictions": [{"probabilities": [0.0, 1.0]}, {"probabilities": [1.0, 0.0]}]})
        );
        let mut body = json!({"scores": [[0.3, 0.7], [0.6, 0.4]]});
        assert_eq!(
            harden_json(&mut body, &JsonPath::parse("scores").unwrap(), &mut label_only()),
            Ok(2)
        );
        assert_eq!(body["scores"], json!([[0.0, 1.0], [1.0, 0.0]]));
        let mut body = json!({"scores": [[0.3, 0.7]]});
        assert_eq!(
            harden_json(&mut body, &JsonPath::parse("scores[0]").unwrap(), &mut label_only()),
            Ok(1)
        );
        assert!(harden_json(&mut body, &JsonPath::parse("missing").unwrap(), &mut label_only()).is_err());
        for bad in ["", "a..b", "a[", "a[x]", "a[0]b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binary_outputs_are_hardened_in_place_in_their_own_type() {
        let mut head = serde_json::json!({"outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 10}},
            {"name": "p", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
            {"name": "q", "datatype": "FP64", "shape": [1, 2], "parameters": {"binary_data_size": 16}}]});
        let mut tail = vec![6, 0, 0, 0];
        tail.extend_from_slice(b"setosa");
        for v in [0.25f32, 0.75, 0.5, 0.5] {
            tail.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0.9f64, 0.1] {
            tail.extend_from_slice(&v.to_le_bytes());
        }
        let before = tail.clone();
        let rows = harden_kserve_binary(&mut head, &mut tail, &[], &mut |r| {
            r.reverse();
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(tail.len(), before.len());
        assert_eq!(tail[..10], before[..10], "BYTES untouched");
        let f32s: Vec<f32> = tail[10..26]
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(f32s, [0.75, 0.25, 0.5, 0.5]);
        let f64s: Vec<f64> = tail[26..]
            .chunks(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(f64s, [0.1, 0.9]);
        let mut half = serde_json::json!({"outputs": [{"name": "h", "datatype": "FP16", "shape": [1, 2], "parameters": {"binary_data_size": 4}}]});
        assert!(harden_kserve_binary(&mut half, &mut [0u8; 4], &[], &mut |_| Ok(())).is_err());
        // BF16 probabilities are probabilities too: hardened in JSON, refused in binary,
        // never passed on as they came.
        let mut bf16 =
            serde_json::json!({"outputs": [{"name": "b", "datatype": "BF16", "shape": [1, 2], "data": [0.25, 0.75]}]});
        assert_eq!(
            harden_kserve(&mut bf16, &[], &mut |r| {
                r.reverse();
                Ok(())
            })
            .unwrap(),
            1
        );
        assert_eq!(bf16["outputs"][0]["data"], serde_json::json!([0.75, 0.25]));
        let mut bf16 = serde_json::json!({"outputs": [{"name": "b", "datatype": "BF16", "shape": [1, 2], "parameters": {"binary_data_size": 4}}]});
        assert!(harden_kserve_binary(&mut bf16, &mut [0u8; 4], &[], &mut |_| Ok(())).is_err());
        let mut short = serde_json::json!({"outputs": [{"name": "p", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 8}}]});
        assert!(harden_kserve_binary(&mut short, &mut [0u8; 8], &[], &mut |_| Ok(())).is_err());
        let mut past = serde_json::json!({"outputs": [{"name": "p", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]});
        assert!(harden_kserve_binary(&mut past, &mut [0u8; 4], &[], &mut |_| Ok(())).is_err());
    }
}
