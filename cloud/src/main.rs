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
