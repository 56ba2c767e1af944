//! Validation: every problem is found, named by key and line, and worded as a fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use rampart_config::{ConfigError, PathMatch, Protocol, from_str};

const BASE: &str = r#"
[[listeners]]
name = "main"
listen = "127.0.0.1:8080"

[[upstreams]]
name = "llm"
targets = ["http://10.0.0.5:8000", "https://models.internal"]

[[routes]]
name = "chat"
path_prefix = "/v1/"
upstream = "llm"
protocol = "openai"
public = true
"#;

fn errors(text: &str) -> ConfigError {
    from_str(text, "t.toml", Path::new("/nonexistent")).expect_err("config should be invalid")
}

fn has(err: &ConfigError, key: &str, words: &str) {
    assert!(
        err.issues.iter().any(|i| i.key == key && i.message.contains(words)),
        "no issue at {key} containing {words:?} in:\n{err}"
    );
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let c = from_str(BASE, "t.toml", Path::new(".")).unwrap();
    assert_eq!(c.admin.listen.unwrap().to_string(), "127.0.0.1:9901");
    assert_eq!(c.routes[0].limits.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(c.routes[0].limits.max_json_depth, 64);
    assert_eq!(c.routes[0].timeouts.first_byte.as_secs(), 120);
    assert_eq!(c.routes[0].path, PathMatch::Prefix("/v1/".into()));
    assert_eq!(c.routes[0].protocol, Protocol::Openai);
    assert!(c.routes[0].public);
    assert!(c.listeners[0].trusted_proxies.is_empty());
    assert_eq!(c.listeners[0].max_connections_per_ip, None);
    // Ports are filled in from the scheme.
    assert_eq!(c.upstreams[0].targets[1].to_string(), "https://models.internal:443");
    assert!(c.server.workers >= 1);
}

#[test]
fn routes_are_closed_unless_public() {
    let c = from_str(&BASE.replace("public = true\n", ""), "t.toml", Path::new(".")).unwrap();
    assert!(!c.routes[0].public);
}

#[test]
fn route_overrides_inherit_the_rest_from_defaults() {
    let text = format!(
        "{BASE}timeouts.total = \"30s\"\n\n[defaults.timeouts]\nfirst_byte = \"5s\"\n[defaults.limits]\nmax_json_depth = 10\n"
    );
    let c = from_str(&text, "t.toml", Path::new(".")).unwrap();
    let t = c.routes[0].timeouts;
    assert_eq!(
        (t.first_byte.as_secs(), t.total.as_secs(), t.idle.as_secs()),
        (5, 30, 60)
    );
    assert_eq!(c.routes[0].limits.max_json_depth, 10);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = BASE
        .replace("upstream = \"llm\"", "upstream = \"nope\"")
        .replace("\"http://10.0.0.5:8000\"", "\"http://10.0.0.5:8000/v1\"")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"8080\"");
    let err = errors(&text);
    has(&err, "routes[0].upstream", "no upstream named \"nope\" (known: llm)");
    has(&err, "upstreams[0].targets[0]", "must not have a path");
    has(&err, "listeners[0].listen", "is not an address");
    assert_eq!(err.issues.len(), 3, "{err}");
    assert!(err.issues.iter().all(|i| i.line.is_some() && i.file == "t.toml"));
}

#[test]
fn structural_mistakes_are_named() {
    let dup = format!("{BASE}\n[[routes]]\nname = \"chat\"\npath = \"/x\"\nupstream = \"llm\"\n");
    has(&errors(&dup), "routes[1].name", "used twice");
    let both = BASE.replace("path_prefix = \"/v1/\"", "path_prefix = \"/v1/\"\npath = \"/v1/x\"");
    has(&errors(&both), "routes[0]", "exactly one of `path` or `path_prefix`");
    let relative = BASE.replace("path_prefix = \"/v1/\"", "path_prefix = \"v1/\"");
    has(&errors(&relative), "routes[0].path_prefix", "must start with `/`");
    let creds = BASE.replace("http://10.0.0.5:8000", "http://user:pw@10.0.0.5:8000");
    has(&errors(&creds), "upstreams[0].targets[0]", "must not carry credentials");
    let method = BASE.replace("protocol = \"openai\"", "protocol = \"openai\"\nmethods = [\"P OST\"]");
    has(&errors(&method), "routes[0].methods[0]", "is not an HTTP method");
    let no_routes = &BASE[..BASE.find("[[routes]]").unwrap()];
    has(&errors(no_routes), "routes", "at least one");
}

