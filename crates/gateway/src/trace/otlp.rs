//! The OTLP trace messages Rampart sends, encoded as protobuf by hand: only the fields
//! of `ExportTraceServiceRequest` it fills (resource, scope, spans with attributes and
//! status) and the one field of `ExportTraceServiceResponse` it reads
//! (`partial_success.rejected_spans`). Field numbers are those of
//! opentelemetry-proto's `trace/v1/trace.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto` and `collector/trace/v1/trace_service.proto`; the
//! integration test decodes these bytes with the official generated Python classes.

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// A constant (a decision, a scheme): no allocation per span.
    Static(&'static str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Strs(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpanStatus {
    Unset,
    Error(String),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// The parent came from the caller's `traceparent`.
    pub remote_parent: bool,
    /// The name is `name_prefix` followed by `name` (stage spans: `rampart.` and the
    /// stage's constant name, without a string built per span).
    pub name_prefix: &'static str,
    pub name: std::borrow::Cow<'static, str>,
    pub kind: Kind,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    pub attrs: Vec<(&'static str, Value)>,
    pub status: SpanStatus,
}

// The encoder computes every message's length before writing it, so the request is
// written once, front to back, into one buffer.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let [low, ..] = v.to_le_bytes();
        if v < 0x80 {
            buf.push(low);
            return;
        }
        buf.push(low | 0x80);
        v >>= 7;
    }
}

fn varint_len(v: u64) -> usize {
    // One byte per 7 significant bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// A length-delimited field's size: its key (fields < 16 take one byte), the length, the
/// payload.
fn delimited_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// Starts a length-delimited field whose payload is `len` bytes.
fn open(buf: &mut Vec<u8>, field: u32, len: usize) {
    key(buf, field, LEN);
    varint(buf, len as u64);
}

fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    open(buf, field, b.len());
    buf.extend_from_slice(b);
}

/// Attribute strings are cut to this many bytes (on a character boundary): a client's
/// model name or user agent cannot make a span large.
pub const MAX_STRING: usize = 256;

fn clipped(s: &str) -> &[u8] {
    let mut end = s.len().min(MAX_STRING);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => delimited_len(clipped(s).len()),
        Value::Static(s) => delimited_len(clipped(s).len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(u64::from_ne_bytes(i.to_ne_bytes())),
        Value::Double(_) => 9,
        Value::Strs(list) => delimited_len(array_len(list)),
    }
}

fn array_len(list: &[String]) -> usize {
    list.iter()
        .map(|s| delimited_len(delimited_len(clipped(s).len())))
        .sum()
}

fn any_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => bytes(buf, 1, clipped(s)),
        Value::Static(s) => bytes(buf, 1, clipped(s)),
        Value::Bool(b) => {
            key(buf, 2, VARINT);
            varint(buf, u64::from(*b));
        }
        Value::Int(i) => {
            key(buf, 3, VARINT);
            // int64: two's complement, ten bytes when negative.
            varint(buf, u64::from_ne_bytes(i.to_ne_bytes()));
        }
        Value::Double(d) => {
            key(buf, 4, FIXED64);
            buf.extend_from_slice(&d.to_le_bytes());
        }
        Value::Strs(list) => {
            open(buf, 5, array_len(list));
            for s in list {
                let s = clipped(s);
                open(buf, 1, delimited_len(s.len()));
                bytes(buf, 1, s);
            }
        }
    }
}

fn key_value_len(k: &str, v: &Value) -> usize {
    delimited_len(k.len()) + delimited_len(any_value_len(v))
}

fn key_value(buf: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    open(buf, field, key_value_len(k, v));
    bytes(buf, 1, k.as_bytes());
    open(buf, 2, any_value_len(v));
    any_value(buf, v);
}

fn status_len(message: &str) -> usize {
    delimited_len(message.len()) + 2
}

