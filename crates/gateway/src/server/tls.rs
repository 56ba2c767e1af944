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

/// One DER element at the start of `input`: (tag, content, the bytes after it). Only
/// the definite lengths DER allows (short form, or long form in 1 to 4 bytes).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A certificate's `notAfter` as Unix seconds, read from its DER: `Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
/// issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }` (RFC 5280 §4.1), the
/// time a `UTCTime` (years 1950–2049) or a `GeneralizedTime`, both in UTC ("Z"). `None`
/// when the bytes are not a certificate of that shape. Written by hand: the one field
/// the expiry metric needs does not justify an X.509 parser in the dependency tree.
pub fn not_after(der: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = der_element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    for _ in 0..3 {
        rest = der_element(rest)?.2; // serialNumber, signature, issuer
    }
    let (SEQUENCE, validity, _) = der_element(rest)? else {
        return None;
    };
    let (tag, time, _) = der_element(der_element(validity)?.2)?;
    let text = time.strip_suffix(b"Z")?;
    let digits = |s: &[u8]| {
        s.iter()
            .try_fold(0i64, |n, &b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(rampart_identity::time::days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The `notAfter` of the first (leaf) certificate in a PEM file, for the expiry metric.
pub fn leaf_not_after(path: &Path) -> Option<i64> {
    CertificateDer::pem_file_iter(path)
        .ok()?
        .next()?
        .ok()
        .and_then(|c| not_after(&c))
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

#[cfg(test)]
mod tests {
    use super::not_after;

    fn cert_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_not_after_in_both_time_encodings() {
        // Before 2050 RFC 5280 has a UTCTime; from 2050 a GeneralizedTime.
        assert_eq!(not_after(&cert_until(2027, 3, 1)), Some(1_803_859_200));
        assert_eq!(not_after(&cert_until(2049, 12, 31)), Some(2_524_521_600));
        assert_eq!(not_after(&cert_until(2051, 1, 2)), Some(2_556_230_400));
    }

    #[test]
    fn anything_else_is_none_and_never_panics() {
        let der = cert_until(2030, 6, 15);
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(b"not a certificate"), None);
        // Every truncation and every single-byte change either still parses or gives
        // None: no slice out of range, no arithmetic overflow.
        for n in 0..der.len() {
            let _ = not_after(&der[..n]);
            for b in [0x00, 0x7f, 0x80, 0x84, 0xff, b'9', 0xc3] {
                let mut bent = der.clone();
                bent[n] = b;
                let _ = not_after(&bent);
            }
        }
    }
}
