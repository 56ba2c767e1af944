//! Protocol-aware validation of request bodies: OpenAI chat completions, completions
//! and embeddings (message shapes, roles, counts, and a policy on `n`, token caps,
//! `logit_bias`, `logprobs` and `tools`), and KServe / Open Inference Protocol v2
//! inference requests (names, shapes, datatypes, data length equal to the product of
//! the shape, finite numbers in range, per-input ranges). A violation names the JSON
//! path of the problem (`messages[2].role`) and says what is expected.

use serde_json::Value;

/// What an OpenAI-compatible route accepts beyond the protocol's own rules.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiRules {
    pub max_messages: usize,
    pub max_n: u64,
    /// Cap on `max_tokens` / `max_completion_tokens`; `None` = no cap.
    pub max_tokens: Option<u64>,
    pub allow_logit_bias: bool,
    pub allow_logprobs: bool,
    /// `logit_bias` and logprobs in one request: together they let a caller read the
    /// model's logits token by token and recover its final layer (Carlini et al.,
    /// "Stealing Part of a Production Language Model", 2024). Refused by default.
    pub allow_logit_bias_with_logprobs: bool,
    /// Largest `top_logprobs` (the protocol allows 20).
    pub max_top_logprobs: u64,
    pub allow_tools: bool,
    /// Largest number of inputs in one embeddings request.
    pub max_inputs: usize,
}

impl Default for OpenAiRules {
    fn default() -> Self {
        Self {
            max_messages: 1024,
            max_n: 16,
            max_tokens: None,
            allow_logit_bias: true,
            allow_logprobs: true,
            allow_logit_bias_with_logprobs: false,
            max_top_logprobs: 20,
            allow_tools: true,
            max_inputs: 2048,
        }
    }
}

/// Limits for one KServe input, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRule {
    pub name: String,
    pub datatype: Option<String>,
    /// Expected shape; `-1` matches any size in that dimension.
    pub shape: Option<Vec<i64>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KserveRules {
    pub inputs: Vec<InputRule>,
    /// Refuse inputs that no rule names (when `inputs` is not empty).
    pub only_listed: bool,
    /// Largest element count of one input.
    pub max_elements: Option<u64>,
}

/// A JSON Schema (draft 2020-12 and earlier drafts, by `$schema`) for routes of any
/// JSON API. Remote `$ref`s are not fetched: a schema must be self-contained.
#[derive(Clone)]
pub struct JsonSchema {
    source: Value,
    validator: std::sync::Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl JsonSchema {
    /// Compiles a schema; the error says why it is not a valid schema.
    pub fn new(source: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&source).map_err(|e| e.to_string())?;
        Ok(Self {
            source,
            validator: std::sync::Arc::new(validator),
        })
    }

    /// The first violation, with its JSON path in dotted form (`items[2].name`).
    pub fn validate(&self, body: &Value) -> Result<(), Violation> {
        match self.validator.iter_errors(body).next() {
            None => Ok(()),
            Some(e) => Err(bad(dotted(&e.instance_path().to_string()), e.to_string())),
        }
    }
}

/// `/items/2/name` → `items[2].name`; the empty pointer is `$`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() { "$".to_owned() } else { out }
}

/// Why a body does not follow its protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Violation {
    /// JSON path, e.g. `messages[2].content`; `$` for the whole body.
    pub path: String,
    pub message: String,
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, Violation> {
    v.as_object()
        .ok_or_else(|| bad(path, format!("must be an object, not {}", type_name(v))))
}

fn opt_number(o: &serde_json::Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<(), Violation> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(()),
            _ => Err(bad(key, format!("must be between {lo} and {hi}"))),
        },
        Some(other) => Err(bad(key, format!("must be a number, not {}", type_name(other)))),
    }
}

fn opt_count(o: &serde_json::Map<String, Value>, key: &str, lo: u64, hi: Option<u64>) -> Result<(), Violation> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_u64() {
            Some(x) if x >= lo && hi.is_none_or(|h| x <= h) => Ok(()),
            Some(_) | None if v.is_number() => Err(bad(
                key,
                match hi {
                    Some(h) => format!("must be a whole number from {lo} to {h}"),
                    None => format!("must be a whole number of at least {lo}"),
                },
            )),
            _ => Err(bad(key, format!("must be a whole number, not {}", type_name(v)))),
        },
    }
}

