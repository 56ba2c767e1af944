//! The right to erasure (GDPR Art. 17) for the admin API and the console: destroys the
//! subject's payload key (crypto-shredding), clears their review previews, and records
//! the erasure — the subject's pseudonym, never the id — with who asked.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::runtime::Gateway;
use crate::server::guard::json;

/// `POST /admin/audit/erase`: crypto-shreds a data subject's payload key and records
/// the erasure (the subject's pseudonym, never the id) in the audit trail.
pub async fn erase(gateway: &Gateway, body: Option<Bytes>, via: &'static str, actor: &str) -> Response<Full<Bytes>> {
    let bad = |code: &str, message: &str| {
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
    };
    let Some(audit) = gateway.audit.as_ref() else {
        return bad("audit_disabled", "the audit trail is not enabled");
    };
    let Some(keys) = audit.keys.clone() else {
        return bad(
            "no_payload_keys",
            "audit.master_key is not set: no payloads are captured",
        );
    };
    let subject = body
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("subject").and_then(|s| s.as_str()).map(str::to_owned))
        .filter(|s| !s.is_empty());
    let Some(subject) = subject else {
        return bad("invalid_request", "send {\"subject\": \"<id>\"} (at most 16 KiB)");
    };
    let pseudonym = audit.pseudonym(&subject);
    let p = pseudonym.clone();
    let trail = Arc::clone(audit);
    // Records queued before the erasure are sealed first, with the key about to go:
    // otherwise they would be sealed afterwards under a fresh key and stay readable.
    let erased = tokio::task::spawn_blocking(move || {
        trail.flush(Duration::from_secs(10));
        keys.erase(&p)
    });
    match erased.await {
        Ok(Ok(existed)) => {
            // Review previews of the subject go too (their sealed payloads died with
            // the key).
            let previews = gateway.oversight.forget_subject(&pseudonym).await;
            audit.oversight(
                "subject_erased",
                via,
                true,
                actor,
                &format!("subject:{pseudonym}"),
                Some(format!(
                    "subject pseudonym {pseudonym}: payload key {}; review previews cleared: {}",
                    if existed {
                        "destroyed"
                    } else {
                        "absent (nothing captured)"
                    },
                    previews
                        .as_ref()
                        .map_or_else(|e| format!("failed ({e})"), u64::to_string)
                )),
            );
            json(
                StatusCode::OK,
                serde_json::json!({"status": "erased", "pseudonym": pseudonym, "key_existed": existed,
                    "review_previews_cleared": previews.ok()}),
            )
        }
        _ => {
            audit.oversight(
                "subject_erased",
                via,
                false,
                actor,
                &format!("subject:{pseudonym}"),
                None,
            );
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": {"code": "erase_failed", "message": "the subject key could not be destroyed"}}),
            )
        }
    }
}
