//! The runtime built from one validated config: routes with their pools, the router,
//! the pipeline and the listeners' TLS configs. [`Gateway`] holds the current runtime
//! behind an atomic pointer; a reload builds a complete new runtime first and swaps it
//! in only if everything succeeded, so in-flight requests finish on the runtime they
//! started with and an invalid config never replaces a working one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_config::Config;
use rustls::ServerConfig;

use crate::error::InitError;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::route::RouteRuntime;
use crate::router::Router;
use crate::stages::access_log::AccessLogWriter;
use crate::upstream::Pool;

#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub router: Router,
    pub pools: Vec<Arc<Pool>>,
    pub pipeline: Arc<Pipeline>,
    pub listener_tls: HashMap<String, Arc<ServerConfig>>,
    /// `Strict-Transport-Security` per TLS listener that sends it.
    pub listener_hsts: HashMap<String, http::HeaderValue>,
    trusted_proxies: Vec<(Arc<str>, Vec<rampart_config::Cidr>)>,
    pub identity: Arc<crate::identity::IdentityRuntime>,
    /// Request limits (also used by the limit stage).
    pub limiter: Arc<rampart_limits::Limiter>,
}

impl Runtime {
    /// Builds everything a config describes, without binding sockets. Must run inside
    /// a Tokio runtime (pools start their active health checks).
    pub fn build(
        config: Config,
        metrics: &Arc<Metrics>,
        log: &AccessLogWriter,
        limits: &rampart_limits::LimitStore,
        audit: Option<&Arc<crate::audit::AuditTrail>>,
        oversight: Option<&Arc<crate::oversight::Oversight>>,
    ) -> Result<Self, InitError> {
        let mut listener_tls = HashMap::new();
        let mut listener_hsts = HashMap::new();
        for (i, l) in config.listeners.iter().enumerate() {
            if let Some(tls) = &l.tls {
                if let Some(v) = tls.hsts.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
                    listener_hsts.insert(l.name.clone(), v);
                }
                listener_tls.insert(
                    l.name.clone(),
                    crate::server::tls::server_config(&format!("listeners[{i}].tls"), tls)?,
                );
            }
        }
        let pools = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Pool::new(
                    &format!("upstreams[{i}]"),
                    u,
                    config.server.workers,
                    Arc::clone(metrics),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (index, r) in config.routes.iter().enumerate() {
            if let Some(pin) = &r.model {
                check_pin(pin).map_err(|reason| InitError::ModelPin { index, reason })?;
            }
        }
        let mut policies = HashMap::new();
        for (name, p) in &config.policies {
            policies.insert(name.clone(), Arc::new(crate::content::PolicyRuntime::build(p)?));
        }
        let counted = Arc::clone(metrics);
        let limiter = Arc::new(
            rampart_limits::Limiter::build(&config, limits, Arc::new(move || counted.limit_backend_error()))
                .map_err(|e| InitError::Keys(e.0))?,
        );
        let mut routes: Vec<Arc<RouteRuntime>> = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let Some(pool) = pools.get(r.upstream) else { continue };
            let output = match &r.output {
                Some(o) => Some(Arc::new(crate::output::OutputRuntime::build(
                    &r.name,
                    o,
                    limiter.redis(),
                )?)),
                None => None,
            };
            let principals = config
                .watch
                .as_ref()
                .map_or(rampart_config::defaults::WATCH_PRINCIPALS, |w| w.principals);
            let watch = match &r.watch {
                Some(w) => Some(Arc::new(crate::watch::RouteWatch::build(w, r.protocol, principals)?)),
                None => None,
            };
            routes.push(Arc::new(RouteRuntime {
                name: Arc::from(r.name.as_str()),
                config: r.clone(),
                pool: Arc::clone(pool),
                policy: r.policy.as_ref().and_then(|p| policies.get(p)).cloned(),
                output,
                watch,
            }));
        }
        let identity = crate::identity::IdentityRuntime::build(&config, audit.cloned())?;
        let pipeline = Arc::new(Pipeline::new(
            Arc::clone(metrics),
            log.sender(),
            &config,
            Arc::clone(&identity),
            Arc::clone(&limiter),
            rampart_limits::tokens::TokenLimiter::build(&config, limits, limiter.redis()),
            audit.cloned(),
            oversight.cloned(),
        )?);
        let trusted_proxies = config
            .listeners
            .iter()
            .filter(|l| !l.trusted_proxies.is_empty())
            .map(|l| (Arc::from(l.name.as_str()), l.trusted_proxies.clone()))
            .collect();
        metrics.certificates(&certificate_expiries(&config));
        Ok(Self {
            router: Router::new(&routes),
            config: Arc::new(config),
            pools,
            pipeline,
            listener_tls,
            listener_hsts,
            trusted_proxies,
            identity,
            limiter,
        })
    }

    fn proxies(&self, listener: &str) -> &[rampart_config::Cidr] {
        self.trusted_proxies
            .iter()
            .find(|(l, _)| &**l == listener)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    }

    /// Whether the TCP peer is a trusted proxy on this listener.
    pub fn trusts_peer(&self, listener: &str, peer: std::net::IpAddr) -> bool {
        self.proxies(listener).iter().any(|c| c.contains(peer))
    }

    /// The client's address: the peer, or behind trusted proxies the right-most
    /// X-Forwarded-For address that is not itself a trusted proxy.
    pub fn client_ip(&self, listener: &str, peer: std::net::IpAddr, headers: &http::HeaderMap) -> std::net::IpAddr {
        let proxies = self.proxies(listener);
        let trusted = |ip: std::net::IpAddr| proxies.iter().any(|c| c.contains(ip));
        let peer = peer.to_canonical();
        if !trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<std::net::IpAddr>() else { break };
            client = ip.to_canonical();
            if !trusted(client) {
                break;
            }
        }
        client
    }

    /// Ready when every pool has at least one target in rotation.
    pub fn ready(&self) -> bool {
        self.pools.iter().all(|p| p.any_available())
    }
}

