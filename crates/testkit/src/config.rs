//! Gateway configs and API keys for tests, so a test states only what its scenario
//! needs: `GatewayConfig::new().upstream("u", &url).route("chat", "/v1/", "u",
//! "openai", "public = true").build()` is a config with a free-port `main` listener and
//! an admin listener with public metrics; `with` adds any other TOML. `create_key` makes
//! a key with the real `rampart keys create`, as an operator would.

use std::fmt::Write as _;
use std::path::Path;

/// A gateway config being put together; [`GatewayConfig::build`] gives its TOML text.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    text: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayConfig {
    /// Admin on a free port (public metrics) and one listener, `main`, on a free port.
    pub fn new() -> Self {
        Self {
            text: "[admin]\nlisten = \"127.0.0.1:0\"\npublic_metrics = true\n\n\
                   [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n"
                .to_owned(),
        }
    }

    /// An upstream with one target.
    pub fn upstream(mut self, name: &str, url: &str) -> Self {
        let _ = write!(self.text, "\n[[upstreams]]\nname = \"{name}\"\ntargets = [\"{url}\"]\n");
        self
    }

    /// A prefix route; `extra` holds its other keys, one per line (`public = true`).
    pub fn route(mut self, name: &str, prefix: &str, upstream: &str, protocol: &str, extra: &str) -> Self {
        let _ = write!(
            self.text,
            "\n[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\nprotocol = \"{protocol}\"\n{extra}\n"
        );
        self
    }

    /// API keys from `keys.toml`, hashed with the pepper in `pepper` (both relative to
    /// the gateway's working directory: see [`write_pepper`]).
    pub fn api_keys(self) -> Self {
        self.with("[identity]\npepper = { file = \"pepper\" }\napi_keys = { file = \"keys.toml\", reload_interval = \"200ms\" }")
    }

    /// Any other TOML, as written.
    pub fn with(mut self, toml: &str) -> Self {
        self.text.push('\n');
        self.text.push_str(toml);
        self.text.push('\n');
        self
    }

    pub fn build(self) -> String {
        self.text
    }
}

/// Writes a test pepper to `dir/pepper`.
pub fn write_pepper(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("pepper"), "0123456789abcdef0123456789abcdef-test-pepper\n")
}

/// Creates a key with the real CLI (`rampart keys create`) for the config in `dir`;
/// returns the key, or the CLI's error output.
pub fn create_key(bin: &Path, dir: &Path, config: &str, subject: &str, roles: &[&str]) -> Result<String, String> {
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(dir)
        .args(["keys", "create", "--config", config, "--subject", subject]);
    for r in roles {
        cmd.args(["--role", r]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
