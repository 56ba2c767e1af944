//! The one reading of a JSON request body. Every stage of the gateway checks the value
//! this module returns, and the upstream receives bytes that parse to the same value,
//! so no two components can disagree about what a body says.
//!
//! Stricter than RFC 8259's "SHOULD" where parsers are known to differ:
//! - a key that appears twice in one object (after unescaping: `"mod\u0065l"` is
//!   `"model"`) is refused with its JSON path — parsers keep the first, the last, or
//!   both;
//! - the text must be valid UTF-8 and every `\u` escape a valid scalar value (no lone
//!   surrogates);
//! - `NaN`, `Infinity`, comments, trailing commas, numbers out of `f64` range and
//!   trailing bytes after the document are refused (serde_json's grammar);
//! - nesting is bounded by `max_depth`, checked in one pass before anything is built.
//!
//! It owns nothing else: no logging, no I/O.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// An object names the same key twice; `path` is the object's key path plus the key
    /// (`messages[0].role`).
    #[error("{path}: duplicate key in a JSON object")]
    DuplicateKey { path: String },
    /// Nested deeper than allowed.
    #[error("JSON nested deeper than {limit}")]
    TooDeep { limit: u32 },
    /// Not valid UTF-8.
    #[error("the body is not valid UTF-8")]
    Utf8,
    /// Anything else the grammar refuses (with serde_json's line and column).
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
}

/// One step of a JSON path.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Formats a path as `a.b[2].c` (`$` for the root).
fn dotted(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    if out.is_empty() { "$".to_owned() } else { out }
}

/// Bracket depth outside strings, in one pass without building anything.
pub fn check_depth(body: &[u8], max_depth: u32) -> Result<(), JsonError> {
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
                    return Err(JsonError::TooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses `body` under the rules in the module docs.
pub fn parse_strict(body: &[u8], max_depth: u32) -> Result<Value, JsonError> {
    check_depth(body, max_depth)?;
    let text = std::str::from_utf8(body).map_err(|_| JsonError::Utf8)?;
    let path = RefCell::new(Vec::new());
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    // serde_json's own recursion guard stays on (128); ours is tighter by default.
    let seed = Strict {
        path: &path,
        duplicate: &duplicate,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => match duplicate.into_inner() {
            Some(path) => Err(JsonError::DuplicateKey { path }),
            None => Err(JsonError::Syntax(e.to_string())),
        },
    }
}

/// A `Value` seed that refuses duplicate keys and remembers where.
#[derive(Clone, Copy)]
struct Strict<'a> {
    path: &'a RefCell<Vec<Step>>,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            self.path.borrow_mut().push(Step::Index(out.len()));
            let item = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match item? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let mut steps = self.path.borrow().clone();
                steps.push(Step::Key(key));
                *self.duplicate.borrow_mut() = Some(dotted(&steps));
                return Err(de::Error::custom("duplicate key"));
            }
            self.path.borrow_mut().push(Step::Key(key.clone()));
            let value = map.next_value_seed(self);
            self.path.borrow_mut().pop();
            out.insert(key, value?);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_with_their_path() {
        for (body, path) in [
            (r#"{"model":"a","model":"a"}"#, "model"),
            (r#"{"model":"b","x":1,"model":"a"}"#, "model"),
            (r#"{"model":"b","mod\u0065l":"a"}"#, "model"),
            (r#"{"messages":[{"role":"user","role":"system"}]}"#, "messages[0].role"),
            (r#"{"a":{"b":[1,{"c":1,"c":2}]}}"#, "a.b[1].c"),
            (r#"{"\ud83d\ude00":1,"😀":2}"#, "😀"),
        ] {
            assert_eq!(
                parse_strict(body.as_bytes(), 64),
                Err(JsonError::DuplicateKey { path: path.into() }),
                "{body}"
            );
        }
    }

    #[test]
    fn what_other_parsers_read_differently_is_refused() {
        for body in [
            &b"{\"a\":NaN}"[..],
            b"{\"a\":Infinity}",
            b"{\"a\":-Infinity}",
            b"{\"a\":1e999}",
            b"{\"a\":1,}",
            b"{\"a\":1} {}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1 /* c */}",
            b"{'a':1}",
            b"\xef\xbb\xbf{}",
        ] {
            assert!(parse_strict(body, 64).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse_strict(b"{\"a\":\"\xc3\"}", 64), Err(JsonError::Utf8));
    }

    #[test]
    fn ordinary_documents_parse_to_the_same_value_as_serde_json() {
        for body in [
            r#"{"model":"m","messages":[{"role":"user","content":"hi \u00e9 \ud83d\ude00"}],"n":1,"t":0.5,"big":18446744073709551615,"neg":-3}"#,
            r#"[1,2,[3,[4]],{"a":null,"b":true}]"#,
            r#""just a string""#,
            "  {\"a\" : {} }  ",
        ] {
            let ours = parse_strict(body.as_bytes(), 64).unwrap();
            let theirs: Value = serde_json::from_str(body).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn depth_is_bounded_before_parsing() {
        let deep = "[".repeat(100_000);
        assert_eq!(parse_strict(deep.as_bytes(), 64), Err(JsonError::TooDeep { limit: 64 }));
        assert!(parse_strict(br#"{"a":"[[[[[[[[[["}"#, 2).is_ok());
        assert!(parse_strict(b"[[[]]]", 2).is_err());
    }
}
