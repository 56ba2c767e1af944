//! A single-pass JSON nesting-depth check. It does not build a value: it only tracks
//! strings and brackets, so its cost is one branch per byte and it uses no memory.
//! Full schema validation belongs to later stages; this one protects every parser
//! after it from stack-exhausting documents.

use crate::error::RequestError;

/// Fails when `body` nests objects/arrays deeper than `max_depth`, or when its
/// brackets do not balance.
pub fn check_depth(body: &[u8], max_depth: u32) -> Result<(), RequestError> {
    let mut depth: u32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(RequestError::JsonTooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or(RequestError::InvalidJson {
                    reason: "unbalanced brackets",
                })?;
            }
            _ => {}
        }
    }
    if in_string {
        return Err(RequestError::InvalidJson {
            reason: "unterminated string",
        });
    }
    if depth != 0 {
        return Err(RequestError::InvalidJson {
            reason: "unbalanced brackets",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_depth_outside_strings_only() {
        assert!(check_depth(br#"{"a":[1,{"b":"[[[[[["}]}"#, 3).is_ok());
        assert!(matches!(
            check_depth(br#"{"a":[1,{"b":[]}]}"#, 3),
            Err(RequestError::JsonTooDeep { limit: 3 })
        ));
        assert!(check_depth(br#"{"a":"\"{{{{"}"#, 1).is_ok());
    }

    #[test]
    fn rejects_unbalanced() {
        assert!(check_depth(b"{]]", 10).is_err());
        assert!(check_depth(b"{\"a", 10).is_err());
        assert!(check_depth(b"[[", 10).is_err());
    }

    #[test]
    fn deep_document_is_cheap_and_refused() {
        let doc = "[".repeat(1_000_000);
        assert!(matches!(
            check_depth(doc.as_bytes(), 64),
            Err(RequestError::JsonTooDeep { .. })
        ));
    }
}
