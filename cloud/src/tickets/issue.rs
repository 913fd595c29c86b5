//! Issuing tickets: ids, signed credentials and the store write, shared by
//! `POST /tickets` and the box office (`POST /events/{id}/ticket-sale`).

use crate::crypto::signing::event_signer;
use crate::error::{ApiError, ApiResult};
use crate::model::{TicketId, TicketStatus, UserId, new_ticket_id};
use crate::state::AppState;
use crate::store::{EventRecord, EventSigner, NewOrder, NewTickets, TicketRecord, TierRecord};
use sync_protocol::{Claims, Credential};

/// What to issue.
#[derive(Debug)]
pub struct IssueSpec {
    /// How many.
    pub quantity: u32,
    /// Holder account.
    pub owner: Option<UserId>,
    /// Name on the ticket.
    pub holder_name: String,
    /// `Issued` (with credential) or `Reserved` (capacity only).
    pub status: TicketStatus,
    /// Price per ticket, minor units.
    pub price_minor: i64,
    /// Order to record (box office).
    pub order: Option<NewOrder>,
    /// Who did it.
    pub actor: UserId,
    /// Audit note.
    pub reason: String,
}

/// The `TK1:` QR text of a ticket's credential, signed by the event key.
pub fn credential(
    signer: &EventSigner,
    event: &EventRecord,
    ticket: TicketId,
    tier: u16,
    zones: u32,
    generation: u16,
) -> ApiResult<String> {
    let claims = Claims {
        event_id: event.id,
        ticket_id: ticket,
        generation,
        tier,
        zones,
        window: None,
        holder_key: None,
    };
    Credential::issue(&signer.key, claims)
        .map(|c| c.to_qr_text())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Opens the event's signing key.
pub async fn signer(state: &AppState, event: &EventRecord) -> ApiResult<EventSigner> {
    event_signer(state.store.as_ref(), &state.vault, event.id)
        .await
        .map_err(|e| ApiError::Internal(format!("event signing key: {e}")))
}

/// Creates `spec.quantity` tickets of `tier` in one transaction.
pub async fn issue(
    state: &AppState,
    event: &EventRecord,
    tier: &TierRecord,
    spec: IssueSpec,
) -> ApiResult<Vec<TicketRecord>> {
    if !event.status.on_sale() {
        return Err(crate::store::StoreError::NotOnSale(format!(
            "tickets cannot be issued for a {} event",
            event.status.as_str()
        ))
        .into());
    }
    let signer = if spec.status == TicketStatus::Issued {
        Some(signer(state, event).await?)
    } else {
        None
    };
    let now = state.now_ms();
    let mut tickets = Vec::with_capacity(spec.quantity as usize);
    for _ in 0..spec.quantity {
        let id = new_ticket_id();
        let credential = signer
            .as_ref()
            .map(|s| credential(s, event, id, tier.tier, tier.zone_mask, 0))
            .transpose()?;
        tickets.push(TicketRecord {
            id,
            event_id: event.id,
            tier_id: tier.id,
            tier: tier.tier,
            zone_mask: tier.zone_mask,
            owner_id: spec.owner,
            order_id: spec.order.as_ref().map(|o| o.id),
            holder_name: spec.holder_name.clone(),
            status: spec.status,
            generation: 0,
            credential,
            price_minor: spec.price_minor,
            currency: tier.currency.clone(),
            created_at: now,
            updated_at: now,
        });
    }
    let new = NewTickets {
        event_id: event.id,
        tier_id: tier.id,
        tickets,
        order: spec.order,
        actor: Some(spec.actor),
        reason: spec.reason,
    };
    state.store.create_tickets(&new, now).await?;
    Ok(new.tickets)
}
