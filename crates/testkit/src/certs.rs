//! Certificates for TLS and mTLS tests, generated fresh for every test: a CA, a server
//! certificate for `localhost`/127.0.0.1 signed by it, and client certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM files written to a directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from a different, untrusted CA.
    pub rogue_client_cert: PathBuf,
    pub rogue_client_key: PathBuf,
}

fn ca(name: &str) -> Result<(CertificateParams, KeyPair, rcgen::Certificate), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((params, key, cert))
}

fn leaf(
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates the PKI into `dir`.
pub fn generate(dir: &Path) -> Result<Pki, Box<dyn std::error::Error>> {
    let (ca_params, ca_key, ca_cert) = ca("Rampart Test CA")?;
    let issuer = Issuer::new(ca_params, ca_key);
    let (server_cert, server_key) = leaf(
        &["localhost", "127.0.0.1"],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    )?;
    let (client_cert, client_key) = leaf(
        &["client.rampart.test"],
        "client.rampart.test",
        ExtendedKeyUsagePurpose::ClientAuth,
        &issuer,
    )?;
    let (rogue_params, rogue_key, _) = ca("Rogue CA")?;
    let rogue_issuer = Issuer::new(rogue_params, rogue_key);
    let (rogue_cert, rogue_key) = leaf(
        &["rogue.example"],
        "rogue.example",
        ExtendedKeyUsagePurpose::ClientAuth,
        &rogue_issuer,
    )?;
    let write = |name: &str, content: &str| -> std::io::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, content)?;
        Ok(p)
    };
    Ok(Pki {
        ca_cert: write("ca.pem", &ca_cert.pem())?,
        server_cert: write("server.pem", &server_cert)?,
        server_key: write("server.key", &server_key)?,
        client_cert: write("client.pem", &client_cert)?,
        client_key: write("client.key", &client_key)?,
        rogue_client_cert: write("rogue.pem", &rogue_cert)?,
        rogue_client_key: write("rogue.key", &rogue_key)?,
    })
}
