//! Tickets on a real EVM node (anvil): purchase to a token in the buyer's
//! custodial wallet, transfers and refunds mirrored on chain, crashes
//! between signing, broadcasting and confirming, two workers on one
//! database, the node going away, a stuck transaction, wallets.

use crate::anvil::{Anvil, CHAIN_ID, HOLDER_KEY, MINTER_KEY, free_port};
use crate::common::{Backend, Session, TestApp, id};
use crate::shop::bought;
use alloy::primitives::{Address, U256};
use alloy::signers::SignerSync;
use cloud::chain::contract;
use cloud::chain::worker::Minter;
use cloud::config::{Config, Secret};
use cloud::state::AppState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

macro_rules! chain_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    };
}

fn chain_config(c: &mut Config, url: &str, run_worker: bool) {
    c.chain.rpc_url = url.into();
    c.chain.chain_id = CHAIN_ID;
    c.chain.minter_key = Secret::new(MINTER_KEY);
    c.chain.poll_ms = 50;
    c.chain.max_backoff_secs = 1;
    c.chain.run_worker = run_worker;
    c.chain.metadata_base_url = "http://127.0.0.1/nft/".into();
}

async fn spawn(backend: Backend, url: &str, run_worker: bool) -> TestApp {
    let url = url.to_string();
    TestApp::spawn(backend, move |c| chain_config(c, &url, run_worker)).await
}

/// Another process's view of the app's database: for workers the test drives.
async fn worker_state(app: &TestApp, url: &str) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    c.database.url = Secret::new(app.database_url.clone());
    c.auth.jwt_secret = Secret::new("test-jwt-secret-0123456789abcdef0123");
    c.keys.master_key = Secret::new("00".repeat(32));
    chain_config(&mut c, url, false);
    (cloud::build_state(c).await.expect("worker state"), dir)
}

fn minter(state: &AppState) -> Minter {
    Minter::new(state).unwrap().expect("a chain is configured")
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

pub(crate) async fn mint_state(app: &TestApp, who: &Session, oid: &str) -> Value {
    let (s, v) = app
        .get(&format!("/orders/{oid}/mint-transactions"), &who.access)
        .await;
    assert_eq!(s, StatusCode::OK, "mint transactions: {v}");
    v
}

pub(crate) async fn contract_of(app: &TestApp, org: &Session, eid: &str) -> Option<Address> {
    let (s, v) = app.get(&format!("/events/{eid}/chain"), &org.access).await;
    assert_eq!(s, StatusCode::OK, "event chain: {v}");
    v["contract"].as_str().map(|a| a.parse().unwrap())
}

fn token(tid: &str) -> U256 {
    contract::token_id(tid.parse().unwrap())
}

async fn custodial(app: &TestApp, who: &Session) -> (String, Address) {
    let (s, v) = app
        .get(&format!("/wallets/user/{}", who.user_id), &who.access)
        .await;
    assert_eq!(s, StatusCode::OK, "wallets: {v}");
    let w = v
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "custodial")
        .unwrap_or_else(|| panic!("a custodial wallet for {}: {v}", who.user_id));
    (id(w), w["address"].as_str().unwrap().parse().unwrap())
}

async fn owner_on_chain(anvil: &Anvil, contract: Address, tid: &str) -> Option<Address> {
    anvil
        .client(MINTER_KEY)
        .owner_of(contract, token(tid))
        .await
        .unwrap()
}

/// Mint Transfer logs (from zero) of one token, straight from the node.
pub(crate) async fn mints_of(anvil: &Anvil, contract: Address, tid: &str) -> usize {
    let c = anvil.client(MINTER_KEY);
    let head = c.block_number().await.unwrap();
    let logs = c.logs(&[contract], 0, head).await.unwrap();
    let t = token(tid);
    logs.iter()
        .filter(|l| {
            let topics = l.topics();
            topics.len() == 4 && topics[1].is_zero() && U256::from_be_bytes(topics[3].0) == t
        })
        .count()
}

pub(crate) async fn minted(app: &TestApp, who: &Session, oid: &str) -> bool {
    mint_state(app, who, oid).await["status"] == "minted"
}

