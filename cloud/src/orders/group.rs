//! Group commit on this replica: concurrent free orders of one event (and,
//! separately, Stripe settlements of its pending orders) are paid together
//! in one transaction (`store::group`, `docs/cloud.md` "Group commit").
//!
//! The first request of an event to arrive starts a drainer task; every
//! request that arrives while it works waits in the event's queue, and the
//! drainer takes up to [`MAX_BATCH`] of them at a time, so batches grow
//! with the load and a lone request is paid at once (no timer). A batch the
//! store refuses writes nothing, and each of its requests then runs the
//! one-order path itself, which gives the exact answer (sold out, over the
//! limit, a replayed or reused idempotency key, a duplicate event).
//!
//! The drainer runs in its own task, so a client hanging up cannot cancel a
//! batch other requests wait on; if it dies, the waiting requests fall back.

use crate::commerce::{OrderKind, OrderStatus, PaymentProvider};
use crate::crypto::signing::event_aad;
use crate::error::{ApiError, ApiResult};
use crate::model::EventId;
use crate::state::AppState;
use crate::store::{
    BatchError, BatchOrder, EventSigner, IssueBatch, NewOnlineOrder, OrderRecord, WebhookEventRef,
};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use sync_protocol::SecretKey;
use tokio::sync::oneshot;

/// Most orders in one batch.
pub const MAX_BATCH: usize = 64;

/// What a request asks the drainer to pay.
#[derive(Debug)]
enum Job {
    /// A new free order.
    Free(NewOnlineOrder),
    /// A pending primary order a Stripe event paid.
    Stripe {
        order: OrderRecord,
        intent: String,
        event: WebhookEventRef,
    },
}

/// What the drainer answers.
#[derive(Debug)]
enum Outcome {
    Paid(Box<OrderRecord>),
    /// Nothing was written: run the one-order path.
    Alone,
    /// The batch's commit failed (logged by the drainer): whether it took
    /// effect is unknown.
    Failed,
}

struct Waiter {
    job: Job,
    answer: oneshot::Sender<Outcome>,
}

type Key = (EventId, PaymentProvider);

/// This replica's batch queues and its cache of event signing keys.
#[derive(Default)]
pub struct GroupCommit {
    /// A queue exists while its drainer runs.
    queues: Mutex<HashMap<Key, Vec<Waiter>>>,
    /// The key that signs each event's new credentials, by key id. A key
    /// never changes under its id; which key signs does (rotation), and the
    /// batch transaction checks that under the event lock.
    signers: Mutex<HashMap<EventId, (String, Arc<EventSigner>)>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// Pays a new free order in a batch; `None`: pay it alone.
pub async fn issue_free(state: &AppState, new: &NewOnlineOrder) -> ApiResult<Option<OrderRecord>> {
    let key = (new.event_id, PaymentProvider::Free);
    answer(submit(state, key, Job::Free(new.clone())).await)
}

/// Settles a pending primary order paid through Stripe in a batch; false:
/// settle it alone.
pub async fn settle_stripe(
    state: &AppState,
    order: &OrderRecord,
    intent: &str,
    event: &WebhookEventRef,
) -> ApiResult<bool> {
    let key = (order.event_id, PaymentProvider::Stripe);
    let job = Job::Stripe {
        order: order.clone(),
        intent: intent.to_string(),
        event: event.clone(),
    };
    Ok(answer(submit(state, key, job).await)?.is_some())
}

fn answer(o: Outcome) -> ApiResult<Option<OrderRecord>> {
    match o {
        Outcome::Paid(order) => Ok(Some(*order)),
        Outcome::Alone => Ok(None),
        // The cause is in the drainer's log; the caller learns what to do.
        // A retry is safe: a free order's Idempotency-Key and a Stripe
        // event's id are written in the batch's own transaction, so if the
        // commit took effect the retry is answered from it, and if not the
        // retry makes it once.
        Outcome::Failed => Err(ApiError::Unavailable(
            "the database did not confirm this order's commit: send the same request again \
             with the same Idempotency-Key (it returns the order if it was made, or makes it once)"
                .into(),
        )),
    }
}

async fn submit(state: &AppState, key: Key, job: Job) -> Outcome {
    let (answer, rx) = oneshot::channel();
    let waiter = Waiter { job, answer };
    let start = {
        let mut queues = state.group.queues.lock().unwrap_or_else(|p| p.into_inner());
        match queues.entry(key) {
            Entry::Occupied(mut q) => {
                q.get_mut().push(waiter);
                false
            }
            Entry::Vacant(q) => {
                q.insert(vec![waiter]);
                true
            }
        }
    };
    if start {
        tokio::spawn(drain(state.clone(), key));
    }
    let in_flight = metrics::gauge!(IN_FLIGHT, "kind" => key.1.as_str());
    in_flight.increment(1.0);
    let outcome = rx.await.unwrap_or(Outcome::Alone);
    in_flight.decrement(1.0);
    outcome
}

/// Requests waiting for a batch or in one, per kind (`free`, `stripe`).
pub const IN_FLIGHT: &str = "cloud_group_commit_in_flight";
/// Batches run, per kind and outcome (`paid`, `alone`, `failed`).
pub const BATCHES: &str = "cloud_group_commit_batches_total";
/// Orders in the batches run, per kind and outcome.
pub const ORDERS: &str = "cloud_group_commit_orders_total";

fn count(key: Key, outcome: &'static str, orders: usize) {
    let kind = key.1.as_str();
    metrics::counter!(BATCHES, "kind" => kind, "outcome" => outcome).increment(1);
    metrics::counter!(ORDERS, "kind" => kind, "outcome" => outcome).increment(orders as u64);
}

/// Ends a drainer: on a panic, the queue goes with it (its requests, their
/// answers dropped, fall back).
struct Running {
    group: Arc<GroupCommit>,
    key: Key,
    done: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let mut queues = self.group.queues.lock().unwrap_or_else(|p| p.into_inner());
            queues.remove(&self.key);
        }
    }
}

