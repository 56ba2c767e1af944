//! The body stage's reading of a JSON route's body given its headers: never panics,
//! and anything accepted is a strict JSON value serde_json reads the same way. The
//! input picks the Content-Type and Content-Encoding from small tables (and raw bytes
//! for the rest), then the body.
#![no_main]
use http::{HeaderMap, HeaderValue, header};

const TYPES: [&str; 8] = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/vnd.api+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
];
const CODINGS: [&str; 5] = ["identity", "gzip", "deflate, identity", "", "IDENTITY"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [t, c, rest @ ..] = data else { return };
    let mut headers = HeaderMap::new();
    match t % 10 {
        8 => {}
        9 => {
            headers.append(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        i => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TYPES[usize::from(i)]));
        }
    }
    if let Some(coding) = CODINGS.get(usize::from(*c % 6)) {
        if let Ok(v) = HeaderValue::from_str(coding) {
            headers.insert(header::CONTENT_ENCODING, v);
        }
    }
    if let Ok(Some(v)) = rampart_gateway::stages::body::json_body(&headers, rest, 64) {
        let theirs: serde_json::Value = serde_json::from_slice(rest).expect("accepted but not JSON");
        assert_eq!(v, theirs);
    }
});