#[test]
fn timeouts_and_limits_are_checked() {
    let text = format!("{BASE}timeouts.first_byte = \"2m\"\ntimeouts.total = \"1m\"\nlimits.max_body_bytes = 0\n");
    let err = errors(&text);
    has(
        &err,
        "routes[0].timeouts.first_byte",
        "must not be longer than timeouts.total",
    );
    has(&err, "routes[0].limits.max_body_bytes", "must be greater than zero");
    let zero = format!("{BASE}timeouts.idle = \"0s\"\n");
    has(&errors(&zero), "routes[0].timeouts.idle", "greater than zero");
    let small = BASE.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8080\"\nmax_header_bytes = 100",
    );
    has(&errors(&small), "listeners[0].max_header_bytes", "at least 8192");
}

#[test]
fn secrets_come_from_env_or_file_and_never_show() {
    let env = BASE.replace(
        "[[routes]]",
        "headers.authorization = { env = \"RAMPART_TEST_SURELY_UNSET_VAR\" }\n\n[[routes]]",
    );
    has(&errors(&env), "upstreams[0].headers.authorization.env", "is not set");
    let both = BASE.replace(
        "[[routes]]",
        "headers.x-key = { env = \"A\", file = \"b\", prefix = \"sk-secret-prefix\" }\n\n[[routes]]",
    );
    let err = errors(&both);
    has(&err, "upstreams[0].headers.x-key", "exactly one of `env` or `file`");
    assert!(!err.to_string().contains("sk-secret-prefix"));

    let dir = std::env::temp_dir().join(format!("rampart-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key"), "s3cr3t-value\n").unwrap();
    let file = BASE.replace(
        "[[routes]]",
        "headers.authorization = { file = \"key\", prefix = \"Bearer \" }\n\n[[routes]]",
    );
    let c = from_str(&file, "t.toml", &dir).unwrap();
    let (name, value) = &c.upstreams[0].headers[0];
    assert_eq!(name, "authorization");
    assert_eq!(value.expose(), "Bearer s3cr3t-value");
    assert!(value.expose().is_sensitive());
    assert!(
        !format!("{c:?}").contains("s3cr3t"),
        "Debug of the config shows the secret"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_settings_need_their_files() {
    let text = BASE.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8080\"\ntls = { cert = \"c.pem\", key = \"k.pem\", client_auth = \"optional\" }",
    );
    let err = errors(&text);
    has(&err, "listeners[0].tls.cert", "does not exist");
    has(&err, "listeners[0].tls.key", "does not exist");
    has(&err, "listeners[0].tls.client_auth", "needs `client_ca`");
    for bad in ["31536000", "max-age=; preload", "max-age=1y", "max-age=60\\n"] {
        let text = BASE.replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:8080\"\ntls = {{ cert = \"c.pem\", key = \"k.pem\", hsts = \"{bad}\" }}"),
        );
        has(&errors(&text), "listeners[0].tls.hsts", "max-age=<seconds>");
    }
    let up = BASE.replace("[[routes]]", "tls = { client_cert = \"c.pem\" }\n\n[[routes]]");
    has(&errors(&up), "upstreams[0].tls", "both `client_cert` and `client_key`");
}

#[test]
fn syntax_errors_carry_a_line() {
    let err = errors("[[listeners]]\nname = \"a\"\nlisten = \n");
    assert_eq!(err.issues[0].line, Some(3), "{err}");
    let unknown = errors(&BASE.replace("public = true", "pubilc = true"));
    assert!(unknown.to_string().contains("unknown field `pubilc`"), "{unknown}");
    assert!(unknown.issues[0].line.is_some());
}

