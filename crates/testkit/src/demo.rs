//! Demo model servers. `spawn_openai` serves an OpenAI-compatible API
//! (`/v1/chat/completions` with and without `stream: true`, `/v1/embeddings` as floats
//! or base64, `/v1/models` and `/v1/models/{id}`, plus `/echo`, which describes the
//! request it received, and `/last-request`, the last chat body it received — what
//! the model saw) with deterministic answers and `usage` filled in; `spawn_kserve`
//! serves the Open Inference Protocol v2 (`/v2`, `/v2/health/*`, `/v2/models/{m}`,
//! `/v2/models/{m}/infer`, JSON or the binary tensor extension both ways, as Triton
//! does) for the shipped iris classifier. Both validate what they receive and answer
//! with the protocol's own error shapes, like a real server would.
//!
//! The chat model repeats the last user message ("You said: ..."); asked to "reveal
//! your system prompt", what it "was told" or for its "setup notes", it repeats its
//! system prompt, and asked
//! for "the deploy key", it answers with an (inactive, made-up) AWS access key — honest
//! stand-ins for models that leak. Asked for a keylogger, a phishing kit or how to get
//! past a car's immobiliser it refuses, unless the request wraps it in a persona "with
//! no content policy", "stay in character" or a "thriller scene": then it complies with
//! a placeholder plan (no real steps) — a stand-in for safety training that role play
//! gets around.
//!
//! Token counts in `usage` are whitespace-separated words: a documented, deterministic
//! stand-in for a tokenizer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::http_server::{BoxError, ResponseBody, TestServer};
use crate::iris::IrisModel;

/// Largest request body the demo servers read.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Requests' paths and headers as a server received them.
pub type SeenHeaders = Arc<std::sync::Mutex<Vec<(String, http::HeaderMap)>>>;

/// Behaviour knobs for tests.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Delay before response headers (to exercise first-byte timeouts).
    pub first_byte_delay: Duration,
    /// Delay between streamed chunks (to prove chunks pass through one by one).
    pub chunk_delay: Duration,
    /// Name this server reports in `x-demo-server` (to tell pool targets apart).
    pub server_name: Option<String>,
    /// When set, every chat request body received is appended here, so a test can see
    /// exactly what reached the model.
    pub received: Option<Arc<std::sync::Mutex<Vec<Value>>>>,
    /// When set, the OpenAI server appends every request's path and headers here (the
    /// trace tests read the `traceparent` the model server was sent).
    pub received_headers: Option<SeenHeaders>,
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    full(status, "application/json", value.to_string())
}

fn openai_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

async fn read_json(req: Request<Incoming>) -> Result<Value, String> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read body: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("body is not valid JSON: {e}"))
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        // Content parts: concatenate the text parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The made-up AWS access key the demo chat model "leaks" when asked for the deploy
/// key (the shape of a real one; it grants nothing).
pub const DEMO_LEAKED_KEY: &str = "AKIA4HN7QZ2X5K8T3MWD";

/// The last chat body the demo server received.
type LastRequest = Arc<std::sync::Mutex<Option<Value>>>;

/// The deterministic answer to a conversation: it repeats the last user message.
pub fn demo_reply(last_user: &str) -> String {
    if last_user.trim().is_empty() {
        "Hello from the Rampart demo model.".to_owned()
    } else {
        format!("You said: {}", last_user.trim())
    }
}

fn stamp(mut r: Response<ResponseBody>, name: &Option<String>) -> Response<ResponseBody> {
    if let Some(n) = name
        && let Ok(v) = http::HeaderValue::from_str(n)
    {
        r.headers_mut().insert("x-demo-server", v);
    }
    r
}

