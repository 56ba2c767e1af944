//! Transport: how the endpoint is reached. Plain HTTP where prompts and keys cross a
//! network; the certificate (trusted, valid now, for this name, not about to expire);
//! legacy protocol versions (SSL 3.0, TLS 1.0, 1.1) and weak or non-forward-secret
//! cipher suites still accepted; HSTS; plain HTTP answered beside HTTPS.
//!
//! The certificate is judged on a real handshake (rustls, the probe's trust roots plus
//! `--ca`). rustls cannot speak the legacy versions or suites, so those are asked for
//! with a ClientHello written here, byte by byte, and judged by the server's first
//! answer: a ServerHello choosing what was offered means it is accepted; an alert or
//! a closed connection means refused. No handshake is completed with a weak suite.
//! Every connection counts against the budget as one request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Ctx, owasp};
use crate::report::{Case, Severity, Verdict};

/// How long one connection may take to answer.
const WAIT: Duration = Duration::from_secs(5);
/// A certificate with fewer days left than this is a finding.
pub const EXPIRY_WARNING_DAYS: i64 = 14;
/// HSTS shorter than this (180 days) does not keep browsers on HTTPS between visits.
const HSTS_MIN_SECONDS: u64 = 180 * 24 * 3600;

/// Where the endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(base: &str) -> Option<Self> {
        let (scheme, rest) = base.split_once("://")?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']')?;
            (h.to_owned(), tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None if https => 443,
            None => 80,
        };
        (!host.is_empty()).then_some(Self { https, host, port })
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Traffic to it never leaves the machine.
    pub fn loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    let Some(target) = Target::parse(&ctx.prober.base) else {
        return vec![
            Case::new("transport.url", "transport", "The endpoint's URL", Severity::Info, &[])
                .skip("not an http(s) URL"),
        ];
    };
    let mut out = vec![plain(&target)];
    if !target.https {
        for (id, title) in CASES_OVER_TLS {
            out.push(
                Case::new(id, "transport", title, Severity::Info, &[owasp::API8]).skip("the endpoint is plain http://"),
            );
        }
        return out;
    }
    out.push(certificate(ctx, &target).await);
    out.push(legacy_versions(ctx, &target).await);
    out.push(
        offered_suites(
            ctx,
            &target,
            Case::new(
                "transport.weak_ciphers",
                "transport",
                "Broken cipher suites accepted (NULL, export, RC4, DES, 3DES, anonymous)",
                Severity::High,
                &[owasp::API8],
            ),
            WEAK_SUITES,
        )
        .await,
    );
    out.push(
        offered_suites(
            ctx,
            &target,
            Case::new(
                "transport.forward_secrecy",
                "transport",
                "TLS 1.2 without forward secrecy accepted (static RSA key exchange)",
                Severity::Medium,
                &[owasp::API8],
            ),
            STATIC_RSA_SUITES,
        )
        .await,
    );
    out.push(hsts(ctx).await);
    out.push(plain_beside_tls(ctx, &target).await);
    out
}

const CASES_OVER_TLS: [(&str, &str); 6] = [
    (
        "transport.certificate",
        "The certificate is not trusted, not valid now or not for this name",
    ),
    (
        "transport.legacy_versions",
        "Legacy protocol versions accepted (SSL 3.0, TLS 1.0, TLS 1.1)",
    ),
    (
        "transport.weak_ciphers",
        "Broken cipher suites accepted (NULL, export, RC4, DES, 3DES, anonymous)",
    ),
    (
        "transport.forward_secrecy",
        "TLS 1.2 without forward secrecy accepted (static RSA key exchange)",
    ),
    ("transport.hsts", "No HTTP Strict Transport Security"),
    ("transport.plain_beside_tls", "Plain HTTP answered beside HTTPS"),
];

/// Plain http:// to an address off this machine: keys and prompts in clear.
fn plain(target: &Target) -> Case {
    let case = Case::new(
        "transport.plain_http",
        "transport",
        "Served over plain HTTP",
        Severity::High,
        &[owasp::API8, owasp::LLM02],
    );
    match (target.https, target.loopback()) {
        (true, _) => case.judge(Verdict::Pass, "served over HTTPS", &[]),
        (false, true) => case.judge(
            Verdict::Pass,
            format!(
                "plain HTTP, but to a loopback address ({}): nothing crosses a network",
                target.host
            ),
            &[],
        ),
        (false, false) => case.judge(
            Verdict::Fail,
            format!(
                "plain HTTP to {}: credentials, prompts and answers cross the network in clear",
                target.host
            ),
            &[],
        ),
    }
}

