//! The shop reaching the door: an online order paid, a ticket transferred,
//! an order refunded, each seen at gates that refuse unlisted tickets once
//! the next manifest delta arrives (within the 10 s target; the fast test
//! timings sync every 500 ms).

use crate::{Venue, assert_decision};
use e2e::node::Timings;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn online_orders_transfers_and_refunds_reach_the_gates() {
    let v = Venue::open(2, Timings::fast(), true).await;
    let (a, b) = (&v.nodes[0], &v.nodes[1]);
    let (buyer, _) = v.cloud.customer("buyer@gatehouse.test").await;
    let (friend, friend_id) = v.cloud.customer("friend@gatehouse.test").await;

    // Paid online → listed at the gates → admitted. Waited for by what
    // the gates decide, not by manifest versions: the cloud publishes the
    // two orders in one version or in two.
    let start = Instant::now();
    let (_, t1) = v.cloud.buy_online(&v.event, &buyer).await;
    let (o2, t2) = v.cloud.buy_online(&v.event, &buyer).await;
    let old = v.cloud.credential(&buyer, &t1).await;
    let q2 = v.cloud.credential(&buyer, &t2).await;
    for gate in [a, b] {
        gate.wait_check(&old, "admit", None).await;
        gate.wait_check(&q2, "admit", None).await;
    }
    println!(
        "e2e-measure {{\"online_payment_to_listed_ms\": {}}}",
        start.elapsed().as_millis()
    );

    // Transfer → the old QR is superseded, the recipient's admitted.
    v.cloud.transfer(&buyer, &t1, &friend_id).await;
    a.wait_check(&old, "reject", Some("superseded")).await;
    assert_decision(
        &a.scan(&old).await,
        "reject",
        Some("superseded"),
        "the seller's copy after a transfer",
    );
    let new = v.cloud.credential(&friend, &t1).await;
    assert_ne!(new, old, "the recipient holds a new generation");
    assert_decision(&b.scan(&new).await, "admit", None, "the recipient's QR");
    // The seller cannot read the ticket any more.
    let (st, _) = v
        .cloud
        .call_as(
            &buyer,
            reqwest::Method::GET,
            &format!("/tickets/{t1}/qr?format=svg"),
            None,
        )
        .await;
    assert_eq!(st, 403, "the seller no longer sees the ticket's QR");

    // Refund → revoked at the other gate.
    v.cloud.refund_order(&o2).await;
    b.wait_check(&q2, "reject", Some("revoked")).await;
    assert_decision(
        &b.scan(&q2).await,
        "reject",
        Some("revoked"),
        "a refunded order's ticket",
    );
}