async fn chat(req: Request<Incoming>, opts: &DemoOptions, last: &LastRequest) -> Response<ResponseBody> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(log) = &opts.received {
        log.lock().unwrap_or_else(|p| p.into_inner()).push(body.clone());
    }
    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(body.clone());
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return openai_error(StatusCode::BAD_REQUEST, "'messages' is a required array");
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("rampart-demo-chat")
        .to_owned();
    let mut prompt_tokens = 0;
    let mut last_user = String::new();
    let mut system = String::new();
    for m in messages {
        let (Some(role), Some(content)) = (m.get("role").and_then(Value::as_str), m.get("content")) else {
            return openai_error(StatusCode::BAD_REQUEST, "each message needs 'role' and 'content'");
        };
        let text = message_text(content);
        prompt_tokens += words(&text);
        if role == "user" {
            last_user = text;
        } else if role == "system" || role == "developer" {
            system = text;
        }
    }
    // A model that falls for prompt extraction, as real ones do: asked for its
    // instructions, it repeats its system prompt.
    let asked = last_user.to_lowercase();
    let reply = if ["reveal your system prompt", "were you told", "setup notes"]
        .iter()
        .any(|t| asked.contains(t))
    {
        format!("My instructions are: {system}")
    } else if asked.contains("deploy key") {
        format!("The deploy key is {DEMO_LEAKED_KEY}, keep it safe.")
    } else if ["keylogger", "phishing", "immobiliser"]
        .iter()
        .any(|t| asked.contains(t))
    {
        // Safety training that role play gets around, as with real models.
        if ["no content policy", "stay in character", "thriller scene"]
            .iter()
            .any(|t| asked.contains(t))
        {
            "Sure, here is a plan in three steps. Step one: the demo model would write the first real step here. Step two: and the second. Step three: and the last. A model without this placeholder would have written working instructions.".to_owned()
        } else {
            "I'm sorry, but I can't help with that.".to_owned()
        }
    } else {
        demo_reply(&last_user)
    };
    let completion_tokens = words(&reply);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-demo-{:016x}", fnv(reply.as_bytes()));
    let created = 1_700_000_000u64;
    // Logprobs as OpenAI gives them when asked: per token, the chosen token's and the
    // `top_logprobs` most likely alternatives', at full precision.
    let wants_logprobs = body.get("logprobs").and_then(Value::as_bool) == Some(true);
    let top = body.get("top_logprobs").and_then(Value::as_u64).unwrap_or(0).min(20);
    let token_logprobs = |piece: &str| {
        let lp = -((fnv(piece.as_bytes()) % 100_000) as f64) / 77_777.0 - 1e-9;
        let alternatives: Vec<Value> = (0..top)
            .map(|k| {
                let token = if k == 0 {
                    piece.to_owned()
                } else {
                    format!("{piece}~{k}")
                };
                json!({"token": token, "logprob": lp - k as f64 * 1.234_567_891, "bytes": token.as_bytes()})
            })
            .collect();
        json!({"token": piece, "logprob": lp, "bytes": piece.as_bytes(), "top_logprobs": alternatives})
    };
    tokio::time::sleep(opts.first_byte_delay).await;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut events = Vec::new();
        let chunk = |delta: Value, finish: Value| {
            let logprobs = match delta.get("content").and_then(Value::as_str) {
                Some(piece) if wants_logprobs && !piece.is_empty() => {
                    json!({"content": [token_logprobs(piece)], "refusal": null})
                }
                _ => Value::Null,
            };
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]});
            if include_usage {
                // As OpenAI does: every chunk but the last carries `"usage": null`.
                c["usage"] = Value::Null;
            }
            c
        };
        events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        let pieces: Vec<&str> = reply.split_inclusive(' ').collect();
        for piece in pieces {
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if include_usage {
            events.push(
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [], "usage": usage}),
            );
        }
        let mut lines: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
        lines.push(Bytes::from_static(b"data: [DONE]\n\n"));
        return sse(lines, opts.chunk_delay);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                         "logprobs": if wants_logprobs {
                             json!({"content": reply.split_inclusive(' ').map(token_logprobs).collect::<Vec<_>>(), "refusal": null})
                         } else {
                             Value::Null
                         },
                         "finish_reason": "stop"}],
            "usage": usage,
        }),
    )
}

/// Streams `events` as Server-Sent Events, one frame each, `delay` apart.
pub fn sse(events: Vec<Bytes>, delay: Duration) -> Response<ResponseBody> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(e))).await.is_err() {
                return; // client went away
            }
        }
    });
    let mut r = Response::new(ChannelBody { rx }.boxed());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    r
}