async fn purchase_mints_transfers_move_and_refunds_burn(backend: Backend) {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(backend, &anvil.url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let friend = app.register("friend@example.com").await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    eventually("the order's ticket is minted", || {
        minted(&app, &buyer, &oid)
    })
    .await;
    let c = contract_of(&app, &org, &eid)
        .await
        .expect("the event has a contract");
    let (wid, waddr) = custodial(&app, &buyer).await;
    assert_eq!(
        owner_on_chain(&anvil, c, &tid).await,
        Some(waddr),
        "the buyer's custodial wallet owns the token"
    );
    assert_eq!(mints_of(&anvil, c, &tid).await, 1, "one token per ticket");
    let st = mint_state(&app, &buyer, &oid).await;
    let tx = &st["jobs"][0]["transactions"][0];
    assert_eq!(tx["status"], "confirmed", "{st}");
    let hash = tx["hash"].as_str().unwrap().parse().unwrap();
    let m = anvil
        .client(MINTER_KEY)
        .receipt(hash)
        .await
        .unwrap()
        .expect("the stored hash is on chain");
    assert_eq!(Some(m.block as i64), tx["block_number"].as_i64());

    eventually("the wallet shows the token from the index", || async {
        let (_, v) = app
            .get(&format!("/wallets/{wid}/nfts"), &buyer.access)
            .await;
        v.as_array()
            .is_some_and(|a| a.iter().any(|n| n["ticket_id"] == tid.as_str()))
    })
    .await;
    let (s, v) = app
        .get(&format!("/nft/{c:#x}/{}", token(&tid)), &buyer.access)
        .await;
    assert_eq!(s, StatusCode::OK, "metadata: {v}");
    assert!(
        v["name"].as_str().unwrap().contains("Harbour Lights"),
        "{v}"
    );

    let (s, v) = app
        .post(
            &format!("/tickets/{tid}/transfer"),
            Some(&buyer.access),
            json!({"to_user_id": friend.user_id}),
        )
        .await;
    assert!(s.is_success(), "transfer: {v}");
    eventually(
        "the friend's custodial wallet receives the token",
        || async {
            let (_, v) = app
                .get(&format!("/wallets/user/{}", friend.user_id), &friend.access)
                .await;
            let fa = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(|w| w["address"].as_str())
                .and_then(|s| s.parse::<Address>().ok());
            fa.is_some() && owner_on_chain(&anvil, c, &tid).await == fa
        },
    )
    .await;
    eventually(
        "the buyer's history shows the mint and the send",
        || async {
            let (_, v) = app
                .get(&format!("/wallets/{wid}/transactions"), &buyer.access)
                .await;
            let kinds: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(|t| t["type"].as_str()).collect())
                .unwrap_or_default();
            kinds.contains(&"mint") && kinds.contains(&"send")
        },
    )
    .await;

    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    eventually("the second ticket is minted", || {
        minted(&app, &buyer, &oid2)
    })
    .await;
    let (s, v) = app
        .put(
            &format!("/orders/{oid2}/status"),
            &org.access,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "refund: {v}");
    eventually("the refunded ticket's token is invalidated", || async {
        anvil
            .client(MINTER_KEY)
            .status_of(c, &[token(&tid2)])
            .await
            .unwrap()[0]
            .burned
    })
    .await;
    assert_eq!(owner_on_chain(&anvil, c, &tid2).await, None);

    let (s, _) = app.get(&format!("/wallets/{wid}"), &friend.access).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "only the owner and admins see a wallet"
    );
    let admin = app.admin().await;
    let (s, v) = app.get(&format!("/wallets/{wid}"), &admin.access).await;
    assert_eq!(s, StatusCode::OK, "admins see every wallet: {v}");
    assert!(
        v.get("sealed_key").is_none() && !v.to_string().contains("sealed"),
        "the key never leaves: {v}"
    );
}
chain_both!(purchase_mints_transfers_move_and_refunds_burn);

