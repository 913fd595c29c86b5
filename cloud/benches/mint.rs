//! Minting throughput with one minter address against a real anvil (1 s
//! blocks by default): N paid tickets (box-office sales of 500 tickets per
//! transaction, each writing its mint jobs in that transaction) are minted by
//! one worker in batches. Phase 1: the worker runs during the sale; prints
//! the time from the last payment until every token is confirmed. Phase 2: a
//! backlog of N paid tickets is drained by one worker: mints per second.
//! Also gas per ticket and the payment-to-confirmed latency (p50/p99 over
//! the run, and for one lone ticket afterwards).
//!
//! ```sh
//! cargo bench -p cloud --bench mint -- --tickets 10000 [--block-time 1] [--batch 200]
//! ```
//!
//! Needs PostgreSQL (`DATABASE_URL_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`; a throwaway database is
//! created and dropped) and anvil from `scripts/setup`. Prints one
//! `BENCH mint ...` line.

mod support;

use cloud::chain::client::ChainClient;
use cloud::chain::worker::Minter;
use cloud::config::{Config, Secret};
use cloud::model::{OrderId, Role, TicketStatus, UserId, new_ticket_id};
use cloud::store::{EventRecord, NewOrder, NewTickets, TicketRecord};
use sqlx::Connection;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{ThrowawayDb, active_event, arg, now_ms, user};

const MINTER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Stops anvil at the end, also when a check fails.
struct Anvil(std::process::Child);

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn sell(state: &cloud::state::AppState, event: &EventRecord, buyer: UserId, n: i64) {
    let tier = &event.tiers[0];
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        left -= k;
        let now = now_ms();
        let tickets: Vec<TicketRecord> = (0..k)
            .map(|_| TicketRecord {
                id: new_ticket_id(),
                event_id: event.id,
                tier_id: tier.id,
                tier: tier.tier,
                zone_mask: tier.zone_mask,
                owner_id: Some(buyer),
                order_id: None,
                holder_name: "Bench".into(),
                status: TicketStatus::Issued,
                generation: 0,
                credential: None,
                price_minor: tier.price_minor,
                currency: tier.currency.clone(),
                created_at: now,
                updated_at: now,
            })
            .collect();
        let order = OrderId::new();
        let tickets = tickets
            .into_iter()
            .map(|t| TicketRecord {
                order_id: Some(order),
                ..t
            })
            .collect();
        let new = NewTickets {
            event_id: event.id,
            tier_id: tier.id,
            tickets,
            order: Some(NewOrder {
                id: order,
                buyer_id: Some(buyer),
                channel: "box_office".into(),
                payment_method: "cash".into(),
                total_minor: tier.price_minor * k,
                currency: tier.currency.clone(),
            }),
            actor: None,
            reason: "bench".into(),
        };
        state.store.create_tickets(&new, now).await.expect("sell");
    }
}

async fn done(state: &cloud::state::AppState) -> i64 {
    state
        .store
        .chain_job_counts()
        .await
        .expect("counts")
        .into_iter()
        .find(|(s, _)| s == "done")
        .map_or(0, |(_, n)| n)
}