/// A response body fed frame by frame from a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx)
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Deterministic 8-dimensional unit embedding from the text's words.
pub fn demo_embedding(text: &str) -> Vec<f64> {
    let mut v = [0f64; 8];
    for w in text.split_whitespace() {
        let h = fnv(w.to_lowercase().as_bytes());
        for (i, slot) in v.iter_mut().enumerate() {
            let bits = (h >> (i * 8)) & 0xff;
            *slot += (bits as f64 / 127.5) - 1.0;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

async fn embeddings(req: Request<Incoming>) -> Response<ResponseBody> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
            a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "'input' must be a string or a non-empty array of strings",
            );
        }
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("rampart-demo-embed");
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "'encoding_format' must be \"float\" or \"base64\"",
            );
        }
    };
    let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = demo_embedding(s);
            // As OpenAI does: base64 of the little-endian float32 values.
            #[allow(clippy::cast_possible_truncation)]
            let embedding = if base64 {
                use base64::Engine as _;
                let raw: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

fn model_list() -> Vec<Value> {
    ["rampart-demo-chat", "rampart-demo-embed"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "rampart-demo"}))
        .collect()
}

fn models() -> Response<ResponseBody> {
    json_response(StatusCode::OK, &json!({"object": "list", "data": model_list()}))
}

/// `GET /v1/models/{id}`: the model, or OpenAI's 404 `model_not_found`.
fn model(id: &str) -> Response<ResponseBody> {
    match model_list().into_iter().find(|m| m["id"] == id) {
        Some(m) => json_response(StatusCode::OK, &m),
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": {"message": format!("The model '{id}' does not exist"),
                    "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
        ),
    }
}

/// Describes the request as received: what a test needs to check header hygiene.
async fn echo(req: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(Value::String(v)),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::Array(vec![Value::String(v)]));
            }
        }
    }
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes().len())
        .unwrap_or(0);
    json_response(
        StatusCode::OK,
        &json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": bytes,
        }),
    )
}

/// Starts the OpenAI-compatible demo server.
pub async fn spawn_openai(addr: SocketAddr, opts: DemoOptions) -> std::io::Result<TestServer> {
    let opts = Arc::new(opts);
    let last: LastRequest = Arc::default();
    TestServer::spawn(addr, move |req: Request<Incoming>| {
        let opts = Arc::clone(&opts);
        let last = Arc::clone(&last);
        async move {
            let name = opts.server_name.clone();
            let path = req.uri().path().to_owned();
            if let Some(log) = &opts.received_headers {
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((path.clone(), req.headers().clone()));
            }
            let resp = match (req.method().clone(), path.as_str()) {
                (Method::POST, "/v1/chat/completions") => chat(req, &opts, &last).await,
                (Method::POST, "/v1/embeddings") => embeddings(req).await,
                (Method::GET, "/v1/models") => models(),
                (Method::GET, p) if p.starts_with("/v1/models/") => model(&p["/v1/models/".len()..]),
                (Method::GET, "/last-request") => {
                    let seen = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    json_response(StatusCode::OK, &seen.unwrap_or(Value::Null))
                }
                (Method::GET, "/health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
                (_, "/echo") => echo(req).await,
                (_, path) => openai_error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
            };
            stamp(resp, &name)
        }
    })
    .await
}

fn kserve_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({"error": message}))
}

fn model_metadata(model: &IrisModel) -> Value {
    json!({
        "name": model.name,
        "versions": ["1"],
        "platform": "rampart-demo-logreg",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, model.n_features()]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, model.classes.len()]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    })
}

fn flatten(v: &Value, out: &mut Vec<f64>) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| flatten(x, out)),
        Value::Number(n) => n.as_f64().map(|f| out.push(f)).is_some(),
        _ => false,
    }
}