fn opt_bool(o: &serde_json::Map<String, Value>, key: &str) -> Result<(), Violation> {
    match o.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(bad(key, format!("must be a boolean, not {}", type_name(other)))),
    }
}

fn model_field(o: &serde_json::Map<String, Value>) -> Result<(), Violation> {
    match o.get("model") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::String(_)) => Err(bad("model", "must not be empty")),
        Some(other) => Err(bad("model", format!("must be a string, not {}", type_name(other)))),
        None => Err(bad("model", "is required")),
    }
}

/// Sampling and output parameters shared by chat and completions.
fn generation_params(o: &serde_json::Map<String, Value>, rules: &OpenAiRules) -> Result<(), Violation> {
    model_field(o)?;
    // Every field that multiplies the upstream's work is bounded: `n`, and the
    // server-side candidates of `best_of` and vLLM's beam search.
    opt_count(o, "n", 1, Some(rules.max_n))?;
    opt_count(o, "best_of", 1, Some(rules.max_n))?;
    opt_count(o, "num_beams", 1, Some(rules.max_n))?;
    opt_count(o, "beam_width", 1, Some(rules.max_n))?;
    opt_count(o, "max_tokens", 1, rules.max_tokens)?;
    opt_count(o, "max_completion_tokens", 1, rules.max_tokens)?;
    opt_number(o, "temperature", 0.0, 2.0)?;
    opt_number(o, "top_p", 0.0, 1.0)?;
    opt_number(o, "presence_penalty", -2.0, 2.0)?;
    opt_number(o, "frequency_penalty", -2.0, 2.0)?;
    opt_bool(o, "stream")?;
    if let Some(bias) = o.get("logit_bias").filter(|v| !v.is_null()) {
        if !rules.allow_logit_bias {
            return Err(bad("logit_bias", "is not allowed on this route"));
        }
        let map = object(bias, "logit_bias")?;
        for (token, weight) in map {
            let path = format!("logit_bias.{token}");
            if token.parse::<u32>().is_err() {
                return Err(bad(path, "keys must be token ids"));
            }
            match weight.as_f64() {
                Some(w) if (-100.0..=100.0).contains(&w) => {}
                _ => return Err(bad(path, "must be a number between -100 and 100")),
            }
        }
    }
    // Judged by value, not by JSON type: `1.0`, `1e0` and `true` all ask for logprobs.
    let asks = |key: &str| -> Result<bool, Violation> {
        match o.get(key) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_f64().is_none_or(|x| x != 0.0)),
            None | Some(Value::Null) => Ok(false),
            Some(other) => Err(bad(
                key,
                format!("must be a boolean or a number, not {}", type_name(other)),
            )),
        }
    };
    if !rules.allow_logprobs {
        for key in ["logprobs", "top_logprobs", "prompt_logprobs"] {
            if asks(key)? {
                return Err(bad(key, "is not allowed on this route"));
            }
        }
    }
    let wants_logprobs = asks("logprobs")? || asks("top_logprobs")? || asks("prompt_logprobs")?;
    opt_count(o, "top_logprobs", 0, Some(rules.max_top_logprobs.min(20)))?;
    if wants_logprobs
        && !rules.allow_logit_bias_with_logprobs
        && o.get("logit_bias")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    {
        return Err(bad(
            "logit_bias",
            "cannot be combined with logprobs on this route: together they let a caller read out the model's logits",
        ));
    }
    if let Some(tools) = o.get("tools").filter(|v| !v.is_null()) {
        if !rules.allow_tools {
            return Err(bad("tools", "is not allowed on this route"));
        }
        let list = tools
            .as_array()
            .ok_or_else(|| bad("tools", format!("must be an array, not {}", type_name(tools))))?;
        for (i, t) in list.iter().enumerate() {
            let path = format!("tools[{i}]");
            let t = object(t, &path)?;
            let name = t
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{path}.function.name"), "is required"))?;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(bad(
                    format!("{path}.function.name"),
                    "must be 1 to 64 letters, digits, `_` or `-`",
                ));
            }
            if let Some(p) = t.get("function").and_then(|f| f.get("parameters"))
                && !p.is_object()
            {
                return Err(bad(
                    format!("{path}.function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        }
    }
    Ok(())
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

fn message(m: &Value, i: usize) -> Result<(), Violation> {
    let path = format!("messages[{i}]");
    let o = object(m, &path)?;
    let role = match o.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(Value::String(_)) => {
            return Err(bad(
                format!("{path}.role"),
                format!("must be one of {}", ROLES.join(", ")),
            ));
        }
        Some(other) => {
            return Err(bad(
                format!("{path}.role"),
                format!("must be a string, not {}", type_name(other)),
            ));
        }
        None => return Err(bad(format!("{path}.role"), "is required")),
    };
    match o.get("content") {
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let pp = format!("{path}.content[{j}]");
                let part = object(p, &pp)?;
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if !part.get("text").is_some_and(Value::is_string) {
                            return Err(bad(format!("{pp}.text"), "must be a string"));
                        }
                    }
                    Some("image_url" | "input_audio" | "file" | "refusal") => {}
                    Some(other) => {
                        return Err(bad(
                            format!("{pp}.type"),
                            format!("unknown content part type `{other}`"),
                        ));
                    }
                    None => return Err(bad(format!("{pp}.type"), "is required")),
                }
            }
        }
        None | Some(Value::Null) if role == "assistant" && o.get("tool_calls").is_some() => {}
        None => return Err(bad(format!("{path}.content"), "is required")),
        Some(other) => {
            return Err(bad(
                format!("{path}.content"),
                format!(
                    "must be a string or an array of content parts, not {}",
                    type_name(other)
                ),
            ));
        }
    }
    if role == "tool" && !o.get("tool_call_id").is_some_and(Value::is_string) {
        return Err(bad(format!("{path}.tool_call_id"), "is required on tool messages"));
    }
    Ok(())
}

