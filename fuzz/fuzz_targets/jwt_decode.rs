//! Any bytes as a bearer token and as a JWKS document: decoding, key-set parsing and
//! verification must refuse without panicking, and nothing unsigned may verify.
#![no_main]

use rampart_identity::jwt::{self, Alg, IssuerRules, KeySet};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let rules = IssuerRules {
        issuer: "i".into(),
        audiences: vec!["a".into()],
        algorithms: vec![Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA],
        leeway: 30,
        subject_claim: "sub".into(),
        tenant_claim: Some("t".into()),
        roles_claim: Some("r".into()),
    };
    let keys = KeySet::from_json(data).unwrap_or_default();
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(token) = jwt::decode(text)
    {
        // With no keys nothing can verify.
        assert!(jwt::verify(text, &token, &rules, &KeySet::default(), 0).is_err());
        let _ = jwt::verify(text, &token, &rules, &keys, 0);
    }
});