/// What the certificate check saw: the leaf and rustls's verdict on the chain.
#[derive(Debug, Default)]
struct Seen {
    leaf: Option<Vec<u8>>,
    verdict: Option<Result<(), rustls::Error>>,
}

/// Records the chain's verdict instead of failing the handshake with it, so one
/// connection tells both what is wrong and what was offered. Signatures are still
/// checked by the real verifier.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ());
        if let Ok(mut seen) = self.seen.lock() {
            seen.leaf = Some(end_entity.to_vec());
            seen.verdict = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

async fn certificate(ctx: &Ctx, target: &Target) -> Case {
    let case = Case::new(
        "transport.certificate",
        "transport",
        "The certificate is not trusted, not valid now or not for this name",
        Severity::High,
        &[owasp::API8],
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = match WebPkiServerVerifier::builder_with_provider(ctx.prober.roots(), Arc::clone(&provider)).build() {
        Ok(v) => v,
        Err(e) => return case.skip(&format!("no trust roots: {e}")),
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(Recorder {
                    inner,
                    seen: Arc::clone(&seen),
                }))
                .with_no_client_auth()
        });
    let Ok(config) = config else {
        return case.skip("no TLS client configuration");
    };
    let Ok(name) = ServerName::try_from(target.host.clone()) else {
        return case.skip(&format!("`{}` is not a server name", target.host));
    };
    if !ctx.prober.budget().take().await {
        return case.not_run();
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(WAIT * 2, async {
        let tcp = TcpStream::connect(target.addr()).await?;
        connector.connect(name, tcp).await
    })
    .await;
    let offered = match &handshake {
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            format!(
                "{} with {}",
                conn.protocol_version().map_or("TLS", |v| version_name(u16::from(v))),
                conn.negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .unwrap_or("an unnamed suite")
            )
        }
        Ok(Err(e)) => {
            return case.inconclusive(format!("the TLS handshake failed: {e}"));
        }
        Err(_) => return case.inconclusive(format!("no TLS handshake within {} s", (WAIT * 2).as_secs())),
    };
    let (leaf, verdict) = match seen.lock() {
        Ok(mut s) => (s.leaf.take(), s.verdict.take()),
        Err(_) => (None, None),
    };
    let validity = leaf.as_deref().and_then(not_after);
    let days_left = validity.map(|t| (t - rampart_identity::time::now()).div_euclid(86_400));
    match verdict {
        Some(Ok(())) => match days_left {
            Some(d) if d < EXPIRY_WARNING_DAYS => {
                let mut c = case.judge(
                    Verdict::Fail,
                    format!(
                        "trusted and valid for {}, but it expires in {d} days ({}); {offered}",
                        target.host,
                        validity.map(rampart_identity::time::format).unwrap_or_default()
                    ),
                    &[],
                );
                c.severity = Severity::Medium;
                c
            }
            _ => case.judge(
                Verdict::Pass,
                format!(
                    "trusted and valid for {}{}; {offered}",
                    target.host,
                    days_left.map(|d| format!(", {d} days left")).unwrap_or_default()
                ),
                &[],
            ),
        },
        Some(Err(e)) => case.judge(
            Verdict::Fail,
            format!("{}; {offered}", certificate_problem(&e, &target.host)),
            &[],
        ),
        None => case.inconclusive("the server sent no certificate"),
    }
}

/// What is wrong with a certificate, in words.
fn certificate_problem(e: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("the certificate is not valid for the name `{host}`")
            }
            C::UnknownIssuer => {
                "the certificate is not issued by a trusted authority (self-signed or a private CA: pass its CA with --ca if that is intended)".into()
            }
            C::Revoked => "the certificate is revoked".into(),
            C::BadSignature => "the certificate's signature does not verify".into(),
            other => format!("the certificate is not valid: {other:?}"),
        },
        other => format!("the certificate is not valid: {other}"),
    }
}