/// Lets `m` deploy the event's contract, then sign (and not send) the
/// first mint.
async fn deploy_then_sign(app: &TestApp, org: &Session, eid: &str, m: &Minter) {
    for _ in 0..400 {
        let (_, v) = app.get(&format!("/events/{eid}/chain"), &org.access).await;
        let ready = v["contract_status"] == "ready";
        let d = m.dispatch(false).await.unwrap();
        if ready && d.signed > 0 {
            return;
        }
        if !ready {
            m.track().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the contract was not deployed");
}

async fn crashes_between_sign_broadcast_and_confirm_mint_once(backend: Backend) {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(backend, &anvil.url, false).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;

    // Worker 1 deploys, then signs the mint and "crashes" before broadcasting.
    let (s1, _d1) = worker_state(&app, &anvil.url).await;
    let m1 = minter(&s1);
    deploy_then_sign(&app, &org, &eid, &m1).await;
    drop(m1);
    let st = mint_state(&app, &buyer, &oid).await;
    assert_eq!(st["jobs"][0]["status"], "sent", "{st}");
    let stored = st["jobs"][0]["transactions"][0].clone();
    assert_eq!(stored["status"], "signed", "stored before broadcast: {st}");
    let c = contract_of(&app, &org, &eid).await.unwrap();
    assert_eq!(
        owner_on_chain(&anvil, c, &tid).await,
        None,
        "nothing reached the chain"
    );

    // Worker 2 (a restart) finds the stored transaction and sends the same bytes.
    let (s2, _d2) = worker_state(&app, &anvil.url).await;
    let m2 = minter(&s2);
    assert_eq!(
        m2.dispatch(true).await.unwrap().signed,
        0,
        "the job is in flight: no new transaction"
    );
    eventually("the stored transaction is confirmed", || async {
        m2.track().await.unwrap();
        minted(&app, &buyer, &oid).await
    })
    .await;
    let st = mint_state(&app, &buyer, &oid).await;
    let txs = st["jobs"][0]["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 1, "one transaction: {st}");
    assert_eq!(
        txs[0]["hash"], stored["hash"],
        "the same bytes, the same hash"
    );
    assert_eq!(mints_of(&anvil, c, &tid).await, 1);

    // Second ticket: broadcast, then a crash before the confirmation is seen.
    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    let (s3, _d3) = worker_state(&app, &anvil.url).await;
    let m3 = minter(&s3);
    assert_eq!(m3.dispatch(true).await.unwrap().signed, 1);
    drop(m3);
    let st = mint_state(&app, &buyer, &oid2).await;
    assert_eq!(st["jobs"][0]["transactions"][0]["status"], "sent", "{st}");
    let (s4, _d4) = worker_state(&app, &anvil.url).await;
    let m4 = minter(&s4);
    eventually(
        "the broadcast transaction is confirmed after the restart",
        || async {
            m4.track().await.unwrap();
            m4.dispatch(true).await.unwrap();
            minted(&app, &buyer, &oid2).await
        },
    )
    .await;
    let st = mint_state(&app, &buyer, &oid2).await;
    assert_eq!(
        st["jobs"][0]["transactions"].as_array().unwrap().len(),
        1,
        "{st}"
    );
    assert_eq!(
        mints_of(&anvil, c, &tid2).await,
        1,
        "exactly one token per ticket"
    );
    let (_, waddr) = custodial(&app, &buyer).await;
    assert_eq!(owner_on_chain(&anvil, c, &tid2).await, Some(waddr));
}
chain_both!(crashes_between_sign_broadcast_and_confirm_mint_once);

async fn two_workers_mint_each_ticket_once(backend: Backend) {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let app = spawn(backend, &anvil.url, false).await;
    let (org, eid, first) = crate::shop::setup(&app).await;
    let buyers = [
        first,
        app.register("b2@example.com").await,
        app.register("b3@example.com").await,
    ];
    let mut orders = Vec::new();
    for i in 0..6 {
        let v = app.order(&buyers[i % 3], &eid, 1, 5).await;
        let (s, o) = app
            .put(
                &format!("/orders/{}/status", id(&v)),
                &org.access,
                json!({"status": "paid"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{o}");
        orders.push(o);
    }
    let buyer = &org;
    let (sa, _da) = worker_state(&app, &anvil.url).await;
    let (sb, _db) = worker_state(&app, &anvil.url).await;
    let a = tokio::spawn(minter(&sa).run());
    let b = tokio::spawn(minter(&sb).run());
    for o in &orders {
        eventually("every order is minted", || {
            minted(&app, buyer, o["id"].as_str().unwrap())
        })
        .await;
    }
    a.abort();
    b.abort();
    let c = contract_of(&app, &org, &eid).await.unwrap();
    let mut n = 0;
    for o in &orders {
        for t in o["ticket_ids"].as_array().unwrap() {
            assert_eq!(
                mints_of(&anvil, c, t.as_str().unwrap()).await,
                1,
                "ticket {t} minted once"
            );
            n += 1;
        }
    }
    assert_eq!(n, 30);
}
chain_both!(two_workers_mint_each_ticket_once);

async fn with_the_node_down_the_shop_sells_and_the_backlog_drains(backend: Backend) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil-state.json");
    let url = format!("http://127.0.0.1:{port}");
    let app = spawn(backend, &url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid1, _) = bought(&app, &org, &eid, &buyer).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        mint_state(&app, &buyer, &oid1).await["status"],
        "pending",
        "no node: the job waits"
    );

    let mut anvil = Anvil::start_on(port, &["--state", state.to_str().unwrap()]).await;
    eventually("the first ticket is minted once the node is up", || {
        minted(&app, &buyer, &oid1)
    })
    .await;

    anvil.stop();
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(bought(&app, &org, &eid, &buyer).await.0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for o in &later {
        assert_eq!(
            mint_state(&app, &buyer, o).await["status"],
            "pending",
            "the node is down: jobs wait"
        );
    }
    anvil.restart().await;
    for o in &later {
        eventually("the backlog drains", || minted(&app, &buyer, o)).await;
    }
}
chain_both!(with_the_node_down_the_shop_sells_and_the_backlog_drains);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_replaced_with_a_higher_fee() {
    let anvil = Anvil::start(&["--no-mining"]).await;
    let app = spawn(Backend::Sqlite, &anvil.url, false).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    let (mut s, _d) = worker_state(&app, &anvil.url).await;
    let mut config = (*s.config).clone();
    config.chain.stuck_after_secs = 0;
    s.config = std::sync::Arc::new(config);
    let m = minter(&s);
    eventually("the contract is deployed", || async {
        m.dispatch(true).await.unwrap();
        anvil.mine().await;
        m.track().await.unwrap();
        contract_of(&app, &org, &eid).await.is_some()
            && app
                .get(&format!("/events/{eid}/chain"), &org.access)
                .await
                .1["contract_status"]
                == "ready"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(m.dispatch(true).await.unwrap().signed, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.track().await.unwrap();
    let st = mint_state(&app, &buyer, &oid).await;
    let txs = st["jobs"][0]["transactions"].as_array().unwrap().clone();
    assert_eq!(txs.len(), 2, "the pending mint was replaced: {st}");
    assert_eq!(txs[0]["nonce"], txs[1]["nonce"], "same nonce");
    let (p0, p1): (u128, u128) = (
        txs[0]["gas_price"].as_str().unwrap().parse().unwrap(),
        txs[1]["gas_price"].as_str().unwrap().parse().unwrap(),
    );
    assert!(p1 > p0, "higher fee: {p0} -> {p1}");
    anvil.mine().await;
    eventually("the replacement is mined", || async {
        m.track().await.unwrap();
        minted(&app, &buyer, &oid).await
    })
    .await;
    let c = contract_of(&app, &org, &eid).await.unwrap();
    assert_eq!(mints_of(&anvil, c, &tid).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_chain_mint_jobs_wait_and_the_shop_works() {
    let app = TestApp::spawn(Backend::Sqlite, |_| {}).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, _) = bought(&app, &org, &eid, &buyer).await;
    let st = mint_state(&app, &buyer, &oid).await;
    assert_eq!(st["status"], "pending", "{st}");
    assert_eq!(st["jobs"][0]["kind"], "mint");
    let o = order_mint(&app, &buyer, &oid).await;
    assert_eq!(
        (&o["status"], &o["kind"], &o["tx_hash"]),
        (&json!("pending"), &json!("mint"), &Value::Null),
        "no chain: the order shows the mint waiting: {o}"
    );
    let fresh = app.order(&buyer, &eid, 1, 1).await;
    assert_eq!(
        fresh["mint"],
        json!([]),
        "an unpaid order has no mint: {fresh}"
    );
    let (s, v) = app
        .post(
            "/wallets",
            Some(&buyer.access),
            json!({"kind": "custodial"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, again) = app
        .post(
            "/wallets",
            Some(&buyer.access),
            json!({"kind": "custodial"}),
        )
        .await;
    assert_eq!(
        (s, &again["id"]),
        (StatusCode::OK, &v["id"]),
        "one custodial wallet per user"
    );
    let other = app.register("other@example.com").await;
    let (s, _) = app
        .post(
            &format!("/orders/{oid}/mint-nft"),
            Some(&other.access),
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "only the organizer or an admin mints"
    );
    let (s, v) = app
        .post(
            &format!("/orders/{oid}/mint-nft"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/wallets",
        "/wallets/{id}",
        "/wallets/user/{user_id}",
        "/wallets/{id}/nfts",
        "/wallets/{id}/transactions",
        "/orders/{id}/mint-nft",
        "/orders/{id}/mint-transactions",
        "/nft/{contract}/{token_id}",
        "/events/{id}/chain/unlock",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is in the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_wallet_is_linked_by_signature_and_receives_a_withdrawal() {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(Backend::Sqlite, &anvil.url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let key: alloy::signers::local::PrivateKeySigner = HOLDER_KEY.parse().unwrap();
    let addr = format!("{:#x}", key.address());
    let (_, ch) = app
        .get(&format!("/wallets/challenge?address={addr}"), &buyer.access)
        .await;
    let message = ch["message"].as_str().unwrap().to_string();
    let other: alloy::signers::local::PrivateKeySigner = MINTER_KEY.parse().unwrap();
    let forged = other.sign_message_sync(message.as_bytes()).unwrap();
    let (s, v) = app
        .post(
            "/wallets",
            Some(&buyer.access),
            json!({"kind": "external", "address": addr, "signature": forged.to_string()}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_proof")),
        "{v}"
    );
    let sig = key.sign_message_sync(message.as_bytes()).unwrap();
    let (s, ext) = app
        .post(
            "/wallets",
            Some(&buyer.access),
            json!({"kind": "external", "address": addr, "signature": sig.to_string()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ext}");

    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    eventually("minted", || minted(&app, &buyer, &oid)).await;
    let (wid, _) = custodial(&app, &buyer).await;
    let send = json!({"type": "send", "ticket_id": tid, "to_wallet_id": id(&ext)});
    let (s, v) = app
        .post(
            &format!("/wallets/{wid}/transactions"),
            Some(&buyer.access),
            send.clone(),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "the event does not allow withdrawals yet: {v}"
    );
    let (s, v) = app
        .put(
            &format!("/events/{eid}/chain"),
            &org.access,
            json!({"royalty_bps": 500, "withdrawals_allowed": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(
            &format!("/wallets/{wid}/transactions"),
            Some(&buyer.access),
            send,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let c = contract_of(&app, &org, &eid).await.unwrap();
    eventually("the token reaches the external address", || async {
        owner_on_chain(&anvil, c, &tid).await == Some(key.address())
    })
    .await;
    let (s, t) = app.get(&format!("/tickets/{tid}"), &buyer.access).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        t["status"], "issued",
        "the credential stays valid for the gates: {t}"
    );
    let (s, v) = app
        .post(
            &format!("/wallets/{wid}/transactions"),
            Some(&buyer.access),
            json!({"type": "mint", "ticket_id": tid, "to_wallet_id": id(&ext)}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "mints come from the chain only: {v}"
    );
}

async fn wallet_tickets(app: &TestApp, who: &Session, wid: &str) -> Vec<String> {
    let (_, v) = app.get(&format!("/wallets/{wid}/nfts"), &who.access).await;
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["ticket_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_a_reorg_back_to_what_the_chain_says() {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(Backend::Sqlite, &anvil.url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    eventually("minted", || minted(&app, &buyer, &oid)).await;
    let (wid, _) = custodial(&app, &buyer).await;
    eventually("indexed", || async {
        wallet_tickets(&app, &buyer, &wid).await == [tid.clone()]
    })
    .await;

    let rpc = anvil.client(MINTER_KEY);
    let snapshot: serde_json::Value =
        alloy::providers::Provider::raw_request(rpc.provider(), "evm_snapshot".into(), ())
            .await
            .unwrap();
    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    eventually("the second ticket is minted", || {
        minted(&app, &buyer, &oid2)
    })
    .await;
    eventually("and indexed", || async {
        wallet_tickets(&app, &buyer, &wid).await.contains(&tid2)
    })
    .await;

    // A re-org: the blocks with the second mint are replaced by empty ones.
    let reverted: bool =
        alloy::providers::Provider::raw_request(rpc.provider(), "evm_revert".into(), (snapshot,))
            .await
            .unwrap();
    assert!(reverted);
    for _ in 0..4 {
        anvil.mine().await;
    }
    let c = contract_of(&app, &org, &eid).await.unwrap();
    assert_eq!(
        owner_on_chain(&anvil, c, &tid2).await,
        None,
        "the chain forgot the second mint"
    );
    eventually("the wallet shows what the chain now says", || async {
        wallet_tickets(&app, &buyer, &wid).await == [tid.clone()]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_taken_by_another_transaction_is_reconciled_not_lost() {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(Backend::Sqlite, &anvil.url, false).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    let (s, _d) = worker_state(&app, &anvil.url).await;
    let m = minter(&s);
    deploy_then_sign(&app, &org, &eid, &m).await;
    // Someone else spends the minter's next nonce before the stored mint goes out.
    let intruder = anvil.client(MINTER_KEY);
    crate::anvil::send(&intruder, Some(Address::repeat_byte(5)), Default::default()).await;
    eventually(
        "the lost nonce is noticed and the ticket minted anyway",
        || async {
            m.track().await.unwrap();
            m.dispatch(true).await.unwrap();
            minted(&app, &buyer, &oid).await
        },
    )
    .await;
    let st = mint_state(&app, &buyer, &oid).await;
    let statuses: Vec<&str> = st["jobs"][0]["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["dropped", "confirmed"], "{st}");
    let c = contract_of(&app, &org, &eid).await.unwrap();
    assert_eq!(mints_of(&anvil, c, &tid).await, 1);
}

alloy::sol! {
    function grantRole(bytes32 role, address account) external;
    function revokeRole(bytes32 role, address account) external;
}

/// The mint transactions of the order's first job, by status.
fn tx_statuses(st: &Value) -> Vec<String> {
    st["jobs"][0]["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

/// Every mint passes gas estimation when signed, then reverts on chain:
/// the contract admin (another key) revokes the minter's role between
/// signing and broadcasting. After `chain.max_reverts` reverts the job
/// fails for good: the order shows `failed`, no new transaction is
/// signed, nothing is minted; `POST /orders/{id}/mint-nft` makes it due
/// again.
async fn a_mint_fails_for_good_after_max_reverts(backend: Backend) {
    use alloy::sol_types::SolCall;
    const MAX_REVERTS: i64 = 2;
    let anvil = Anvil::start(&[]).await;
    let admin_key = anvil.client(HOLDER_KEY);
    let admin = admin_key.minter();
    let config = move |c: &mut Config, url: &str| {
        chain_config(c, url, false);
        c.chain.admin_address = admin.to_string();
        c.chain.max_reverts = MAX_REVERTS;
    };
    let url = anvil.url.clone();
    let app = TestApp::spawn(backend, move |c| config(c, &url)).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;

    let (state, _dir) = {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        c.database.url = Secret::new(app.database_url.clone());
        c.auth.jwt_secret = Secret::new("test-jwt-secret-0123456789abcdef0123");
        c.keys.master_key = Secret::new("00".repeat(32));
        config(&mut c, &anvil.url);
        (cloud::build_state(c).await.expect("worker state"), dir)
    };
    let m = minter(&state);
    let minter_role = alloy::primitives::keccak256("MINTER_ROLE");
    let revoke = revokeRoleCall {
        role: minter_role,
        account: m.client().minter(),
    }
    .abi_encode();
    let grant = grantRoleCall {
        role: minter_role,
        account: m.client().minter(),
    }
    .abi_encode();

    deploy_then_sign(&app, &org, &eid, &m).await;
    let c = contract_of(&app, &org, &eid).await.unwrap();
    for round in 1..=MAX_REVERTS {
        // The mint is signed (estimated while the minter may mint); now the
        // role goes before the stored bytes are broadcast.
        let st = mint_state(&app, &buyer, &oid).await;
        assert_eq!(
            tx_statuses(&st).last().map(String::as_str),
            Some("signed"),
            "round {round}: {st}"
        );
        assert!(
            crate::anvil::send(&admin_key, Some(c), revoke.clone().into())
                .await
                .success
        );
        eventually("the mint reverted", || async {
            m.track().await.unwrap();
            let st = mint_state(&app, &buyer, &oid).await;
            tx_statuses(&st).iter().filter(|s| *s == "reverted").count() == round as usize
        })
        .await;
        let st = mint_state(&app, &buyer, &oid).await;
        if round < MAX_REVERTS {
            assert_eq!(
                st["jobs"][0]["status"], "pending",
                "retried after a revert: {st}"
            );
            assert!(
                crate::anvil::send(&admin_key, Some(c), grant.clone().into())
                    .await
                    .success
            );
            eventually("the retry is signed", || async {
                m.dispatch(false).await.unwrap().signed > 0
            })
            .await;
        }
    }

    let st = mint_state(&app, &buyer, &oid).await;
    assert_eq!(st["jobs"][0]["status"], "failed", "{st}");
    assert_eq!(st["status"], "failed", "the order shows the failure: {st}");
    assert!(
        st["jobs"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("reverted")),
        "the failure says why: {st}"
    );
    assert_eq!(
        tx_statuses(&st),
        vec!["reverted".to_string(); MAX_REVERTS as usize],
        "{st}"
    );
    // The order itself shows the failure: the revert and the last hash.
    let last_hash = st["jobs"][0]["transactions"][MAX_REVERTS as usize - 1]["hash"].clone();
    let o = order_mint(&app, &buyer, &oid).await;
    assert_eq!(o["ticket_id"], tid.as_str(), "{o}");
    assert_eq!(o["token_id"], token(&tid).to_string(), "{o}");
    assert_eq!(
        (&o["status"], &o["kind"]),
        (&json!("failed"), &json!("mint")),
        "{o}"
    );
    assert_eq!(o["tx_hash"], last_hash, "{o}");
    assert!(
        o["error"].as_str().is_some_and(|e| e.contains("reverted")),
        "the order says why: {o}"
    );
    let (s, list) = app
        .get(&format!("/orders/user/{}", buyer.user_id), &buyer.access)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == oid.as_str())
        .unwrap_or_else(|| panic!("the order is listed: {list}"));
    assert_eq!(listed["mint"][0], o, "the list shows the same: {list}");
    let (s, ev_orders) = app.get(&format!("/events/{eid}/orders"), &org.access).await;
    assert_eq!(s, StatusCode::OK, "{ev_orders}");
    assert_eq!(
        ev_orders["items"][0]["mint"][0]["status"], "failed",
        "the organizer's list too: {ev_orders}"
    );
    // Failed for good: even with the role back, the worker signs nothing new.
    assert!(
        crate::anvil::send(&admin_key, Some(c), grant.clone().into())
            .await
            .success
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        m.dispatch(true).await.unwrap().signed,
        0,
        "no retry after failing"
    );
    assert_eq!(owner_on_chain(&anvil, c, &tid).await, None);
    assert_eq!(mints_of(&anvil, c, &tid).await, 0);

    // The organizer's retry makes the job due again, and it mints.
    let (s, v) = app
        .post(
            &format!("/orders/{oid}/mint-nft"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    eventually("the retried job mints", || async {
        m.dispatch(true).await.unwrap();
        m.track().await.unwrap();
        minted(&app, &buyer, &oid).await
    })
    .await;
    let (_, waddr) = custodial(&app, &buyer).await;
    assert_eq!(owner_on_chain(&anvil, c, &tid).await, Some(waddr));
    let st = mint_state(&app, &buyer, &oid).await;
    let o = order_mint(&app, &buyer, &oid).await;
    assert_eq!(o["status"], "done", "{o}");
    assert_eq!(o["error"], Value::Null, "{o}");
    assert_eq!(
        o["tx_hash"], st["jobs"][0]["transactions"][MAX_REVERTS as usize]["hash"],
        "the confirmed mint: {o} {st}"
    );
}
chain_both!(a_mint_fails_for_good_after_max_reverts);

/// The `mint` entry of the order's only ticket, from `GET /orders/{id}`.
async fn order_mint(app: &TestApp, who: &Session, oid: &str) -> Value {
    let (s, o) = app.get(&format!("/orders/{oid}"), &who.access).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let mint = o["mint"].as_array().unwrap_or_else(|| panic!("{o}"));
    assert_eq!(mint.len(), 1, "one entry per ticket: {o}");
    mint[0].clone()
}

async fn chain_view(app: &TestApp, org: &Session, eid: &str) -> Value {
    let (s, v) = app.get(&format!("/events/{eid}/chain"), &org.access).await;
    assert_eq!(s, StatusCode::OK, "event chain: {v}");
    v
}

/// Transactions of `kind` among every job of the order.
fn txs_of_kind(st: &Value, kind: &str) -> usize {
    st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|j| j["transactions"].as_array().unwrap())
        .filter(|t| t["kind"] == kind)
        .count()
}

/// The organizer opens transfers before the event ends: one `unlock`
/// transaction, after which `locked(tokenId)` is false for the minted token
/// and for one minted later; asking again sends nothing new.
async fn an_organizer_unlocks_transfers_early(backend: Backend) {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(backend, &anvil.url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (s, v) = app
        .post(
            &format!("/events/{eid}/chain/unlock"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().is_some()),
        (StatusCode::CONFLICT, true),
        "no tickets yet, nothing to unlock: {v}"
    );
    assert_eq!(chain_view(&app, &org, &eid).await["unlock_status"], "none");

    let (oid, tid) = bought(&app, &org, &eid, &buyer).await;
    eventually("minted", || minted(&app, &buyer, &oid)).await;
    let c = contract_of(&app, &org, &eid).await.unwrap();
    let rpc = anvil.client(MINTER_KEY);
    assert!(
        rpc.locked(c, token(&tid)).await.unwrap(),
        "locked until the event ends"
    );

    for who in [&buyer, &app.register("stranger@example.com").await] {
        let (s, v) = app
            .post(
                &format!("/events/{eid}/chain/unlock"),
                Some(&who.access),
                json!({}),
            )
            .await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
            "only the organizer or an admin unlocks: {s} {v}"
        );
    }
    assert!(rpc.locked(c, token(&tid)).await.unwrap());

    let (s, v) = app
        .post(
            &format!("/events/{eid}/chain/unlock"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert!(
        v["unlock_status"] == "pending" || v["unlock_status"] == "done",
        "{v}"
    );
    eventually("the contract is unlocked", || async {
        chain_view(&app, &org, &eid).await["unlock_status"] == "done"
    })
    .await;
    assert!(
        !rpc.locked(c, token(&tid)).await.unwrap(),
        "EIP-5192 says unlocked"
    );
    assert!(rpc.unlocked(c).await.unwrap());
    let st = mint_state(&app, &buyer, &oid).await;
    assert_eq!(
        txs_of_kind(&st, "unlock"),
        1,
        "one unlock transaction: {st}"
    );
    let confirmed = st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|j| j["transactions"].as_array().unwrap())
        .find(|t| t["kind"] == "unlock")
        .unwrap()["status"]
        .clone();
    assert_eq!(confirmed, "confirmed", "{st}");

    // A ticket sold after the unlock is minted unlocked; asking again adds
    // its job but sends no second unlock.
    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    eventually("the second ticket is minted", || {
        minted(&app, &buyer, &oid2)
    })
    .await;
    assert!(!rpc.locked(c, token(&tid2)).await.unwrap());
    let (s, v) = app
        .post(
            &format!("/events/{eid}/chain/unlock"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "asking again is fine: {v}");
    eventually("the late unlock job is done", || async {
        chain_view(&app, &org, &eid).await["unlock_status"] == "done"
    })
    .await;
    let st2 = mint_state(&app, &buyer, &oid2).await;
    assert_eq!(
        txs_of_kind(&st2, "unlock"),
        0,
        "the contract was already unlocked: {st2}"
    );
    assert_eq!(
        txs_of_kind(&mint_state(&app, &buyer, &oid).await, "unlock"),
        1
    );
}
chain_both!(an_organizer_unlocks_transfers_early);

/// Cancelling an event invalidates every minted token of it on chain.
async fn cancelling_an_event_burns_its_tokens(backend: Backend) {
    let anvil = Anvil::start(&[]).await;
    let app = spawn(backend, &anvil.url, true).await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let (oid1, tid1) = bought(&app, &org, &eid, &buyer).await;
    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    for o in [&oid1, &oid2] {
        eventually("minted", || minted(&app, &buyer, o)).await;
    }
    let c = contract_of(&app, &org, &eid).await.unwrap();
    let (_, waddr) = custodial(&app, &buyer).await;
    assert_eq!(owner_on_chain(&anvil, c, &tid1).await, Some(waddr));

    let (s, v) = app
        .patch(
            &format!("/events/{eid}/status"),
            &org.access,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rpc = anvil.client(MINTER_KEY);
    eventually("both tokens are invalidated", || async {
        rpc.status_of(c, &[token(&tid1), token(&tid2)])
            .await
            .unwrap()
            .iter()
            .all(|t| t.burned && t.owner.is_zero())
    })
    .await;
    for (oid, tid) in [(&oid1, &tid1), (&oid2, &tid2)] {
        eventually("the order shows the burn done", || async {
            let o = order_mint(&app, &buyer, oid).await;
            o["kind"] == "burn" && o["status"] == "done"
        })
        .await;
        assert_eq!(owner_on_chain(&anvil, c, tid).await, None);
        assert_eq!(
            mints_of(&anvil, c, tid).await,
            1,
            "minted once, then burned"
        );
    }
    let (s, v) = app
        .post(
            &format!("/events/{eid}/chain/unlock"),
            Some(&org.access),
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a cancelled event is not unlocked: {v}"
    );
}
chain_both!(cancelling_an_event_burns_its_tokens);

/// A JSON-RPC relay to anvil that the test steers: it passes everything,
/// or holds each `eth_sendRawTransaction` (never answering) either before
/// the node sees it or after the node took it. A process blocked there has
/// signed and stored the transaction and is stopped at a known point.
#[derive(Clone)]
struct Relay {
    upstream: String,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
}

const PASS: u8 = 0;
const HOLD_BEFORE_NODE: u8 = 1;
const HOLD_AFTER_NODE: u8 = 2;

impl Relay {
    async fn start(upstream: &str) -> (Self, String) {
        let relay = Self {
            upstream: upstream.to_string(),
            mode: Default::default(),
            held: Default::default(),
            http: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/", axum::routing::post(Self::handle))
            .with_state(relay.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (relay, url)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }

    fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn handle(
        axum::extract::State(r): axum::extract::State<Relay>,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let sends = String::from_utf8_lossy(&body).contains("eth_sendRawTransaction");
        let mode = r.mode.load(std::sync::atomic::Ordering::SeqCst);
        let hold = || async {
            r.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::pending::<()>().await;
        };
        if sends && mode == HOLD_BEFORE_NODE {
            hold().await;
        }
        let answer = match r
            .http
            .post(&r.upstream)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(a) => a.bytes().await.unwrap_or_default(),
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        };
        if sends && mode == HOLD_AFTER_NODE {
            hold().await;
        }
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer,
        )
            .into_response()
    }
}

/// The real `cloud` binary mints; it is killed with SIGKILL while a signed
/// and stored mint is on its way (before the node has it, then after the
/// node took it but before the process heard back) and restarted: every
/// ticket ends as exactly one token in the buyer's wallet, and the stored
/// transaction is the one on chain. On SQLite the processes and the test's
/// API replica share one database file (WAL), as replicas on one host do.
async fn a_cloud_process_killed_between_sign_and_broadcast_mints_once(backend: Backend) {
    use crate::process::CloudProcess;
    let anvil = Anvil::start(&[]).await;
    let (relay, relay_url) = Relay::start(&anvil.url).await;
    // The API replica the test talks to runs no worker (no chain configured);
    // the cloud processes share its database and do all the minting.
    // Same master key as the processes: they unseal what it sealed.
    let app = TestApp::spawn(backend, |c| {
        c.keys.master_key = Secret::new(crate::process::MASTER_KEY)
    })
    .await;
    let (org, eid, buyer) = crate::shop::setup(&app).await;
    let data = tempfile::tempdir().unwrap();
    let start = || {
        CloudProcess::start_with(
            &app.database_url,
            data.path(),
            &[
                ("CLOUD_CHAIN__RPC_URL", relay_url.clone()),
                ("CLOUD_CHAIN__CHAIN_ID", CHAIN_ID.to_string()),
                ("CLOUD_CHAIN__MINTER_KEY", MINTER_KEY.to_string()),
                ("CLOUD_CHAIN__POLL_MS", "50".into()),
                ("CLOUD_CHAIN__MAX_BACKOFF_SECS", "1".into()),
                (
                    "CLOUD_CHAIN__METADATA_BASE_URL",
                    "http://127.0.0.1/nft/".into(),
                ),
            ],
        )
    };
    let cloud = start().ready(&app.client).await;
    let (oid1, tid1) = bought(&app, &org, &eid, &buyer).await;
    for i in 0.. {
        if minted(&app, &buyer, &oid1).await {
            break;
        }
        assert!(
            i < 1200,
            "the process did not deploy and mint: {}\n{}",
            mint_state(&app, &buyer, &oid1).await,
            cloud.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = contract_of(&app, &org, &eid).await.unwrap();

    // Crash 1: signed and stored, the broadcast never reached the node.
    relay.set(HOLD_BEFORE_NODE);
    let (oid2, tid2) = bought(&app, &org, &eid, &buyer).await;
    eventually("the mint is stored and its broadcast held", || async {
        relay.held() == 1 && tx_statuses(&mint_state(&app, &buyer, &oid2).await) == ["signed"]
    })
    .await;
    cloud.kill9();
    let stored = mint_state(&app, &buyer, &oid2).await["jobs"][0]["transactions"][0].clone();
    assert_eq!(
        owner_on_chain(&anvil, c, &tid2).await,
        None,
        "nothing reached the node"
    );
    relay.set(PASS);
    let cloud = start().ready(&app.client).await;
    eventually("the restarted process mints the stored bytes", || {
        minted(&app, &buyer, &oid2)
    })
    .await;
    let st = mint_state(&app, &buyer, &oid2).await;
    assert_eq!(tx_statuses(&st), ["confirmed"], "one transaction: {st}");
    assert_eq!(
        st["jobs"][0]["transactions"][0]["hash"], stored["hash"],
        "the same hash"
    );

    // Crash 2: the node took the transaction (and mined it), the process
    // never heard back.
    relay.set(HOLD_AFTER_NODE);
    let (oid3, tid3) = bought(&app, &org, &eid, &buyer).await;
    eventually(
        "the node has the mint, the process does not know",
        || async { relay.held() == 2 && owner_on_chain(&anvil, c, &tid3).await.is_some() },
    )
    .await;
    let before = mint_state(&app, &buyer, &oid3).await;
    assert_eq!(tx_statuses(&before), ["signed"], "{before}");
    cloud.kill9();
    relay.set(PASS);
    let _cloud = start().ready(&app.client).await;
    eventually(
        "the restarted process confirms the stored transaction",
        || minted(&app, &buyer, &oid3),
    )
    .await;
    let st = mint_state(&app, &buyer, &oid3).await;
    assert_eq!(
        tx_statuses(&st),
        ["confirmed"],
        "no second transaction: {st}"
    );
    assert_eq!(
        st["jobs"][0]["transactions"][0]["hash"],
        before["jobs"][0]["transactions"][0]["hash"]
    );
    let hash = st["jobs"][0]["transactions"][0]["hash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let on_chain = anvil
        .client(MINTER_KEY)
        .receipt(hash)
        .await
        .unwrap()
        .expect("mined");
    assert_eq!(
        Some(on_chain.block as i64),
        st["jobs"][0]["transactions"][0]["block_number"].as_i64()
    );

    let (_, waddr) = custodial(&app, &buyer).await;
    for t in [&tid1, &tid2, &tid3] {
        assert_eq!(mints_of(&anvil, c, t).await, 1, "exactly one token for {t}");
        assert_eq!(owner_on_chain(&anvil, c, t).await, Some(waddr));
    }
}
chain_both!(a_cloud_process_killed_between_sign_and_broadcast_mints_once);
