//! The gateway's side of the one JSON reading (`rampart_detect::json`): maps why a
//! body is refused to the request error a client sees. The body stage parses every
//! JSON route's body exactly once with it; later stages read the parsed value.

use rampart_detect::json::{JsonError, parse_strict};

use crate::error::RequestError;

/// Parses a JSON request body strictly (duplicate keys, UTF-8, depth, grammar).
pub fn parse_body(body: &[u8], max_depth: u32) -> Result<serde_json::Value, RequestError> {
    parse_strict(body, max_depth).map_err(|e| match e {
        JsonError::TooDeep { limit } => RequestError::JsonTooDeep { limit },
        JsonError::DuplicateKey { path } => RequestError::DuplicateKey { path },
        JsonError::Utf8 => RequestError::InvalidJson {
            reason: "the body is not valid UTF-8",
        },
        JsonError::Syntax(_) => RequestError::InvalidJson {
            reason: "the body does not parse as JSON (RFC 8259)",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_request_errors() {
        assert!(matches!(
            parse_body(br#"{"model":"a","model":"b"}"#, 8),
            Err(RequestError::DuplicateKey { path }) if path == "model"
        ));
        assert!(matches!(
            parse_body(b"[[[[[[[[[[]]]]]]]]]]", 8),
            Err(RequestError::JsonTooDeep { limit: 8 })
        ));
        assert!(matches!(
            parse_body(b"{\"a\":NaN}", 8),
            Err(RequestError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_body(b"\"\xff\"", 8),
            Err(RequestError::InvalidJson { .. })
        ));
        assert!(parse_body(br#"{"a":[1,{"b":"[[[[["}]}"#, 3).is_ok());
    }
}