/// The leaf's notAfter, as Unix seconds (a walk over the DER, enough for X.509 v1–v3).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(cert)?;
    let mut next = |want: Option<u8>| -> Option<(u8, &[u8])> {
        let (tag, value, rest) = tlv(tbs)?;
        tbs = rest;
        if want.is_some_and(|w| w != tag) {
            return None;
        }
        Some((tag, value))
    };
    let (mut tag, _) = next(None)?;
    if tag == 0xa0 {
        // [0] version: the serial number follows.
        (tag, _) = next(None)?;
    }
    if tag != 0x02 {
        return None;
    }
    next(Some(0x30))?; // signature algorithm
    next(Some(0x30))?; // issuer
    let (_, validity) = next(Some(0x30))?;
    let (_, _, rest) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(rest)?;
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, digits.get(2..)?)
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let days = rampart_identity::time::days_from_civil(year, field(0)?, field(2)?);
    Some(days * 86_400 + field(4)? * 3600 + field(6)? * 60 + field(8)?)
}

/// One DER element: its tag, its value and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let value = input.get(head..head.checked_add(len)?)?;
    Some((tag, value, &input[head + len..]))
}

/// Suites a legacy-version ClientHello offers: what servers of that era spoke.
const LEGACY_SUITES: &[u16] = &[
    0xc013, 0xc014, 0xc009, 0xc00a, 0x0033, 0x0039, 0x002f, 0x0035, 0x000a, 0x0005, 0x0004,
];

