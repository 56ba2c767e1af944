//! What every admin endpoint needs: the caller checked against the actions it needs
//! (401 without a valid credential, 403 without the permission) and JSON replies.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use rampart_identity::Action;

use crate::runtime::Gateway;

pub fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// The caller, if it may perform any of `actions`; otherwise the refusal to send
/// (401 without a valid credential, 403 without the permission).
pub async fn authorize(
    gateway: &Gateway,
    headers: &http::HeaderMap,
    actions: &[Action],
) -> Result<rampart_identity::Principal, Response<Full<Bytes>>> {
    let rt = gateway.current();
    let principal = match rt.identity.authenticate(headers, None).await {
        Ok(p) => p,
        Err(e) => {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"rampart-admin\""),
            );
            return Err(r);
        }
    };
    let mut denied = None;
    for a in actions {
        match rt.identity.policy.action(&principal, *a) {
            Ok(()) => return Ok(principal),
            Err(d) => denied = Some(d),
        }
    }
    Err(json(
        StatusCode::FORBIDDEN,
        serde_json::json!({"error": {
            "code": denied.map_or("forbidden", |d| d.code()),
            "message": denied.map_or_else(|| "not permitted".to_owned(), |d| d.to_string()),
        }}),
    ))
}
