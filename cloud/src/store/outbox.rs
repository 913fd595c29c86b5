//! The notification outbox's write side: one call per business change,
//! made inside that change's transaction, so the message commits with the
//! change or not at all (a paid order and its confirmation, a refund and
//! its email). Each hook reads what its messages need inside the same
//! transaction and snapshots it into the row's payload, so every retry sends
//! the same content (a later transfer cannot leak the new holder's QR code
//! into a resent order confirmation). Dedupe keys make replayed business
//! events (a webhook delivered twice) enqueue once.

use super::StoreResult;
use super::notifications::{Channel, NewNotification};
use super::sql::{col, map_err};
use crate::model::{EventId, EventStatus, OrderId, TicketId, UnixMillis, UserId};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use sync_protocol::ScanRecord;

type Tx = Transaction<'static, Any>;

/// Attempts a row starts with; the worker's configuration has the last word.
pub(super) const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// Most scans in one `ticket.checked_in` delivery.
pub const CHECKIN_BATCH: usize = 500;

/// Inserts one outbox row; `None` when its dedupe key is already queued.
pub(super) async fn enqueue(
    tx: &mut Tx,
    n: &NewNotification,
    now: UnixMillis,
) -> StoreResult<Option<uuid::Uuid>> {
    let id = uuid::Uuid::now_v7();
    let done = sqlx::query(
        "INSERT INTO notifications (id, channel, kind, status, event_id, endpoint_id, user_id, recipient, payload, \
         dedupe_key, created_by, attempts, max_attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $12, $12) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(n.channel.as_str())
    .bind(n.kind.clone())
    .bind(n.event_id.map(|e| e.to_string()))
    .bind(n.endpoint_id.map(|e| e.to_string()))
    .bind(n.user_id.map(|u| u.to_string()))
    .bind(n.recipient.clone())
    .bind(n.payload.clone())
    .bind(n.dedupe_key.clone())
    .bind(n.created_by.map(|u| u.to_string()))
    .bind(DEFAULT_MAX_ATTEMPTS)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// RFC 3339 of unix milliseconds.
pub fn rfc3339(ms: UnixMillis) -> String {
    crate::model::from_millis(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What a message says about its event.
pub(super) async fn event_info(tx: &mut Tx, event: EventId) -> StoreResult<(UserId, Value)> {
    let row = sqlx::query(
        "SELECT organizer_id, name, venue, starts_at, ends_at, status FROM events WHERE id = $1",
    )
    .bind(event.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    let organizer: String = col(&row, "organizer_id")?;
    let organizer = organizer
        .parse()
        .map_err(|e| super::StoreError::Other(format!("organizer id: {e}")))?;
    let starts: i64 = col(&row, "starts_at")?;
    let ends: i64 = col(&row, "ends_at")?;
    Ok((
        organizer,
        json!({
            "id": event.to_string(),
            "name": col::<String>(&row, "name")?,
            "venue": col::<String>(&row, "venue")?,
            "starts_at_ms": starts,
            "ends_at_ms": ends,
            "starts_at": rfc3339(starts),
            "ends_at": rfc3339(ends),
            "status": col::<String>(&row, "status")?,
        }),
    ))
}

struct Person {
    id: UserId,
    email: String,
    name: String,
    phone: Option<String>,
    sms: bool,
}

async fn person(tx: &mut Tx, user: UserId) -> StoreResult<Person> {
    let row = sqlx::query(
        "SELECT u.email, u.display_name, p.phone, p.sms FROM users u \
         LEFT JOIN notification_prefs p ON p.user_id = u.id WHERE u.id = $1",
    )
    .bind(user.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(Person {
        id: user,
        email: col(&row, "email")?,
        name: col(&row, "display_name")?,
        phone: col(&row, "phone")?,
        sms: col::<Option<i64>>(&row, "sms")?.unwrap_or(0) != 0,
    })
}

async fn email_to(
    tx: &mut Tx,
    to: &Person,
    kind: &str,
    event: Option<EventId>,
    payload: Value,
    dedupe: String,
    now: UnixMillis,
) -> StoreResult<bool> {
    let n = NewNotification {
        channel: Channel::Email,
        kind: kind.into(),
        event_id: event,
        endpoint_id: None,
        user_id: Some(to.id),
        recipient: to.email.clone(),
        payload: payload.to_string(),
        dedupe_key: Some(dedupe),
        created_by: None,
    };
    enqueue(tx, &n, now).await.map(|id| id.is_some())
}

async fn sms_to(
    tx: &mut Tx,
    to: &Person,
    kind: &str,
    event: Option<EventId>,
    payload: Value,
    dedupe: String,
    now: UnixMillis,
) -> StoreResult<()> {
    let Some(phone) = to.phone.clone().filter(|_| to.sms) else {
        return Ok(());
    };
    let n = NewNotification {
        channel: Channel::Sms,
        kind: kind.into(),
        event_id: event,
        endpoint_id: None,
        user_id: Some(to.id),
        recipient: phone,
        payload: payload.to_string(),
        dedupe_key: Some(dedupe),
        created_by: None,
    };
    enqueue(tx, &n, now).await.map(|_| ())
}

/// An enabled webhook endpoint of an event's organizer (account-wide or for
/// this event).
pub(super) struct Hook {
    id: String,
    url: String,
    types: String,
}

impl Hook {
    /// Its outbox row for a message of `kind` with the frozen `body`, if it
    /// subscribes to `kind`; deduplicated per endpoint.
    pub(super) fn row(
        &self,
        event: EventId,
        kind: &str,
        body: &str,
        dedupe: &str,
    ) -> Option<NewNotification> {
        if !self.types.split(' ').any(|t| t == kind || t == "*") {
            return None;
        }
        Some(NewNotification {
            channel: Channel::Webhook,
            kind: kind.into(),
            event_id: Some(event),
            endpoint_id: self.id.parse().ok(),
            user_id: None,
            recipient: self.url.clone(),
            payload: body.to_string(),
            dedupe_key: Some(format!("{dedupe}:{}", self.id)),
            created_by: None,
        })
    }
}

/// The endpoints that may receive the event's messages, in id order.
pub(super) async fn hooks(
    tx: &mut Tx,
    event: EventId,
    organizer: UserId,
) -> StoreResult<Vec<Hook>> {
    let rows = sqlx::query(
        "SELECT id, url, event_types FROM webhook_endpoints WHERE owner_id = $1 AND enabled = 1 \
         AND (event_id IS NULL OR event_id = $2) ORDER BY id",
    )
    .bind(organizer.to_string())
    .bind(event.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|row| {
            Ok(Hook {
                id: col(row, "id")?,
                url: col(row, "url")?,
                types: col(row, "event_types")?,
            })
        })
        .collect()
}

/// A webhook message's frozen body: every retry signs the same bytes.
pub(super) fn webhook_body(kind: &str, data: Value, now: UnixMillis) -> String {
    json!({"type": kind, "timestamp": rfc3339(now), "data": data}).to_string()
}

/// One webhook row per enabled endpoint of the event's organizer that
/// subscribes to `kind` (account-wide or for this event).
pub(super) async fn webhooks(
    tx: &mut Tx,
    event: EventId,
    organizer: UserId,
    kind: &str,
    data: Value,
    dedupe: &str,
    now: UnixMillis,
) -> StoreResult<()> {
    let body = webhook_body(kind, data, now);
    for hook in hooks(tx, event, organizer).await? {
        if let Some(n) = hook.row(event, kind, &body, dedupe) {
            enqueue(tx, &n, now).await?;
        }
    }
    Ok(())
}

fn ticket_json(row: &AnyRow) -> StoreResult<Value> {
    Ok(json!({
        "id": col::<String>(row, "id")?,
        "tier": col::<i64>(row, "tier")?,
        "tier_name": col::<String>(row, "tier_name")?,
        "holder_name": col::<String>(row, "holder_name")?,
        "credential": col::<Option<String>>(row, "credential")?,
    }))
}

const TICKETS: &str = "SELECT t.id, t.tier, tr.name AS tier_name, t.holder_name, t.credential FROM tickets t \
     JOIN tiers tr ON tr.id = t.tier_id";

/// A new account: welcome email.
pub(super) async fn user_registered(tx: &mut Tx, user: UserId, now: UnixMillis) -> StoreResult<()> {
    let p = person(tx, user).await?;
    let payload = json!({"name": p.name});
    email_to(
        tx,
        &p,
        "welcome",
        None,
        payload,
        format!("welcome:{user}"),
        now,
    )
    .await?;
    Ok(())
}

/// A paid order: confirmation with its tickets' QR codes (email, and SMS
/// when the buyer asked for it), `order.paid` and `ticket.issued` webhooks.
pub(super) async fn order_paid(tx: &mut Tx, order: OrderId, now: UnixMillis) -> StoreResult<()> {
    let row =
        sqlx::query("SELECT event_id, buyer_id, total_minor, currency FROM orders WHERE id = $1")
            .bind(order.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
    let event: EventId = super::sql::parsed(&row, "event_id")?;
    let buyer: Option<UserId> = super::sql::parsed_opt(&row, "buyer_id")?;
    let total: i64 = col(&row, "total_minor")?;
    let currency: String = col(&row, "currency")?;
    let (organizer, event_json) = event_info(tx, event).await?;
    let tickets = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{TICKETS} WHERE t.order_id = $1 ORDER BY t.id"
    )))
    .bind(order.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let tickets: Vec<Value> = tickets
        .iter()
        .map(ticket_json)
        .collect::<StoreResult<_>>()?;
    let order_json = json!({"id": order.to_string(), "total_minor": total, "currency": currency});
    if let Some(buyer) = buyer {
        let p = person(tx, buyer).await?;
        let payload =
            json!({"name": p.name, "event": event_json, "order": order_json, "tickets": tickets});
        let dedupe = format!("order_confirmation:{order}");
        email_to(
            tx,
            &p,
            "order_confirmation",
            Some(event),
            payload.clone(),
            dedupe,
            now,
        )
        .await?;
        sms_to(
            tx,
            &p,
            "order_confirmation",
            Some(event),
            payload,
            format!("order_sms:{order}"),
            now,
        )
        .await?;
    }
    let ids: Vec<&Value> = tickets.iter().map(|t| &t["id"]).collect();
    let data = json!({"order": order_json, "event_id": event.to_string(), "buyer_id": buyer.map(|b| b.to_string()), "ticket_ids": ids});
    webhooks(
        tx,
        event,
        organizer,
        "order.paid",
        data,
        &format!("order.paid:{order}"),
        now,
    )
    .await?;
    for t in &tickets {
        let data = json!({"ticket_id": t["id"], "order_id": order.to_string(), "event_id": event.to_string(), "tier": t["tier"]});
        let dedupe = format!("ticket.issued:{}", t["id"].as_str().unwrap_or_default());
        webhooks(tx, event, organizer, "ticket.issued", data, &dedupe, now).await?;
    }
    Ok(())
}

/// A gift transfer: the new holder gets the new QR code, the sender a
/// receipt, the organizer `ticket.transferred`.
pub(super) async fn ticket_transferred(
    tx: &mut Tx,
    ticket: TicketId,
    from: UserId,
    now: UnixMillis,
) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT t.id, t.tier, tr.name AS tier_name, t.holder_name, t.credential, t.event_id, t.owner_id, t.generation \
         FROM tickets t JOIN tiers tr ON tr.id = t.tier_id WHERE t.id = $1"
    )
    .bind(ticket.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    let event: EventId = super::sql::parsed(&row, "event_id")?;
    let to: Option<UserId> = super::sql::parsed_opt(&row, "owner_id")?;
    let generation: i64 = col(&row, "generation")?;
    let t = ticket_json(&row)?;
    let (organizer, event_json) = event_info(tx, event).await?;
    let sender = person(tx, from).await?;
    if let Some(to) = to {
        let p = person(tx, to).await?;
        let payload =
            json!({"name": p.name, "from_name": sender.name, "event": event_json, "tickets": [t]});
        let dedupe = format!("transfer_received:{ticket}:{generation}");
        email_to(
            tx,
            &p,
            "transfer_received",
            Some(event),
            payload,
            dedupe,
            now,
        )
        .await?;
        let payload = json!({"name": sender.name, "to_name": p.name, "event": event_json, "ticket_id": ticket.to_string()});
        let dedupe = format!("transfer_sent:{ticket}:{generation}");
        email_to(
            tx,
            &sender,
            "transfer_sent",
            Some(event),
            payload,
            dedupe,
            now,
        )
        .await?;
    }
    let data = json!({"ticket_id": ticket.to_string(), "event_id": event.to_string(), "from_user_id": from.to_string(),
        "to_user_id": to.map(|u| u.to_string()), "generation": generation});
    let dedupe = format!("ticket.transferred:{ticket}:{generation}");
    webhooks(
        tx,
        event,
        organizer,
        "ticket.transferred",
        data,
        &dedupe,
        now,
    )
    .await
}

/// A refunded order: confirmation to the buyer, `ticket.refunded` webhook.
pub(super) async fn order_refunded(
    tx: &mut Tx,
    order: OrderId,
    now: UnixMillis,
) -> StoreResult<()> {
    let row =
        sqlx::query("SELECT event_id, buyer_id, total_minor, currency FROM orders WHERE id = $1")
            .bind(order.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
    let event: EventId = super::sql::parsed(&row, "event_id")?;
    let buyer: Option<UserId> = super::sql::parsed_opt(&row, "buyer_id")?;
    let order_json = json!({"id": order.to_string(), "total_minor": col::<i64>(&row, "total_minor")?,
        "currency": col::<String>(&row, "currency")?});
    let (organizer, event_json) = event_info(tx, event).await?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tickets WHERE order_id = $1 ORDER BY id")
            .bind(order.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
    if let Some(buyer) = buyer {
        let p = person(tx, buyer).await?;
        let payload = json!({"name": p.name, "event": event_json, "order": order_json});
        email_to(
            tx,
            &p,
            "refund",
            Some(event),
            payload,
            format!("refund:{order}"),
            now,
        )
        .await?;
    }
    let data = json!({"order": order_json, "event_id": event.to_string(), "ticket_ids": ids});
    webhooks(
        tx,
        event,
        organizer,
        "ticket.refunded",
        data,
        &format!("ticket.refunded:{order}"),
        now,
    )
    .await
}

/// An event's lifecycle step: `event.status_changed`, and when it is
/// cancelled an email to every holder of a valid ticket. Call before the
/// cancellation revokes the tickets.
pub(super) async fn event_status_changed(
    tx: &mut Tx,
    event: EventId,
    from: EventStatus,
    to: EventStatus,
    now: UnixMillis,
) -> StoreResult<()> {
    let (organizer, event_json) = event_info(tx, event).await?;
    if to == EventStatus::Cancelled {
        let holders: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT owner_id FROM tickets WHERE event_id = $1 AND owner_id IS NOT NULL \
             AND status IN ('issued', 'transferred', 'checked_in')",
        )
        .bind(event.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        for h in holders {
            let Ok(user) = h.parse::<UserId>() else {
                continue;
            };
            let p = person(tx, user).await?;
            let payload = json!({"name": p.name, "event": event_json});
            email_to(
                tx,
                &p,
                "event_cancelled",
                Some(event),
                payload,
                format!("event_cancelled:{event}:{user}"),
                now,
            )
            .await?;
        }
    }
    let data = json!({"event_id": event.to_string(), "from": from.as_str(), "to": to.as_str()});
    let dedupe = format!("event.status_changed:{event}:{}:{now}", to.as_str());
    webhooks(
        tx,
        event,
        organizer,
        "event.status_changed",
        data,
        &dedupe,
        now,
    )
    .await
}

/// Scans a device synced: `ticket.checked_in` in batches of at most
/// [`CHECKIN_BATCH`] scans per delivery (one sync of a busy gate is one
/// request, not one per person).
pub(super) async fn checked_in(
    tx: &mut Tx,
    event: EventId,
    scans: &[&ScanRecord],
    now: UnixMillis,
) -> StoreResult<()> {
    if scans.is_empty() {
        return Ok(());
    }
    let any: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM webhook_endpoints w JOIN events e ON e.organizer_id = w.owner_id \
         WHERE e.id = $1 AND w.enabled = 1 AND (w.event_id IS NULL OR w.event_id = $1) LIMIT 1",
    )
    .bind(event.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    if any.is_none() {
        return Ok(());
    }
    let (organizer, _) = event_info(tx, event).await?;
    for chunk in scans.chunks(CHECKIN_BATCH) {
        let list: Vec<Value> = chunk
            .iter()
            .map(|s| {
                json!({"scan_id": format!("{}:{}", s.id.node, s.id.seq), "ticket_id": s.ticket_id.to_string(),
                    "gate": s.gate, "direction": format!("{:?}", s.direction).to_lowercase(),
                    "outcome": format!("{:?}", s.outcome), "at_ms": s.hlc.physical_ms()})
            })
            .collect();
        let first = chunk[0].id;
        let dedupe = format!("ticket.checked_in:{event}:{}:{}", first.node, first.seq);
        let data = json!({"event_id": event.to_string(), "count": list.len(), "scans": list});
        webhooks(
            tx,
            event,
            organizer,
            "ticket.checked_in",
            data,
            &dedupe,
            now,
        )
        .await?;
    }
    Ok(())
}
