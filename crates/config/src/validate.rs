//! Raw → validated config. Collects every problem instead of stopping at the first, and
//! words each one so the user knows what to write instead.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};

use crate::error::{ConfigError, ConfigIssue};
use crate::locate::{KeyPath, Locator};
use crate::model::*;
use crate::raw::*;
use crate::secret::Secret;
use crate::{defaults, duration};

/// Where secrets and relative paths come from while validating.
pub struct Environment<'a> {
    /// Directory relative file paths are resolved against (the config file's).
    pub base_dir: PathBuf,
    /// Reads an environment variable.
    pub var: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("base_dir", &self.base_dir).finish()
    }
}

struct Validator<'a> {
    file: &'a str,
    locator: Locator<'a>,
    env: &'a Environment<'a>,
    issues: Vec<ConfigIssue>,
    /// Whether the file has a `[redis]` section (shared backends need one).
    has_redis: bool,
}

impl Validator<'_> {
    fn issue(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.to_owned(),
            line: self.locator.line(path),
            key: path.render(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &KeyPath, raw: &Option<String>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(text) => match duration::parse(text) {
                Ok(d) if d.is_zero() => {
                    self.issue(path, "must be greater than zero");
                    default
                }
                Ok(d) => d,
                Err(msg) => {
                    self.issue(path, msg);
                    default
                }
            },
        }
    }

    fn positive<T: PartialOrd + Default + Copy>(&mut self, path: &KeyPath, raw: Option<T>, default: T) -> T {
        match raw {
            Some(v) if v <= T::default() => {
                self.issue(path, "must be greater than zero");
                default
            }
            Some(v) => v,
            None => default,
        }
    }

    fn file_path(&mut self, path: &KeyPath, raw: &str) -> PathBuf {
        let p = Path::new(raw);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.env.base_dir.join(p)
        };
        if !full.is_file() {
            self.issue(
                path,
                format!("file `{}` does not exist or is not a file", full.display()),
            );
        }
        full
    }

    /// A directory path, relative to the config file; it is created when first used.
    fn dir_path(&self, raw: &str) -> PathBuf {
        let p = Path::new(raw);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.env.base_dir.join(p)
        }
    }

    fn socket_addr(&mut self, path: &KeyPath, raw: &str) -> Option<SocketAddr> {
        match raw.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue(
                    path,
                    format!("`{raw}` is not an address like `127.0.0.1:8080` or `[::1]:8080`"),
                );
                None
            }
        }
    }

    fn secret(&mut self, path: &KeyPath, raw: &RawSecretRef) -> Option<String> {
        let value = match (&raw.env, &raw.file) {
            (Some(var), None) => match (self.env.var)(var) {
                Some(v) => v,
                None => {
                    self.issue(&path.key("env"), format!("environment variable `{var}` is not set"));
                    return None;
                }
            },
            (None, Some(file)) => {
                let full = self.file_path(&path.key("file"), file);
                match std::fs::read_to_string(&full) {
                    Ok(v) => v.trim_end_matches(['\r', '\n']).to_owned(),
                    Err(e) => {
                        self.issue(&path.key("file"), format!("cannot read `{}`: {e}", full.display()));
                        return None;
                    }
                }
            }
            _ => {
                self.issue(
                    path,
                    "name exactly one of `env` or `file`; secrets are never written inline",
                );
                return None;
            }
        };
        Some(format!("{}{}", raw.prefix.as_deref().unwrap_or(""), value))
    }

    /// `server.node_id`, literal or from the environment. It names audit segment files
    /// and PostgreSQL chains, so it is a plain name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not
    /// starting with a dot.
    fn node_id(&mut self, path: &KeyPath, raw: Option<&crate::raw::RawNodeId>) -> String {
        let id = match raw {
            None => return defaults::NODE_ID.to_owned(),
            Some(crate::raw::RawNodeId::Name(n)) => n.clone(),
            Some(crate::raw::RawNodeId::From(source)) => match self.secret(path, source) {
                Some(v) => v,
                None => return defaults::NODE_ID.to_owned(),
            },
        };
        let plain = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if id.is_empty() || id.len() > 64 || id.starts_with('.') || !plain {
            self.issue(
                path,
                format!("`{id}` is not a node name: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"),
            );
        }
        id
    }

    /// The `[audit]` table. The signing key must be an Ed25519 PKCS#8 key in base64
    /// (what `rampart audit keygen` writes); the pseudonym key, when not given, is
    /// derived from it.
    fn audit(&mut self, path: &KeyPath, raw: &RawAudit) -> Option<Audit> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = self.dir_path(raw.dir.as_deref().unwrap_or(defaults::AUDIT_DIR));
        let spill_dir = match &raw.spill_dir {
            Some(d) => self.dir_path(d),
            None => dir.join("spill"),
        };
        let signing_key = match &raw.signing_key {
            None => {
                self.issue(
                    &path.key("signing_key"),
                    "the audit trail needs a signing key for its checkpoints: create one with `rampart audit keygen --out audit.key` and name it as { file = \"audit.key\" }",
                );
                None
            }
            Some(r) => self.secret(&path.key("signing_key"), r).and_then(|text| {
                let der = b64.decode(text.trim()).ok();
                match der.filter(|d| ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(d).is_ok()) {
                    Some(d) => Some(d),
                    None => {
                        self.issue(
                            &path.key("signing_key"),
                            "not an Ed25519 key (base64 PKCS#8, as `rampart audit keygen` writes)",
                        );
                        None
                    }
                }
            }),
        };
        let pseudonym_key = match (&raw.pseudonym_key, &signing_key) {
            (Some(r), _) => self.secret(&path.key("pseudonym_key"), r).map(String::into_bytes),
            (None, Some(sk)) => {
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, sk);
                Some(ring::hmac::sign(&k, b"rampart-audit-pseudonym-v1").as_ref().to_vec())
            }
            (None, None) => None,
        };
        let postgres = match (raw.store.unwrap_or(AuditStoreKind::File), &raw.postgres) {
            (AuditStoreKind::File, None) => None,
            (AuditStoreKind::File, Some(_)) => {
                self.issue(&path.key("postgres"), "only used with `store = \"postgres\"`");
                None
            }
            (AuditStoreKind::Postgres, Some(r)) => self.secret(&path.key("postgres"), r).map(Secret::new),
            (AuditStoreKind::Postgres, None) => {
                self.issue(
                    &path.key("postgres"),
                    "`store = \"postgres\"` needs the database URL: postgres = { env = \"RAMPART_AUDIT_PG\" }",
                );
                None
            }
        };
        if raw.spill_dir.is_some() && raw.on_backlog != Some(OnBacklog::Spill) {
            self.issue(&path.key("spill_dir"), "only used with `on_backlog = \"spill\"`");
        }
        let audit = Audit {
            dir,
            durability: raw.durability.unwrap_or(Durability::Batch),
            batch_interval: self.duration(
                &path.key("batch_interval"),
                &raw.batch_interval,
                defaults::AUDIT_BATCH_INTERVAL,
            ),
            queue: self.positive(&path.key("queue"), raw.queue, defaults::AUDIT_QUEUE),
            on_backlog: raw.on_backlog.unwrap_or(OnBacklog::Block),
            spill_dir,
            checkpoint_interval: self.duration(
                &path.key("checkpoint_interval"),
                &raw.checkpoint_interval,
                defaults::AUDIT_CHECKPOINT_INTERVAL,
            ),
            checkpoint_every: self.positive(
                &path.key("checkpoint_every"),
                raw.checkpoint_every,
                defaults::AUDIT_CHECKPOINT_EVERY,
            ),
            witness: raw.witness.as_deref().map(|w| self.dir_path(w)),
            max_segment_bytes: self.positive(
                &path.key("max_segment_bytes"),
                raw.max_segment_bytes,
                defaults::AUDIT_MAX_SEGMENT_BYTES,
            ),
            signing_key: Secret::new(signing_key?),
            pseudonym_key: Secret::new(pseudonym_key?),
            client_ip: raw.client_ip.unwrap_or(IpPolicy::Truncate),
            postgres,
            master_key: raw.master_key.as_ref().and_then(|r| {
                let text = self.secret(&path.key("master_key"), r)?;
                match b64.decode(text.trim()) {
                    Ok(k) if k.len() == 32 => Some(Secret::new(k)),
                    _ => {
                        self.issue(
                            &path.key("master_key"),
                            "must be 32 random bytes in base64 (for example: openssl rand -base64 32)",
                        );
                        None
                    }
                }
            }),
            subject_header: raw
                .subject_header
                .as_deref()
                .unwrap_or(defaults::AUDIT_SUBJECT_HEADER)
                .to_ascii_lowercase(),
            max_payload_bytes: self.positive(
                &path.key("max_payload_bytes"),
                raw.max_payload_bytes,
                defaults::AUDIT_MAX_PAYLOAD_BYTES,
            ),
            retention: self.retention(&path.key("retention"), &raw.retention),
        };
        if raw.store == Some(AuditStoreKind::Postgres) && audit.postgres.is_none() {
            return None;
        }
        Some(audit)
    }

    /// `[audit.retention]`: days per class (`180d`), the six-month floor for exchange
    /// records, and legal holds with RFC 3339 bounds.
    fn retention(&mut self, path: &KeyPath, raw: &RawRetention) -> Retention {
        let mut days = |key: &str, value: &Option<String>, default_days: i64| -> i64 {
            match value {
                None => default_days * 86_400,
                Some(text) => match rampart_identity::time::parse_duration(text.trim()) {
                    Some(secs) if secs > 0 => secs,
                    _ => {
                        self.issue(
                            &path.key(key),
                            format!("`{text}` is not a retention period; write e.g. `183d`"),
                        );
                        default_days * 86_400
                    }
                },
            }
        };
        let exchange = days("exchange", &raw.exchange, defaults::AUDIT_RETENTION_EXCHANGE_DAYS);
        let admin = days("admin", &raw.admin, defaults::AUDIT_RETENTION_ADMIN_DAYS);
        let lifecycle = days("lifecycle", &raw.lifecycle, defaults::AUDIT_RETENTION_ADMIN_DAYS);
        if exchange < defaults::AUDIT_RETENTION_EXCHANGE_DAYS * 86_400 && raw.allow_short != Some(true) {
            self.issue(
                &path.key("exchange"),
                format!(
                    "shorter than {} days (the AI Act's six months for deployers' logs); set `allow_short = true` to allow it",
                    defaults::AUDIT_RETENTION_EXCHANGE_DAYS
                ),
            );
        }
        let mut legal_holds = Vec::new();
        for (i, h) in raw.legal_holds.iter().enumerate() {
            let p = path.key("legal_holds").index(i);
            match (
                rampart_identity::time::parse(&h.from),
                rampart_identity::time::parse(&h.to),
            ) {
                (Some(from), Some(to)) if from <= to => legal_holds.push(LegalHold {
                    from,
                    to,
                    reason: h.reason.clone(),
                }),
                (Some(_), Some(_)) => self.issue(&p, "`from` is after `to`"),
                _ => self.issue(
                    &p,
                    "`from` and `to` must be RFC 3339 UTC times like 2026-01-31T00:00:00Z",
                ),
            }
        }
        Retention {
            exchange,
            admin,
            lifecycle,
            legal_holds,
        }
    }

    fn limits(&mut self, path: &KeyPath, raw: &RawLimits, base: Limits) -> Limits {
        Limits {
            max_body_bytes: self.positive(&path.key("max_body_bytes"), raw.max_body_bytes, base.max_body_bytes),
            max_json_depth: self.positive(&path.key("max_json_depth"), raw.max_json_depth, base.max_json_depth),
        }
    }

    fn timeouts(&mut self, path: &KeyPath, raw: &RawTimeouts, base: Timeouts) -> Timeouts {
        let issues_before = self.issues.len();
        let t = Timeouts {
            first_byte: self.duration(&path.key("first_byte"), &raw.first_byte, base.first_byte),
            total: self.duration(&path.key("total"), &raw.total, base.total),
            idle: self.duration(&path.key("idle"), &raw.idle, base.idle),
        };
        // Compare only where this level sets a value and it parsed; inherited values
        // were checked at their own level.
        let set_here = raw.first_byte.is_some() || raw.total.is_some();
        if set_here && self.issues.len() == issues_before && t.first_byte > t.total {
            self.issue(&path.key("first_byte"), "must not be longer than timeouts.total");
        }
        t
    }

    fn listener(&mut self, path: &KeyPath, raw: &RawListener) -> Option<Listener> {
        let addr = self.socket_addr(&path.key("listen"), &raw.listen);
        let tls = raw.tls.as_ref().map(|tls| {
            let tp = path.key("tls");
            let client_ca = tls
                .client_ca
                .as_deref()
                .map(|ca| self.file_path(&tp.key("client_ca"), ca));
            if tls.client_auth.is_some() && client_ca.is_none() {
                self.issue(
                    &tp.key("client_auth"),
                    "needs `client_ca` to verify client certificates against",
                );
            }
            let hsts = match tls.hsts.as_deref() {
                None => Some(defaults::HSTS.to_owned()),
                Some("") => None,
                Some(v) => {
                    let max_age = v
                        .split(';')
                        .next()
                        .and_then(|d| d.trim().strip_prefix("max-age="))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                    if !max_age || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                        self.issue(
                            &tp.key("hsts"),
                            "must start with `max-age=<seconds>` (e.g. \"max-age=31536000; includeSubDomains\"), or be \"\" to send none",
                        );
                    }
                    Some(v.to_owned())
                }
            };
            ListenerTls {
                hsts,
                cert: self.file_path(&tp.key("cert"), &tls.cert),
                key: self.file_path(&tp.key("key"), &tls.key),
                client_ca,
                client_auth: tls.client_auth.unwrap_or(ClientAuth::Required),
            }
        });
        let max_header_bytes = self.positive(
            &path.key("max_header_bytes"),
            raw.max_header_bytes,
            defaults::MAX_HEADER_BYTES,
        );
        if max_header_bytes < 8192 {
            self.issue(
                &path.key("max_header_bytes"),
                "must be at least 8192 (the HTTP/1.1 parser's minimum buffer)",
            );
        }
        Some(Listener {
            name: raw.name.clone(),
            addr: addr?,
            h2c: raw.h2c.unwrap_or(true),
            tls,
            max_header_bytes,
            header_read_timeout: self.duration(
                &path.key("header_read_timeout"),
                &raw.header_read_timeout,
                defaults::HEADER_READ_TIMEOUT,
            ),
            max_connections: self.positive(
                &path.key("max_connections"),
                raw.max_connections,
                defaults::MAX_CONNECTIONS,
            ),
            max_connections_per_ip: match raw.max_connections_per_ip {
                Some(0) => {
                    self.issue(&path.key("max_connections_per_ip"), "must be greater than zero");
                    None
                }
                n => n,
            },
            trusted_proxies: self.cidrs(&path.key("trusted_proxies"), &raw.trusted_proxies),
        })
    }

    fn target(&mut self, path: &KeyPath, raw: &str) -> Option<Target> {
        let bad = |v: &mut Self, why: &str| {
            v.issue(
                path,
                format!("`{raw}` {why}; write a base URL like `http://10.0.0.5:8000`"),
            );
            None
        };
        let Ok(uri) = raw.parse::<Uri>() else {
            return bad(self, "is not a URL");
        };
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
            _ => return bad(self, "must start with http:// or https://"),
        };
        let Some(authority) = uri.authority().cloned() else {
            return bad(self, "has no host");
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return bad(self, "must not have a path or query");
        }
        if authority.as_str().contains('@') {
            return bad(self, "must not carry credentials; use `headers` with a secret instead");
        }
        let authority: Authority = if authority.port().is_some() {
            authority
        } else {
            let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
            match format!("{}:{port}", authority.host()).parse() {
                Ok(a) => a,
                Err(_) => return bad(self, "has an invalid host"),
            }
        };
        Some(Target { scheme, authority })
    }

    fn upstream(&mut self, path: &KeyPath, raw: &RawUpstream) -> Upstream {
        if raw.targets.is_empty() {
            self.issue(
                &path.key("targets"),
                format!("upstream \"{}\": needs at least one target", raw.name),
            );
        }
        let targets = raw
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.target(&path.key("targets").index(i), t))
            .collect();
        let hp = path.key("health");
        let active = match &raw.health.path {
            Some(p) if !p.starts_with('/') => {
                self.issue(&hp.key("path"), "must start with `/`");
                None
            }
            Some(p) => Some(ActiveHealth {
                path: p.clone(),
                interval: self.duration(&hp.key("interval"), &raw.health.interval, defaults::HEALTH_INTERVAL),
                timeout: self.duration(&hp.key("timeout"), &raw.health.timeout, defaults::HEALTH_TIMEOUT),
            }),
            None => {
                if raw.health.interval.is_some() || raw.health.timeout.is_some() {
                    self.issue(&hp.key("path"), "is required when `interval` or `timeout` is set");
                }
                None
            }
        };
        let health = Health {
            max_failures: self.positive(
                &hp.key("max_failures"),
                raw.health.max_failures,
                defaults::HEALTH_MAX_FAILURES,
            ),
            cooldown: self.duration(&hp.key("cooldown"), &raw.health.cooldown, defaults::HEALTH_COOLDOWN),
            active,
        };
        let tls = match &raw.tls {
            None => UpstreamTls::default(),
            Some(t) => {
                let tp = path.key("tls");
                if t.client_cert.is_some() != t.client_key.is_some() {
                    self.issue(&tp, "set both `client_cert` and `client_key`, or neither");
                }
                UpstreamTls {
                    ca: t.ca.as_deref().map(|p| self.file_path(&tp.key("ca"), p)),
                    client_cert: t
                        .client_cert
                        .as_deref()
                        .map(|p| self.file_path(&tp.key("client_cert"), p)),
                    client_key: t
                        .client_key
                        .as_deref()
                        .map(|p| self.file_path(&tp.key("client_key"), p)),
                    server_name: t.server_name.clone(),
                }
            }
        };
        let mut headers = Vec::new();
        for (name, secret) in &raw.headers {
            let hpath = path.key("headers").key(name);
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                self.issue(&hpath, "is not a valid header name");
                continue;
            };
            if let Some(value) = self.secret(&hpath, secret) {
                match HeaderValue::from_str(&value) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        headers.push((header, Secret::new(v)));
                    }
                    Err(_) => self.issue(&hpath, "the secret's value is not a valid header value"),
                }
            }
        }
        Upstream {
            name: raw.name.clone(),
            targets,
            balance: raw.balance.unwrap_or_default(),
            connect_timeout: self.duration(
                &path.key("connect_timeout"),
                &raw.connect_timeout,
                defaults::CONNECT_TIMEOUT,
            ),
            http2: raw.http2.unwrap_or(false),
            pool_idle_timeout: self.duration(
                &path.key("pool_idle_timeout"),
                &raw.pool_idle_timeout,
                defaults::POOL_IDLE_TIMEOUT,
            ),
            pool_max_idle_per_target: raw
                .pool_max_idle_per_target
                .unwrap_or(defaults::POOL_MAX_IDLE_PER_TARGET),
            health,
            tls,
            headers,
        }
    }

    fn json_schema(&mut self, path: &KeyPath, route: &RawRoute) -> Option<rampart_detect::protocol::JsonSchema> {
        let file = route.validation.json_schema.as_ref()?;
        if route.protocol == Some(Protocol::Http) {
            self.issue(
                path,
                "`protocol = \"http\"` bodies are never parsed; use a JSON protocol",
            );
            return None;
        }
        let full = self.file_path(path, file);
        let text = match std::fs::read_to_string(&full) {
            Ok(t) => t,
            Err(e) => {
                self.issue(path, format!("cannot read `{}`: {e}", full.display()));
                return None;
            }
        };
        let value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                self.issue(path, format!("`{}` is not JSON: {e}", full.display()));
                return None;
            }
        };
        match rampart_detect::protocol::JsonSchema::new(value) {
            Ok(s) => Some(s),
            Err(e) => {
                self.issue(path, format!("`{}` is not a valid JSON Schema: {e}", full.display()));
                None
            }
        }
    }

    fn validation(&mut self, path: &KeyPath, route: &RawRoute) -> Option<Validation> {
        use rampart_detect::protocol::{InputRule, KserveRules, OpenAiRules};
        let raw = &route.validation;
        let protocol = route.protocol.unwrap_or_default();
        let configured = raw.max_messages.is_some()
            || raw.max_n.is_some()
            || raw.max_tokens.is_some()
            || raw.allow_logit_bias.is_some()
            || raw.allow_logprobs.is_some()
            || raw.allow_logit_bias_with_logprobs.is_some()
            || raw.max_top_logprobs.is_some()
            || raw.allow_tools.is_some()
            || raw.max_inputs.is_some()
            || raw.max_elements.is_some()
            || raw.only_listed_inputs.is_some()
            || !raw.inputs.is_empty();
        if !matches!(protocol, Protocol::Openai | Protocol::Kserve) {
            if raw.enabled == Some(true) || configured {
                self.issue(
                    path,
                    "validation applies to `protocol = \"openai\"` and `\"kserve\"` routes",
                );
            }
            return None;
        }
        if !raw.enabled.unwrap_or(true) {
            return None;
        }
        let count = |v: &mut Self, key: &str, value: Option<u64>, default: usize| {
            usize::try_from(v.positive(&path.key(key), value, default as u64)).unwrap_or(usize::MAX)
        };
        if protocol == Protocol::Openai {
            let d = OpenAiRules::default();
            let max_messages = count(self, "max_messages", raw.max_messages, d.max_messages);
            let max_inputs = count(self, "max_inputs", raw.max_inputs, d.max_inputs);
            Some(Validation::Openai(OpenAiRules {
                max_messages,
                max_n: self.positive(&path.key("max_n"), raw.max_n, d.max_n),
                max_tokens: raw
                    .max_tokens
                    .map(|t| self.positive(&path.key("max_tokens"), Some(t), 1)),
                allow_logit_bias: raw.allow_logit_bias.unwrap_or(d.allow_logit_bias),
                allow_logprobs: raw.allow_logprobs.unwrap_or(d.allow_logprobs),
                allow_logit_bias_with_logprobs: raw
                    .allow_logit_bias_with_logprobs
                    .unwrap_or(d.allow_logit_bias_with_logprobs),
                max_top_logprobs: match raw.max_top_logprobs {
                    Some(m) if m > 20 => {
                        self.issue(
                            &path.key("max_top_logprobs"),
                            "must be at most 20 (the protocol's own limit)",
                        );
                        d.max_top_logprobs
                    }
                    Some(m) => m,
                    None => d.max_top_logprobs,
                },
                allow_tools: raw.allow_tools.unwrap_or(d.allow_tools),
                max_inputs,
            }))
        } else {
            let mut inputs = Vec::new();
            for (i, r) in raw.inputs.iter().enumerate() {
                let p = path.key("inputs").index(i);
                if let (Some(lo), Some(hi)) = (r.min, r.max)
                    && lo > hi
                {
                    self.issue(&p.key("min"), "must not be greater than `max`");
                }
                inputs.push(InputRule {
                    name: r.name.clone(),
                    datatype: r.datatype.clone(),
                    shape: r.shape.clone(),
                    min: r.min,
                    max: r.max,
                });
            }
            Some(Validation::Kserve(KserveRules {
                inputs,
                only_listed: raw.only_listed_inputs.unwrap_or(false),
                max_elements: raw
                    .max_elements
                    .map(|m| self.positive(&path.key("max_elements"), Some(m), 1)),
            }))
        }
    }

    fn output(&mut self, path: &KeyPath, route: &str, protocol: Protocol, raw: &RawOutput) -> OutputHardening {
        use rampart_watch::harden::{MAX_DECIMALS, Mechanism, Noise, Policy};
        match protocol {
            Protocol::Kserve if raw.path.is_some() => {
                self.issue(&path.key("path"), "KServe routes name their output tensors in `outputs`");
            }
            Protocol::Json if raw.path.is_none() => self.issue(
                path,
                format!("route \"{route}\": a JSON route needs `path`, where the probability rows are (e.g. \"predictions[*].probabilities\")"),
            ),
            Protocol::Json if !raw.outputs.is_empty() => {
                self.issue(&path.key("outputs"), "names KServe output tensors; JSON routes use `path`");
            }
            Protocol::Http => self.issue(
                path,
                format!(
                    "route \"{route}\": output hardening reads classifier outputs (`protocol = \"kserve\"` or \"json\") or OpenAI answers (`protocol = \"openai\"`)"
                ),
            ),
            _ => {}
        }
        if protocol == Protocol::Openai {
            return self.llm_output(path, raw);
        }
        for (key, set) in [
            ("logprobs", raw.logprobs.is_some()),
            ("top_logprobs", raw.top_logprobs.is_some()),
            ("embedding_noise", raw.embedding_noise.is_some()),
        ] {
            if set {
                self.issue(&path.key(key), "applies to OpenAI routes (`protocol = \"openai\"`)");
            }
        }
        let json_path = self.json_path(path, raw.path.as_deref());
        let top_k = raw.top_k.and_then(|k| {
            if k == 0 {
                self.issue(&path.key("top_k"), "must be at least 1");
            }
            usize::try_from(k).ok()
        });
        if raw.decimals.is_some_and(|d| d > MAX_DECIMALS) {
            self.issue(&path.key("decimals"), format!("must be at most {MAX_DECIMALS}"));
        }
        let noise = raw.noise.as_ref().map(|n| {
            let p = path.key("noise");
            let mechanism = match n.mechanism.unwrap_or_default() {
                NoiseMechanism::Laplace => Mechanism::Laplace,
                NoiseMechanism::Gaussian => Mechanism::Gaussian,
            };
            if !(n.epsilon.is_finite() && n.epsilon > 0.0) {
                self.issue(&p.key("epsilon"), "must be a number greater than zero");
            }
            let delta = match (mechanism, n.delta) {
                (Mechanism::Laplace, Some(_)) => {
                    self.issue(
                        &p.key("delta"),
                        "the Laplace mechanism has no δ; `mechanism = \"gaussian\"` takes one",
                    );
                    0.0
                }
                (Mechanism::Laplace, None) => 0.0,
                (Mechanism::Gaussian, Some(d)) if d > 0.0 && d < 1.0 => d,
                (Mechanism::Gaussian, _) => {
                    self.issue(&p.key("delta"), "the Gaussian mechanism needs 0 < delta < 1");
                    1e-5
                }
            };
            Noise {
                mechanism,
                epsilon: n.epsilon,
                delta,
            }
        });
        let label_only = raw.label_only.unwrap_or(false);
        if label_only && (noise.is_some() || top_k.is_some() || raw.decimals.is_some()) {
            self.issue(
                &path.key("label_only"),
                "releases the label alone: `noise`, `top_k` and `decimals` would do nothing",
            );
        }
        let budget = raw.budget.as_ref().map(|b| {
            let p = path.key("budget");
            match &noise {
                None => self.issue(&p, "a privacy budget is spent by noisy answers: it needs `noise`"),
                Some(n) if b.epsilon < n.epsilon => self.issue(
                    &p.key("epsilon"),
                    "is smaller than one answer's `noise.epsilon`: every answer would be refused",
                ),
                Some(n) if b.delta.unwrap_or(0.0) < n.delta => self.issue(
                    &p.key("delta"),
                    "must be at least one answer's `noise.delta` (the Gaussian mechanism spends δ too)",
                ),
                _ => {}
            }
            if !(b.epsilon.is_finite() && b.epsilon > 0.0) {
                self.issue(&p.key("epsilon"), "must be a number greater than zero");
            }
            PrivacyBudget {
                epsilon: b.epsilon,
                delta: b.delta.unwrap_or(0.0),
                window: self.duration(&p.key("window"), &b.window, defaults::PRIVACY_WINDOW),
                when_spent: b.when_spent.unwrap_or_default(),
                backend: self.limit_backend(&p.key("backend"), b.backend, self.has_redis),
            }
        });
        OutputHardening {
            policy: Policy {
                label_only,
                noise,
                top_k,
                decimals: raw.decimals,
                allow_label_change: raw.allow_label_change.unwrap_or(false),
            },
            outputs: raw.outputs.clone(),
            path: json_path,
            budget,
            llm: None,
        }
    }

    /// The `path` key of the table at `path`, parsed; an issue when it does not parse.
    fn json_path(&mut self, path: &KeyPath, raw: Option<&str>) -> Option<rampart_watch::tensor::JsonPath> {
        raw.and_then(|p| match rampart_watch::tensor::JsonPath::parse(p) {
            Ok(jp) => Some(jp),
            Err(e) => {
                self.issue(&path.key("path"), e.to_string());
                None
            }
        })
    }

    /// `[routes.output]` on an OpenAI route: logprobs and embeddings only.
    fn llm_output(&mut self, path: &KeyPath, raw: &RawOutput) -> OutputHardening {
        for (key, set) in [
            ("label_only", raw.label_only.is_some()),
            ("top_k", raw.top_k.is_some()),
            ("noise", raw.noise.is_some()),
            ("allow_label_change", raw.allow_label_change.is_some()),
            ("outputs", !raw.outputs.is_empty()),
            ("path", raw.path.is_some()),
            ("budget", raw.budget.is_some()),
        ] {
            if set {
                self.issue(
                    &path.key(key),
                    "applies to classifier routes; OpenAI routes take `logprobs`, `top_logprobs`, `decimals` and `embedding_noise`",
                );
            }
        }
        if raw.decimals.is_some_and(|d| d > rampart_watch::harden::MAX_DECIMALS) {
            self.issue(
                &path.key("decimals"),
                format!("must be at most {}", rampart_watch::harden::MAX_DECIMALS),
            );
        }
        if raw.top_logprobs.is_some_and(|k| k > 20) {
            self.issue(
                &path.key("top_logprobs"),
                "must be at most 20 (the protocol's own limit)",
            );
        }
        if let Some(s) = raw.embedding_noise
            && !(s.is_finite() && s > 0.0)
        {
            self.issue(&path.key("embedding_noise"), "must be a number greater than zero");
        }
        let strip = raw.logprobs == Some(crate::raw::LogprobsMode::Strip);
        if strip && raw.top_logprobs.is_some() {
            self.issue(
                &path.key("top_logprobs"),
                "`logprobs = \"strip\"` leaves no alternatives to cap",
            );
        }
        let llm = rampart_watch::llm::LlmPolicy {
            strip_logprobs: strip,
            top_logprobs: raw.top_logprobs.and_then(|k| usize::try_from(k).ok()),
            decimals: raw.decimals,
            embedding_noise: raw.embedding_noise,
        };
        if !llm.changes_anything() {
            self.issue(
                path,
                "changes nothing: set `logprobs = \"strip\"`, `top_logprobs`, `decimals` or `embedding_noise`",
            );
        }
        OutputHardening {
            policy: rampart_watch::harden::Policy::passthrough(),
            outputs: Vec::new(),
            path: None,
            budget: None,
            llm: Some(llm),
        }
    }

    fn route_watch(&mut self, path: &KeyPath, route: &str, protocol: Protocol, raw: &RawRouteWatch) -> RouteWatch {
        use rampart_watch::extraction::ExtractionConfig;
        if protocol == Protocol::Openai {
            for (key, set) in [
                ("reference", raw.reference.is_some()),
                ("input", raw.input.is_some()),
                ("path", raw.path.is_some()),
                ("extraction", raw.extraction.is_some()),
                ("out_of_distribution", raw.out_of_distribution.is_some()),
                ("window", raw.window.is_some()),
                ("min_queries", raw.min_queries.is_some()),
                ("false_alarm", raw.false_alarm.is_some()),
                ("low_margin", raw.low_margin.is_some()),
            ] {
                if set {
                    self.issue(
                        &path.key(key),
                        "applies to classifier routes; OpenAI routes watch drift (`drift`, `drift_window`, `drift_threshold`)",
                    );
                }
            }
        } else if !matches!(protocol, Protocol::Kserve | Protocol::Json) {
            self.issue(
                path,
                format!("route \"{route}\": the detectors read KServe or JSON model inputs, or OpenAI prompts (`protocol = \"kserve\"`, \"json\" or \"openai\")"),
            );
        }
        match protocol {
            Protocol::Kserve if raw.path.is_some() => {
                self.issue(&path.key("path"), "KServe routes name their input tensor in `input`");
            }
            Protocol::Json if raw.input.is_some() => {
                self.issue(
                    &path.key("input"),
                    "names a KServe input tensor; JSON routes use `path`",
                );
            }
            Protocol::Json if raw.path.is_none() && raw.reference.is_some() => self.issue(
                path,
                "a JSON route needs `path`, where the feature rows are (e.g. \"instances[*]\")",
            ),
            _ => {}
        }
        let json_path = self.json_path(path, raw.path.as_deref());
        let reference = raw.reference.as_deref().and_then(|file| {
            let p = path.key("reference");
            let full = self.file_path(&p, file);
            let text = std::fs::read_to_string(&full).ok()?;
            match serde_json::from_str::<rampart_watch::reference::Reference>(&text) {
                Ok(r) => match r.check() {
                    Ok(()) => Some(std::sync::Arc::new(r)),
                    Err(e) => {
                        self.issue(&p, format!("`{}`: {e}", full.display()));
                        None
                    }
                },
                Err(e) => {
                    self.issue(
                        &p,
                        format!(
                            "`{}` is not a reference (line {}, column {}): {e}",
                            full.display(),
                            e.line(),
                            e.column()
                        ),
                    );
                    None
                }
            }
        });
        let positive = |v: &mut Self, key: &str, x: Option<usize>, default: usize| {
            let x = x.unwrap_or(default);
            if x == 0 {
                v.issue(&path.key(key), "must be at least 1");
            }
            x.max(1)
        };
        let window = positive(self, "window", raw.window, defaults::WATCH_WINDOW);
        let min_queries = positive(self, "min_queries", raw.min_queries, defaults::WATCH_MIN_QUERIES);
        if min_queries > window {
            self.issue(&path.key("min_queries"), format!("must not exceed `window` ({window})"));
        }
        let drift_window = positive(self, "drift_window", raw.drift_window, defaults::DRIFT_WINDOW);
        let mut fraction = |key: &str, x: Option<f64>, default: f64, range: std::ops::RangeInclusive<f64>| {
            let x = x.unwrap_or(default);
            if !range.contains(&x) || x == *range.start() {
                self.issue(
                    &path.key(key),
                    format!("must be greater than {} and at most {}", range.start(), range.end()),
                );
            }
            x
        };
        let alpha = fraction("false_alarm", raw.false_alarm, defaults::WATCH_FALSE_ALARM, 0.0..=0.1);
        let low_margin = fraction("low_margin", raw.low_margin, defaults::LOW_MARGIN, 0.0..=1.0);
        let drift_threshold = fraction(
            "drift_threshold",
            raw.drift_threshold,
            defaults::DRIFT_THRESHOLD,
            0.0..=100.0,
        );
        RouteWatch {
            reference,
            input: raw.input.clone(),
            path: json_path,
            extraction: ExtractionConfig {
                window,
                min_queries,
                alpha,
                low_margin,
            },
            drift_window,
            drift_threshold,
            on_extraction: raw.extraction.unwrap_or(rampart_watch::signal::Action::Alert),
            on_out_of_distribution: raw.out_of_distribution.unwrap_or_default(),
            on_drift: raw.drift.unwrap_or(rampart_watch::signal::Action::Alert),
        }
    }

    fn oversight(&mut self, path: &KeyPath, raw: Option<&RawOversight>, audit: Option<&Audit>) -> Oversight {
        let empty = RawOversight::default();
        let raw = raw.unwrap_or(&empty);
        let store = match (&raw.path, &raw.postgres) {
            (Some(_), Some(_)) => {
                self.issue(path, "set `path` (one node) or `postgres` (a fleet), not both");
                OversightStore::Memory
            }
            // Created at first start, like the audit directory.
            (Some(p), None) => {
                let full = self.dir_path(p);
                if full.is_dir() {
                    self.issue(
                        &path.key("path"),
                        format!("`{}` is a directory; name the journal file", full.display()),
                    );
                }
                OversightStore::File(full)
            }
            (None, Some(url)) => {
                OversightStore::Postgres(Secret::new(self.secret(&path.key("postgres"), url).unwrap_or_default()))
            }
            // Beside the audit trail: where it is, oversight state is too.
            (None, None) => match audit {
                Some(a) => match &a.postgres {
                    Some(url) => OversightStore::Postgres(url.clone()),
                    None => OversightStore::File(a.dir.join(defaults::OVERSIGHT_FILE)),
                },
                None => OversightStore::Memory,
            },
        };
        let hold = &raw.hold;
        let hp = path.key("hold");
        let max_reviews = raw.max_reviews.unwrap_or(defaults::MAX_REVIEWS);
        if max_reviews == 0 {
            self.issue(&path.key("max_reviews"), "must be at least 1");
        }
        let max_held = hold.max_held.unwrap_or(defaults::MAX_HELD);
        if max_held > max_reviews {
            self.issue(&hp.key("max_held"), "cannot be more than `max_reviews`");
        }
        Oversight {
            store,
            sync_interval: self.duration(&path.key("sync_interval"), &raw.sync_interval, defaults::OVERSIGHT_SYNC),
            max_reviews,
            max_held,
            hold_timeout: self.duration(&hp.key("timeout"), &hold.timeout, defaults::HOLD_TIMEOUT),
            on_timeout: hold.on_timeout.unwrap_or_default(),
        }
    }

    fn watch(&mut self, path: &KeyPath, raw: &RawWatch) -> Watch {
        use rampart_watch::signal::Action;
        let b = &raw.behaviour;
        let bp = path.key("behaviour");
        let rate_factor = b.rate_factor.unwrap_or(defaults::RATE_FACTOR);
        if !(rate_factor.is_finite() && rate_factor > 1.0) {
            self.issue(&bp.key("rate_factor"), "must be a number greater than 1");
        }
        for (key, v) in [
            ("denied_per_minute", b.denied_per_minute),
            ("refusals", b.refusals),
            ("rate_floor", b.rate_floor),
        ] {
            if v == Some(0) {
                self.issue(&bp.key(key), "must be at least 1");
            }
        }
        if b.refusals.is_some_and(|r| r > 20) {
            self.issue(&bp.key("refusals"), "counts among the last 20 exchanges: at most 20");
        }
        let webhook = raw.webhook.as_ref().map(|w| {
            let p = path.key("webhook");
            let url = match w.url.parse::<Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => u,
                _ => {
                    self.issue(&p.key("url"), format!("`{}` is not an http:// or https:// URL", w.url));
                    Uri::default()
                }
            };
            let secret = self.secret(&p.key("secret"), &w.secret).unwrap_or_default();
            if secret.len() < 16 && !self.issues.iter().any(|i| i.key.starts_with(&p.key("secret").render())) {
                self.issue(&p.key("secret"), "must be at least 16 bytes: it signs every alert");
            }
            let queue = w.queue.unwrap_or(defaults::WEBHOOK_QUEUE);
            if queue == 0 {
                self.issue(&p.key("queue"), "must be at least 1");
            }
            Webhook {
                url,
                secret: Secret::new(secret),
                timeout: self.duration(&p.key("timeout"), &w.timeout, defaults::WEBHOOK_TIMEOUT),
                retries: w.retries.unwrap_or(defaults::WEBHOOK_RETRIES).min(20),
                queue: queue.max(1),
            }
        });
        Watch {
            alert_cooldown: self.duration(
                &path.key("alert_cooldown"),
                &raw.alert_cooldown,
                defaults::ALERT_COOLDOWN,
            ),
            penalty: self.duration(&path.key("penalty"), &raw.penalty, defaults::WATCH_PENALTY),
            throttle_per_minute: raw.throttle_per_minute.unwrap_or(defaults::THROTTLE_PER_MINUTE).max(1),
            principals: raw.principals.unwrap_or(defaults::WATCH_PRINCIPALS).max(10),
            alert_log: raw.alert_log.unwrap_or(false),
            backend: self.limit_backend(&path.key("backend"), raw.backend, self.has_redis),
            behaviour: rampart_watch::behaviour::BehaviourConfig {
                rate_factor,
                rate_floor: b.rate_floor.unwrap_or(defaults::RATE_FLOOR).max(1),
                token_floor: b.token_floor.unwrap_or(defaults::TOKEN_FLOOR).max(1),
                denied_per_minute: b.denied_per_minute.unwrap_or(defaults::DENIED_PER_MINUTE).max(1),
                refusals: b.refusals.unwrap_or(defaults::REFUSALS).clamp(1, 20),
            },
            rate_spike: b.rate_spike.unwrap_or(Action::Alert),
            token_spike: b.token_spike.unwrap_or(Action::Alert),
            denied_burst: b.denied_burst.unwrap_or(Action::Alert),
            refusals: b.on_refusals.unwrap_or(Action::Alert),
            webhook,
        }
    }

    fn traces(&mut self, path: &KeyPath, raw: &crate::raw::RawTraces) -> Traces {
        use crate::raw::OtlpProtocol;
        let protocol = raw.protocol.unwrap_or_default();
        let endpoint = raw.endpoint.as_ref().and_then(|text| {
            let p = path.key("endpoint");
            let uri = match text.parse::<Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => u,
                _ => {
                    self.issue(&p, format!("`{text}` is not an http:// or https:// URL"));
                    return None;
                }
            };
            if uri.query().is_some() {
                self.issue(&p, "takes no query string");
                return None;
            }
            let bare = matches!(uri.path(), "" | "/");
            match protocol {
                // As OTEL_EXPORTER_OTLP_ENDPOINT: a bare base gets the signal's path.
                OtlpProtocol::HttpProtobuf if bare => format!("{}/v1/traces", text.trim_end_matches('/')).parse().ok(),
                OtlpProtocol::HttpProtobuf => Some(uri),
                OtlpProtocol::Grpc if bare => format!(
                    "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    text.trim_end_matches('/')
                )
                .parse()
                .ok(),
                OtlpProtocol::Grpc => {
                    self.issue(
                        &p,
                        "a gRPC endpoint is the collector's base URL, `http(s)://host:4317`, without a path",
                    );
                    None
                }
            }
        });
        let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            self.issue(&path.key("sample_ratio"), "must be between 0.0 and 1.0");
        }
        let service_name = raw.service_name.clone().unwrap_or_else(|| "rampart".to_owned());
        if service_name.is_empty() || service_name.len() > 128 {
            self.issue(&path.key("service_name"), "must be 1 to 128 characters");
        }
        let mut headers = Vec::new();
        for (name, secret) in &raw.headers {
            let hp = path.key("headers").key(name);
            let header = match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h)
                    if !matches!(
                        h.as_str(),
                        "host" | "content-type" | "content-length" | "te" | "connection" | "transfer-encoding"
                    ) =>
                {
                    h
                }
                _ => {
                    self.issue(&hp, "is not a header the exporter may set");
                    continue;
                }
            };
            if let Some(value) = self.secret(&hp, secret) {
                if HeaderValue::from_str(&value).is_err() {
                    self.issue(&hp, "the secret is not a valid header value");
                    continue;
                }
                headers.push((header, Secret::new(value)));
            }
        }
        let queue = raw.queue.unwrap_or(defaults::TRACE_QUEUE);
        let batch = raw.batch.unwrap_or(defaults::TRACE_BATCH);
        if queue == 0 || batch == 0 {
            self.issue(path, "`queue` and `batch` must be at least 1");
        } else if batch > queue {
            self.issue(&path.key("batch"), "cannot be larger than `queue`");
        }
        let interval = self.duration(&path.key("interval"), &raw.interval, defaults::TRACE_INTERVAL);
        if interval.is_zero() {
            self.issue(&path.key("interval"), "must be longer than zero");
        }
        Traces {
            endpoint,
            protocol,
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
            parent_sampled: raw.parent_sampled.unwrap_or_default(),
            service_name,
            headers,
            ca: raw.ca.as_deref().map(|f| self.file_path(&path.key("ca"), f)),
            queue: queue.max(1),
            batch: batch.clamp(1, queue.max(1)),
            interval,
            timeout: self.duration(&path.key("timeout"), &raw.timeout, defaults::TRACE_TIMEOUT),
            stages: raw.stages.unwrap_or(true),
        }
    }

    fn policy(&mut self, path: &KeyPath, name: &str, raw: &crate::raw::RawPolicy) -> ContentPolicy {
        use crate::raw::ContentAction;
        let min_confidence = raw.min_confidence.unwrap_or(defaults::MIN_CONFIDENCE);
        if !(0.0..=1.0).contains(&min_confidence) {
            self.issue(&path.key("min_confidence"), "must be between 0 and 1");
        }
        let mut rules = |direction: &str, map: &BTreeMap<String, ContentAction>| {
            let mut out = Vec::new();
            for (selector, action) in map {
                let known = selector == "*"
                    || selector == "pii.*"
                    || selector == "secret.*"
                    || rampart_detect::Kind::from_name(selector).is_some();
                if !known {
                    let names: Vec<&str> = rampart_detect::Kind::ALL.iter().map(|k| k.name()).collect();
                    self.issue(
                        &path.key(direction).key(selector),
                        format!(
                            "unknown kind; use `*`, `pii.*`, `secret.*` or one of: {}",
                            names.join(", ")
                        ),
                    );
                }
                if direction == "response" && *action == ContentAction::Hold {
                    self.issue(
                        &path.key(direction).key(selector),
                        "`hold` applies to requests (they wait before reaching the model); use `review` to have answers reviewed after the fact",
                    );
                }
                if direction == "response" && *action == ContentAction::Pseudonymise {
                    self.issue(
                        &path.key(direction).key(selector),
                        "`pseudonymise` applies to requests; responses restore the request's placeholders",
                    );
                }
                out.push((selector.clone(), *action));
            }
            out
        };
        let request = rules("request", &raw.request);
        let response = rules("response", &raw.response);
        let uses_hash = request.iter().chain(&response).any(|(_, a)| *a == ContentAction::Hash);
        let hash_key = match &raw.hash_key {
            Some(r) => self.secret(&path.key("hash_key"), r).map(Secret::new),
            None => None,
        };
        if uses_hash && raw.hash_key.is_none() {
            self.issue(
                &path.key("hash_key"),
                "the `hash` action needs a `hash_key` secret ({ env = … } or { file = … })",
            );
        }
        let injection = raw.injection.as_ref().map(|inj| {
            let action = inj.action.unwrap_or(ContentAction::Block);
            if !matches!(
                action,
                ContentAction::Block | ContentAction::Flag | ContentAction::Hold | ContentAction::Review
            ) {
                self.issue(
                    &path.key("injection").key("action"),
                    "must be `block`, `flag`, `hold` or `review`",
                );
            }
            if inj.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
                self.issue(&path.key("injection").key("threshold"), "must be between 0 and 1");
            }
            (action, inj.threshold)
        });
        let injection_review = raw.injection.as_ref().and_then(|inj| {
            let p = path.key("injection");
            match (inj.review, inj.review_threshold) {
                (None, None) => None,
                (Some(a @ (ContentAction::Hold | ContentAction::Review)), Some(t)) => {
                    if !(0.0..=1.0).contains(&t) {
                        self.issue(&p.key("review_threshold"), "must be between 0 and 1");
                    }
                    if inj.threshold.is_some_and(|top| t >= top) {
                        self.issue(
                            &p.key("review_threshold"),
                            "must be below `threshold`: the band from here up to `threshold` goes to reviewers",
                        );
                    }
                    Some((a, t))
                }
                (Some(ContentAction::Hold | ContentAction::Review), None) => {
                    self.issue(
                        &p.key("review_threshold"),
                        "`review` needs the score where the band starts",
                    );
                    None
                }
                (Some(_), _) => {
                    self.issue(&p.key("review"), "must be `hold` or `review`");
                    None
                }
                (None, Some(_)) => {
                    self.issue(
                        &p.key("review"),
                        "`review_threshold` needs `review = \"hold\"` or `\"review\"`",
                    );
                    None
                }
            }
        });
        let injection_scope = match raw.injection.as_ref().and_then(|i| i.scope.as_ref()) {
            Some(scope) => {
                for (i, item) in scope.iter().enumerate() {
                    if !crate::model::INJECTION_SCOPES.contains(&item.as_str()) {
                        self.issue(
                            &path.key("injection").key("scope").index(i),
                            format!("must be one of: {}", crate::model::INJECTION_SCOPES.join(", ")),
                        );
                    }
                }
                scope.clone()
            }
            None => crate::model::INJECTION_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        };
        ContentPolicy {
            injection,
            injection_review,
            injection_scope,
            fail_open: raw.fail_open.unwrap_or(false),
            name: name.to_owned(),
            min_confidence,
            shadow: raw.shadow.unwrap_or(false),
            request,
            response,
            canary: raw.canary.unwrap_or(false),
            hash_key,
            max_response_bytes: self.positive(
                &path.key("max_response_bytes"),
                raw.max_response_bytes,
                defaults::MAX_INSPECTED_RESPONSE_BYTES,
            ),
        }
    }

    fn route(&mut self, path: &KeyPath, raw: &RawRoute, upstreams: &[Upstream], base: (Limits, Timeouts)) -> Route {
        if (raw.tokens.tokenizer.is_some() || raw.tokens.request_usage.is_some())
            && raw.protocol != Some(Protocol::Openai)
        {
            self.issue(
                &path.key("tokens"),
                format!(
                    "route \"{}\": token counting settings need `protocol = \"openai\"`",
                    raw.name
                ),
            );
        }
        let matcher = match (&raw.path, &raw.path_prefix) {
            (Some(p), None) => PathMatch::Exact(p.clone()),
            (None, Some(p)) => PathMatch::Prefix(p.clone()),
            _ => {
                self.issue(
                    path,
                    format!("route \"{}\": set exactly one of `path` or `path_prefix`", raw.name),
                );
                PathMatch::Exact(String::new())
            }
        };
        if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &matcher
            && !p.is_empty()
            && !p.starts_with('/')
        {
            let key = if raw.path.is_some() { "path" } else { "path_prefix" };
            self.issue(&path.key(key), format!("route \"{}\": must start with `/`", raw.name));
        }
        let mut methods = Vec::new();
        for (i, m) in raw.methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(method) => methods.push(method),
                Err(_) => self.issue(&path.key("methods").index(i), format!("`{m}` is not an HTTP method")),
            }
        }
        let upstream = match upstreams.iter().position(|u| u.name == raw.upstream) {
            Some(i) => i,
            None => {
                let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                self.issue(
                    &path.key("upstream"),
                    format!(
                        "route \"{}\": no upstream named \"{}\" (known: {})",
                        raw.name,
                        raw.upstream,
                        known.join(", ")
                    ),
                );
                0
            }
        };
        Route {
            name: raw.name.clone(),
            path: matcher,
            hosts: raw.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            listeners: raw.listeners.clone(),
            methods,
            upstream,
            protocol: raw.protocol.unwrap_or_default(),
            public: raw.public.unwrap_or(false),
            tenant: raw.tenant.clone(),
            forward_credentials: raw.forward_credentials.unwrap_or(false),
            allow_ips: self.cidrs(&path.key("allow_ips"), &raw.allow_ips),
            deny_ips: self.cidrs(&path.key("deny_ips"), &raw.deny_ips),
            limits: self.limits(&path.key("limits"), &raw.limits, base.0),
            timeouts: self.timeouts(&path.key("timeouts"), &raw.timeouts, base.1),
            tokenizer: raw.tokens.tokenizer.unwrap_or_default(),
            request_usage: raw.tokens.request_usage.unwrap_or(true),
            policy: raw.policy.clone(),
            capture_payloads: raw.capture_payloads.unwrap_or(false),
            output: raw
                .output
                .as_ref()
                .map(|o| self.output(&path.key("output"), &raw.name, raw.protocol.unwrap_or_default(), o)),
            watch: raw.watch.as_ref().map(|w| {
                let protocol = raw.protocol.unwrap_or_default();
                self.route_watch(&path.key("watch"), &raw.name, protocol, w)
            }),
            model: raw.model.as_ref().map(|m| {
                let p = path.key("model");
                let digest_ok = m
                    .manifest_digest
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !digest_ok {
                    self.issue(
                        &p.key("manifest_digest"),
                        "must be `sha256:` and 64 hex digits, as `rampart sign` prints it",
                    );
                }
                if m.public_key.is_some() && m.manifest.is_none() {
                    self.issue(&p.key("public_key"), "only used with `manifest`");
                }
                ModelPin {
                    version: m.version.clone(),
                    manifest_digest: m.manifest_digest.to_ascii_lowercase(),
                    manifest: m.manifest.as_deref().map(|f| self.file_path(&p.key("manifest"), f)),
                    public_key: m.public_key.as_deref().map(|f| self.file_path(&p.key("public_key"), f)),
                }
            }),
            validation: self.validation(&path.key("validation"), raw),
            json_schema: self.json_schema(&path.key("validation").key("json_schema"), raw),
        }
    }

    fn identity(&mut self, path: &KeyPath, raw: &RawIdentity) -> Identity {
        let pepper = raw.pepper.as_ref().and_then(|p| {
            let value = self.secret(&path.key("pepper"), p)?;
            if value.len() < defaults::MIN_PEPPER_BYTES {
                self.issue(
                    &path.key("pepper"),
                    format!(
                        "must be at least {} bytes (e.g. `openssl rand -hex 32`)",
                        defaults::MIN_PEPPER_BYTES
                    ),
                );
            }
            Some(Secret::new(value.into_bytes()))
        });
        let api_keys = raw.api_keys.as_ref().map(|k| {
            let kp = path.key("api_keys");
            if raw.pepper.is_none() {
                self.issue(&path.key("pepper"), "is required when api_keys is set");
            }
            let store = match (&k.file, &k.postgres) {
                (Some(f), None) => {
                    let p = Path::new(f);
                    KeyStoreConfig::File(if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        self.env.base_dir.join(p)
                    })
                }
                (None, Some(pg)) => {
                    KeyStoreConfig::Postgres(Secret::new(self.secret(&kp.key("postgres"), pg).unwrap_or_default()))
                }
                _ => {
                    self.issue(&kp, "set exactly one of `file` or `postgres`");
                    KeyStoreConfig::File(PathBuf::new())
                }
            };
            // The file may not exist yet (`rampart keys create` makes it); the gateway
            // refuses to start without it.
            let names: Vec<String> = match &k.headers {
                Some(h) => h.clone(),
                None => defaults::API_KEY_HEADERS.iter().map(|s| s.to_string()).collect(),
            };
            let mut headers = Vec::new();
            for (i, n) in names.iter().enumerate() {
                match HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()) {
                    Ok(h) => headers.push(h),
                    Err(_) => self.issue(&kp.key("headers").index(i), format!("`{n}` is not a header name")),
                }
            }
            ApiKeys {
                store,
                headers,
                reload_interval: self.duration(
                    &kp.key("reload_interval"),
                    &k.reload_interval,
                    defaults::KEY_RELOAD_INTERVAL,
                ),
            }
        });
        let mut jwt = Vec::new();
        for (i, raw) in raw.jwt.iter().enumerate() {
            if let Some(issuer) = self.jwt_issuer(&path.key("jwt").index(i), raw) {
                jwt.push(issuer);
            }
        }
        let client_certs = raw.client_certs.as_ref().map(|c| {
            c.subjects
                .iter()
                .map(|s| CertSubject {
                    pattern: s.pattern.clone(),
                    tenant: s.tenant.clone(),
                    roles: s.roles.clone(),
                })
                .collect()
        });
        Identity {
            pepper,
            api_keys,
            jwt,
            client_certs,
        }
    }

    fn jwt_issuer(&mut self, path: &KeyPath, raw: &RawJwtIssuer) -> Option<JwtIssuer> {
        use rampart_identity::jwt::{Alg, MAX_LEEWAY_SECS};
        if raw.audiences.is_empty() {
            self.issue(
                &path.key("audiences"),
                "list at least one audience the tokens must name in `aud`",
            );
        }
        if raw.algorithms.is_empty() {
            self.issue(
                &path.key("algorithms"),
                format!(
                    "list the algorithms your identity provider signs with: {}",
                    Alg::NAMES.join(", ")
                ),
            );
        }
        let mut algorithms = Vec::new();
        for (i, a) in raw.algorithms.iter().enumerate() {
            match Alg::parse(a) {
                Some(alg) => algorithms.push(alg),
                None => self.issue(
                    &path.key("algorithms").index(i),
                    format!(
                        "`{a}` is not accepted; use {} (HMAC and `none` are refused by design)",
                        Alg::NAMES.join(", ")
                    ),
                ),
            }
        }
        let jwks = match (&raw.jwks_url, &raw.jwks_file) {
            (Some(url), None) => match url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => JwksSource::Url(u),
                _ => {
                    self.issue(&path.key("jwks_url"), format!("`{url}` is not an http(s) URL"));
                    return None;
                }
            },
            (None, Some(file)) => JwksSource::File(self.file_path(&path.key("jwks_file"), file)),
            _ => {
                self.issue(path, "set exactly one of `jwks_url` or `jwks_file`");
                return None;
            }
        };
        let leeway = match &raw.leeway {
            Some(text) => match duration::parse(text) {
                Ok(d) if d.as_secs() as i64 <= MAX_LEEWAY_SECS => d,
                Ok(_) => {
                    self.issue(&path.key("leeway"), format!("must be at most {MAX_LEEWAY_SECS}s"));
                    defaults::JWT_LEEWAY
                }
                Err(m) => {
                    self.issue(&path.key("leeway"), m);
                    defaults::JWT_LEEWAY
                }
            },
            None => defaults::JWT_LEEWAY,
        };
        let refresh_interval = self.duration(
            &path.key("refresh_interval"),
            &raw.refresh_interval,
            defaults::JWKS_REFRESH_INTERVAL,
        );
        let max_stale = self.duration(&path.key("max_stale"), &raw.max_stale, defaults::JWKS_MAX_STALE);
        if refresh_interval >= max_stale {
            self.issue(
                &path.key("refresh_interval"),
                "must be shorter than max_stale, or cached keys expire between two refreshes",
            );
        }
        Some(JwtIssuer {
            issuer: raw.issuer.clone(),
            audiences: raw.audiences.clone(),
            algorithms,
            jwks,
            ca: raw.ca.as_deref().map(|p| self.file_path(&path.key("ca"), p)),
            leeway,
            subject_claim: raw.subject_claim.clone().unwrap_or_else(|| "sub".into()),
            tenant_claim: raw.tenant_claim.clone(),
            roles_claim: raw.roles_claim.clone(),
            refresh_interval,
            min_refresh_interval: self.duration(
                &path.key("min_refresh_interval"),
                &raw.min_refresh_interval,
                defaults::JWKS_MIN_REFRESH_INTERVAL,
            ),
            max_stale,
        })
    }

    fn cidrs(&mut self, path: &KeyPath, raw: &[String]) -> Vec<Cidr> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let c = Cidr::parse(text);
                if c.is_none() {
                    self.issue(
                        &path.index(i),
                        format!("`{text}` is not an address or network like `10.0.0.0/8`"),
                    );
                }
                c
            })
            .collect()
    }

    /// A limit's backend (local by default); `redis` needs a `[redis]` section.
    fn limit_backend(&mut self, path: &KeyPath, backend: Option<LimitBackend>, has_redis: bool) -> LimitBackend {
        let backend = backend.unwrap_or_default();
        if backend == LimitBackend::Redis && !has_redis {
            self.issue(path, "`redis` needs a [redis] section with the server's url");
        }
        backend
    }

    fn limit_routes(&mut self, path: &KeyPath, routes: &[String], known: &[RawRoute]) {
        for (i, r) in routes.iter().enumerate() {
            if !known.iter().any(|k| &k.name == r) {
                self.issue(&path.index(i), format!("no route named \"{r}\""));
            }
        }
    }

    fn unique_names<'n>(&mut self, table: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            let path = KeyPath::default().key(table).index(i).key("name");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                self.issue(
                    &path,
                    format!("`{name}` must be non-empty and use only letters, digits, `-`, `_`, `.`"),
                );
            }
            if !seen.insert(name) {
                self.issue(&path, format!("the name \"{name}\" is used twice"));
            }
        }
    }
}

