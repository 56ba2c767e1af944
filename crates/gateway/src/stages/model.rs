//! Model: finds the model a request names — the `model` field of an OpenAI JSON body,
//! the `{model}` segment of a KServe `/v2/models/{model}/...` path — records it in the
//! exchange, and on non-public routes checks the principal may use it (403
//! `model_not_permitted`). It reads the body the body stage parsed — the same value
//! the upstream receives — so a body cannot name one model to the gateway and another
//! to the upstream. A `model` that is not a string is refused (400); a request that
//! names no model passes only for a caller allowed every model (the upstream would
//! pick its default).

use std::sync::Arc;

use rampart_config::Protocol;

use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::identity::IdentityRuntime;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

/// Longest model name recorded; longer names are refused as invalid.
const MAX_MODEL_LEN: usize = 256;

#[derive(Debug)]
pub struct ModelStage {
    identity: Arc<IdentityRuntime>,
}

impl ModelStage {
    pub fn new(identity: Arc<IdentityRuntime>) -> Self {
        Self { identity }
    }
}

/// What a request says about its model.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Model(String),
    /// The request names none (an OpenAI body without `model`, a non-model path).
    Nothing,
    /// The request names one in a form the gateway cannot check (`"model": 5`).
    Unreadable,
}

/// The model a request names. OpenAI: the `model` field of the body as the body stage
/// parsed it (the same value the upstream will read). KServe: the segment after
/// `/v2/models/` of the (already normalised and clean) path.
pub fn model_of(protocol: Protocol, path: &str, body: Option<&serde_json::Value>) -> Named {
    match protocol {
        Protocol::Openai => match body.and_then(|b| b.as_object()).and_then(|o| o.get("model")) {
            Some(serde_json::Value::String(m)) => Named::Model(m.clone()),
            Some(_) => Named::Unreadable,
            None => Named::Nothing,
        },
        Protocol::Kserve => {
            let Some(rest) = path.strip_prefix("/v2/models/") else {
                return Named::Nothing;
            };
            match rest.split('/').next().map(percent_decoded) {
                Some(Some(name)) if !name.is_empty() => Named::Model(name),
                _ => Named::Unreadable,
            }
        }
        _ => Named::Nothing,
    }
}

/// A path segment as the upstream will read it (`%69ris` is `iris`); `None` when it
/// decodes to something that is not a plain name (bad escapes, not UTF-8, controls).
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (!name.chars().any(char::is_control)).then_some(name)
}

impl Stage for ModelStage {
    const NAME: &'static str = "model";

    fn on_request(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        let body_unread = matches!(&req.body, RequestBody::Buffered(b) if !b.is_empty()) && ex.body_json.is_none();
        let named = if body_unread && route.config.protocol == Protocol::Openai {
            // A stage that cannot read what it must check refuses.
            Named::Unreadable
        } else {
            model_of(route.config.protocol, &ex.path, ex.body_json.as_ref())
        };
        let flow = match named {
            Named::Model(m) if m.len() > MAX_MODEL_LEN => Flow::Reject(RequestError::InvalidRequest {
                param: "model".into(),
                message: format!("must be at most {MAX_MODEL_LEN} bytes"),
            }),
            Named::Unreadable => Flow::Reject(RequestError::InvalidRequest {
                param: "model".into(),
                message: "must be a non-empty string naming the model".into(),
            }),
            Named::Model(m) => {
                let verdict = match (&ex.principal, route.config.public) {
                    (_, true) => Ok(()),
                    (Some(p), false) => self.identity.policy.model(p, &m),
                    (None, false) => Err(rampart_identity::Denied::Model),
                };
                ex.model = Some(m);
                match verdict {
                    Ok(()) => Flow::Continue,
                    Err(d) => Flow::Reject(RequestError::Forbidden(d.code())),
                }
            }
            // No model named: the upstream picks its default, which only a caller
            // allowed every model may leave to it.
            Named::Nothing => match (&ex.principal, route.config.public) {
                (Some(p), false)
                    if route.config.protocol == Protocol::Openai
                        && ex.body_json.is_some()
                        && !self.identity.policy.every_model(p) =>
                {
                    Flow::Reject(RequestError::Forbidden(rampart_identity::Denied::Model.code()))
                }
                _ => Flow::Continue,
            },
        };
        std::future::ready(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_what_the_upstream_will_read() {
        let body = serde_json::json!({"model": "m"});
        assert_eq!(
            model_of(Protocol::Openai, "/v1/chat", Some(&body)),
            Named::Model("m".into())
        );
        let odd = serde_json::json!({"model": ["m"]});
        assert_eq!(model_of(Protocol::Openai, "/v1/chat", Some(&odd)), Named::Unreadable);
        let none = serde_json::json!({"messages": []});
        assert_eq!(model_of(Protocol::Openai, "/v1/chat", Some(&none)), Named::Nothing);
        assert_eq!(
            model_of(Protocol::Kserve, "/v2/models/%69ris/infer", None),
            Named::Model("iris".into())
        );
        assert_eq!(
            model_of(Protocol::Kserve, "/v2/models/%zz/infer", None),
            Named::Unreadable
        );
        assert_eq!(
            model_of(Protocol::Kserve, "/v2/models/%00x/infer", None),
            Named::Unreadable
        );
        assert_eq!(model_of(Protocol::Kserve, "/v2/models/", None), Named::Unreadable);
        assert_eq!(model_of(Protocol::Kserve, "/v2/health/ready", None), Named::Nothing);
    }
}
