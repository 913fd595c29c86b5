//! The outbox rows of a group-committed batch of paid orders (`group.rs`):
//! exactly the rows [`super::outbox::order_paid`] writes for each order
//! (confirmation email, SMS when asked for, `order.paid` and `ticket.issued`
//! webhooks), with the same payloads and dedupe keys, but read once per
//! batch and inserted with one statement.

use super::commerce::OrderRecord;
use super::group::{Buyer, insert_rows};
use super::notifications::{Channel, NewNotification};
use super::outbox::{event_info, hooks, webhook_body};
use super::{StoreResult, TicketRecord};
use crate::model::{EventId, TierId, UnixMillis, UserId};
use serde_json::{Value, json};
use sqlx::{Any, Transaction};
use std::collections::HashMap;

type Tx = Transaction<'static, Any>;

/// Queues every message of `paid` (its tickets among `tickets`).
pub(super) async fn orders_paid(
    tx: &mut Tx,
    event: EventId,
    paid: &[OrderRecord],
    tickets: &[TicketRecord],
    tiers: &HashMap<TierId, String>,
    buyers: &HashMap<UserId, Buyer>,
    now: UnixMillis,
) -> StoreResult<()> {
    let (organizer, event_json) = event_info(tx, event).await?;
    let hooks = hooks(tx, event, organizer).await?;
    let webhook = |rows: &mut Vec<NewNotification>, kind: &str, data: Value, dedupe: &str| {
        let body = webhook_body(kind, data, now);
        rows.extend(
            hooks
                .iter()
                .filter_map(|h| h.row(event, kind, &body, dedupe)),
        );
    };
    let mut rows: Vec<NewNotification> = Vec::new();
    for order in paid {
        let mut mine: Vec<&TicketRecord> = tickets
            .iter()
            .filter(|t| t.order_id == Some(order.id))
            .collect();
        mine.sort_by_key(|t| t.id.to_string());
        let tickets_json: Vec<Value> = mine
            .iter()
            .map(|t| {
                json!({
                    "id": t.id.to_string(),
                    "tier": i64::from(t.tier),
                    "tier_name": tiers.get(&t.tier_id).cloned().unwrap_or_default(),
                    "holder_name": t.holder_name,
                    "credential": t.credential,
                })
            })
            .collect();
        let order_json = json!({"id": order.id.to_string(), "total_minor": order.total_minor, "currency": order.currency});
        if let Some(p) = order.buyer_id.and_then(|b| buyers.get(&b)) {
            let payload = json!({"name": p.name, "event": event_json, "order": order_json, "tickets": tickets_json});
            rows.push(NewNotification {
                channel: Channel::Email,
                kind: "order_confirmation".into(),
                event_id: Some(event),
                endpoint_id: None,
                user_id: Some(p.id),
                recipient: p.email.clone(),
                payload: payload.to_string(),
                dedupe_key: Some(format!("order_confirmation:{}", order.id)),
                created_by: None,
            });
            if let Some(phone) = p.phone.clone().filter(|_| p.sms) {
                rows.push(NewNotification {
                    channel: Channel::Sms,
                    kind: "order_confirmation".into(),
                    event_id: Some(event),
                    endpoint_id: None,
                    user_id: Some(p.id),
                    recipient: phone,
                    payload: payload.to_string(),
                    dedupe_key: Some(format!("order_sms:{}", order.id)),
                    created_by: None,
                });
            }
        }
        let ids: Vec<&Value> = tickets_json.iter().map(|t| &t["id"]).collect();
        let data = json!({"order": order_json, "event_id": event.to_string(),
            "buyer_id": order.buyer_id.map(|b| b.to_string()), "ticket_ids": ids});
        webhook(
            &mut rows,
            "order.paid",
            data,
            &format!("order.paid:{}", order.id),
        );
        for t in &tickets_json {
            let data = json!({"ticket_id": t["id"], "order_id": order.id.to_string(),
                "event_id": event.to_string(), "tier": t["tier"]});
            let dedupe = format!("ticket.issued:{}", t["id"].as_str().unwrap_or_default());
            webhook(&mut rows, "ticket.issued", data, &dedupe);
        }
    }
    insert_rows(
        tx,
        "INSERT INTO notifications (id, channel, kind, status, event_id, endpoint_id, user_id, recipient, payload, \
         dedupe_key, created_by, attempts, max_attempts, next_attempt_at, created_at, updated_at)",
        "ON CONFLICT (dedupe_key) DO NOTHING",
        16,
        &rows,
        |q, n| {
            q.bind(uuid::Uuid::now_v7().to_string())
                .bind(n.channel.as_str())
                .bind(n.kind.clone())
                .bind("queued")
                .bind(n.event_id.map(|e| e.to_string()))
                .bind(n.endpoint_id.map(|e| e.to_string()))
                .bind(n.user_id.map(|u| u.to_string()))
                .bind(n.recipient.clone())
                .bind(n.payload.clone())
                .bind(n.dedupe_key.clone())
                .bind(n.created_by.map(|u| u.to_string()))
                .bind(0i64)
                .bind(super::outbox::DEFAULT_MAX_ATTEMPTS)
                .bind(now)
                .bind(now)
                .bind(now)
        },
    )
    .await?;
    Ok(())
}
