//! A venue: the cloud, one event and enrolled gates that list each other as
//! peers, with helpers the scenarios and the latency bench share.

use crate::cloud::Cloud;
use crate::node::{Node, Timings};
use crate::pg::PgDatabase;
use crate::proxy::Proxy;
use crate::wait_until;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long anything may take to settle before a scenario fails.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A cloud, one event, and enrolled gates that list each other as peers.
#[derive(Debug)]
pub struct Venue {
    pub cloud: Cloud,
    /// Nodes reach the cloud through this.
    pub cloud_proxy: Proxy,
    pub event: String,
    pub nodes: Vec<Node>,
    /// With [`Venue::open_replicated`]: the replica the gates reach (the
    /// scenario changes things through `cloud`, the other one).
    pub replica: Option<Cloud>,
    _db: Option<PgDatabase>,
    _dir: tempfile::TempDir,
}

/// Secrets two replicas share (a real deployment injects them the same way).
const REPLICA_SECRETS: [(&str, &str); 2] = [
    (
        "CLOUD_AUTH__JWT_SECRET",
        "e2e-replica-jwt-secret-0123456789abcdef",
    ),
    (
        "CLOUD_KEYS__MASTER_KEY",
        "22222222222222222222222222222222222222222222222222222222222222bb",
    ),
];

impl Venue {
    /// `n` gates enrolled with codes from the REST API, started.
    pub async fn open(n: usize, timings: Timings, require_listed: bool) -> Venue {
        let dir = tempfile::tempdir().expect("tempdir");
        let cloud_dir = dir.path().join("cloud");
        std::fs::create_dir_all(&cloud_dir).expect("cloud dir");
        let mut cloud = Cloud::start(&cloud_dir).await;
        cloud.organizer().await;
        let event = cloud.event().await;
        let cloud_proxy = Proxy::start().await;
        cloud_proxy.point_at(cloud.addr);
        Self::with_gates(
            dir,
            cloud,
            None,
            None,
            cloud_proxy,
            event,
            n,
            timings,
            require_listed,
        )
        .await
    }

    /// Two cloud replicas (separate processes) on one fresh PostgreSQL
    /// database: `cloud` (A), where the scenario sells, refunds and revokes,
    /// and `replica` (B), the only one the gates reach (they enroll through
    /// it too).
    pub async fn open_replicated(n: usize, timings: Timings, require_listed: bool) -> Venue {
        let db = PgDatabase::create("e2e_replicas");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env: Vec<(String, String)> = REPLICA_SECRETS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("CLOUD_DATABASE__URL".into(), db.url()));
        let (a_dir, b_dir) = (dir.path().join("cloud-a"), dir.path().join("cloud-b"));
        std::fs::create_dir_all(&a_dir).expect("cloud A dir");
        std::fs::create_dir_all(&b_dir).expect("cloud B dir");
        let mut cloud = Cloud::start_with(&a_dir, env.clone()).await;
        let replica = Cloud::start_with(&b_dir, env).await;
        cloud.organizer().await;
        let event = cloud.event().await;
        let cloud_proxy = Proxy::start().await;
        cloud_proxy.point_at(replica.addr);
        Self::with_gates(
            dir,
            cloud,
            Some(replica),
            Some(db),
            cloud_proxy,
            event,
            n,
            timings,
            require_listed,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn with_gates(
        dir: tempfile::TempDir,
        cloud: Cloud,
        replica: Option<Cloud>,
        db: Option<PgDatabase>,
        cloud_proxy: Proxy,
        event: String,
        n: usize,
        timings: Timings,
        require_listed: bool,
    ) -> Venue {
        let mut proxies = Vec::new();
        for _ in 0..n {
            proxies.push(Proxy::start().await);
        }
        let urls: Vec<String> = proxies.iter().map(Proxy::url).collect();
        let mut nodes = Vec::new();
        for (i, proxy) in proxies.into_iter().enumerate() {
            let gate = format!("Gate {}", (b'A' + i as u8) as char);
            let code = cloud.enrollment_code(&event, &gate, require_listed).await;
            let node_dir = dir.path().join(format!("gate-{i}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let peers: Vec<String> = urls.iter().filter(|u| **u != urls[i]).cloned().collect();
            nodes.push(Node::enroll(
                &node_dir,
                proxy,
                &cloud_proxy.url(),
                &code,
                &peers,
                timings,
            ));
        }
        for node in &mut nodes {
            node.start();
        }
        Venue {
            cloud,
            cloud_proxy,
            event,
            nodes,
            replica,
            _db: db,
            _dir: dir,
        }
    }

    /// Waits until every gate holds manifest version `v` or later. An
    /// event's first version is its activation (the door state), so the
    /// first sale after [`Venue::open`] is version 2.
    pub async fn manifests_reach(&self, v: u64) {
        for (i, node) in self.nodes.iter().enumerate() {
            wait_until(
                SETTLE,
                &format!("gate {i} holding manifest version {v}"),
                || async { node.manifest_version().await >= v },
            )
            .await;
        }
    }

    /// Every scan any node holds.
    pub async fn node_scans(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for n in &self.nodes {
            all.extend(n.scan_ids().await);
        }
        all
    }

    /// Waits until the cloud holds exactly `expected`, each once.
    pub async fn cloud_holds_exactly(&self, expected: &BTreeSet<String>) {
        wait_until(SETTLE, "the cloud holding every scan", || async {
            let ids: Vec<String> = scan_ids(&self.cloud.scans(&self.event).await);
            let set: BTreeSet<String> = ids.iter().cloned().collect();
            assert_eq!(
                set.len(),
                ids.len(),
                "the cloud holds no scan twice: {ids:?}"
            );
            assert!(
                set.is_subset(expected),
                "the cloud holds only real scans: {set:?} vs {expected:?}"
            );
            set == *expected
        })
        .await;
    }
}

/// The `scan_id`s of scan views.
pub fn scan_ids(scans: &[serde_json::Value]) -> Vec<String> {
    scans
        .iter()
        .filter_map(|s| s["scan_id"].as_str().map(str::to_string))
        .collect()
}

/// Asserts a `POST /scan` report.
pub fn assert_decision(
    report: &serde_json::Value,
    decision: &str,
    reason: Option<&str>,
    why: &str,
) {
    assert_eq!(report["decision"], decision, "{why}: {report}");
    assert_eq!(report["reason"].as_str(), reason, "{why}: {report}");
}
