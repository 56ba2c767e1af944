//! What an OpenAI-compatible answer may reveal of the model's scores: logprobs stripped
//! or capped and rounded, embedding vectors rounded or blurred with Gaussian noise.
//! Applied to whole answers and to each streamed chunk alike (a chunk is an answer's
//! fragment with the same shape), in place, leaving every other field as it was.
//!
//! - Chat completions: `choices[].logprobs` is `null` when stripped; otherwise each
//!   token of `content` and `refusal` keeps at most `top_logprobs` alternatives (the
//!   most likely, as the API orders them), and every `logprob` is rounded.
//! - Legacy completions: `choices[].logprobs` (`tokens`, `token_logprobs`,
//!   `top_logprobs` maps) the same way.
//! - Embeddings: `data[].embedding`, a float array or base64 of little-endian f32
//!   (`encoding_format = "base64"`), rounded and/or blurred, in the form it came.
//!
//! Rounding logprobs limits the precision an extraction attack reads per query (the
//! logit-recovery attacks of Carlini et al. 2024 and Finlayson et al. 2024 solve for
//! the final layer from exact log-probabilities). Embedding noise is obfuscation, not
//! differential privacy: vectors are not clipped, so no ε is claimed.

use base64::Engine;
use serde_json::{Number, Value};

use crate::rng::Random;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmPolicy {
    /// Answers carry no logprobs at all.
    pub strip_logprobs: bool,
    /// At most this many alternatives per token.
    pub top_logprobs: Option<usize>,
    /// Logprobs and embedding values rounded to this many decimals.
    pub decimals: Option<u32>,
    /// Standard deviation of Gaussian noise added to each embedding component.
    pub embedding_noise: Option<f64>,
}

impl LlmPolicy {
    /// Whether an answer to this route needs reading at all.
    pub fn changes_anything(&self) -> bool {
        self.strip_logprobs || self.top_logprobs.is_some() || self.decimals.is_some() || self.embedding_noise.is_some()
    }
}

/// Why an answer could not be hardened (the caller refuses it rather than pass it on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("an embedding in base64 is not a whole number of f32 values")]
    Embedding,
}

fn round(x: f64, decimals: Option<u32>) -> f64 {
    match decimals {
        Some(d) => {
            let f = 10f64.powi(i32::try_from(d.min(crate::harden::MAX_DECIMALS)).unwrap_or(12));
            (x * f).round() / f
        }
        None => x,
    }
}

fn set_number(v: &mut Value, x: f64) {
    if let Some(n) = Number::from_f64(x) {
        *v = Value::Number(n);
    }
}

/// Rounds the `logprob` of one token entry (chat) in place.
fn round_entry(entry: &mut Value, decimals: Option<u32>) {
    if let Some(lp) = entry.get_mut("logprob")
        && let Some(x) = lp.as_f64()
    {
        set_number(lp, round(x, decimals));
    }
}

fn chat_logprobs(logprobs: &mut Value, policy: &LlmPolicy) {
    for key in ["content", "refusal"] {
        let Some(tokens) = logprobs.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for token in tokens {
            round_entry(token, policy.decimals);
            if let Some(top) = token.get_mut("top_logprobs").and_then(Value::as_array_mut) {
                if let Some(k) = policy.top_logprobs {
                    top.truncate(k);
                }
                for alt in top {
                    round_entry(alt, policy.decimals);
                }
            }
        }
    }
}

fn legacy_logprobs(logprobs: &mut Value, policy: &LlmPolicy) {
    if let Some(lps) = logprobs.get_mut("token_logprobs").and_then(Value::as_array_mut) {
        for lp in lps {
            if let Some(x) = lp.as_f64() {
                set_number(lp, round(x, policy.decimals));
            }
        }
    }
    if let Some(tops) = logprobs.get_mut("top_logprobs").and_then(Value::as_array_mut) {
        for top in tops {
            let Some(map) = top.as_object_mut() else { continue };
            if let Some(k) = policy.top_logprobs
                && map.len() > k
            {
                let mut ranked: Vec<(String, f64)> = map
                    .iter()
                    .map(|(t, v)| (t.clone(), v.as_f64().unwrap_or(f64::NEG_INFINITY)))
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (t, _) in ranked.into_iter().skip(k) {
                    map.remove(&t);
                }
            }
            for v in map.values_mut() {
                if let Some(x) = v.as_f64() {
                    set_number(v, round(x, policy.decimals));
                }
            }
        }
    }
}

fn blur(x: f64, policy: &LlmPolicy, rng: &mut impl Random) -> f64 {
    let noisy = match policy.embedding_noise {
        Some(sigma) => x + sigma * rng.normal(),
        None => x,
    };
    round(noisy, policy.decimals)
}

