//! What an OpenAI-compatible answer may reveal of the model's scores: logprobs stripped
//! or capped and rounded, embedding vectors rounded or blurred with Gaussian noise.
//! Applied to whole answers and to each streamed chunk alike (a chunk is an answer's
//! fragment with the same shape), in place, leaving every other field as it was.
//!
//! - Logprobs wherever they stand — chat completions (`choices[].logprobs`), the
//!   Responses API (`output[].content[].logprobs`, and streamed deltas), legacy
//!   completions (`token_logprobs`, `top_logprobs` maps), vLLM's `prompt_logprobs` —
//!   are found by key, not by one API's layout: stripped (`null`, or `[]` where the API
//!   types an array), or each set of alternatives cut to the `top_logprobs` most likely
//!   and every score rounded.
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

/// Keys whose values carry a model's log-probabilities, wherever they stand: chat
/// completions and the Responses API (`logprobs`: token entries, streamed deltas too),
/// legacy completions (`logprobs` with `token_logprobs` and `top_logprobs` maps), and
/// vLLM's `prompt_logprobs`.
const LOGPROB_KEYS: [&str; 2] = ["logprobs", "prompt_logprobs"];

/// Fields of a token entry that are not scores.
const NOT_SCORES: [&str; 6] = ["token", "bytes", "rank", "decoded_token", "text_offset", "tokens"];

/// A value's log-probability: a number, or an entry's `logprob`.
fn score_of(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.get("logprob")?.as_f64())
}

/// Finds every logprobs value in `v` and strips it, or caps and rounds it.
fn walk(v: &mut Value, policy: &LlmPolicy) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if !LOGPROB_KEYS.contains(&key.as_str()) {
                    walk(child, policy);
                } else if policy.strip_logprobs {
                    // An array stays an array (the Responses API types it so).
                    *child = if child.is_array() {
                        Value::Array(Vec::new())
                    } else {
                        Value::Null
                    };
                } else {
                    scores(child, policy);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, policy)),
        _ => {}
    }
}

/// Inside a logprobs value: every score rounded; every set of alternatives — a
/// `top_logprobs` list of entries, or a map from token to score or entry — cut to the
/// `top_logprobs` most likely.
fn scores(v: &mut Value, policy: &LlmPolicy) {
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                set_number(v, round(x, policy.decimals));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scores(i, policy)),
        Value::Object(map) => {
            let entry = map.contains_key("logprob");
            if !entry
                && let Some(k) = policy.top_logprobs
                && map.len() > k
                && map.values().all(|x| score_of(x).is_some())
            {
                // A map of alternatives (token → score, or token id → entry).
                let mut ranked: Vec<(String, f64)> = map
                    .iter()
                    .map(|(t, x)| (t.clone(), score_of(x).unwrap_or(f64::NEG_INFINITY)))
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (t, _) in ranked.into_iter().skip(k) {
                    map.remove(&t);
                }
            }
            for (key, child) in map.iter_mut() {
                // In an entry, only scores are scores; in a map of alternatives every
                // key is a token, whatever it spells.
                if entry && NOT_SCORES.contains(&key.as_str()) {
                    continue;
                }
                if entry
                    && key == "top_logprobs"
                    && let (Value::Array(alts), Some(k)) = (&mut *child, policy.top_logprobs)
                {
                    // A token's alternatives (a list of entries): the most likely first.
                    alts.sort_by(|a, b| {
                        let (a, b) = (score_of(a), score_of(b));
                        b.unwrap_or(f64::NEG_INFINITY)
                            .total_cmp(&a.unwrap_or(f64::NEG_INFINITY))
                    });
                    alts.truncate(k);
                }
                scores(child, policy);
            }
        }
        _ => {}
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
    if policy.strip_logprobs || policy.top_logprobs.is_some() || policy.decimals.is_some() {
        walk(body, policy);
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
    fn every_api_shape_is_found_by_key_and_sequences_are_never_cut() {
        let mut rng = KeyedStream::from_seed(b"shapes").unwrap();
        let entry = |t: &str, lp: f64| {
            json!({"token": t, "logprob": lp, "bytes": [1],
            "top_logprobs": [{"token": "z", "logprob": lp - 2.123456}, {"token": t, "logprob": lp}, {"token": "y", "logprob": lp - 1.0}]})
        };
        // A chat answer of three tokens: all three stay, each with one alternative,
        // the most likely one even when the list came unordered.
        let mut chat = json!({"choices": [{"logprobs": {"content": [entry("a", -0.111111), entry("b", -0.222222), entry("c", -0.333333)]}}]});
        let p = LlmPolicy {
            top_logprobs: Some(1),
            decimals: Some(2),
            ..policy()
        };
        harden_openai(&mut chat, &p, &mut rng).unwrap();
        let content = chat["choices"][0]["logprobs"]["content"].as_array().unwrap();
        assert_eq!(content.len(), 3, "the token sequence is not a set of alternatives");
        assert_eq!(content[1]["top_logprobs"], json!([{"token": "b", "logprob": -0.22}]));
        // The Responses API, whole and as a streamed delta.
        let mut resp = json!({"object": "response", "top_logprobs": 3, "output": [{"type": "message", "content": [
            {"type": "output_text", "text": "a", "logprobs": [entry("a", -0.123456)]}]}]});
        harden_openai(&mut resp, &p, &mut rng).unwrap();
        let lp = &resp["output"][0]["content"][0]["logprobs"][0];
        assert_eq!(
            (lp["logprob"].clone(), lp["top_logprobs"].as_array().unwrap().len()),
            (json!(-0.12), 1)
        );
        assert_eq!(resp["top_logprobs"], json!(3), "a request echo is not a score");
        let mut delta = json!({"type": "response.output_text.delta", "delta": "a", "logprobs": [entry("a", -0.5)]});
        harden_openai(
            &mut delta,
            &LlmPolicy {
                strip_logprobs: true,
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(delta["logprobs"], json!([]), "stripped, still an array");
        // vLLM's prompt_logprobs: maps from token id to entry, capped and rounded; and
        // stripped like the rest.
        let vllm = json!({"choices": [{"text": "x", "logprobs": null}], "prompt_logprobs": [null,
            {"11": {"logprob": -0.987654, "rank": 1, "decoded_token": "a"}, "12": {"logprob": -3.5, "rank": 2, "decoded_token": "b"}}]});
        let mut capped = vllm.clone();
        harden_openai(&mut capped, &p, &mut rng).unwrap();
        assert_eq!(
            capped["prompt_logprobs"][1],
            json!({"11": {"logprob": -0.99, "rank": 1, "decoded_token": "a"}})
        );
        let mut stripped = vllm;
        harden_openai(
            &mut stripped,
            &LlmPolicy {
                strip_logprobs: true,
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(stripped["prompt_logprobs"], json!([]));
        // A legacy map whose token spells a field name is still a score.
        let mut legacy = json!({"choices": [{"logprobs": {"tokens": ["bytes"], "token_logprobs": [-0.444444],
            "top_logprobs": [{"bytes": -0.444444, "token": -1.555555}]}}]});
        harden_openai(
            &mut legacy,
            &LlmPolicy {
                decimals: Some(1),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            legacy["choices"][0]["logprobs"]["top_logprobs"][0],
            json!({"bytes": -0.4, "token": -1.6})
        );
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
