//! Model: finds the model a request names — the `model` field of an OpenAI JSON body,
//! the `{model}` segment of a KServe `/v2/models/{model}/...` path — records it in the
//! exchange, and on non-public routes checks the principal may use it (403
//! `model_not_permitted`). A request that names no model passes to the upstream, which
//! answers for itself.

use std::sync::Arc;

use rampart_config::Protocol;

use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::identity::IdentityRuntime;
use crate::runtime::RouteRuntime;
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

#[derive(serde::Deserialize)]
struct ModelField<'a> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
}

/// The model a request names, if any.
pub fn model_of(protocol: Protocol, path: &str, body: &RequestBody) -> Option<String> {
    match protocol {
        Protocol::Openai => match body {
            RequestBody::Buffered(bytes) if !bytes.is_empty() => serde_json::from_slice::<ModelField<'_>>(bytes)
                .ok()
                .and_then(|m| m.model)
                .map(|m| m.into_owned()),
            _ => None,
        },
        Protocol::Kserve => {
            let rest = path.strip_prefix("/v2/models/")?;
            let name = rest.split('/').next()?;
            (!name.is_empty()).then(|| name.to_owned())
        }
        _ => None,
    }
}

impl Stage for ModelStage {
    const NAME: &'static str = "model";

    fn on_request(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        req: &mut RequestParts,
    ) -> impl Future<Output = Flow> + Send {
        let model = model_of(route.config.protocol, &ex.path, &req.body);
        let flow = match model {
            Some(m) if m.len() > MAX_MODEL_LEN => Flow::Reject(RequestError::InvalidJson {
                reason: "model name too long",
            }),
            Some(m) => {
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
            None => Flow::Continue,
        };
        std::future::ready(flow)
    }
}