/// Validates an OpenAI request body for the endpoint at `path` (other endpoints pass).
pub fn openai(path: &str, body: &Value, rules: &OpenAiRules) -> Result<(), Violation> {
    let endpoint = path.trim_end_matches('/');
    if endpoint.ends_with("/chat/completions") {
        let o = object(body, "$")?;
        generation_params(o, rules)?;
        let messages = match o.get("messages") {
            Some(Value::Array(m)) => m,
            Some(other) => return Err(bad("messages", format!("must be an array, not {}", type_name(other)))),
            None => return Err(bad("messages", "is required")),
        };
        if messages.is_empty() {
            return Err(bad("messages", "must hold at least one message"));
        }
        if messages.len() > rules.max_messages {
            return Err(bad(
                "messages",
                format!(
                    "holds {} messages; this route allows {}",
                    messages.len(),
                    rules.max_messages
                ),
            ));
        }
        for (i, m) in messages.iter().enumerate() {
            message(m, i)?;
        }
        Ok(())
    } else if endpoint.ends_with("/completions") {
        let o = object(body, "$")?;
        generation_params(o, rules)?;
        match o.get("prompt") {
            Some(Value::String(_)) => Ok(()),
            Some(Value::Array(items)) if items.len() <= rules.max_inputs => Ok(()),
            Some(Value::Array(items)) => Err(bad(
                "prompt",
                format!("holds {} prompts; this route allows {}", items.len(), rules.max_inputs),
            )),
            Some(other) => Err(bad(
                "prompt",
                format!("must be a string or an array, not {}", type_name(other)),
            )),
            None => Err(bad("prompt", "is required")),
        }
    } else if endpoint.ends_with("/embeddings") {
        let o = object(body, "$")?;
        model_field(o)?;
        opt_count(o, "dimensions", 1, None)?;
        if let Some(f) = o.get("encoding_format")
            && !matches!(f.as_str(), Some("float" | "base64"))
        {
            return Err(bad("encoding_format", "must be `float` or `base64`"));
        }
        match o.get("input") {
            Some(Value::String(s)) if !s.is_empty() => Ok(()),
            Some(Value::String(_)) => Err(bad("input", "must not be empty")),
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    return Err(bad("input", "must hold at least one input"));
                }
                if items.len() > rules.max_inputs {
                    return Err(bad(
                        "input",
                        format!("holds {} inputs; this route allows {}", items.len(), rules.max_inputs),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    let ok = match item {
                        Value::String(s) => !s.is_empty(),
                        Value::Number(n) => n.as_u64().is_some(),
                        Value::Array(tokens) => !tokens.is_empty() && tokens.iter().all(|t| t.as_u64().is_some()),
                        _ => false,
                    };
                    if !ok {
                        return Err(bad(
                            format!("input[{i}]"),
                            "must be a non-empty string or an array of token ids",
                        ));
                    }
                }
                Ok(())
            }
            Some(other) => Err(bad(
                "input",
                format!("must be a string or an array, not {}", type_name(other)),
            )),
            None => Err(bad("input", "is required")),
        }
    } else {
        Ok(())
    }
}

const DATATYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
];

/// Range of an integer datatype.
fn int_range(dt: &str) -> Option<(f64, f64)> {
    Some(match dt {
        "UINT8" => (0.0, 255.0),
        "UINT16" => (0.0, 65_535.0),
        "UINT32" => (0.0, 4_294_967_295.0),
        "UINT64" => (0.0, 18_446_744_073_709_551_615.0),
        "INT8" => (-128.0, 127.0),
        "INT16" => (-32_768.0, 32_767.0),
        "INT32" => (-2_147_483_648.0, 2_147_483_647.0),
        "INT64" => (-9_223_372_036_854_775_808.0, 9_223_372_036_854_775_807.0),
        _ => return None,
    })
}

/// Flattens (possibly nested) tensor data, checking each element against the datatype.
fn elements(
    data: &Value,
    dt: &str,
    path: &str,
    rule: Option<&InputRule>,
    count: &mut u64,
    limit: u64,
) -> Result<(), Violation> {
    match data {
        Value::Array(items) => {
            for item in items {
                elements(item, dt, path, rule, count, limit)?;
            }
            Ok(())
        }
        v => {
            *count += 1;
            if *count > limit {
                return Err(bad(path, format!("holds more than {limit} elements")));
            }
            let at = format!("{path}[{}]", *count - 1);
            match dt {
                "BOOL" => {
                    if !v.is_boolean() {
                        return Err(bad(at, format!("must be a boolean for BOOL, not {}", type_name(v))));
                    }
                }
                "BYTES" => {
                    if !v.is_string() {
                        return Err(bad(at, format!("must be a string for BYTES, not {}", type_name(v))));
                    }
                }
                _ => {
                    let Some(x) = v.as_f64() else {
                        return Err(bad(at, format!("must be a number for {dt}, not {}", type_name(v))));
                    };
                    if !x.is_finite() {
                        return Err(bad(at, "must be a finite number"));
                    }
                    if let Some((lo, hi)) = int_range(dt)
                        && (x.fract() != 0.0 || x < lo || x > hi)
                    {
                        return Err(bad(at, format!("must be a whole number in the {dt} range")));
                    }
                    if let Some(r) = rule
                        && (r.min.is_some_and(|m| x < m) || r.max.is_some_and(|m| x > m))
                    {
                        return Err(bad(
                            at,
                            format!(
                                "is outside the range allowed for input `{}` ({} to {})",
                                r.name,
                                r.min.map_or("-inf".to_owned(), |m| m.to_string()),
                                r.max.map_or("inf".to_owned(), |m| m.to_string())
                            ),
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Whether a KServe v2 path is an inference endpoint (`…/infer`).
pub fn is_kserve_infer(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/infer")
}

/// Validates a KServe v2 inference request (`POST …/infer`; other paths pass).
pub fn kserve(path: &str, body: &Value, rules: &KserveRules) -> Result<(), Violation> {
    if !is_kserve_infer(path) {
        return Ok(());
    }
    let o = object(body, "$")?;
    let inputs = match o.get("inputs") {
        Some(Value::Array(i)) if !i.is_empty() => i,
        Some(Value::Array(_)) => return Err(bad("inputs", "must hold at least one input")),
        Some(other) => return Err(bad("inputs", format!("must be an array, not {}", type_name(other)))),
        None => return Err(bad("inputs", "is required")),
    };
    for (i, input) in inputs.iter().enumerate() {
        let path = format!("inputs[{i}]");
        let inp = object(input, &path)?;
        let name = inp
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(format!("{path}.name"), "is required and must be a non-empty string"))?;
        let rule = rules.inputs.iter().find(|r| r.name == name);
        if rule.is_none() && rules.only_listed && !rules.inputs.is_empty() {
            return Err(bad(
                format!("{path}.name"),
                format!("input `{name}` is not accepted by this model"),
            ));
        }
        let dt = inp
            .get("datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{path}.datatype"), "is required"))?;
        if !DATATYPES.contains(&dt) {
            return Err(bad(
                format!("{path}.datatype"),
                format!("must be one of {}", DATATYPES.join(", ")),
            ));
        }
        if let Some(want) = rule.and_then(|r| r.datatype.as_deref())
            && want != dt
        {
            return Err(bad(
                format!("{path}.datatype"),
                format!("must be {want} for input `{name}`"),
            ));
        }
        let shape: Vec<u64> = match inp.get("shape") {
            Some(Value::Array(dims)) => dims.iter().map(Value::as_u64).collect::<Option<_>>().ok_or_else(|| {
                bad(
                    format!("{path}.shape"),
                    "must be an array of non-negative whole numbers",
                )
            })?,
            _ => return Err(bad(format!("{path}.shape"), "is required and must be an array")),
        };
        if let Some(want) = rule.and_then(|r| r.shape.as_ref()) {
            let fits = want.len() == shape.len()
                && want
                    .iter()
                    .zip(&shape)
                    .all(|(w, s)| *w < 0 || u64::try_from(*w).is_ok_and(|w| w == *s));
            if !fits {
                return Err(bad(
                    format!("{path}.shape"),
                    format!("must match {want:?} for input `{name}` (-1: any size)"),
                ));
            }
        }
        let expected = shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| bad(format!("{path}.shape"), "is too large"))?;
        let limit = rules.max_elements.unwrap_or(u64::MAX);
        if expected > limit {
            return Err(bad(
                format!("{path}.shape"),
                format!("describes {expected} elements; this route allows {limit}"),
            ));
        }
        // A binary tensor the body stage could not show as JSON (BYTES that are not
        // UTF-8; `kserve_binary`) keeps its `binary_data_size`: its byte count was
        // checked against this shape when the body was read.
        if !inp.contains_key("data") && inp.get("parameters").and_then(|p| p.get("binary_data_size")).is_some() {
            continue;
        }
        let data = inp
            .get("data")
            .ok_or_else(|| bad(format!("{path}.data"), "is required"))?;
        let mut count = 0;
        elements(
            data,
            dt,
            &format!("{path}.data"),
            rule,
            &mut count,
            expected.max(1).min(limit),
        )
        .map_err(|v| {
            if v.message.starts_with("holds more than") {
                bad(
                    format!("{path}.data"),
                    format!("holds more elements than the shape's {expected}"),
                )
            } else {
                v
            }
        })?;
        if count != expected {
            return Err(bad(
                format!("{path}.data"),
                format!("holds {count} elements but the shape {shape:?} needs {expected}"),
            ));
        }
    }
    if let Some(outputs) = o.get("outputs").filter(|v| !v.is_null()) {
        let list = outputs
            .as_array()
            .ok_or_else(|| bad("outputs", format!("must be an array, not {}", type_name(outputs))))?;
        for (i, out) in list.iter().enumerate() {
            if !out.get("name").is_some_and(Value::is_string) {
                return Err(bad(format!("outputs[{i}].name"), "is required"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(body: Value) -> Result<(), Violation> {
        openai("/v1/chat/completions", &body, &OpenAiRules::default())
    }

    #[test]
    fn openai_chat() {
        let ok = json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ], "n": 2, "temperature": 0.2, "logit_bias": {"50256": -100}});
        assert_eq!(chat(ok), Ok(()));
        // logit_bias with logprobs: the logit-extraction combination, refused unless
        // allowed; each alone passes; top_logprobs is capped.
        let msgs = json!([{"role": "user", "content": "a"}]);
        for asks in [
            json!({"logprobs": true}),
            json!({"top_logprobs": 5}),
            json!({"logprobs": 1, "top_logprobs": 0}),
        ] {
            let mut body = json!({"model": "m", "messages": msgs, "logit_bias": {"1": 100}});
            body.as_object_mut().unwrap().extend(asks.as_object().unwrap().clone());
            assert_eq!(chat(body.clone()).unwrap_err().path, "logit_bias", "{body}");
            let open = OpenAiRules {
                allow_logit_bias_with_logprobs: true,
                ..OpenAiRules::default()
            };
            assert_eq!(openai("/v1/chat/completions", &body, &open), Ok(()));
        }
        assert_eq!(
            chat(json!({"model": "m", "messages": msgs, "logit_bias": {"1": 100}, "logprobs": false})),
            Ok(())
        );
        assert_eq!(
            chat(json!({"model": "m", "messages": msgs, "logprobs": true, "top_logprobs": 20})),
            Ok(())
        );
        let capped = OpenAiRules {
            max_top_logprobs: 3,
            ..OpenAiRules::default()
        };
        let body = json!({"model": "m", "messages": msgs, "logprobs": true, "top_logprobs": 4});
        assert_eq!(
            openai("/v1/chat/completions", &body, &capped).unwrap_err().path,
            "top_logprobs"
        );
        let path = |b: Value| chat(b).unwrap_err().path;
        assert_eq!(path(json!({"messages": []})), "model");
        assert_eq!(path(json!({"model": "m"})), "messages");
        assert_eq!(path(json!({"model": "m", "messages": []})), "messages");
        assert_eq!(
            path(
                json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}]})
            ),
            "messages[1].role"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": 5}]})),
            "messages[0].content"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]})),
            "messages[0].content[0].text"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})),
            "messages[0].tool_call_id"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "n": 0})),
            "n"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "n": 99})),
            "n"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "temperature": 3})),
            "temperature"
        );
        assert_eq!(
            path(json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "logit_bias": {"x": 1}})),
            "logit_bias.x"
        );
        assert_eq!(
            path(
                json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function", "function": {"name": "bad name!"}}]})
            ),
            "tools[0].function.name"
        );
    }

    #[test]
    fn openai_policy() {
        let strict = OpenAiRules {
            allow_logit_bias: false,
            allow_logprobs: false,
            allow_tools: false,
            max_tokens: Some(100),
            ..OpenAiRules::default()
        };
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "a"}]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            openai("/v1/chat/completions", &b, &strict).map_err(|e| e.path)
        };
        assert_eq!(with("logit_bias", json!({"1": 5})), Err("logit_bias".into()));
        assert_eq!(with("logprobs", json!(true)), Err("logprobs".into()));
        assert_eq!(with("logprobs", json!(false)), Ok(()));
        assert_eq!(with("top_logprobs", json!(5)), Err("top_logprobs".into()));
        assert_eq!(with("tools", json!([])), Err("tools".into()));
        assert_eq!(with("max_tokens", json!(101)), Err("max_tokens".into()));
        assert_eq!(with("max_tokens", json!(100)), Ok(()));
        // By value, not JSON type; every alias of the same exposure.
        assert_eq!(with("logprobs", json!(1.0)), Err("logprobs".into()));
        assert_eq!(with("logprobs", json!(1e0)), Err("logprobs".into()));
        assert_eq!(with("logprobs", json!(0.0)), Ok(()));
        assert_eq!(with("logprobs", json!("true")), Err("logprobs".into()));
        assert_eq!(with("top_logprobs", json!(0.5)), Err("top_logprobs".into()));
        assert_eq!(with("prompt_logprobs", json!(1)), Err("prompt_logprobs".into()));
        // Cost multipliers follow max_n (default 1 candidate more than n allows is refused).
        let n = strict.max_n;
        assert_eq!(with("best_of", json!(n + 1)), Err("best_of".into()));
        assert_eq!(with("best_of", json!(n)), Ok(()));
        assert_eq!(with("n", json!(1.0)), Err("n".into()));
        assert_eq!(with("num_beams", json!(n + 1)), Err("num_beams".into()));
    }

    #[test]
    fn openai_embeddings_and_completions() {
        let r = OpenAiRules::default();
        assert!(openai("/v1/embeddings", &json!({"model": "e", "input": ["a", "b"]}), &r).is_ok());
        assert!(openai("/v1/embeddings", &json!({"model": "e", "input": [[1, 2], [3]]}), &r).is_ok());
        assert_eq!(
            openai("/v1/embeddings", &json!({"model": "e", "input": ["a", ""]}), &r)
                .unwrap_err()
                .path,
            "input[1]"
        );
        assert_eq!(
            openai(
                "/v1/embeddings",
                &json!({"model": "e", "input": "x", "encoding_format": "hex"}),
                &r
            )
            .unwrap_err()
            .path,
            "encoding_format"
        );
        assert!(openai("/v1/completions", &json!({"model": "m", "prompt": "x"}), &r).is_ok());
        assert_eq!(
            openai("/v1/completions", &json!({"model": "m"}), &r).unwrap_err().path,
            "prompt"
        );
        assert!(openai("/v1/models", &json!(null), &r).is_ok());
    }

    #[test]
    fn json_schema_names_the_path() {
        let schema = JsonSchema::new(json!({
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "maxLength": 5}}}}},
            "additionalProperties": false
        }))
        .unwrap();
        assert_eq!(schema.validate(&json!({"items": [{"name": "ok"}]})), Ok(()));
        let e = schema
            .validate(&json!({"items": [{"name": "ok"}, {"name": "too long"}]}))
            .unwrap_err();
        assert_eq!(e.path, "items[1].name");
        assert_eq!(schema.validate(&json!({"other": 1})).unwrap_err().path, "$");
        assert!(JsonSchema::new(json!({"type": "no-such-type"})).is_err());
    }

    #[test]
    fn kserve_inference() {
        let rules = KserveRules {
            inputs: vec![InputRule {
                name: "input-0".into(),
                datatype: Some("FP32".into()),
                shape: Some(vec![-1, 4]),
                min: Some(0.0),
                max: Some(10.0),
            }],
            only_listed: true,
            max_elements: Some(4096),
        };
        let infer = "/v2/models/iris/infer";
        let ok = json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}]});
        assert_eq!(kserve(infer, &ok, &rules), Ok(()));
        let err = |b: Value| kserve(infer, &b, &rules).unwrap_err();
        let e = err(json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}));
        assert_eq!(e.path, "inputs[0].data");
        assert!(e.message.contains("3 elements") && e.message.contains("needs 8"), "{e}");
        let e =
            err(json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 11]}]}));
        assert_eq!(e.path, "inputs[0].data[3]");
        let e =
            err(json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "x", 1]}]}));
        assert_eq!(e.path, "inputs[0].data[2]");
        assert_eq!(
            err(json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})).path,
            "inputs[0].shape"
        );
        assert_eq!(
            err(json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP33", "data": [1, 2, 3, 4]}]}))
                .path,
            "inputs[0].datatype"
        );
        assert_eq!(
            err(json!({"inputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [1]}]})).path,
            "inputs[0].name"
        );
        assert_eq!(err(json!({"inputs": []})).path, "inputs");
        assert_eq!(err(json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]})).path, "inputs[0].data");
        // Integer ranges and shapes too large to multiply.
        let open = KserveRules::default();
        assert_eq!(
            kserve(
                infer,
                &json!({"inputs": [{"name": "a", "shape": [1], "datatype": "UINT8", "data": [256]}]}),
                &open
            )
            .unwrap_err()
            .path,
            "inputs[0].data[0]"
        );
        assert_eq!(
            kserve(infer, &json!({"inputs": [{"name": "a", "shape": [4294967296u64, 4294967296u64, 4294967296u64], "datatype": "BOOL", "data": []}]}), &open)
                .unwrap_err()
                .path,
            "inputs[0].shape"
        );
        assert!(kserve("/v2/health/ready", &json!(null), &open).is_ok());
    }
}