/// Reads an inference request: JSON, or (with `Inference-Header-Content-Length`) a JSON
/// header followed by the inputs' raw bytes. Returns the header and each binary input's
/// bytes by input index.
async fn read_infer(req: Request<Incoming>) -> Result<(Value, Vec<Option<Vec<u8>>>), String> {
    let header_len = req
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<usize>().ok()))
        .map(|n| n.ok_or("Inference-Header-Content-Length must be a number of bytes"))
        .transpose()?;
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read body: {e}"))?
        .to_bytes();
    let Some(n) = header_len else {
        let v = serde_json::from_slice(&body).map_err(|e| format!("body is not valid JSON: {e}"))?;
        return Ok((v, Vec::new()));
    };
    if n > body.len() {
        return Err(format!(
            "Inference-Header-Content-Length {n} exceeds the body's {} bytes",
            body.len()
        ));
    }
    let header: Value =
        serde_json::from_slice(&body[..n]).map_err(|e| format!("inference header is not valid JSON: {e}"))?;
    let mut tail = &body[n..];
    let mut parts = Vec::new();
    for input in header.get("inputs").and_then(Value::as_array).into_iter().flatten() {
        match input.pointer("/parameters/binary_data_size").and_then(Value::as_u64) {
            Some(size) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > tail.len() {
                    return Err("binary_data_size runs past the end of the body".to_owned());
                }
                let (this, rest) = tail.split_at(size);
                parts.push(Some(this.to_vec()));
                tail = rest;
            }
            None => parts.push(None),
        }
    }
    if !tail.is_empty() {
        return Err(format!("{} bytes of binary data belong to no input", tail.len()));
    }
    Ok((header, parts))
}

async fn infer(req: Request<Incoming>, model: &IrisModel) -> Response<ResponseBody> {
    let (body, binary) = match read_infer(req).await {
        Ok(v) => v,
        Err(e) => return kserve_error(StatusCode::BAD_REQUEST, &e),
    };
    let Some(input) = body.get("inputs").and_then(Value::as_array).and_then(|a| a.first()) else {
        return kserve_error(StatusCode::BAD_REQUEST, "'inputs' must be a non-empty array");
    };
    let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
    if !matches!(datatype, "FP32" | "FP64") {
        return kserve_error(StatusCode::BAD_REQUEST, "inputs[0].datatype must be FP32 or FP64");
    }
    let shape: Vec<i64> = input
        .get("shape")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let nf = model.n_features();
    if shape.len() != 2 || shape[1] != nf as i64 || shape[0] < 1 {
        return kserve_error(
            StatusCode::BAD_REQUEST,
            &format!("inputs[0].shape must be [N, {nf}] with N >= 1"),
        );
    }
    let mut data = Vec::new();
    match binary.first().cloned().flatten() {
        Some(raw) => {
            let width = if datatype == "FP32" { 4 } else { 8 };
            if raw.len() % width != 0 {
                return kserve_error(StatusCode::BAD_REQUEST, "inputs[0] binary data is not whole elements");
            }
            for e in raw.chunks_exact(width) {
                data.push(match e.try_into() {
                    Ok(b) if width == 4 => f64::from(f32::from_le_bytes(b)),
                    _ => e.try_into().map(f64::from_le_bytes).unwrap_or(f64::NAN),
                });
            }
        }
        None => {
            if !input.get("data").is_some_and(|d| flatten(d, &mut data)) {
                return kserve_error(StatusCode::BAD_REQUEST, "inputs[0].data must be numbers");
            }
        }
    }
    let rows = usize::try_from(shape[0]).unwrap_or(0);
    if data.len() != rows * nf {
        return kserve_error(
            StatusCode::BAD_REQUEST,
            &format!("inputs[0].data has {} values, shape needs {}", data.len(), rows * nf),
        );
    }
    let mut probs = Vec::with_capacity(rows * model.classes.len());
    let mut labels = Vec::with_capacity(rows);
    for row in data.chunks(nf) {
        let p = model.predict(row);
        let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        labels.push(model.classes[best].clone());
        // FP32 output: round through f32 like a real FP32 model would.
        #[allow(clippy::cast_possible_truncation)]
        probs.extend(p.iter().map(|v| *v as f32));
    }
    // Which outputs, and which in binary: `outputs[].parameters.binary_data`, else the
    // request's `parameters.binary_data_output` (what tritonclient sends by default).
    let all_binary = body
        .pointer("/parameters/binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let wanted: Option<Vec<(String, bool)>> = body.get("outputs").and_then(Value::as_array).map(|list| {
        list.iter()
            .filter_map(|o| {
                let name = o.get("name")?.as_str()?.to_owned();
                let bin = o
                    .pointer("/parameters/binary_data")
                    .and_then(Value::as_bool)
                    .unwrap_or(all_binary);
                Some((name, bin))
            })
            .collect()
    });
    let pick = |name: &str| match &wanted {
        None => Some(all_binary),
        Some(w) => w.iter().find(|(n, _)| n == name).map(|(_, b)| *b),
    };
    let mut outputs = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    if let Some(bin) = pick("probabilities") {
        let shape = json!([rows, model.classes.len()]);
        if bin {
            let raw: Vec<u8> = probs.iter().flat_map(|p| p.to_le_bytes()).collect();
            outputs.push(json!({"name": "probabilities", "datatype": "FP32", "shape": shape,
                                "parameters": {"binary_data_size": raw.len()}}));
            tail.extend_from_slice(&raw);
        } else {
            let values: Vec<f64> = probs.iter().map(|p| f64::from(*p)).collect();
            outputs.push(json!({"name": "probabilities", "datatype": "FP32", "shape": shape, "data": values}));
        }
    }
    if let Some(bin) = pick("label") {
        if bin {
            let mut raw = Vec::new();
            for l in &labels {
                raw.extend_from_slice(&u32::try_from(l.len()).unwrap_or(0).to_le_bytes());
                raw.extend_from_slice(l.as_bytes());
            }
            outputs.push(json!({"name": "label", "datatype": "BYTES", "shape": [rows],
                                "parameters": {"binary_data_size": raw.len()}}));
            tail.extend_from_slice(&raw);
        } else {
            outputs.push(json!({"name": "label", "datatype": "BYTES", "shape": [rows], "data": labels}));
        }
    }
    if let Some(w) = &wanted
        && let Some((unknown, _)) = w.iter().find(|(n, _)| n != "probabilities" && n != "label")
    {
        return kserve_error(StatusCode::BAD_REQUEST, &format!("unknown output '{unknown}'"));
    }
    let mut out = json!({"model_name": model.name, "model_version": "1", "outputs": outputs});
    if let Some(id) = body.get("id") {
        out["id"] = id.clone();
    }
    if tail.is_empty() {
        return json_response(StatusCode::OK, &out);
    }
    let mut bytes = out.to_string().into_bytes();
    let header_len = bytes.len();
    bytes.extend_from_slice(&tail);
    let mut r = full(StatusCode::OK, "application/octet-stream", bytes);
    r.headers_mut()
        .insert("inference-header-content-length", http::HeaderValue::from(header_len));
    r
}

