//! TLS material: loads PEM certificates and keys, builds the rustls server config for
//! a listener (ALPN h2 + http/1.1, optional client-certificate verification for mTLS)
//! and the client config for an upstream pool (custom CA, optional client
//! certificate). rustls runs on the `ring` provider everywhere.

use std::path::Path;
use std::sync::Arc;

use rampart_config::{ClientAuth, ListenerTls, UpstreamTls};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::InitError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(key: &str, path: &Path, reason: impl ToString) -> InitError {
    InitError::Tls {
        key: key.to_owned(),
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, InitError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(key, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(key, path, e))?;
    if certs.is_empty() {
        return Err(tls_err(key, path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, InitError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_err(key, path, e))
}

fn roots(key: &str, path: &Path) -> Result<RootCertStore, InitError> {
    let mut store = RootCertStore::empty();
    for cert in certs(key, path)? {
        store.add(cert).map_err(|e| tls_err(key, path, e))?;
    }
    Ok(store)
}

/// Server config for a TLS listener. `key` is the config key prefix for errors.
pub fn server_config(key: &str, tls: &ListenerTls) -> Result<Arc<ServerConfig>, InitError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(key, &tls.cert, e))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_key = format!("{key}.client_ca");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&ca_key, ca)?), provider());
            let verifier = match tls.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_err(&ca_key, ca, e))?)
        }
    };
    let chain = certs(&format!("{key}.cert"), &tls.cert)?;
    let private = private_key(&format!("{key}.key"), &tls.key)?;
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| tls_err(&format!("{key}.key"), &tls.key, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client config for an upstream pool.
pub fn client_config(key: &str, tls: &UpstreamTls) -> Result<ClientConfig, InitError> {
    let store = match &tls.ca {
        Some(ca) => roots(&format!("{key}.ca"), ca)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(key, Path::new(""), e))?
        .with_root_certificates(store);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(private)) => {
            let chain = certs(&format!("{key}.client_cert"), cert)?;
            let private_der = private_key(&format!("{key}.client_key"), private)?;
            builder
                .with_client_auth_cert(chain, private_der)
                .map_err(|e| tls_err(&format!("{key}.client_key"), private, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    // ALPN (h2 or http/1.1) is set by the connector from the pool's `http2` setting.
    Ok(config)
}

/// The connector for the gateway's own HTTP(S) fetches (JWKS, an OIDC provider):
/// webpki roots plus an optional extra CA (`key` names it in errors), HTTP/1.1, and a
/// connect timeout.
pub fn fetch_connector(
    key: &str,
    ca: Option<std::path::PathBuf>,
    connect_timeout: std::time::Duration,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, InitError> {
    let tls = client_config(
        key,
        &UpstreamTls {
            ca,
            ..UpstreamTls::default()
        },
    )?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}