/// Broken suites: NULL, export, RC4, single DES, 3DES, anonymous key exchange.
const WEAK_SUITES: &[(u16, &str)] = &[
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x003b, "TLS_RSA_WITH_NULL_SHA256"),
    (0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    (0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    (0xc015, "TLS_ECDH_anon_WITH_NULL_SHA"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA"),
    (0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"),
    (0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
];

/// TLS 1.2 suites with RSA key transport: one leaked server key decrypts every
/// recorded session.
const STATIC_RSA_SUITES: &[(u16, &str)] = &[
    (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
];

const TLS12: u16 = 0x0303;

fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "an unknown version",
    }
}

async fn legacy_versions(ctx: &Ctx, target: &Target) -> Case {
    let case = Case::new(
        "transport.legacy_versions",
        "transport",
        "Legacy protocol versions accepted (SSL 3.0, TLS 1.0, TLS 1.1)",
        Severity::High,
        &[owasp::API8],
    );
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for version in [0x0300, 0x0301, 0x0302] {
        match hello(ctx, target, version, LEGACY_SUITES).await {
            None => return case.not_run(),
            Some(Hello::Accepted { version: v, .. }) if v <= version => accepted.push(version_name(v)),
            Some(Hello::Accepted { .. } | Hello::Refused(_)) => refused.push(version_name(version)),
            Some(Hello::NoAnswer(why)) => return case.inconclusive(format!("{}: {why}", version_name(version))),
        }
    }
    accepted.dedup();
    if accepted.is_empty() {
        case.judge(Verdict::Pass, format!("refused: {}", refused.join(", ")), &[])
    } else {
        case.judge(Verdict::Fail, format!("accepted: {}", accepted.join(", ")), &[])
    }
}

async fn offered_suites(ctx: &Ctx, target: &Target, case: Case, suites: &[(u16, &str)]) -> Case {
    let codes: Vec<u16> = suites.iter().map(|(c, _)| *c).collect();
    match hello(ctx, target, TLS12, &codes).await {
        None => case.not_run(),
        Some(Hello::Accepted { version, suite }) if codes.contains(&suite) => {
            let name = suites.iter().find(|(c, _)| *c == suite).map_or("?", |(_, n)| *n);
            case.judge(
                Verdict::Fail,
                format!(
                    "offered only such suites, the server chose {name} (0x{suite:04x}) over {}",
                    version_name(version)
                ),
                &[],
            )
        }
        Some(Hello::Accepted { suite, .. }) => case.judge(
            Verdict::Fail,
            format!("the server answered with a suite it was not offered (0x{suite:04x}): a broken TLS stack"),
            &[],
        ),
        Some(Hello::Refused(why)) => case.judge(
            Verdict::Pass,
            format!("offered only {} such suites: refused ({why})", codes.len()),
            &[],
        ),
        Some(Hello::NoAnswer(why)) => case.inconclusive(why),
    }
}

/// The server's first answer to a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    Accepted { version: u16, suite: u16 },
    Refused(String),
    NoAnswer(String),
}

/// Sends one ClientHello for `version` offering `suites` and reads the answer (`None`:
/// the budget did not allow it).
async fn hello(ctx: &Ctx, target: &Target, version: u16, suites: &[u16]) -> Option<Hello> {
    if !ctx.prober.budget().take().await {
        return None;
    }
    let mut random = [0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).is_err() {
        return Some(Hello::NoAnswer("no randomness".into()));
    }
    let message = client_hello(version, suites, &target.host, &random);
    let exchange = async {
        let mut tcp = TcpStream::connect(target.addr()).await?;
        tcp.write_all(&message).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(answer) = server_answer(&got) {
                return Ok(answer);
            }
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return Ok(Hello::Refused("the connection was closed".into()));
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() > 64 * 1024 {
                return Ok(Hello::NoAnswer("no ServerHello in the first 64 KiB".into()));
            }
        }
    };
    Some(match tokio::time::timeout(WAIT, exchange).await {
        Ok(Ok(h)) => h,
        Ok(Err::<_, std::io::Error>(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Hello::Refused("the connection was reset".into())
        }
        Ok(Err(e)) => Hello::NoAnswer(e.to_string()),
        Err(_) => Hello::NoAnswer(format!("no answer within {} s", WAIT.as_secs())),
    })
}

/// A ClientHello record: `version` as the highest version offered, `suites`, and the
/// extensions servers of every era expect (SNI for names, groups, point formats,
/// signature algorithms, secure renegotiation).
pub fn client_hello(version: u16, suites: &[u16], host: &str, random: &[u8; 32]) -> Vec<u8> {
    fn u16be(out: &mut Vec<u8>, v: usize) {
        out.extend_from_slice(&u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes());
    }
    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        u16be(out, data.len());
        out.extend_from_slice(data);
    }
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(random);
    body.push(0); // no session id
    u16be(&mut body, suites.len() * 2);
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: none
    let mut ext = Vec::new();
    if host.parse::<std::net::IpAddr>().is_err() && !host.is_empty() {
        let mut sni = Vec::new();
        u16be(&mut sni, host.len() + 3);
        sni.push(0);
        u16be(&mut sni, host.len());
        sni.extend_from_slice(host.as_bytes());
        extension(&mut ext, 0x0000, &sni);
    }
    // x25519, secp256r1, secp384r1, ffdhe2048.
    extension(&mut ext, 0x000a, &[0, 8, 0, 29, 0, 23, 0, 24, 1, 0]);
    extension(&mut ext, 0x000b, &[1, 0]);
    // rsa_pkcs1_sha256/384, ecdsa_p256_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha1, ecdsa_sha1.
    extension(&mut ext, 0x000d, &[0, 12, 4, 1, 5, 1, 4, 3, 8, 4, 2, 1, 2, 3]);
    extension(&mut ext, 0xff01, &[0]);
    u16be(&mut body, ext.len());
    body.extend_from_slice(&ext);

    let mut handshake = vec![1u8];
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    handshake.extend_from_slice(&len[1..]);
    handshake.extend_from_slice(&body);
    // The record layer says TLS 1.0 (SSL 3.0 for an SSL 3.0 hello), as clients do.
    let mut record = vec![0x16];
    record.extend_from_slice(&version.min(0x0301).to_be_bytes());
    u16be(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    record
}

/// Judges the bytes read so far: `None` while more are needed.
pub fn server_answer(got: &[u8]) -> Option<Hello> {
    if got.len() < 5 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([got[3], got[4]]));
    let record = got.get(5..5 + len);
    match got[0] {
        0x15 => {
            let record = record?;
            let what = match record.get(1) {
                Some(40) => "handshake_failure".to_owned(),
                Some(70) => "protocol_version".to_owned(),
                Some(71) => "insufficient_security".to_owned(),
                Some(47) => "illegal_parameter".to_owned(),
                Some(d) => format!("alert {d}"),
                None => "an alert".to_owned(),
            };
            Some(Hello::Refused(format!("alert: {what}")))
        }
        0x16 => {
            // The ServerHello is the first handshake message; it fits in its record.
            let record = record?;
            if record.first() != Some(&2) || record.len() < 4 + 2 + 32 + 1 {
                return Some(Hello::Refused(
                    "the first handshake message is not a ServerHello".into(),
                ));
            }
            let version = u16::from_be_bytes([record[4], record[5]]);
            let sid = usize::from(record[38]);
            let at = 39 + sid;
            let suite = u16::from_be_bytes([*record.get(at)?, *record.get(at + 1)?]);
            Some(Hello::Accepted { version, suite })
        }
        _ if got.starts_with(b"HTTP/") => Some(Hello::Refused("answered with plain HTTP".into())),
        other => Some(Hello::Refused(format!("not a TLS answer (record type {other})"))),
    }
}

/// `Strict-Transport-Security` on an answer over HTTPS.
async fn hsts(ctx: &Ctx) -> Case {
    let case = Case::new(
        "transport.hsts",
        "transport",
        "No HTTP Strict Transport Security",
        Severity::Low,
        &[owasp::API8],
    );
    let mut headers = Vec::new();
    if let Some(a) = ctx.prober.auth() {
        headers.push(a);
    }
    let Some(a) = ctx.prober.send(Method::GET, &ctx.path(), &headers, Bytes::new()).await else {
        return case.not_run();
    };
    if a.status.is_none() {
        return case.inconclusive(super::status_text(&a));
    }
    let value = a
        .headers
        .get(http::header::STRICT_TRANSPORT_SECURITY)
        .and_then(|v| v.to_str().ok());
    let max_age = value.and_then(|v| {
        v.split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
    });
    match (value, max_age) {
        (None, _) => case.judge(
            Verdict::Fail,
            "no Strict-Transport-Security header: a browser may be sent to http:// and have its session read",
            &[&a],
        ),
        (Some(v), Some(s)) if s >= HSTS_MIN_SECONDS => case.judge(Verdict::Pass, format!("`{v}`"), &[&a]),
        (Some(v), _) => case.judge(
            Verdict::Fail,
            format!("`{v}`: shorter than 180 days (or unreadable), so it lapses between visits"),
            &[&a],
        ),
    }
}

/// Plain HTTP on the TLS port itself, and on port 80 when the endpoint is on 443.
async fn plain_beside_tls(ctx: &Ctx, target: &Target) -> Case {
    let case = Case::new(
        "transport.plain_beside_tls",
        "transport",
        "Plain HTTP answered beside HTTPS",
        Severity::Medium,
        &[owasp::API8],
    );
    let mut ports = vec![target.port];
    if target.port == 443 {
        ports.push(80);
    }
    let mut seen = Vec::new();
    for port in ports {
        if !ctx.prober.budget().take().await {
            return case.not_run();
        }
        let t = Target {
            https: false,
            host: target.host.clone(),
            port,
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            ctx.request_target(),
            t.host
        );
        let answer = tokio::time::timeout(WAIT, async {
            let mut tcp = TcpStream::connect(t.addr()).await?;
            tcp.write_all(request.as_bytes()).await?;
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            while n < buf.len() {
                let got = tcp.read(&mut buf[n..]).await?;
                if got == 0 {
                    break;
                }
                n += got;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .await;
        let Ok(Ok(text)) = answer else {
            seen.push(format!("port {port}: no HTTP answer"));
            continue;
        };
        let status: Option<u16> = text
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|s| s.parse().ok());
        let location = text
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        match status {
            None => seen.push(format!("port {port}: no HTTP answer")),
            Some(s) if (300..400).contains(&s) && location.starts_with("https://") => {
                seen.push(format!("port {port}: {s} to {location}"));
            }
            Some(s) if s >= 400 => seen.push(format!("port {port}: refused with {s}")),
            Some(s) => {
                return case.judge(
                    Verdict::Fail,
                    format!(
                        "plain HTTP on port {port} answered {s}{}",
                        if location.is_empty() {
                            String::new()
                        } else {
                            format!(" (to {location})")
                        }
                    ),
                    &[],
                );
            }
        }
    }
    case.judge(Verdict::Pass, seen.join("; "), &[])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_parse_with_their_default_ports() {
        let t = Target::parse("https://api.example.com/v1").unwrap();
        assert_eq!((t.https, t.host.as_str(), t.port), (true, "api.example.com", 443));
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.loopback()), ("::1", 8080, true));
        assert_eq!(t.addr(), "[::1]:8080");
        assert!(Target::parse("ftp://x").is_none() && Target::parse("https://:1").is_none());
        assert!(!Target::parse("http://10.0.0.5").unwrap().loopback());
    }

    #[test]
    fn plain_http_is_a_finding_only_off_this_machine() {
        let judge = |url: &str| plain(&Target::parse(url).unwrap()).verdict;
        assert_eq!(judge("http://models.internal:8000"), Verdict::Fail);
        assert_eq!(judge("http://10.1.2.3"), Verdict::Fail);
        assert_eq!(judge("http://127.0.0.1:8080"), Verdict::Pass);
        assert_eq!(judge("http://localhost:8080"), Verdict::Pass);
        assert_eq!(judge("https://models.internal"), Verdict::Pass);
    }

    #[test]
    fn a_client_hello_is_well_formed() {
        let h = client_hello(0x0301, &[0x002f, 0x0035], "models.example.com", &[7; 32]);
        assert_eq!(&h[..3], &[0x16, 0x03, 0x01]);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 1, "a ClientHello");
        let body_len = (usize::from(h[6]) << 16) | (usize::from(h[7]) << 8) | usize::from(h[8]);
        assert_eq!(body_len, h.len() - 9);
        assert_eq!(&h[9..11], &[0x03, 0x01]);
        // Suites after the random and an empty session id.
        assert_eq!(&h[44..50], &[0, 4, 0x00, 0x2f, 0x00, 0x35]);
        assert!(h.windows(18).any(|w| w == b"models.example.com"));
        // No SNI for an address.
        let ip = client_hello(0x0303, &[0x009c], "127.0.0.1", &[0; 32]);
        assert!(!ip.windows(9).any(|w| w == b"127.0.0.1"));
    }

    #[test]
    fn server_answers_are_read_as_accepted_or_refused() {
        assert_eq!(server_answer(&[0x15, 3, 3, 0]), None, "incomplete");
        assert_eq!(
            server_answer(&[0x15, 3, 3, 0, 2, 2, 70]),
            Some(Hello::Refused("alert: protocol_version".into()))
        );
        let mut hello = vec![0x16, 3, 1, 0, 0, 2, 0, 0, 0, 3, 1];
        hello.extend_from_slice(&[9; 32]);
        hello.extend_from_slice(&[2, 0xaa, 0xbb, 0xc0, 0x13, 0]);
        let len = u16::try_from(hello.len() - 5).unwrap().to_be_bytes();
        hello[3..5].copy_from_slice(&len);
        assert_eq!(
            server_answer(&hello),
            Some(Hello::Accepted {
                version: 0x0301,
                suite: 0xc013
            })
        );
        assert_eq!(
            server_answer(&hello[..20]),
            None,
            "the ServerHello's record is not all here yet"
        );
        assert!(matches!(server_answer(b"HTTP/1.1 400 Bad"), Some(Hello::Refused(_))));
    }

    #[test]
    fn the_end_of_validity_is_read_from_the_der() {
        // A minimal certificate shape: SEQ { SEQ { [0]{INT 2}, INT, SEQ, SEQ, SEQ { UTCTime, GeneralizedTime } } }.
        let time_a = b"250101000000Z";
        let time_b = b"20300615123000Z";
        let mut validity = vec![0x17, 13];
        validity.extend_from_slice(time_a);
        validity.extend_from_slice(&[0x18, 15]);
        validity.extend_from_slice(time_b);
        let mut tbs = vec![
            0xa0,
            3,
            2,
            1,
            2,
            0x02,
            1,
            5,
            0x30,
            0,
            0x30,
            0,
            0x30,
            u8::try_from(validity.len()).unwrap(),
        ];
        tbs.extend_from_slice(&validity);
        let mut cert = vec![0x30, u8::try_from(tbs.len()).unwrap()];
        cert.extend_from_slice(&tbs);
        let mut der = vec![0x30, 0x81, u8::try_from(cert.len()).unwrap()];
        der.extend_from_slice(&cert);
        assert_eq!(not_after(&der), rampart_identity::time::parse("2030-06-15T12:30:00Z"));
        assert_eq!(not_after(&der[..10]), None, "cut short");
    }
}
