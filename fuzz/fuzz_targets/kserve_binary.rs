//! The KServe binary tensor extension as the body stage reads it: never panics; what it
//! accepts holds exactly the bytes its sizes claim; and the view written back
//! (`kserve_binary::encode`) reads again as the same view, so what the upstream
//! receives after a rewrite is what every stage checked. The first two input bytes
//! pick the header length, the rest is the body.
#![no_main]
use http::{HeaderMap, HeaderValue};
use rampart_detect::kserve_binary::{self, Tensors};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [a, b, body @ ..] = data else { return };
    let header_len = usize::from(u16::from_le_bytes([*a, *b])) % (body.len() + 2);
    let mut headers = HeaderMap::new();
    headers.insert(kserve_binary::HEADER, HeaderValue::from(header_len));
    let numbers = a & 1 == 1;
    let Ok((Some(view), Some(layout))) = rampart_gateway::stages::body::kserve_body(&headers, body, 64, numbers) else {
        return;
    };
    let (again, n) = kserve_binary::encode(&view, &layout, Tensors::Inputs).expect("an accepted view encodes");
    let header: serde_json::Value = serde_json::from_slice(&again[..n]).expect("the encoded header is JSON");
    let (reread, relayout) =
        kserve_binary::decode(header, &again[n..], Tensors::Inputs, numbers).expect("the encoded body reads again");
    assert_eq!(reread, view);
    assert_eq!(relayout.opaque(), layout.opaque());
});