/// Validates a parsed raw config. `file` is the name used in error messages.
pub fn validate(raw: &RawConfig, source: &str, file: &str, env: &Environment<'_>) -> Result<Config, ConfigError> {
    let mut v = Validator {
        file,
        locator: Locator::new(source),
        env,
        issues: Vec::new(),
        has_redis: raw.redis.is_some(),
    };
    let root = KeyPath::default();

    let server = Server {
        node_id: v.node_id(&root.key("server").key("node_id"), raw.server.node_id.as_ref()),
        shutdown_grace: v.duration(
            &root.key("server").key("shutdown_grace"),
            &raw.server.shutdown_grace,
            defaults::SHUTDOWN_GRACE,
        ),
        access_log: raw.server.access_log.unwrap_or(true),
        workers: v.positive(
            &root.key("server").key("workers"),
            raw.server.workers,
            defaults::workers(),
        ),
        limit_keys: v.positive(
            &root.key("server").key("limit_keys"),
            raw.server.limit_keys,
            defaults::LIMIT_KEYS,
        ),
        watch_config: raw.server.watch_config.as_ref().map(|_| {
            v.duration(
                &root.key("server").key("watch_config"),
                &raw.server.watch_config,
                Duration::ZERO,
            )
        }),
    };
    let admin = Admin {
        listen: if raw.admin.enabled.unwrap_or(true) {
            let text = raw.admin.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN);
            v.socket_addr(&root.key("admin").key("listen"), text)
        } else {
            None
        },
        public_metrics: raw.admin.public_metrics.unwrap_or(false),
        console: {
            let c = raw.admin.console.as_ref();
            let cp = root.key("admin").key("console");
            let none = None;
            let idle = v.duration(
                &cp.key("session_idle"),
                c.map_or(&none, |c| &c.session_idle),
                defaults::SESSION_IDLE,
            );
            let max = v.duration(
                &cp.key("session_max"),
                c.map_or(&none, |c| &c.session_max),
                defaults::SESSION_MAX,
            );
            if idle > max {
                v.issue(&cp.key("session_idle"), "cannot be longer than `session_max`");
            }
            let oidc = c.and_then(|c| c.oidc.as_ref()).map(|o| {
                let op = cp.key("oidc");
                let redirect_url = match o.redirect_url.parse::<Uri>() {
                    Ok(u) if matches!(u.scheme_str(), Some("http" | "https"))
                        && u.host().is_some()
                        && u.path() == "/console/oidc/callback" =>
                    {
                        u
                    }
                    _ => {
                        v.issue(
                            &op.key("redirect_url"),
                            "must be this console's callback URL: http(s)://HOST[:PORT]/console/oidc/callback",
                        );
                        Uri::default()
                    }
                };
                if !o.issuer.starts_with("https://") && !o.issuer.starts_with("http://") {
                    v.issue(&op.key("issuer"), "must be the provider's issuer URL");
                }
                if !raw.identity.jwt.iter().any(|j| j.issuer == o.issuer && j.audiences.contains(&o.client_id)) {
                    v.issue(
                        &op.key("issuer"),
                        "the console checks the ID token like any bearer token: add an [[identity.jwt]] for this issuer whose `audiences` include `client_id`",
                    );
                }
                let mut scopes = o.scopes.clone().unwrap_or_else(|| vec!["openid".into()]);
                if !scopes.iter().any(|s| s == "openid") {
                    scopes.insert(0, "openid".into());
                }
                ConsoleOidc {
                    issuer: o.issuer.trim_end_matches('/').to_owned(),
                    client_id: o.client_id.clone(),
                    client_secret: o
                        .client_secret
                        .as_ref()
                        .and_then(|s| v.secret(&op.key("client_secret"), s))
                        .map(Secret::new),
                    redirect_url,
                    scopes,
                    name: o.name.clone().unwrap_or_else(|| "single sign-on".into()),
                    ca: o.ca.as_deref().map(|f| v.file_path(&op.key("ca"), f)),
                }
            });
            Console {
                enabled: c.and_then(|c| c.enabled).unwrap_or(true),
                session_idle: idle,
                session_max: max,
                oidc,
            }
        },
    };
    if admin.public_metrics && admin.listen.is_some_and(|a| !a.ip().is_loopback()) {
        v.issue(
            &root.key("admin").key("public_metrics"),
            "is only allowed when admin.listen is a loopback address",
        );
    }
    let identity = v.identity(&root.key("identity"), &raw.identity);
    let mut roles = std::collections::BTreeMap::new();
    for (name, role) in &raw.roles {
        let rp = root.key("roles").key(name);
        let mut actions = Vec::new();
        for (i, a) in role.actions.iter().enumerate() {
            match rampart_identity::Action::parse(a) {
                Some(action) => actions.push(action),
                None => v.issue(
                    &rp.key("actions").index(i),
                    format!(
                        "`{a}` is not an action; use {}",
                        rampart_identity::Action::NAMES.join(", ")
                    ),
                ),
            }
        }
        roles.insert(
            name.clone(),
            RoleConfig {
                routes: role.routes.clone(),
                models: role.models.clone(),
                actions,
            },
        );
    }

    v.unique_names("listeners", raw.listeners.iter().map(|l| l.name.as_str()));
    v.unique_names("upstreams", raw.upstreams.iter().map(|u| u.name.as_str()));
    v.unique_names("routes", raw.routes.iter().map(|r| r.name.as_str()));
    if raw.listeners.is_empty() {
        v.issue(&root.key("listeners"), "at least one [[listeners]] entry is required");
    }
    if raw.routes.is_empty() {
        v.issue(
            &root.key("routes"),
            "at least one [[routes]] entry is required; unmatched requests get 404",
        );
    }

    let listeners: Vec<Listener> = raw
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| v.listener(&root.key("listeners").index(i), l))
        .collect();
    let mut addrs = HashSet::new();
    for (i, l) in listeners.iter().enumerate() {
        if l.addr.port() != 0 && !addrs.insert(l.addr) {
            v.issue(
                &root.key("listeners").index(i).key("listen"),
                format!("{} is used by two listeners", l.addr),
            );
        }
    }

    let upstreams: Vec<Upstream> = raw
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| v.upstream(&root.key("upstreams").index(i), u))
        .collect();

    let dp = root.key("defaults");
    let base_limits = v.limits(
        &dp.key("limits"),
        &raw.defaults.limits,
        Limits {
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_json_depth: defaults::MAX_JSON_DEPTH,
        },
    );
    let base_timeouts = v.timeouts(
        &dp.key("timeouts"),
        &raw.defaults.timeouts,
        Timeouts {
            first_byte: defaults::FIRST_BYTE_TIMEOUT,
            total: defaults::TOTAL_TIMEOUT,
            idle: defaults::IDLE_TIMEOUT,
        },
    );
    let routes: Vec<Route> = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            v.route(
                &root.key("routes").index(i),
                r,
                &upstreams,
                (base_limits, base_timeouts),
            )
        })
        .collect();
    for (i, r) in raw.routes.iter().enumerate() {
        for (j, name) in r.listeners.iter().enumerate() {
            if !listeners.iter().any(|l| &l.name == name) {
                let known: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                v.issue(
                    &root.key("routes").index(i).key("listeners").index(j),
                    format!("no listener named \"{name}\" (known: {})", known.join(", ")),
                );
            }
        }
    }

    let mut rate_limits = Vec::new();
    for (i, r) in raw.rate_limits.iter().enumerate() {
        let p = root.key("rate_limits").index(i);
        v.limit_routes(&p.key("routes"), &r.routes, &raw.routes);
        let requests = v.positive(&p.key("requests"), Some(r.requests), 1);
        let window = v.duration(&p.key("window"), &Some(r.window.clone()), Duration::from_secs(60));
        let backend = v.limit_backend(&p.key("backend"), r.backend, raw.redis.is_some());
        rate_limits.push(RateLimit {
            name: r.name.clone(),
            per: r.per,
            backend,
            on_backend_error: r.on_backend_error.unwrap_or_default(),
            requests,
            window,
            burst: v.positive(&p.key("burst"), r.burst, requests),
            routes: r.routes.clone(),
            shadow: r.shadow.unwrap_or(false),
        });
    }
    let mut concurrency_limits = Vec::new();
    for (i, c) in raw.concurrency_limits.iter().enumerate() {
        let p = root.key("concurrency_limits").index(i);
        v.limit_routes(&p.key("routes"), &c.routes, &raw.routes);
        let backend = v.limit_backend(&p.key("backend"), c.backend, raw.redis.is_some());
        concurrency_limits.push(ConcurrencyLimit {
            name: c.name.clone(),
            per: c.per,
            backend,
            on_backend_error: c.on_backend_error.unwrap_or_default(),
            max: v.positive(&p.key("max"), Some(c.max), 1),
            routes: c.routes.clone(),
            shadow: c.shadow.unwrap_or(false),
        });
    }
    let mut quotas = Vec::new();
    for (i, q) in raw.quotas.iter().enumerate() {
        let p = root.key("quotas").index(i);
        v.limit_routes(&p.key("routes"), &q.routes, &raw.routes);
        let backend = v.limit_backend(&p.key("backend"), q.backend, raw.redis.is_some());
        quotas.push(Quota {
            name: q.name.clone(),
            per: q.per,
            backend,
            on_backend_error: q.on_backend_error.unwrap_or_default(),
            requests: v.positive(&p.key("requests"), Some(q.requests), 1),
            period: q.period,
            routes: q.routes.clone(),
            shadow: q.shadow.unwrap_or(false),
        });
    }
    let mut token_limits = Vec::new();
    for (i, t) in raw.token_limits.iter().enumerate() {
        let p = root.key("token_limits").index(i);
        v.limit_routes(&p.key("routes"), &t.routes, &raw.routes);
        for r in &t.routes {
            if raw
                .routes
                .iter()
                .any(|x| &x.name == r && x.protocol != Some(Protocol::Openai))
            {
                v.issue(
                    &p.key("routes"),
                    format!("route \"{r}\" is not an OpenAI route; token limits need `protocol = \"openai\"`"),
                );
            }
        }
        let backend = v.limit_backend(&p.key("backend"), t.backend, raw.redis.is_some());
        token_limits.push(TokenLimit {
            name: t.name.clone(),
            per: t.per,
            backend,
            on_backend_error: t.on_backend_error.unwrap_or_default(),
            tokens: v.positive(&p.key("tokens"), Some(t.tokens), 1),
            window: v.duration(&p.key("window"), &Some(t.window.clone()), Duration::from_secs(60)),
            default_completion_tokens: t
                .default_completion_tokens
                .unwrap_or(defaults::DEFAULT_COMPLETION_TOKENS),
            routes: t.routes.clone(),
            shadow: t.shadow.unwrap_or(false),
        });
    }
    let mut limit_names = HashSet::new();
    let names = raw
        .rate_limits
        .iter()
        .map(|r| ("rate_limits", &r.name))
        .chain(raw.concurrency_limits.iter().map(|c| ("concurrency_limits", &c.name)))
        .chain(raw.quotas.iter().map(|q| ("quotas", &q.name)))
        .chain(raw.token_limits.iter().map(|t| ("token_limits", &t.name)));
    for (table, name) in names {
        if !limit_names.insert(name.clone()) {
            v.issue(&root.key(table), format!("the limit name \"{name}\" is used twice"));
        }
    }

    let mut policies = BTreeMap::new();
    for (name, p) in &raw.policies {
        let path = root.key("policies").key(name);
        policies.insert(name.clone(), v.policy(&path, name, p));
    }
    for (i, r) in raw.routes.iter().enumerate() {
        let Some(name) = &r.policy else { continue };
        let path = root.key("routes").index(i).key("policy");
        match raw.policies.get(name) {
            None => {
                let known: Vec<&str> = raw.policies.keys().map(String::as_str).collect();
                v.issue(
                    &path,
                    format!(
                        "no policy named \"{name}\" (known: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            Some(p) if p.canary == Some(true) && r.protocol != Some(Protocol::Openai) => v.issue(
                &path,
                format!("policy \"{name}\" sets `canary`, which needs `protocol = \"openai\"` on this route"),
            ),
            Some(_) => {}
        }
    }

    let audit = raw
        .audit
        .as_ref()
        .filter(|a| a.enabled.unwrap_or(true))
        .and_then(|a| v.audit(&root.key("audit"), a));

    for (i, r) in raw.routes.iter().enumerate() {
        if r.capture_payloads == Some(true) && audit.as_ref().is_none_or(|a| a.master_key.is_none()) {
            v.issue(
                &root.key("routes").index(i).key("capture_payloads"),
                "captured payloads are encrypted: needs [audit] with `master_key`",
            );
        }
    }

    let watch = raw.watch.as_ref().map(|w| v.watch(&root.key("watch"), w));
    let traces = raw.traces.as_ref().map(|t| v.traces(&root.key("traces"), t));
    let oversight = v.oversight(&root.key("oversight"), raw.oversight.as_ref(), audit.as_ref());

    let redis = raw.redis.as_ref().map(|r| Redis {
        url: Secret::new(v.secret(&root.key("redis").key("url"), &r.url).unwrap_or_default()),
        timeout: v.duration(&root.key("redis").key("timeout"), &r.timeout, defaults::REDIS_TIMEOUT),
    });

    if v.issues.is_empty() {
        Ok(Config {
            source: None,
            server,
            admin,
            listeners,
            upstreams,
            routes,
            identity,
            roles,
            rate_limits,
            concurrency_limits,
            quotas,
            token_limits,
            redis,
            policies,
            audit,
            watch,
            oversight,
            traces,
            digest: sha256_hex(source.as_bytes()),
        })
    } else {
        Err(ConfigError { issues: v.issues })
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
