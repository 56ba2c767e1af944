//! Rampart's configuration. Owns the TOML schema (`raw`, every table denying unknown
//! keys), validation into the runtime types (`model`), the defaults (`defaults`, each a
//! named constant with its reason) and error reporting that names file, line and key.
//! It never opens sockets or starts anything; the gateway consumes [`Config`].

pub mod defaults;
pub mod duration;
mod error;
mod locate;
pub mod model;
pub mod raw;
mod secret;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigIssue};
pub use locate::{KeyPath, Locator};
pub use model::*;
pub use secret::Secret;
pub use validate::{Environment, sha256_hex, validate};

/// Parses and validates config text. `file` names the source in errors; relative
/// paths resolve against `base_dir`.
pub fn from_str(source: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(source).map_err(|e| {
        let line = e.span().map(|s| {
            source.as_bytes()[..s.start.min(source.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        ConfigError {
            issues: vec![ConfigIssue {
                file: file.to_owned(),
                line,
                key: String::new(),
                message: e.message().trim().to_owned(),
            }],
        }
    })?;
    let var = |name: &str| std::env::var(name).ok();
    let env = Environment {
        base_dir: base_dir.to_path_buf(),
        var: &var,
    };
    validate(&raw, source, file, &env)
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let source =
        std::fs::read_to_string(path).map_err(|e| ConfigError::file(&file, format!("cannot read the file: {e}")))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = from_str(&source, &file, &base_dir)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}