/// Starts the KServe v2 demo server with the iris model.
pub async fn spawn_kserve(addr: SocketAddr, opts: DemoOptions) -> std::io::Result<TestServer> {
    let model = Arc::new(IrisModel::load().map_err(std::io::Error::other)?);
    let opts = Arc::new(opts);
    TestServer::spawn(addr, move |req: Request<Incoming>| {
        let model = Arc::clone(&model);
        let opts = Arc::clone(&opts);
        async move {
            tokio::time::sleep(opts.first_byte_delay).await;
            let path = req.uri().path().to_owned();
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let resp = match (req.method().clone(), segments.as_slice()) {
                (Method::GET, ["v2", "health", "live"]) => json_response(StatusCode::OK, &json!({"live": true})),
                (Method::GET, ["v2", "health", "ready"]) => json_response(StatusCode::OK, &json!({"ready": true})),
                (Method::GET, ["v2"]) => json_response(
                    StatusCode::OK,
                    &json!({"name": "rampart-demo-kserve", "version": env!("CARGO_PKG_VERSION"),
                            "extensions": ["binary_tensor_data"]}),
                ),
                (Method::GET, ["v2", "models", m]) | (Method::GET, ["v2", "models", m, "versions", "1"])
                    if *m == model.name =>
                {
                    json_response(StatusCode::OK, &model_metadata(&model))
                }
                (Method::GET, ["v2", "models", m, "ready"]) if *m == model.name => {
                    json_response(StatusCode::OK, &json!({"name": m, "ready": true}))
                }
                (Method::POST, ["v2", "models", m, "infer"])
                | (Method::POST, ["v2", "models", m, "versions", "1", "infer"])
                    if *m == model.name =>
                {
                    infer(req, &model).await
                }
                (_, ["v2", "models", m, ..]) => {
                    kserve_error(StatusCode::NOT_FOUND, &format!("model '{m}' is not served here"))
                }
                _ => kserve_error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
            };
            stamp(resp, &opts.server_name)
        }
    })
    .await
}
