//! `gate-node`: the Raspberry Pi gate daemon and its CLI. Parses arguments,
//! reads the config and calls the library; all behaviour lives there.
//!
//! Exit codes: 0 success (`check`, `scan`: admitted); 1 an error (bad
//! config, unreadable image, store failure, missing required hardware); 2 a
//! usage error (clap); 3 no QR code in the image (`decode`, `check
//! --image`, `scan --image`); 4 rejected (`check`, `scan`; the output says
//! why).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gate_node::config::Config;
use gate_node::daemon;
use gate_node::engine::{Engine, ScanReport};
use gate_node::source::ScanSource;
use gate_node::store::Store;
use gate_node::time::{SystemClock, TimeSource};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `decode` / `check --image` / `scan --image`: the image holds no
/// readable QR code.
const EXIT_NO_CODE: u8 = 3;
/// `scan`: the ticket was rejected.
const EXIT_REJECTED: u8 = 4;

#[derive(Parser, Debug)]
#[command(
    name = "gate-node",
    version,
    about = "Gatehouse gate node: offline admission, peer and cloud sync"
)]
struct Cli {
    /// TOML config file (then `GATE_` environment variables apply).
    #[arg(long, short, global = true, env = "GATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enroll this node with the cloud using an enrollment code.
    Enroll {
        /// Cloud base URL.
        #[arg(long)]
        cloud: String,
        /// Enrollment code from the organizer.
        #[arg(long)]
        code: String,
        /// Device name shown to the organizer.
        #[arg(long, default_value = "gate-node")]
        name: String,
    },
    /// Provision this node offline from a JSON bundle (keys, policy, manifest).
    Provision {
        /// Bundle file.
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Apply a signed manifest or delta file to the store.
    Import {
        /// A full signed manifest.
        #[arg(long, conflicts_with = "delta", required_unless_present = "delta")]
        manifest: Option<PathBuf>,
        /// A signed delta.
        #[arg(long)]
        delta: Option<PathBuf>,
    },
    /// Run the gate daemon.
    Run,
    /// Print the node's state from its store.
    Status,
    /// Print the text of the QR code(s) in one image (exit 3 if none).
    Decode {
        /// Image file.
        #[arg(long)]
        image: PathBuf,
    },
    /// Admit or refuse one image or text as the gate does: the decision
    /// is recorded in the scan log (scanning the same ticket twice refuses
    /// the second time as already inside). Exit 0 admit, 4 reject, 3 no QR
    /// code in the image.
    Scan(ScanArgs),
    /// Decide on one image or text without recording anything (what
    /// `scan` would answer now). Exit codes as `scan`.
    Check(ScanArgs),
    /// Print the effective configuration.
    PrintConfig,
}

#[derive(clap::Args, Debug)]
struct ScanArgs {
    /// Image file with a QR code.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    image: Option<PathBuf>,
    /// Scanned text.
    #[arg(long)]
    text: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Enroll { cloud, code, name } => enroll(&config, &cloud, &code, &name),
        Command::Provision { bundle } => provision(&config, &bundle),
        Command::Import { manifest, delta } => import(&config, manifest, delta),
        Command::Run => run(config),
        Command::Status => status(&config),
        Command::Decode { image } => decode(&config, &image),
        Command::Scan(args) => scan(&config, args, true),
        Command::Check(args) => scan(&config, args, false),
        Command::PrintConfig => {
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn random_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("drawing a device key from the OS RNG: {e}"))?;
    Ok(seed)
}

fn open_store(config: &Config) -> Result<Store> {
    Store::open_in(&config.data_dir)
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))
}

