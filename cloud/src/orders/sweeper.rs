//! The background sweeper: ends pending orders whose hold ran out (their
//! inventory returns to stock), retries refunds that are due, and publishes
//! issued tickets that missed their manifest version (a crash after commit). Every
//! replica runs one; each change re-checks the order under its row lock, so
//! two sweepers (or a sweeper and a late payment) cannot both act on it.

use crate::commerce::OrderStatus;
use crate::state::AppState;
use std::time::Duration;

/// Most orders (and refunds) handled per round.
const BATCH: i64 = 200;

/// Runs until aborted.
pub async fn run(state: AppState) {
    let every = Duration::from_millis(state.config.commerce.sweep_interval_ms.max(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep(&state).await;
    }
}

/// One round: expired holds, unpublished tickets, then due refunds.
pub async fn sweep(state: &AppState) {
    expire_due(state).await;
    if let Err(e) = state.store.publish_pending(state.now_ms()).await {
        tracing::warn!(error = %e, "sweeper: cannot publish pending manifest entries");
    }
    if state.stripe.is_some() {
        match state.store.refunds_due(BATCH).await {
            Ok(payments) => {
                for p in payments {
                    if let Err(e) = super::service::refund_due(state, &p).await {
                        tracing::warn!(payment = %p.id, error = %e, "sweeper: refund still due");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweeper: cannot list due refunds"),
        }
    }
}

/// Ends the pending orders whose hold ran out; returns how many.
pub async fn expire_due(state: &AppState) -> usize {
    let now = state.now_ms();
    let due = match state.store.due_orders(now, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "sweeper: cannot list expired holds");
            return 0;
        }
    };
    let mut expired = 0;
    for id in due {
        match state
            .store
            .close_order(id, OrderStatus::Expired, None, true, now)
            .await
        {
            Ok(o) if o.status == OrderStatus::Expired => expired += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(order = %id, error = %e, "sweeper: cannot expire order"),
        }
    }
    expired
}