fn embedding(v: &mut Value, policy: &LlmPolicy, rng: &mut impl Random) -> Result<(), LlmError> {
    match v {
        Value::Array(items) => {
            for item in items {
                if let Some(x) = item.as_f64() {
                    set_number(item, blur(x, policy, rng));
                }
            }
            Ok(())
        }
        Value::String(text) => {
            let engine = base64::engine::general_purpose::STANDARD;
            let bytes = engine.decode(text.as_bytes()).map_err(|_| LlmError::Embedding)?;
            if bytes.len() % 4 != 0 {
                return Err(LlmError::Embedding);
            }
            let mut out = Vec::with_capacity(bytes.len());
            for chunk in bytes.chunks_exact(4) {
                let x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                // Back to f32, the format the client asked for.
                #[allow(clippy::cast_possible_truncation)]
                let y = blur(f64::from(x), policy, rng) as f32;
                out.extend_from_slice(&y.to_le_bytes());
            }
            *text = engine.encode(out);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Hardens one OpenAI answer (or streamed chunk) in place.
pub fn harden_openai(body: &mut Value, policy: &LlmPolicy, rng: &mut impl Random) -> Result<(), LlmError> {
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            let Some(logprobs) = choice.get_mut("logprobs") else {
                continue;
            };
            if logprobs.is_null() {
                continue;
            }
            if policy.strip_logprobs {
                *logprobs = Value::Null;
            } else if logprobs.get("token_logprobs").is_some() || logprobs.get("tokens").is_some() {
                legacy_logprobs(logprobs, policy);
            } else {
                chat_logprobs(logprobs, policy);
            }
        }
    }
    if (policy.decimals.is_some() || policy.embedding_noise.is_some())
        && let Some(data) = body.get_mut("data").and_then(Value::as_array_mut)
    {
        for item in data {
            if let Some(e) = item.get_mut("embedding") {
                embedding(e, policy, rng)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::KeyedStream;
    use serde_json::json;

    fn chat() -> Value {
        json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
            "logprobs": {"content": [{"token": "Hi", "logprob": -0.123456789, "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.123456789, "bytes": [72, 105]},
                                 {"token": "Hello", "logprob": -2.5, "bytes": null},
                                 {"token": "Hey", "logprob": -3.75, "bytes": null}]}], "refusal": null}}]})
    }

    fn policy() -> LlmPolicy {
        LlmPolicy {
            strip_logprobs: false,
            top_logprobs: None,
            decimals: None,
            embedding_noise: None,
        }
    }

    #[test]
    fn chat_logprobs_are_stripped_capped_and_rounded() {
        let mut rng = KeyedStream::from_seed(b"llm").unwrap();
        let mut a = chat();
        harden_openai(
            &mut a,
            &LlmPolicy {
                strip_logprobs: true,
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(a["choices"][0]["logprobs"], Value::Null);
        assert_eq!(a["choices"][0]["message"]["content"], "Hi");
        let mut b = chat();
        let p = LlmPolicy {
            top_logprobs: Some(1),
            decimals: Some(2),
            ..policy()
        };
        harden_openai(&mut b, &p, &mut rng).unwrap();
        let token = &b["choices"][0]["logprobs"]["content"][0];
        assert_eq!(token["logprob"], json!(-0.12));
        assert_eq!(token["top_logprobs"].as_array().unwrap().len(), 1);
        assert_eq!(token["top_logprobs"][0]["logprob"], json!(-0.12));
        assert_eq!(token["bytes"], json!([72, 105]), "other fields untouched");
    }

    #[test]
    fn legacy_completions_keep_the_most_likely_alternatives() {
        let mut rng = KeyedStream::from_seed(b"legacy").unwrap();
        let mut a = json!({"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": [-0.333333],
            "top_logprobs": [{"a": -0.333333, "b": -1.5, "c": -0.9}], "text_offset": [0]}}]});
        let p = LlmPolicy {
            top_logprobs: Some(2),
            decimals: Some(1),
            ..policy()
        };
        harden_openai(&mut a, &p, &mut rng).unwrap();
        assert_eq!(a["choices"][0]["logprobs"]["token_logprobs"], json!([-0.3]));
        assert_eq!(
            a["choices"][0]["logprobs"]["top_logprobs"][0],
            json!({"a": -0.3, "c": -0.9})
        );
    }

    #[test]
    fn embeddings_are_rounded_and_blurred_in_their_own_format() {
        let mut rng = KeyedStream::from_seed(b"emb").unwrap();
        let mut a = json!({"object": "list", "data": [{"embedding": [0.123456, -0.987654], "index": 0}]});
        harden_openai(
            &mut a,
            &LlmPolicy {
                decimals: Some(3),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(a["data"][0]["embedding"], json!([0.123, -0.988]));
        let floats: Vec<f32> = (0..256).map(|i| (i as f32) / 256.0).collect();
        let raw: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        let engine = base64::engine::general_purpose::STANDARD;
        let mut b = json!({"data": [{"embedding": engine.encode(&raw)}]});
        harden_openai(
            &mut b,
            &LlmPolicy {
                embedding_noise: Some(0.01),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        let back = engine.decode(b["data"][0]["embedding"].as_str().unwrap()).unwrap();
        assert_eq!(back.len(), raw.len());
        let diffs: Vec<f64> = back
            .chunks_exact(4)
            .zip(&floats)
            .map(|(c, f)| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) - f))
            .collect();
        let sd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        assert!((0.007..0.013).contains(&sd), "noise sd {sd}");
        let mut bad = json!({"data": [{"embedding": "AAA="}]});
        assert_eq!(
            harden_openai(
                &mut bad,
                &LlmPolicy {
                    decimals: Some(1),
                    ..policy()
                },
                &mut rng
            ),
            Err(LlmError::Embedding)
        );
    }
}