/// Waits until `want` jobs are done; after two minutes without progress it
/// fails with what the database and the node say of the open transactions.
async fn wait_done(state: &cloud::state::AppState, chain: &ChainClient, want: i64) {
    let (mut last, mut since) = (-1, Instant::now());
    loop {
        let now = done(state).await;
        if now >= want {
            return;
        }
        if now > last {
            (last, since) = (now, Instant::now());
        }
        if since.elapsed() > Duration::from_secs(120) {
            let counts = state.store.chain_job_counts().await.expect("counts");
            let minter = format!("{:#x}", chain.minter());
            let mut open = String::new();
            for t in state.store.chain_open_txs(&minter).await.expect("open") {
                let receipt = match t.hash.parse() {
                    Ok(h) => chain.receipt(h).await.map(|r| format!("{r:?}")),
                    Err(_) => Ok("bad hash".into()),
                };
                open.push_str(&format!(
                    "\n  nonce {} {} {} error={:?} receipt={receipt:?}",
                    t.nonce, t.status, t.hash, t.error
                ));
            }
            panic!(
                "minting stalled at {now} of {want} done: jobs {counts:?}, node head {:?}, \
                 mined nonce {:?}, open transactions:{open}",
                chain.block_number().await,
                chain.mined_nonce().await,
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let n = arg("--tickets", 10_000).max(1);
    // Without `--bench` (what `cargo bench` passes; `cargo test --benches`
    // and scripts/run-doc-commands do not): a small run that checks the
    // bench works, not a figure.
    let n = if std::env::args().any(|a| a == "--bench") {
        n
    } else {
        n.min(20)
    };
    let block_time = arg("--block-time", 1).max(0);
    let batch = arg("--batch", 200).max(1);
    let db = ThrowawayDb::create("mint").await;
    let url = db.url.clone();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The package directory at run time (cargo bench sets it and runs
    // benches there), not the one baked in at build: a cached binary may
    // outlive the directory it was built from.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let bin = root.join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        bin.exists(),
        "anvil missing at {}: run scripts/setup",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--silent",
        "--gas-limit",
        "30000000",
    ]);
    if block_time > 0 {
        cmd.args(["--block-time", &block_time.to_string()]);
    }
    let _anvil = Anvil(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil"),
    );
    let rpc = format!("http://127.0.0.1:{port}");
    let probe = ChainClient::new(&rpc, 31337, &Secret::new(MINTER_KEY)).unwrap();
    for _ in 0..400 {
        if probe.check_chain_id().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut c = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    c.database.url = Secret::new(url.clone());
    c.database.max_connections = 8;
    c.auth.jwt_secret = Secret::new("bench-jwt-secret-0123456789abcdef0123");
    c.keys.master_key = Secret::new("00".repeat(32));
    c.chain.rpc_url = rpc;
    c.chain.minter_key = Secret::new(MINTER_KEY);
    c.chain.poll_ms = 100;
    c.chain.batch_size = batch as usize;
    c.chain.run_worker = false;
    let state = cloud::build_state(c).await.expect("state");

    let org = user(Role::Organizer, "Bench");
    let buyer = user(Role::Customer, "Bench");
    state.store.create_user(&org).await.unwrap();
    state.store.create_user(&buyer).await.unwrap();
    let event = active_event(
        state.store.as_ref(),
        &state.vault,
        org.id,
        "Bench Night",
        2 * n + 10,
    )
    .await;

    // Warm-up: the event's contract is deployed with the first ticket.
    let warm = tokio::spawn(Minter::new(&state).unwrap().expect("chain").run());
    sell(&state, &event, buyer.id, 1).await;
    wait_done(&state, &probe, 1).await;
    warm.abort();

    // Phase 1: the worker mints while the sale runs (it keeps up or not).
    let live = tokio::spawn(Minter::new(&state).unwrap().expect("chain").run());
    let started = Instant::now();
    sell(&state, &event, buyer.id, n).await;
    let sold = started.elapsed();
    wait_done(&state, &probe, n + 1).await;
    let after_last_payment = started.elapsed() - sold;
    live.abort();

    // Phase 2: a backlog of n paid tickets, then one worker drains it:
    // the minter's own sustained rate.
    sell(&state, &event, buyer.id, n).await;
    let drain = Instant::now();
    let worker = tokio::spawn(Minter::new(&state).unwrap().expect("chain").run());
    wait_done(&state, &probe, 2 * n + 1).await;
    let drain_secs = drain.elapsed().as_secs_f64();

    let lone = Instant::now();
    sell(&state, &event, buyer.id, 1).await;
    wait_done(&state, &probe, 2 * n + 2).await;
    let lone_ms = lone.elapsed().as_millis();
    worker.abort();

    let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
    let (gas, txs): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(gas_used), 0)::BIGINT, COUNT(*) FROM chain_txs WHERE kind = 'mint' AND status = 'confirmed'",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    let mut lat: Vec<i64> =
        sqlx::query_scalar("SELECT updated_at - created_at FROM chain_jobs WHERE status = 'done'")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    let _ = pg.close().await;
    state.store.close().await;
    println!(
        "BENCH mint backend=postgres tickets={n} block_time_s={block_time} batch={batch} mint_txs={txs} \
         sale_secs={:.1} secs_after_last_payment={:.1} backlog_drain_secs={drain_secs:.1} mints_per_s={:.1} \
         gas_per_ticket={} latency_p50_ms={} latency_p99_ms={} lone_ticket_latency_ms={lone_ms}",
        sold.as_secs_f64(),
        after_last_payment.as_secs_f64(),
        n as f64 / drain_secs,
        gas / (2 * n + 2),
        pct(0.5),
        pct(0.99),
    );
}