#[test]
fn identity_settings_are_checked() {
    let public = BASE.replace(
        "[[listeners]]",
        "[admin]\nlisten = \"0.0.0.0:9901\"\npublic_metrics = true\n\n[[listeners]]",
    );
    has(
        &errors(&public),
        "admin.public_metrics",
        "only allowed when admin.listen is a loopback address",
    );
    let no_pepper = format!("{BASE}\n[identity]\napi_keys = {{ file = \"keys.toml\" }}\n");
    has(
        &errors(&no_pepper),
        "identity.pepper",
        "is required when api_keys is set",
    );
    let both = format!("{BASE}\n[identity]\napi_keys = {{ file = \"k\", postgres = {{ env = \"X\" }} }}\n");
    has(
        &errors(&both),
        "identity.api_keys",
        "exactly one of `file` or `postgres`",
    );
    let jwt = format!(
        "{BASE}\n[[identity.jwt]]\nissuer = \"i\"\naudiences = []\nalgorithms = [\"HS256\", \"none\"]\njwks_url = \"ftp://x\"\nleeway = \"10m\"\n"
    );
    let err = errors(&jwt);
    has(&err, "identity.jwt[0].audiences", "at least one audience");
    has(&err, "identity.jwt[0].algorithms[0]", "HMAC and `none` are refused");
    has(&err, "identity.jwt[0].algorithms[1]", "is not accepted");
    has(&err, "identity.jwt[0].jwks_url", "is not an http(s) URL");
    let stale = format!(
        "{BASE}\n[[identity.jwt]]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_url = \"https://idp/jwks\"\nrefresh_interval = \"2h\"\n"
    );
    has(
        &errors(&stale),
        "identity.jwt[0].refresh_interval",
        "shorter than max_stale",
    );
    let role = format!("{BASE}\n[roles.r]\nactions = [\"infer\", \"sudo\"]\n");
    has(&errors(&role), "roles.r.actions[1]", "`sudo` is not an action");
}