async fn drain(state: AppState, key: Key) {
    let mut running = Running {
        group: state.group.clone(),
        key,
        done: false,
    };
    loop {
        let batch: Vec<Waiter> = {
            let mut queues = state.group.queues.lock().unwrap_or_else(|p| p.into_inner());
            let Some(q) = queues.get_mut(&key) else {
                running.done = true;
                return;
            };
            if q.is_empty() {
                queues.remove(&key);
                running.done = true;
                return;
            }
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        run(&state, key, batch).await;
    }
}

async fn run(state: &AppState, key: Key, batch: Vec<Waiter>) {
    let (jobs, answers): (Vec<Job>, Vec<oneshot::Sender<Outcome>>) =
        batch.into_iter().map(|w| (w.job, w.answer)).unzip();
    let n = jobs.len();
    let outcomes: Vec<Outcome> = match pay(state, key, &jobs).await {
        Ok(paid) if paid.len() == n => {
            count(key, "paid", n);
            paid.into_iter()
                .map(|o| Outcome::Paid(Box::new(o)))
                .collect()
        }
        Ok(_) => {
            count(key, "alone", n);
            (0..n).map(|_| Outcome::Alone).collect()
        }
        Err(Fail::Alone(why)) => {
            tracing::debug!(event = %key.0, orders = n, why, "batch refused: paying each alone");
            count(key, "alone", n);
            (0..n).map(|_| Outcome::Alone).collect()
        }
        Err(Fail::Commit(why)) => {
            tracing::error!(event = %key.0, orders = n, why, "batch commit failed");
            count(key, "failed", n);
            (0..n).map(|_| Outcome::Failed).collect()
        }
    };
    for (outcome, a) in outcomes.into_iter().zip(answers) {
        // A request that went away no longer needs its answer.
        let _ = a.send(outcome);
    }
}

enum Fail {
    Alone(String),
    Commit(String),
}

async fn pay(state: &AppState, key: Key, jobs: &[Job]) -> Result<Vec<OrderRecord>, Fail> {
    let alone = |e: String| Fail::Alone(e);
    let (event_id, provider) = key;
    let event = state
        .store
        .event(event_id)
        .await
        .map_err(|e| alone(e.to_string()))?;
    let (key_id, signer) = signer(state, event_id)
        .await
        .map_err(|e| alone(e.to_string()))?;
    let now = state.now_ms();
    let mut orders = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (order, idempotency_key, purchase_limit, stripe) = match job {
            Job::Free(new) => (
                free_order(new, now),
                new.idempotency.as_ref().map(|i| i.key.clone()),
                new.purchase_limit,
                None,
            ),
            Job::Stripe {
                order,
                intent,
                event,
            } => (
                order.clone(),
                None,
                i64::MAX,
                Some((intent.clone(), event.clone())),
            ),
        };
        // Holder names come from the store, which reads the buyers once.
        let tickets =
            super::service::primary_tickets(&signer, &event, &order, order.buyer_id, "", now)
                .map_err(|e| alone(e.to_string()))?;
        orders.push(BatchOrder {
            order,
            idempotency_key,
            tickets,
            purchase_limit,
            stripe,
        });
    }
    let batch = IssueBatch {
        event_id,
        provider,
        key_id,
        orders,
    };
    match state.store.issue_batch(&batch, now).await {
        Ok(paid) => Ok(paid),
        Err(BatchError::KeyChanged) => {
            forget_signer(state, event_id);
            Err(alone("the event's signing key changed".into()))
        }
        Err(BatchError::Refused(why)) => Err(alone(why)),
        Err(BatchError::Commit(e)) => Err(Fail::Commit(e.to_string())),
    }
}

/// A new free order as it reads once paid (the batch sets the payment).
fn free_order(new: &NewOnlineOrder, now: i64) -> OrderRecord {
    let mut order = new.pending_record(now);
    order.items.sort_by_key(|i| i.tier);
    order
}

/// The event's signing key (cached), with its key id. Only the key is
/// kept: credentials need nothing else.
async fn signer(state: &AppState, event: EventId) -> ApiResult<(String, Arc<EventSigner>)> {
    if let Some(hit) = state
        .group
        .signers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&event)
        .cloned()
    {
        return Ok(hit);
    }
    let keys = state.store.event_keys(event).await?;
    let current = keys
        .iter()
        .rev()
        .find(|k| k.retired_at.is_none())
        .ok_or_else(|| ApiError::Internal("the event has no signing key in service".into()))?;
    let seed = state
        .vault
        .open(&current.record.key.sealed_seed, &event_aad(event))
        .map_err(|e| ApiError::Internal(format!("event signing key: {e}")))?;
    let signer = Arc::new(EventSigner {
        key: SecretKey::from_seed(seed),
        certs: Vec::new(),
        retirements: Vec::new(),
    });
    let hit = (current.record.key.key_id.clone(), signer);
    let mut cache = state
        .group
        .signers
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if cache.len() > 4096 {
        cache.clear();
    }
    cache.insert(event, hit.clone());
    Ok(hit)
}

fn forget_signer(state: &AppState, event: EventId) {
    state
        .group
        .signers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&event);
}

/// Whether `order` may be settled in a Stripe batch: a pending primary
/// order paid in full.
pub fn batchable(order: &OrderRecord, amount: i64, currency: &str) -> bool {
    order.status == OrderStatus::Pending
        && order.kind == OrderKind::Primary
        && order.buyer_id.is_some()
        && amount == order.total_minor
        && currency.eq_ignore_ascii_case(&order.currency)
}