/// The notAfter of every certificate the gateway presents: listeners' and upstream
/// pools' client certificates (files already loaded once by the TLS configs above).
fn certificate_expiries(config: &Config) -> Vec<(&'static str, crate::metrics::Name, i64)> {
    let name = |n: &str| crate::metrics::Name(Arc::from(n));
    let listeners = config.listeners.iter().filter_map(|l| {
        let at = crate::server::tls::leaf_not_after(&l.tls.as_ref()?.cert)?;
        Some(("listener", name(&l.name), at))
    });
    let upstreams = config.upstreams.iter().filter_map(|u| {
        let at = crate::server::tls::leaf_not_after(u.tls.client_cert.as_ref()?)?;
        Some(("upstream_client", name(&u.name), at))
    });
    listeners.chain(upstreams).collect()
}

/// A route's model pin against its manifest file: the manifest's digest must be the
/// pinned one, and its signature must verify with the configured public key.
fn check_pin(pin: &rampart_config::ModelPin) -> Result<(), String> {
    use rampart_modelscan::manifest;
    let Some(path) = &pin.manifest else { return Ok(()) };
    let key = pin
        .public_key
        .as_deref()
        .map(manifest::load_public_key)
        .transpose()
        .map_err(|e| e.to_string())?;
    let (_, digest, signed) = manifest::read_envelope(path, key.as_deref()).map_err(|e| e.to_string())?;
    if digest != pin.manifest_digest {
        return Err(format!(
            "{} has digest {digest}, not the pinned {}: the model is not the approved version",
            path.display(),
            pin.manifest_digest
        ));
    }
    if key.is_some() && !signed {
        return Err(format!(
            "{}: the signature does not verify with the configured public key",
            path.display()
        ));
    }
    Ok(())
}

/// Outcome of a reload request.
#[derive(Debug)]
pub enum ReloadError {
    NoSource,
    Config(rampart_config::ConfigError),
    Init(InitError),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoSource => f.write_str("the gateway was not started from a config file"),
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::Init(e) => write!(f, "{e}"),
        }
    }
}

/// The process-wide gateway: the current runtime plus what outlives reloads.
#[derive(Debug)]
pub struct Gateway {
    current: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLogWriter,
    /// Limit state (rates, concurrency, quotas, token budgets); survives reloads.
    limits: rampart_limits::LimitStore,
    /// The audit trail; its settings are read at start (a change needs a restart).
    pub audit: Option<Arc<crate::audit::AuditTrail>>,
    /// Stop switches and the review queue; the store is chosen at start.
    pub oversight: Arc<crate::oversight::Oversight>,
    /// Console sessions (in memory: a restart signs everyone out).
    pub console: rampart_console::Sessions,
    source: Option<PathBuf>,
    reload_lock: std::sync::Mutex<()>,
}

/// The access-log writer thread.
fn start_access_log() -> Result<AccessLogWriter, InitError> {
    AccessLogWriter::start().map_err(|e| InitError::Tls {
        key: "server.access_log".into(),
        path: "stdout".into(),
        reason: e.to_string(),
    })
}

