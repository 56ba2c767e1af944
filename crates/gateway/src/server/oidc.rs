//! Console sign-in with an OpenID Connect provider: the authorization-code flow with
//! PKCE (RFC 7636, `S256`), a `state` bound to the browser by a cookie, and a `nonce`
//! bound to the ID token.
//!
//! The ID token is then checked exactly like any bearer token — by the `[[identity.jwt]]`
//! entry that trusts the issuer (signature through its JWKS, `iss`, `aud` = the client
//! id, `exp`) — and its roles claim gives the console role. It becomes the session's
//! credential, so the session ends when the token expires. The provider's endpoints come
//! from its discovery document; bodies read from it are bounded, and every call has a
//! timeout.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_config::ConsoleOidc;
use serde_json::Value;

/// Each call to the provider, at most.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or token response read.
const MAX_BODY: usize = 64 * 1024;

type OidcClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client(cfg: &ConsoleOidc) -> Result<OidcClient, String> {
    let connector = crate::server::tls::fetch_connector("admin.console.oidc.ca", cfg.ca.clone(), TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn call(client: &OidcClient, req: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, Value), String> {
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "the provider did not answer in time".to_owned())?
        .map_err(|e| format!("cannot reach the provider: {e}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(TIMEOUT, Limited::new(resp.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| "the provider's answer did not arrive in time".to_owned())?
        .map_err(|e| format!("the provider's answer could not be read: {e}"))?
        .to_bytes();
    let v = serde_json::from_slice(&body).map_err(|_| format!("the provider answered HTTP {status} without JSON"))?;
    Ok((status, v))
}

/// The provider's authorization and token endpoints, from its discovery document.
async fn discover(client: &OidcClient, cfg: &ConsoleOidc) -> Result<(String, String), String> {
    let url = format!("{}/.well-known/openid-configuration", cfg.issuer);
    let req = http::Request::get(&url)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let (status, v) = call(client, req).await?;
    if !status.is_success() {
        return Err(format!("discovery answered HTTP {status}"));
    }
    if v["issuer"].as_str().map(|i| i.trim_end_matches('/')) != Some(cfg.issuer.as_str()) {
        return Err("the discovery document names another issuer".into());
    }
    let get = |k: &str| {
        v[k].as_str()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_owned)
            .ok_or_else(|| format!("the discovery document has no {k}"))
    };
    Ok((get("authorization_endpoint")?, get("token_endpoint")?))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The URL to send the browser to (the provider's sign-in), for this state, PKCE
/// verifier and nonce.
pub async fn authorize_url(cfg: &ConsoleOidc, state: &str, verifier: &str, nonce: &str) -> Result<String, String> {
    let client = client(cfg)?;
    let (authorize, _) = discover(&client, cfg).await?;
    let challenge = b64url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let enc = rampart_console::form::encode;
    let sep = if authorize.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{authorize}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={challenge}&code_challenge_method=S256",
        enc(&cfg.client_id),
        enc(&cfg.redirect_url.to_string()),
        enc(&cfg.scopes.join(" ")),
        enc(state),
        enc(nonce),
    ))
}

/// Exchanges the code for tokens; returns the ID token after checking its nonce (the
/// signature and claims are checked by the identity runtime when it becomes the
/// session's credential).
pub async fn exchange(cfg: &ConsoleOidc, code: &str, verifier: &str, nonce: &str) -> Result<String, String> {
    let client = client(cfg)?;
    let (_, token_endpoint) = discover(&client, cfg).await?;
    let enc = rampart_console::form::encode;
    let mut form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        enc(code),
        enc(&cfg.redirect_url.to_string()),
        enc(verifier)
    );
    let mut req = http::Request::post(&token_endpoint)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json");
    match &cfg.client_secret {
        // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded first.
        Some(secret) => {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&cfg.client_id),
                enc(secret.expose())
            ));
            req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        None => form.push_str(&format!("&client_id={}", enc(&cfg.client_id))),
    }
    let req = req.body(Full::new(Bytes::from(form))).map_err(|e| e.to_string())?;
    let (status, v) = call(&client, req).await?;
    if !status.is_success() {
        return Err(format!(
            "the provider refused the code: {}",
            v["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let id_token = v["id_token"]
        .as_str()
        .ok_or("the provider sent no ID token")?
        .to_owned();
    // The nonce ties this token to this sign-in: a token obtained for another one (a
    // replayed or injected response) is refused.
    let claims = id_token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .ok_or("the ID token cannot be read")?;
    if !claims["nonce"]
        .as_str()
        .is_some_and(|n| rampart_console::session::same(n, nonce))
    {
        return Err("the ID token was not issued for this sign-in (nonce)".into());
    }
    Ok(id_token)
}