/// The store of an enrolled or provisioned node, never created: commands
/// that only read it (`status`, `check`) or need its identity (`scan`) must
/// not leave an empty `gate.db` behind (e.g. in `/var/lib/gatehouse` when
/// run without `--config`).
fn open_existing_store(config: &Config) -> Result<Store> {
    let path = config.data_dir.join("gate.db");
    if !path.exists() {
        bail!(
            "no gate store at {}: this node is not enrolled yet (run `gate-node -c gate.toml enroll` or `provision`), \
             or the config names another data_dir (pass --config, or set data_dir / GATE_DATA_DIR)",
            path.display()
        );
    }
    open_store(config)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn enroll(config: &Config, cloud: &str, code: &str, name: &str) -> Result<ExitCode> {
    gate_node::cloud::check_base_url(cloud)?;
    let store = Arc::new(open_store(config)?);
    if let Some(id) = store.identity() {
        bail!(
            "already enrolled as node {} for event {}",
            id.node_id,
            id.event_id
        );
    }
    let seed = random_seed()?;
    runtime()?.block_on(async {
        let client = gate_node::cloud::CloudClient::new(cloud, None, Duration::from_secs(30))?;
        let answer = client
            .enroll(code, name, &seed)
            .await
            .context("enrolling")?;
        let bundle = gate_node::provision::Bundle {
            cloud_url: Some(cloud.to_owned()),
            ..answer
        };
        let (identity, certs) = bundle
            .identity(seed)
            .map_err(|e| gate_node::cloud::CloudError::BadResponse(e.to_string()))?;
        store
            .provision(&identity, &certs)
            .context("storing the identity")?;
        println!(
            "enrolled as node {} for event {} at gate {:?}",
            identity.node_id, identity.event_id, identity.gate
        );
        let client = gate_node::cloud::CloudClient::new(
            cloud,
            identity.device_token.clone(),
            Duration::from_secs(60),
        )?;
        match client.manifest(&identity.event_id).await {
            Ok(fetched) => {
                store
                    .apply_retirements(&fetched.retirements)
                    .context("applying the key retirements")?;
                let applied = store
                    .apply_manifest(&fetched.bytes)
                    .context("applying the manifest")?;
                println!(
                    "manifest version {} ({} tickets)",
                    applied.to, applied.entries
                );
            }
            Err(e) => eprintln!("warning: no manifest yet ({e}); `run` fetches it"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn provision(config: &Config, bundle: &Path) -> Result<ExitCode> {
    let text = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let b: gate_node::provision::Bundle =
        serde_json::from_slice(&text).context("parsing the bundle")?;
    let store = open_store(config)?;
    gate_node::provision::import(&store, &b, random_seed()?)?;
    let info = store.manifest_info()?;
    println!(
        "provisioned node {} for event {} (manifest version {}, {} tickets)",
        b.node_id, b.event_id, info.version, info.entries
    );
    Ok(ExitCode::SUCCESS)
}

fn import(config: &Config, manifest: Option<PathBuf>, delta: Option<PathBuf>) -> Result<ExitCode> {
    let store = open_store(config)?;
    let applied = match (manifest, delta) {
        (Some(p), _) => store
            .apply_manifest(&std::fs::read(&p)?)
            .context("manifest refused")?,
        (None, Some(p)) => store
            .apply_delta(&std::fs::read(&p)?)
            .context("delta refused")?,
        (None, None) => bail!("give --manifest or --delta"),
    };
    println!(
        "manifest version {} -> {} ({} entries written)",
        applied.from, applied.to, applied.entries
    );
    Ok(ExitCode::SUCCESS)
}

fn run(config: Config) -> Result<ExitCode> {
    let actuator = gate_node::actuator::from_config(config.gpio.as_ref(), config.require_gpio)
        .context(if config.require_gpio {
            "gate hardware is required (require_gpio = true): on a machine without GPIO set \
             require_gpio = false and remove [gpio], as in images/gate-node/gate.desktop.toml"
        } else {
            "setting up the gate hardware"
        })?;
    // The error names the source, its cause once, and the key to change.
    let source = ScanSource::from_config(&config.source)?;
    runtime()?.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        daemon::run(
            config,
            Arc::new(SystemClock::new()),
            actuator,
            source,
            shutdown,
            |addr| {
                let line = serde_json::json!({"event": "listening", "addr": addr.to_string()});
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            },
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn status(config: &Config) -> Result<ExitCode> {
    let store = open_existing_store(config)?;
    let id = store.require_identity()?;
    let out = serde_json::json!({
        "node_id": id.node_id,
        "event_id": id.event_id,
        "gate": id.gate,
        "policy": id.policy,
        "zone_name": id.zone_name,
        "cloud_url": id.cloud_url,
        "manifest": store.manifest_info()?,
        "records": store.record_count()?,
        "pending": store.cloud_backlog()?,
        "double_admissions": store.double_admissions(100)?,
        "last_known_time": store.hlc_last()?,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// The QR texts in `image`, read within the frame sources' size limits with
/// the configured decoder.
fn read_qr(config: &Config, image: &Path) -> Result<Vec<String>> {
    let decoder = gate_node::decode::configured_decoder(
        &config.source.decoder,
        config.source.decode_attempts,
    )
    .context("the configured decoder is not in this build")?;
    gate_node::frames::decode_image_file(image, decoder.as_ref())
        .with_context(|| format!("reading image {}", image.display()))
}

fn decode(config: &Config, image: &Path) -> Result<ExitCode> {
    let texts = read_qr(config, image)?;
    if texts.is_empty() {
        eprintln!("no QR code found in {}", image.display());
        return Ok(ExitCode::from(EXIT_NO_CODE));
    }
    for t in texts {
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

fn scan(config: &Config, args: ScanArgs, record: bool) -> Result<ExitCode> {
    let ScanArgs { image, text, json } = args;
    let text = match (text, image) {
        (Some(t), _) => t,
        (None, Some(p)) => match read_qr(config, &p)?.into_iter().next() {
            Some(t) => t,
            None => {
                eprintln!("no QR code found in {}", p.display());
                return Ok(ExitCode::from(EXIT_NO_CODE));
            }
        },
        (None, None) => bail!("give --image or --text"),
    };
    let store = Arc::new(open_existing_store(config)?);
    let zone_name = store.require_identity()?.zone_name;
    let time = Arc::new(TimeSource::new(
        Arc::new(SystemClock::new()),
        config.trust_system_clock,
        store.hlc_last()?,
    ));
    let report = if record {
        Engine::new(store, time, None, 0, &config.operator)?.scan_text(&text)?
    } else {
        gate_node::engine::dry_run(&store, &time, &text)?
    };
    print_report(&report, json, zone_name.as_deref())?;
    Ok(if report.admitted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

/// Prints the decision; a `wrong_zone` refusal names the gate's zone when
/// the cloud named it.
fn print_report(report: &ScanReport, json: bool, zone_name: Option<&str>) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        match (report.reason, zone_name) {
            (None, _) => println!("ADMIT {}", report.display_name.as_deref().unwrap_or("")),
            (Some(r @ sync_protocol::Reason::WrongZone), Some(zone)) => {
                println!("REJECT {r}: the ticket does not admit to {zone:?}, the zone of this gate")
            }
            (Some(r), _) => println!("REJECT {r}"),
        }
    }
    Ok(())
}
