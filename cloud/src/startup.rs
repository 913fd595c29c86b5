//! What start-up tells the operator, once, at INFO (WARN for what needs
//! action): where the data lives, which backend, which keys were generated
//! (a generated `master.key` must be backed up: without it the sealed
//! signing keys are lost), the bootstrap admin, and which integrations are
//! configured. Never a secret's value.

use crate::auth::BootstrapAdmin;
use crate::config::Config;
use std::path::{Path, PathBuf};

/// A key kept in a file of the data dir.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// Its path.
    pub path: PathBuf,
    /// Whether start-up created it (it did not exist before).
    pub generated: bool,
}

/// The keys start-up read from or wrote to the data dir (none when set in
/// the configuration).
#[derive(Debug, Clone, Default)]
pub struct KeyFiles {
    /// `jwt.key`.
    pub jwt: Option<KeyFile>,
    /// `master.key`.
    pub master: Option<KeyFile>,
}

/// A key every replica must be given the same value of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedKey {
    /// Its configuration key.
    pub name: &'static str,
    /// Its environment variable.
    pub env: &'static str,
}

/// `auth.jwt_secret`.
pub const JWT_SECRET: SharedKey = SharedKey {
    name: "auth.jwt_secret",
    env: "CLOUD_AUTH__JWT_SECRET",
};
/// `keys.master_key`.
pub const MASTER_KEY: SharedKey = SharedKey {
    name: "keys.master_key",
    env: "CLOUD_KEYS__MASTER_KEY",
};

/// `auth.jwt_secret (CLOUD_AUTH__JWT_SECRET) and ...`, for messages.
pub fn key_list(keys: &[SharedKey]) -> String {
    keys.iter()
        .map(|k| format!("{} ({})", k.name, k.env))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Refuses to start a replica (see [`Config::is_replicated`]) whose JWT
/// key or master key is not configured: a key generated into (or read
/// from) its own data dir would differ from the other replicas'.
pub fn refuse_generated_keys(config: &Config) -> Result<(), crate::ServeError> {
    if !config.is_replicated() {
        return Ok(());
    }
    let mut missing = Vec::new();
    if config.auth.jwt_secret.expose().is_empty() {
        missing.push(JWT_SECRET);
    }
    if config.keys.master_key.expose().is_empty() {
        missing.push(MASTER_KEY);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let why = if config.server.replicas > 1 {
        format!("server.replicas = {}", config.server.replicas)
    } else {
        "rate_limit.store = \"redis\"".to_string()
    };
    Err(crate::ServeError::SharedKeyRequired { missing, why })
}

/// The key file `name` in `dir`, noting whether it is about to be generated.
pub fn key_file(dir: &Path, name: &str) -> KeyFile {
    let path = dir.join(name);
    KeyFile {
        generated: !path.exists(),
        path,
    }
}

/// Integrations and whether each is configured. Modules that add one
/// (chain, email, SMS) add a line here.
pub fn integrations(config: &Config) -> Vec<(&'static str, bool)> {
    vec![
        ("stripe", config.payments.stripe_enabled()),
        (
            "stripe_webhook",
            !config.payments.webhook_secret.expose().is_empty(),
        ),
    ]
}

/// Logs the start-up summary.
pub fn log(config: &Config, backend: &str, keys: &KeyFiles, admin: &BootstrapAdmin) {
    let data_dir = config.data_dir.display();
    let database = if config.database.url.expose().is_empty() {
        format!("sqlite file {}", config.data_dir.join("cloud.db").display())
    } else {
        format!("{backend} (database.url)")
    };
    tracing::info!(data_dir = %data_dir, backend, database = %database, "storage");
    for (name, key) in [
        ("auth.jwt_secret", &keys.jwt),
        ("keys.master_key", &keys.master),
    ] {
        match key {
            None => tracing::info!(key = name, "key from configuration"),
            Some(k) if k.generated => tracing::warn!(
                key = name,
                path = %k.path.display(),
                "generated a new key file (single node only; set {name} for replicas)"
            ),
            Some(k) => tracing::info!(key = name, path = %k.path.display(), "key read from file"),
        }
    }
    if let Some(k) = keys.master.as_ref().filter(|k| k.generated) {
        tracing::warn!(
            path = %k.path.display(),
            "back up master.key now: it seals every organizer and event signing key, and without it they cannot be recovered"
        );
    }
    match admin {
        BootstrapAdmin::NotConfigured => tracing::info!(
            "no bootstrap admin configured (set auth.bootstrap_admin_email and auth.bootstrap_admin_password to create the first admin)"
        ),
        BootstrapAdmin::Created(email) => {
            tracing::info!(email = %email, "bootstrap admin created")
        }
        BootstrapAdmin::Exists(email) => {
            tracing::info!(email = %email, "bootstrap admin account exists")
        }
    }
    let list = integrations(config);
    let on: Vec<&str> = list.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
    let off: Vec<&str> = list.iter().filter(|(_, c)| !*c).map(|(n, _)| *n).collect();
    tracing::info!(
        configured = %on.join(","),
        not_configured = %off.join(","),
        "integrations"
    );
}