#[test]
fn limits_and_networks_are_checked() {
    use rampart_config::Cidr;
    let net = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(net.contains("10.1.200.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
    assert!(
        Cidr::parse("127.0.0.0/8")
            .unwrap()
            .contains("::ffff:127.0.0.1".parse().unwrap())
    );
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
    for bad in ["10.0.0.0/33", "10.0.0", "x/8", "::/129"] {
        assert!(Cidr::parse(bad).is_none(), "{bad}");
    }
    let text = format!(
        "{BASE}deny_ips = [\"10.0.0.0/40\"]\n\n[[rate_limits]]\nname = \"a\"\nper = \"ip\"\nrequests = 0\nwindow = \"soon\"\nroutes = [\"nope\"]\n\n[[quotas]]\nname = \"a\"\nper = \"tenant\"\nrequests = 5\nperiod = \"day\"\n"
    );
    let err = errors(&text);
    has(&err, "routes[0].deny_ips[0]", "is not an address or network");
    has(&err, "rate_limits[0].requests", "greater than zero");
    has(&err, "rate_limits[0].window", "is not a duration");
    has(&err, "rate_limits[0].routes[0]", "no route named \"nope\"");
    has(&err, "quotas", "the limit name \"a\" is used twice");
    let bad_key = format!("{BASE}\n[[rate_limits]]\nname = \"b\"\nper = \"user\"\nrequests = 1\nwindow = \"1s\"\n");
    assert!(errors(&bad_key).to_string().contains("unknown variant `user`"));
}

#[test]
fn token_settings_are_checked() {
    let ok = format!(
        "{BASE}tokens = {{ tokenizer = \"o200k\", request_usage = false }}\n\n[[token_limits]]\nname = \"t\"\nper = \"tenant\"\ntokens = 1000\nwindow = \"1m\"\n"
    );
    let c = from_str(&ok, "t.toml", Path::new(".")).unwrap();
    assert_eq!(c.routes[0].tokenizer, rampart_config::Tokenizer::O200k);
    assert!(!c.routes[0].request_usage);
    assert_eq!(c.token_limits[0].backend, rampart_config::LimitBackend::Local);
    let text = format!(
        "{BASE}\n[[routes]]\nname = \"other\"\npath = \"/x\"\nupstream = \"llm\"\ntokens = {{ tokenizer = \"cl100k\" }}\n\n[[token_limits]]\nname = \"t\"\nper = \"ip\"\ntokens = 0\nwindow = \"1m\"\nbackend = \"redis\"\nroutes = [\"other\"]\n"
    );
    let err = errors(&text);
    has(&err, "routes[1].tokens", "need `protocol = \"openai\"`");
    has(&err, "token_limits[0].tokens", "greater than zero");
    has(&err, "token_limits[0].backend", "needs a [redis] section");
    has(&err, "token_limits[0].routes", "is not an OpenAI route");
    let unknown = format!("{BASE}tokens = {{ tokenizer = \"llama3\" }}\n");
    assert!(errors(&unknown).to_string().contains("unknown variant `llama3`"));
}

#[test]
fn content_policies_are_checked() {
    let ok = format!(
        "{BASE}policy = \"p\"\n\n[policies.p]\nrequest = {{ \"pii.*\" = \"pseudonymise\", \"pii.card\" = \"block\" }}\nresponse = {{ \"secret.*\" = \"redact\" }}\ncanary = true\n"
    );
    let c = from_str(&ok, "t.toml", Path::new(".")).unwrap();
    assert_eq!(c.routes[0].policy.as_deref(), Some("p"));
    let p = &c.policies["p"];
    assert!(p.canary && !p.shadow);
    assert_eq!(p.min_confidence, 0.5);
    assert_eq!(p.request.len(), 2);
    let text = format!(
        "{BASE}policy = \"nope\"\n\n[[routes]]\nname = \"j\"\npath = \"/j\"\nupstream = \"llm\"\npolicy = \"p\"\n\n[policies.p]\nmin_confidence = 2.0\nrequest = {{ \"pii.mail\" = \"redact\", \"*\" = \"hash\" }}\nresponse = {{ \"pii.email\" = \"pseudonymise\" }}\ncanary = true\n"
    );
    let err = errors(&text);
    has(&err, "routes[0].policy", "no policy named \"nope\" (known: p)");
    has(&err, "routes[1].policy", "needs `protocol = \"openai\"`");
    has(&err, "policies.p.min_confidence", "between 0 and 1");
    has(&err, "policies.p.request.pii.mail", "unknown kind");
    has(&err, "policies.p.response.pii.email", "applies to requests");
    has(&err, "policies.p.hash_key", "needs a `hash_key`");
    let bad_action = format!("{BASE}\n[policies.p]\nrequest = {{ \"*\" = \"erase\" }}\n");
    assert!(errors(&bad_action).to_string().contains("unknown variant `erase`"));
}

#[test]
fn output_hardening_is_checked() {
    let route = |protocol: &str, output: &str| {
        format!(
            "{BASE}\n[[routes]]\nname = \"clf\"\npath_prefix = \"/v2/\"\nupstream = \"llm\"\nprotocol = \"{protocol}\"\npublic = true\n[routes.output]\n{output}\n"
        )
    };
    let ok = route(
        "kserve",
        "outputs = [\"probabilities\"]\ntop_k = 2\ndecimals = 3\nnoise = { mechanism = \"gaussian\", epsilon = 0.5, delta = 1e-6 }\nbudget = { epsilon = 50.0, delta = 1e-4, window = \"1h\", when_spent = \"label_only\" }",
    );
    let c = from_str(&ok, "t.toml", Path::new(".")).unwrap();
    let o = c.routes[1].output.as_ref().unwrap();
    assert_eq!(o.policy.top_k, Some(2));
    assert_eq!(o.policy.decimals, Some(3));
    assert_eq!(o.outputs, ["probabilities"]);
    let b = o.budget.unwrap();
    assert_eq!(b.window.as_secs(), 3600);
    assert_eq!((b.epsilon, b.delta), (50.0, 1e-4));
    let json = from_str(
        &route("json", "path = \"predictions[*].probabilities\"\nlabel_only = true"),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        json.routes[1].output.as_ref().unwrap().path.as_ref().unwrap().as_str(),
        "predictions[*].probabilities"
    );

    // OpenAI routes: logprobs and embeddings, not classifier rows.
    let err = errors(&route("openai", "label_only = true"));
    has(&err, "routes[1].output.label_only", "applies to classifier routes");
    has(&err, "routes[1].output", "changes nothing");
    let llm = from_str(
        &route(
            "openai",
            "top_logprobs = 2
decimals = 3
embedding_noise = 0.01",
        ),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let p = llm.routes[1].output.as_ref().unwrap().llm.unwrap();
    assert_eq!(
        (p.strip_logprobs, p.top_logprobs, p.decimals),
        (false, Some(2), Some(3))
    );
    let err = errors(&route(
        "openai",
        "logprobs = \"strip\"\ntop_logprobs = 21\nembedding_noise = -1.0",
    ));
    has(&err, "routes[1].output.top_logprobs", "at most 20");
    has(&err, "routes[1].output.embedding_noise", "greater than zero");
    let err = errors(&route("kserve", "logprobs = \"strip\""));
    has(&err, "routes[1].output.logprobs", "OpenAI routes");
    let err = errors(&route("http", "decimals = 2"));
    has(&err, "routes[1].output", "classifier outputs");
    let err = errors(&route("json", "label_only = true"));
    has(&err, "routes[1].output", "needs `path`");
    let err = errors(&route("json", "path = \"a[\"\nlabel_only = true"));
    has(&err, "routes[1].output.path", "not a JSON path");
    let err = errors(&route(
        "kserve",
        "label_only = true\ntop_k = 0\ndecimals = 13\nnoise = { epsilon = -1.0, delta = 0.1 }\nbudget = { epsilon = 0.5 }",
    ));
    has(&err, "routes[1].output.top_k", "at least 1");
    has(&err, "routes[1].output.decimals", "at most 12");
    has(&err, "routes[1].output.noise.epsilon", "greater than zero");
    has(&err, "routes[1].output.noise.delta", "Laplace mechanism has no δ");
    has(&err, "routes[1].output.label_only", "would do nothing");
    let err = errors(&route(
        "kserve",
        "noise = { mechanism = \"gaussian\", epsilon = 1.0 }\nbudget = { epsilon = 0.5 }",
    ));
    has(&err, "routes[1].output.noise.delta", "0 < delta < 1");
    has(&err, "routes[1].output.budget.epsilon", "every answer would be refused");
    let err = errors(&route("kserve", "decimals = 2\nbudget = { epsilon = 1.0 }"));
    has(&err, "routes[1].output.budget", "needs `noise`");
    let err = errors(&format!("{BASE}validation = {{ max_top_logprobs = 21 }}\n"));
    has(&err, "routes[0].validation.max_top_logprobs", "at most 20");
}

#[test]
fn detectors_and_alerts_are_checked() {
    let dir = std::env::temp_dir().join(format!("rampart-config-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A real reference, calibrated here.
    let rows: Vec<Vec<f64>> = (0..60)
        .map(|i| {
            let x = f64::from(i);
            vec![x, (x * 7.0) % 11.0, (x * 3.0) % 5.0]
        })
        .collect();
    let mut rng = rampart_watch::rng::KeyedStream::from_seed(b"cfg").unwrap();
    let names = vec!["a".into(), "b".into(), "c".into()];
    let reference = rampart_watch::reference::Reference::calibrate(names, &rows, 8, &mut rng).unwrap();
    std::fs::write(dir.join("ref.json"), serde_json::to_string(&reference).unwrap()).unwrap();
    let mut broken = reference.clone();
    broken.mean.pop();
    std::fs::write(dir.join("broken.json"), serde_json::to_string(&broken).unwrap()).unwrap();
    std::fs::write(dir.join("garbage.json"), "{\"features\": [1, 2]}").unwrap();
    let route = |protocol: &str, watch: &str| {
        format!(
            "{BASE}\n[[routes]]\nname = \"clf\"\npath_prefix = \"/v2/\"\nupstream = \"llm\"\nprotocol = \"{protocol}\"\npublic = true\n[routes.watch]\n{watch}\n"
        )
    };
    let ok = route(
        "kserve",
        "reference = \"ref.json\"\ninput = \"x\"\nextraction = \"block\"\nout_of_distribution = \"alert\"\nwindow = 50\nmin_queries = 20",
    );
    let c = from_str(&ok, "t.toml", &dir).unwrap();
    let w = c.routes[1].watch.as_ref().unwrap();
    assert_eq!(w.reference.as_ref().unwrap().features.len(), 3);
    assert_eq!(w.on_extraction, rampart_watch::signal::Action::Block);
    assert_eq!((w.extraction.window, w.extraction.min_queries), (50, 20));
    assert!(c.watch.is_none());

    let bad = |protocol: &str, watch: &str| from_str(&route(protocol, watch), "t.toml", &dir).unwrap_err();
    has(
        &bad("kserve", "reference = \"missing.json\""),
        "routes[1].watch.reference",
        "does not exist",
    );
    has(
        &bad("kserve", "reference = \"broken.json\""),
        "routes[1].watch.reference",
        "`mean`",
    );
    has(
        &bad("kserve", "reference = \"garbage.json\""),
        "routes[1].watch.reference",
        "is not a reference",
    );
    has(
        &bad("json", "reference = \"ref.json\""),
        "routes[1].watch",
        "needs `path`",
    );
    has(&bad("http", "drift = \"alert\""), "routes[1].watch", "KServe or JSON");
    has(
        &bad("openai", "reference = \"ref.json\""),
        "routes[1].watch.reference",
        "classifier routes",
    );
    assert!(
        from_str(
            &route("openai", "drift = \"alert\"\ndrift_window = 200"),
            "t.toml",
            &dir
        )
        .is_ok()
    );
    has(
        &bad("kserve", "window = 10\nmin_queries = 20\nfalse_alarm = 0.5"),
        "routes[1].watch.min_queries",
        "must not exceed",
    );
    has(
        &bad("kserve", "false_alarm = 0.5"),
        "routes[1].watch.false_alarm",
        "at most 0.1",
    );
    assert!(
        from_str(&route("kserve", "extraction = \"explode\""), "t.toml", &dir)
            .unwrap_err()
            .to_string()
            .contains("explode")
    );

    let watch = |body: &str| format!("{BASE}\n[watch]\n{body}\n");
    let c = from_str(
        &watch(
            "alert_log = true\n[watch.behaviour]\ndenied_per_minute = 5\ndenied_burst = \"block\"\n[watch.webhook]\nurl = \"https://siem.example/hook\"\nsecret = { env = \"HOOK\" }",
        ),
        "t.toml",
        &dir,
    );
    // The secret's variable is not set in this process.
    has(&c.unwrap_err(), "watch.webhook.secret.env", "not set");
    let c = from_str(
        &watch("[watch.behaviour]\ndenied_per_minute = 5\ndenied_burst = \"block\""),
        "t.toml",
        &dir,
    )
    .unwrap();
    let w = c.watch.unwrap();
    assert_eq!(w.behaviour.denied_per_minute, 5);
    assert_eq!(w.denied_burst, rampart_watch::signal::Action::Block);
    assert_eq!(w.alert_cooldown.as_secs(), 600);
    std::fs::write(dir.join("short.secret"), "short").unwrap();
    let err = from_str(
        &watch("[watch.behaviour]\nrefusals = 30\nrate_factor = 0.5\n[watch.webhook]\nurl = \"ftp://x\"\nsecret = { file = \"short.secret\" }"),
        "t.toml",
        &dir,
    )
    .unwrap_err();
    has(&err, "watch.behaviour.refusals", "at most 20");
    has(&err, "watch.behaviour.rate_factor", "greater than 1");
    has(&err, "watch.webhook.url", "not an http:// or https:// URL");
    has(&err, "watch.webhook.secret", "at least 16 bytes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_id_is_a_plain_name_literal_or_from_the_environment() {
    let with = |id: &str| format!("[server]\nnode_id = {id}\n{BASE}");
    assert_eq!(
        from_str(BASE, "t.toml", Path::new(".")).unwrap().server.node_id,
        "rampart-1"
    );
    let c = from_str(&with("\"gw-7.eu_west\""), "t.toml", Path::new(".")).unwrap();
    assert_eq!(c.server.node_id, "gw-7.eu_west");
    // From a file (Kubernetes: the downward API's pod name), trailing newline removed.
    let dir = std::env::temp_dir().join(format!("rampart-node-id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("name"), "rampart-6d9f-x2k\n").unwrap();
    let c = from_str(&with("{ file = \"name\" }"), "t.toml", &dir).unwrap();
    assert_eq!(c.server.node_id, "rampart-6d9f-x2k");
    // It names audit files and chains: nothing that leaves the directory or hides.
    for bad in [
        "\"../../etc/cron.d/x\"",
        "\"a/b\"",
        "\".hidden\"",
        "\"\"",
        "\"two words\"",
    ] {
        has(&errors(&with(bad)), "server.node_id", "is not a node name");
    }
    std::fs::write(dir.join("bad"), "../up\n").unwrap();
    let e = from_str(&with("{ file = \"bad\" }"), "t.toml", &dir).expect_err("a path from a file is refused too");
    has(&e, "server.node_id", "is not a node name");
    has(
        &errors(&with("{ env = \"RAMPART_TEST_UNSET_NODE_ID_VARIABLE\" }")),
        "server.node_id.env",
        "is not set",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn watch_config_is_off_unless_set_and_must_be_a_duration() {
    assert_eq!(
        from_str(BASE, "t.toml", Path::new(".")).unwrap().server.watch_config,
        None
    );
    let c = from_str(
        &format!("[server]\nwatch_config = \"5s\"\n{BASE}"),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.server.watch_config, Some(std::time::Duration::from_secs(5)));
    for bad in ["\"soon\"", "\"0s\""] {
        has(
            &errors(&format!("[server]\nwatch_config = {bad}\n{BASE}")),
            "server.watch_config",
            "",
        );
    }
}

#[test]
fn traces_endpoints_ratios_and_queues_are_checked() {
    let traces = |body: &str| format!("{BASE}\n[traces]\n{body}\n");
    let c = from_str(
        &traces("endpoint = \"http://collector:4318\""),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let t = c.traces.unwrap();
    assert_eq!(t.endpoint.unwrap().to_string(), "http://collector:4318/v1/traces");
    assert_eq!((t.sample_ratio, t.queue, t.batch), (1.0, 8192, 512));
    let c = from_str(
        &traces("endpoint = \"https://collector:4317\"\nprotocol = \"grpc\""),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        c.traces.unwrap().endpoint.unwrap().path(),
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    // Without an endpoint: context only.
    assert!(
        from_str(&traces(""), "t.toml", Path::new("."))
            .unwrap()
            .traces
            .unwrap()
            .endpoint
            .is_none()
    );
    for (body, key) in [
        ("endpoint = \"ftp://collector\"", "traces.endpoint"),
        ("endpoint = \"http://c:4318/v1/traces?k=secret\"", "traces.endpoint"),
        ("endpoint = \"http://c:4317/x\"\nprotocol = \"grpc\"", "traces.endpoint"),
        ("sample_ratio = 1.5", "traces.sample_ratio"),
        ("sample_ratio = -0.1", "traces.sample_ratio"),
        ("batch = 100\nqueue = 10", "traces.batch"),
        ("interval = \"0s\"", "traces.interval"),
        ("headers = { host = { env = \"X\" } }", "traces.headers.host"),
    ] {
        has(&errors(&traces(body)), key, "");
    }
    // Mistakes the TOML reader catches name the line (18: the `[traces]` body).
    for (body, words) in [
        ("protocol = \"http/json\"", "expected `http/protobuf` or `grpc`"),
        ("sampel_ratio = 0.5", "sampel_ratio"),
    ] {
        let e = errors(&traces(body)).to_string();
        assert!(e.contains("t.toml:18:") && e.contains(words), "{e}");
    }
}