fn span_len(s: &Span) -> usize {
    let mut n = delimited_len(16) + delimited_len(8);
    if s.parent.is_some() {
        n += delimited_len(8);
    }
    n += delimited_len(s.name_prefix.len() + clipped(&s.name).len());
    n += 2 + 9 + 9; // kind, start, end
    n += s
        .attrs
        .iter()
        .map(|(k, v)| delimited_len(key_value_len(k, v)))
        .sum::<usize>();
    if let SpanStatus::Error(m) = &s.status {
        n += delimited_len(status_len(m));
    }
    n + 2 + 4 // flags: a two-byte key (field 16), fixed32
}

fn span(buf: &mut Vec<u8>, s: &Span) {
    bytes(buf, 1, &s.trace_id);
    bytes(buf, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes(buf, 4, p);
    }
    let name = clipped(&s.name);
    open(buf, 5, s.name_prefix.len() + name.len());
    buf.extend_from_slice(s.name_prefix.as_bytes());
    buf.extend_from_slice(name);
    key(buf, 6, VARINT);
    varint(buf, s.kind as u64);
    key(buf, 7, FIXED64);
    buf.extend_from_slice(&s.start.to_le_bytes());
    key(buf, 8, FIXED64);
    buf.extend_from_slice(&s.end.to_le_bytes());
    for (k, v) in &s.attrs {
        key_value(buf, 9, k, v);
    }
    if let SpanStatus::Error(message) = &s.status {
        open(buf, 15, status_len(message));
        bytes(buf, 2, message.as_bytes());
        key(buf, 3, VARINT);
        varint(buf, 2); // STATUS_CODE_ERROR
    }
    // Flags: the W3C trace flags (sampled) in bits 0–7; bit 8 says whether bit 9
    // (the parent is remote) is known.
    let flags: u32 = 0x01 | 0x100 | if s.remote_parent { 0x200 } else { 0 };
    key(buf, 16, FIXED32);
    buf.extend_from_slice(&flags.to_le_bytes());
}

