//! The `cloud` binary: reads configuration and runs [`cloud::serve`].

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

mod healthcheck;

/// Gatehouse cloud: identity, events and analytics, ticketing, orders and payments.
///
/// Configuration: defaults, then the TOML file (--config), then CLOUD_*
/// environment variables with `__` between levels, e.g.
/// CLOUD_DATABASE__URL=postgres://... or CLOUD_SERVER__BIND=0.0.0.0:3000.
#[derive(Debug, Parser)]
#[command(name = "cloud", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "CLOUD_CONFIG_FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Print a new random 256-bit key (for auth.jwt_secret or keys.master_key).
    Keygen,
    /// Apply the database migrations and exit (a Kubernetes init container
    /// or a release step). Safe to run from many replicas at once: they
    /// take turns on a PostgreSQL advisory lock.
    Migrate,
    /// Re-seal every secret sealed under the master key (organizer root
    /// keys, event signing keys, gossip keys, custodial wallet keys,
    /// webhook secrets) with a new master key, in one transaction. Stop every
    /// replica first; start them with the new key after. Keys are read from
    /// files (never the command line, which `ps` shows); a wrong old key
    /// changes nothing.
    Rekey {
        /// File holding the new master key (64 hex digits, e.g. from
        /// `cloud keygen > FILE`).
        #[arg(long, env = "CLOUD_REKEY_NEW_KEY_FILE")]
        new_key_file: PathBuf,
        /// File holding the current master key. Default: the configured
        /// keys.master_key (CLOUD_KEYS__MASTER_KEY), else DATA_DIR/master.key.
        #[arg(long, env = "CLOUD_REKEY_OLD_KEY_FILE")]
        old_key_file: Option<PathBuf>,
    },
    /// Probe the running service on this host (a container health check):
    /// exit 0 if `PATH` at `server.bind` answers 200, else 1.
    Healthcheck {
        /// The path to probe: /healthz (alive) or /readyz (database too).
        #[arg(long, default_value = "/healthz")]
        path: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config =
        cloud::config::Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Keygen => {
            println!("{}", cloud::generate_key()?.expose());
            Ok(())
        }
        Command::Migrate => {
            init_tracing(&config.log);
            let store = cloud::store::connect(&config.database_url(), 2)
                .await
                .context("migrating the database")?;
            store.close().await;
            tracing::info!(backend = store.backend(), "database is up to date");
            Ok(())
        }
        Command::Rekey {
            new_key_file,
            old_key_file,
        } => {
            init_tracing(&config.log);
            rekey(&config, &new_key_file, old_key_file.as_deref()).await
        }
        Command::Healthcheck { path, timeout } => {
            let addr = healthcheck::probe_addr(&config.server.bind)?;
            healthcheck::check(addr, &path, Duration::from_secs(timeout.max(1)))
        }
        Command::Serve => {
            init_tracing(&config.log);
            let listener = tokio::net::TcpListener::bind(&config.server.bind)
                .await
                .with_context(|| format!("binding {}", config.server.bind))?;
            cloud::serve(config, listener, shutdown_signal())
                .await
                .context("serving")
        }
    }
}

fn read_key(path: &std::path::Path) -> anyhow::Result<cloud::config::Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    Ok(cloud::config::Secret::new(text.trim()))
}

async fn rekey(
    config: &cloud::config::Config,
    new_file: &std::path::Path,
    old_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let old = match old_file {
        Some(p) => read_key(p)?,
        None if !config.keys.master_key.expose().is_empty() => config.keys.master_key.clone(),
        None => {
            let p = config.data_dir.join("master.key");
            if !p.exists() {
                anyhow::bail!(
                    "no current master key: keys.master_key (CLOUD_KEYS__MASTER_KEY) is not set and {} \
                     does not exist; give it with --old-key-file",
                    p.display()
                );
            }
            read_key(&p)?
        }
    };
    let new = read_key(new_file)?;
    let vault = |k: &cloud::config::Secret, which: &str| {
        cloud::crypto::KeyVault::from_hex(k).map_err(|_| {
            anyhow::anyhow!("the {which} master key must be 64 hex digits (`cloud keygen`)")
        })
    };
    let (old_vault, new_vault) = (vault(&old, "old")?, vault(&new, "new")?);
    let same = old.expose().eq_ignore_ascii_case(new.expose());
    let store = cloud::store::connect(&config.database_url(), 2)
        .await
        .context("opening the database")?;
    let result = cloud::crypto::rekey::rekey(store.as_ref(), &old_vault, &new_vault, same).await;
    store.close().await;
    let counts = result?;
    for (kind, n) in &counts {
        println!("re-sealed {n} in {}", kind.table());
    }
    println!(
        "done: start every replica with the new key as keys.master_key (CLOUD_KEYS__MASTER_KEY), \
         or replace {} with it on a single node",
        config.data_dir.join("master.key").display()
    );
    Ok(())
}

fn init_tracing(log: &cloud::config::LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