impl Gateway {
    pub fn new(config: Config) -> Result<Arc<Self>, InitError> {
        let metrics = Arc::new(Metrics::new());
        let access_log = start_access_log()?;
        let source = config.source.clone();
        let limits = rampart_limits::LimitStore::new(config.server.limit_keys);
        let audit = match &config.audit {
            Some(a) => Some(crate::audit::AuditTrail::open(
                a,
                &config.server.node_id,
                &config.digest,
                Arc::clone(&metrics),
            )?),
            None => None,
        };
        let oversight = crate::oversight::Oversight::open(&config, audit.clone())?;
        let runtime = Runtime::build(config, &metrics, &access_log, &limits, audit.as_ref(), Some(&oversight))?;
        let console = rampart_console::Sessions::new(
            runtime.config.admin.console.session_idle,
            runtime.config.admin.console.session_max,
            rampart_console::session::MAX_SESSIONS,
        );
        Ok(Arc::new(Self {
            oversight,
            console,
            current: ArcSwap::from_pointee(runtime),
            metrics,
            access_log,
            limits,
            audit,
            source,
            reload_lock: std::sync::Mutex::new(()),
        }))
    }

    /// Everything [`Gateway::new`] checks — certificates, keys, pins, the audit
    /// settings — without opening the audit trail or anything else for writing.
    pub fn check(config: Config) -> Result<(), InitError> {
        if let Some(a) = &config.audit {
            crate::audit::AuditTrail::check(a)?;
        }
        let metrics = Arc::new(Metrics::new());
        let access_log = start_access_log()?;
        let limits = rampart_limits::LimitStore::default();
        Runtime::build(config, &metrics, &access_log, &limits, None, None).map(|_| ())
    }

    /// Refreshes the gauges that are read from state at scrape time.
    pub fn refresh_gauges(&self) {
        for (name, keys) in self.limits.key_counts() {
            self.metrics.limit_keys(&name, keys);
        }
    }

    /// The runtime new requests use.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Writes the audit trail's `stop` record and final checkpoint (after draining).
    pub fn close_audit(&self) {
        if let Some(audit) = &self.audit
            && !audit.close(Some(&self.current().config.digest))
        {
            tracing::error!(event = "audit", "the audit trail could not be sealed at shutdown");
        }
    }

    /// Re-reads the config file and swaps in the new runtime. On any error the old
    /// runtime keeps serving. `via` names who asked (`signal`, `admin_api`) for the
    /// audit trail.
    pub fn reload(&self, via: &'static str) -> Result<(), ReloadError> {
        let _serialised = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_reload();
        self.metrics.reload(result.is_ok());
        if let Some(audit) = &self.audit {
            audit.admin(
                "config_reload",
                via,
                result.is_ok(),
                Some(self.current().config.digest.clone()),
                result.as_ref().err().map(ToString::to_string),
            );
        }
        match &result {
            Ok(()) => tracing::info!(event = "config_reload", result = "success", "config reloaded"),
            Err(e) => tracing::error!(
                event = "config_reload",
                result = "failure",
                error = %e,
                "config reload rejected; the previous config keeps serving"
            ),
        }
        result
    }

    fn try_reload(&self) -> Result<(), ReloadError> {
        let path = self.source.as_ref().ok_or(ReloadError::NoSource)?;
        let config = rampart_config::load(path).map_err(ReloadError::Config)?;
        let old = self.current();
        let changed: Vec<&str> = config
            .listeners
            .iter()
            .filter(|l| {
                !old.config
                    .listeners
                    .iter()
                    .any(|o| o.name == l.name && o.addr == l.addr && o.tls.is_some() == l.tls.is_some())
            })
            .map(|l| l.name.as_str())
            .collect();
        if !changed.is_empty() || config.listeners.len() != old.config.listeners.len() {
            tracing::warn!(
                listeners = ?changed,
                "listener addresses changed; they take effect at the next restart (routes, upstreams, limits and certificates are reloaded now)"
            );
        }
        if config.audit.is_some() != self.audit.is_some() {
            tracing::warn!("audit settings changed; they take effect at the next restart");
        }
        let runtime = Runtime::build(
            config,
            &self.metrics,
            &self.access_log,
            &self.limits,
            self.audit.as_ref(),
            Some(&self.oversight),
        )
        .map_err(ReloadError::Init)?;
        self.oversight.reconfigure(&runtime.config);
        self.current.store(Arc::new(runtime));
        Ok(())
    }
}
