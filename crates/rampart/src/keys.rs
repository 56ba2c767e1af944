//! `rampart keys create|list|revoke|rotate`: manage the API key file named by a config.
//! A new key's secret is printed exactly once, on stdout, and never stored: the file
//! holds only its peppered hash. Gateways pick changes up within
//! `identity.api_keys.reload_interval`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_identity::{KeyFile, NewKey, Pepper, time};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; prints it once on stdout.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        /// Who the key is for (an application or service name).
        #[arg(long)]
        subject: String,
        #[arg(long)]
        tenant: Option<String>,
        /// A role from the config's [roles]; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Narrow to these routes (default: what the roles allow).
        #[arg(long = "route")]
        routes: Vec<String>,
        /// Narrow to these models (default: what the roles allow).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Lifetime such as 90d, 12h (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Issue an `rk_test_` key instead of `rk_live_`.
        #[arg(long)]
        test: bool,
    },
    /// List keys (never secrets or hashes).
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
    /// Issue a replacement with the same scopes; the old key keeps working for the overlap.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        /// How long the old key stays valid, e.g. 24h (default 24h).
        #[arg(long, default_value = "24h")]
        overlap: String,
    },
}

use rampart_identity::manage::KeyStoreTarget as Store;

struct Target {
    file: Store,
    pepper: Pepper,
    roles: Vec<String>,
    interval: std::time::Duration,
}

fn target(config: &Path) -> anyhow::Result<Result<Target, ExitCode>> {
    let config = match crate::load(config) {
        Ok(c) => c,
        Err(code) => return Ok(Err(code)),
    };
    let Some(api_keys) = &config.identity.api_keys else {
        bail!("the config has no [identity.api_keys] section naming a key file");
    };
    let Some(pepper) = &config.identity.pepper else {
        bail!("the config has no identity.pepper");
    };
    Ok(Ok(Target {
        file: match &api_keys.store {
            rampart_config::KeyStoreConfig::File(path) => Store::File(path.clone()),
            rampart_config::KeyStoreConfig::Postgres(url) => Store::Postgres(url.expose().clone()),
        },
        pepper: Pepper::new(pepper.expose()),
        roles: config.roles.keys().cloned().collect(),
        interval: api_keys.reload_interval,
    }))
}

/// Loads the store, applies `change`, and writes back what changed.
fn update<R>(
    t: &Target,
    change: impl FnOnce(&mut KeyFile) -> Result<R, rampart_identity::keyfile::KeyFileError>,
) -> anyhow::Result<R> {
    t.file.update(change).map_err(anyhow::Error::msg)
}

fn status(record: &rampart_identity::KeyRecord, now: i64) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record
        .expires_at
        .as_deref()
        .and_then(time::parse)
        .is_some_and(|e| now >= e)
    {
        "expired"
    } else {
        "active"
    }
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            config,
            subject,
            tenant,
            roles,
            routes,
            models,
            expires_in,
            note,
            test,
        } => {
            let t = match target(&config)? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            for r in &roles {
                if !t.roles.contains(r) {
                    bail!(
                        "role `{r}` is not defined in the config's [roles] (defined: {})",
                        t.roles.join(", ")
                    );
                }
            }
            let expires_in = match expires_in {
                Some(text) => Some(
                    time::parse_duration(&text)
                        .filter(|s| *s > 0)
                        .with_context(|| format!("--expires-in `{text}`: write e.g. 90d, 12h, 30m"))?,
                ),
                None => None,
            };
            let new = NewKey {
                subject,
                tenant,
                roles,
                routes,
                models,
                expires_in,
                note,
                test,
            };
            let (key, record) = update(&t, |file| file.create(&t.pepper, &new))?;
            println!("{}", key.expose());
            eprintln!(
                "created key {} for {} in {}; the key above is shown only now: store it in a secret manager",
                record.id,
                record.subject,
                t.file.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { config, json } => {
            let t = match target(&config)? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            let file = t.file.load().map_err(anyhow::Error::msg)?;
            let now = time::now();
            if !json {
                println!(
                    "{:<12}  {:<8}  {:<20}  {:<12}  {:<20}  {:<20}  roles",
                    "id", "status", "subject", "tenant", "created", "expires"
                );
            }
            for k in &file.keys {
                if json {
                    let v = serde_json::json!({
                        "id": k.id, "status": status(k, now), "subject": k.subject, "tenant": k.tenant,
                        "roles": k.roles, "routes": k.routes, "models": k.models, "created_at": k.created_at,
                        "expires_at": k.expires_at, "revoked_at": k.revoked_at, "rotated_from": k.rotated_from,
                    });
                    println!("{v}");
                } else {
                    println!(
                        "{:<12}  {:<8}  {:<20}  {:<12}  {:<20}  {:<20}  {}",
                        k.id,
                        status(k, now),
                        k.subject,
                        k.tenant.as_deref().unwrap_or("-"),
                        k.created_at,
                        k.expires_at.as_deref().unwrap_or("never"),
                        k.roles.join(",")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { config, id } => {
            let t = match target(&config)? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            update(&t, |file| file.revoke(&id))?;
            eprintln!(
                "revoked {id}; gateways reading {} refuse it within {} s",
                t.file.describe(),
                t.interval.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { config, id, overlap } => {
            let t = match target(&config)? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            let overlap_secs = time::parse_duration(&overlap)
                .with_context(|| format!("--overlap `{overlap}`: write e.g. 24h, 30m"))?;
            let (key, record) = update(&t, |file| file.rotate(&t.pepper, &id, overlap_secs))?;
            println!("{}", key.expose());
            eprintln!("rotated {id} → {}; {id} stays valid for {overlap}", record.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
