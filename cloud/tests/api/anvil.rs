//! A real anvil (EVM node from npm `@foundry-rs/anvil`, installed by
//! `scripts/setup`) on a free loopback port, killed on drop. Fails loudly
//! when the binary is missing: chain tests never skip.

use alloy::primitives::{Address, Bytes};
use cloud::chain::client::{Broadcast, ChainClient, Mined};
use cloud::config::Secret;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// anvil's first dev account (the minter in tests).
pub const MINTER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// anvil's second dev account (a holder who pays its own gas).
pub const HOLDER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's chain id.
pub const CHAIN_ID: u64 = 31337;

pub fn binary() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        p.exists(),
        "anvil is required for the chain tests and is missing at {}: run scripts/setup",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Anvil {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    args: Vec<String>,
}

impl Anvil {
    /// Starts anvil with `args` on a free port and waits until it answers.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_on(free_port(), args).await
    }

    pub async fn start_on(port: u16, args: &[&str]) -> Self {
        let mut a = Self {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        a.restart().await;
        a
    }

    /// (Re)starts the process with the same port and arguments.
    pub async fn restart(&mut self) {
        let child = Command::new(binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--silent",
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        self.child = Some(child);
        let client = self.client(MINTER_KEY);
        for _ in 0..400 {
            if client.check_chain_id().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("anvil did not answer on {} within 10 s", self.url);
    }

    /// Stops the node: SIGINT, so a `--state` file is written, then waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self, key: &str) -> ChainClient {
        ChainClient::new(&self.url, CHAIN_ID, &Secret::new(key)).expect("client")
    }

    /// Mines one block (for `--no-mining` nodes).
    pub async fn mine(&self) {
        let c = self.client(MINTER_KEY);
        let _: serde_json::Value =
            alloy::providers::Provider::raw_request(c.provider(), "evm_mine".into(), ())
                .await
                .expect("evm_mine");
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Signs, sends and waits for one transaction from `client`'s key.
pub async fn send(client: &ChainClient, to: Option<Address>, data: Bytes) -> Mined {
    let nonce =
        alloy::providers::Provider::get_transaction_count(client.provider(), client.minter())
            .pending()
            .await
            .expect("nonce");
    let price = client.gas_price().await.expect("gas price");
    let signed = client
        .sign(nonce, to, data, 8_000_000, price)
        .expect("sign");
    assert_eq!(
        client.broadcast(&signed.raw).await.expect("broadcast"),
        Broadcast::Accepted,
        "the node takes the transaction"
    );
    for _ in 0..400 {
        if let Some(m) = client.receipt(signed.hash).await.expect("receipt") {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("transaction {} not mined", signed.hash);
}