/// `ExportTraceServiceRequest` with one resource and one instrumentation scope.
pub fn export_request(resource: &[(&'static str, Value)], scope_version: &str, spans: &[Span]) -> Vec<u8> {
    let resource_len: usize = resource.iter().map(|(k, v)| delimited_len(key_value_len(k, v))).sum();
    let scope_len = delimited_len(b"rampart".len()) + delimited_len(scope_version.len());
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_spans_len = delimited_len(scope_len) + span_lens.iter().map(|&n| delimited_len(n)).sum::<usize>();
    let resource_spans_len = delimited_len(resource_len) + delimited_len(scope_spans_len);
    let total = delimited_len(resource_spans_len);
    let mut out = Vec::with_capacity(total);
    open(&mut out, 1, resource_spans_len);
    open(&mut out, 1, resource_len);
    for (k, v) in resource {
        key_value(&mut out, 1, k, v);
    }
    open(&mut out, 2, scope_spans_len);
    open(&mut out, 1, scope_len);
    bytes(&mut out, 1, b"rampart");
    bytes(&mut out, 2, scope_version.as_bytes());
    for (s, &len) in spans.iter().zip(&span_lens) {
        open(&mut out, 2, len);
        span(&mut out, s);
    }
    debug_assert_eq!(out.len(), total, "the computed lengths match what was written");
    out
}

/// Reads one varint at `at`, advancing it.
fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Visits the top-level fields of a message: `(field, wire, varint value or
/// length-delimited bytes)`. `None` when the bytes are not a protobuf message.
fn fields(b: &[u8], mut visit: impl FnMut(u64, u64, &[u8])) -> Option<()> {
    let mut at = 0;
    while at < b.len() {
        let tag = read_varint(b, &mut at)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = read_varint(b, &mut at)?;
                visit(field, v, &[]);
            }
            1 => at = at.checked_add(8).filter(|&e| e <= b.len())?,
            2 => {
                let len = usize::try_from(read_varint(b, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|&e| e <= b.len())?;
                visit(field, 0, &b[at..end]);
                at = end;
            }
            5 => at = at.checked_add(4).filter(|&e| e <= b.len())?,
            _ => return None,
        }
    }
    Some(())
}

/// `ExportTraceServiceResponse.partial_success.rejected_spans`: spans the collector
/// says it dropped (0 for an empty response).
pub fn rejected_spans(response: &[u8]) -> Option<u64> {
    let mut rejected = 0;
    let mut inner_ok = Some(());
    fields(response, |field, _, body| {
        if field == 1 {
            inner_ok = fields(body, |f, v, _| {
                if f == 1 {
                    rejected = v;
                }
            });
        }
    })?;
    inner_ok.map(|()| rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints_encode_as_protobuf_does() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        let mut b = Vec::new();
        any_value(&mut b, &Value::Int(-1));
        assert_eq!(b, [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let mut b = Vec::new();
        any_value(&mut b, &Value::Str("hi".into()));
        assert_eq!(b, [0x0a, 0x02, b'h', b'i']);
        // Long strings are cut on a character boundary.
        let mut b = Vec::new();
        any_value(&mut b, &Value::Str("€".repeat(200)));
        assert_eq!(&b[..3], [0x0a, 0xff, 0x01], "85 three-byte characters");
        assert_eq!(b.len(), 3 + 255);
    }

    #[test]
    fn the_request_walks_back_into_its_fields() {
        let s = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            remote_parent: true,
            name_prefix: "",
            name: "POST chat".into(),
            kind: Kind::Server,
            start: 10,
            end: 20,
            attrs: vec![("a", Value::Int(5))],
            status: SpanStatus::Error("x".into()),
        };
        let req = export_request(
            &[("service.name", Value::Str("rampart".into()))],
            "0.1.0",
            &[s.clone(), s],
        );
        // resource_spans → scope_spans → two spans.
        let mut spans = 0;
        fields(&req, |f, _, rs| {
            assert_eq!(f, 1);
            fields(rs, |f, _, ss| {
                if f == 2 {
                    fields(ss, |f, _, _| spans += usize::from(f == 2)).unwrap();
                }
            })
            .unwrap();
        })
        .unwrap();
        assert_eq!(spans, 2);
    }

    #[test]
    fn computed_lengths_match_what_is_written() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        let values = [
            Value::Str("x".repeat(300)),
            Value::Static("allow"),
            Value::Bool(true),
            Value::Int(-5),
            Value::Int(i64::MAX),
            Value::Double(0.5),
            Value::Strs(vec!["a".into(), "€".repeat(100), String::new()]),
            Value::Strs(Vec::new()),
        ];
        let spans: Vec<Span> = (0..3)
            .map(|i| Span {
                trace_id: [9; 16],
                span_id: [i; 8],
                parent: (i > 0).then_some([1; 8]),
                remote_parent: false,
                name_prefix: if i == 1 { "rampart." } else { "" },
                name: "n".repeat(usize::from(i) * 200).into(),
                kind: Kind::Internal,
                start: u64::MAX,
                end: 0,
                attrs: values.iter().map(|v| ("k", v.clone())).collect(),
                status: if i == 2 {
                    SpanStatus::Error("e".repeat(130))
                } else {
                    SpanStatus::Unset
                },
            })
            .collect();
        // `export_request` asserts (in debug builds) that it wrote what it computed.
        let req = export_request(&[("service.name", Value::Static("rampart"))], "1", &spans);
        assert!(fields(&req, |_, _, _| {}).is_some());
    }

    #[test]
    fn partial_success_is_read_and_garbage_is_refused() {
        assert_eq!(rejected_spans(&[]), Some(0));
        assert_eq!(rejected_spans(&[0x0a, 0x02, 0x08, 0x07]), Some(7));
        assert_eq!(rejected_spans(&[0x0a, 0x05, 0x08]), None);
        assert_eq!(rejected_spans(&[0x0f]), None);
    }
}
