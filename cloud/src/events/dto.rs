//! Request and response bodies of the events API, and input validation.

use crate::error::{ApiError, ApiResult};
use crate::model::{EventId, EventStatus, TierId, UserId, from_millis, to_millis, valid_currency};
use crate::store::{EventRecord, TierRecord, ZoneRecord};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::zones::{self, ZoneView};

/// A ticket tier as submitted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    /// Tier number carried in the credential (0 to 65535, unique per event).
    pub tier: u16,
    /// Name (unique per event).
    pub name: String,
    /// Price in minor units (e.g. cents), 0 to 100,000,000,000.
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    pub price_minor: i64,
    /// ISO 4217; must equal the event's currency (default: the event's).
    pub currency: Option<String>,
    /// Most tickets (0 to 1,000,000).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub capacity: i64,
    /// Zone bit mask carried in the credential (bit z = zone z); default 1.
    /// Give this or `zones`, not both.
    pub zone_mask: Option<u32>,
    /// The event's named zones the tier admits to, e.g. `["Balcony"]`
    /// (`/events/{id}/zones`): the mask is built from their numbers. An
    /// unknown name is `422 unknown_zone`, which lists the known ones.
    pub zones: Option<Vec<String>>,
    /// Zone label, e.g. "Floor" (default: the `zones` names, else "General").
    pub zone: Option<String>,
}

/// A new event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Venue.
    pub venue: String,
    /// Start (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// End (RFC 3339), after the start.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// ISO 4217 currency of every tier.
    pub currency: String,
    /// Named zones (numbers and names unique), so the tiers below can
    /// admit by name; more can be named later with `PUT /events/{id}/zones/{zone}`.
    #[serde(default)]
    pub zones: Vec<ZoneView>,
    /// Ticket tiers (at most 64).
    #[serde(default)]
    pub tiers: Vec<TierInput>,
}

/// The editable fields of an event (all required: PUT replaces them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEvent {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue: String,
    /// Start (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// End (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
}

/// A lifecycle step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusUpdate {
    /// Target status.
    pub status: EventStatus,
}

/// A tier as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierView {
    /// Id.
    pub id: TierId,
    /// Tier number.
    pub tier: u16,
    /// Name.
    pub name: String,
    /// Price, minor units.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Capacity.
    pub capacity: i64,
    /// Still available.
    pub available: i64,
    /// Zone mask.
    pub zone_mask: u32,
    /// Names of the named zones the mask admits to, by number (unnamed
    /// bits have no entry).
    pub zones: Vec<String>,
    /// Zone label.
    pub zone: String,
}

/// An event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: EventId,
    /// Organizer.
    pub organizer_id: UserId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue: String,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// Currency.
    pub currency: String,
    /// Lifecycle state.
    pub status: EventStatus,
    /// Current manifest version (for gate nodes).
    pub manifest_version: i64,
    /// Tiers by number.
    pub tiers: Vec<TierView>,
    /// Named zones by number.
    pub zones: Vec<ZoneView>,
}

impl From<&EventRecord> for EventView {
    fn from(e: &EventRecord) -> Self {
        Self {
            id: e.id,
            organizer_id: e.organizer_id,
            name: e.name.clone(),
            description: e.description.clone(),
            venue: e.venue.clone(),
            starts_at: from_millis(e.starts_at),
            ends_at: from_millis(e.ends_at),
            currency: e.currency.clone(),
            status: e.status,
            manifest_version: e.manifest_version,
            tiers: e
                .tiers
                .iter()
                .map(|t| TierView {
                    id: t.id,
                    tier: t.tier,
                    name: t.name.clone(),
                    price_minor: t.price_minor,
                    currency: t.currency.clone(),
                    capacity: t.capacity,
                    available: t.capacity - t.allocated,
                    zone_mask: t.zone_mask,
                    zones: zones::names_in(&e.zones, t.zone_mask),
                    zone: t.zone.clone(),
                })
                .collect(),
            zones: e.zones.iter().map(ZoneView::from).collect(),
        }
    }
}

fn text(field: &str, value: &str, min: usize, max: usize) -> ApiResult<String> {
    crate::validate::text(field, value, min, max, field == "description")
}

/// Validated event fields: (name, description, venue, starts_at, ends_at) in ms.
pub fn check_fields(
    name: &str,
    description: &str,
    venue: &str,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    now: OffsetDateTime,
) -> ApiResult<(String, String, String, i64, i64)> {
    if ends_at <= starts_at {
        return Err(ApiError::Validation(
            "ends_at must be after starts_at".into(),
        ));
    }
    if ends_at <= now {
        return Err(ApiError::Validation(
            "ends_at is in the past: an event must end in the future".into(),
        ));
    }
    Ok((
        text("name", name, 1, 200)?,
        text("description", description, 0, 5000)?,
        text("venue", venue, 1, 200)?,
        to_millis(starts_at),
        to_millis(ends_at),
    ))
}

/// A validated tier for `event`, whose named zones are `zones`.
pub fn check_tier(
    event: EventId,
    currency: &str,
    zones: &[ZoneRecord],
    t: &TierInput,
) -> ApiResult<TierRecord> {
    if let Some(c) = &t.currency
        && c != currency
    {
        return Err(ApiError::Validation(format!(
            "tier {:?} is priced in {c}, but the event sells in {currency}",
            t.name
        )));
    }
    if !(0..=100_000_000_000).contains(&t.price_minor) {
        return Err(ApiError::Validation(
            "price_minor must be between 0 and 100000000000".into(),
        ));
    }
    if !(0..=1_000_000).contains(&t.capacity) {
        return Err(ApiError::Validation(
            "capacity must be between 0 and 1000000".into(),
        ));
    }
    let (zone_mask, label) = match (t.zone_mask, &t.zones) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Validation(
                "give zone_mask or zones, not both".into(),
            ));
        }
        (_, Some(names)) => {
            let mask = zones::mask_of(zones, names)?;
            let names = zones::names_in(zones, mask).join(", ");
            (mask, names.chars().take(100).collect())
        }
        (mask, None) => (mask.unwrap_or(1), "General".to_string()),
    };
    if zone_mask == 0 {
        return Err(ApiError::Validation(
            "zone_mask must admit at least one zone".into(),
        ));
    }
    Ok(TierRecord {
        id: TierId::new(),
        event_id: event,
        tier: t.tier,
        name: text("tier name", &t.name, 1, 100)?,
        price_minor: t.price_minor,
        currency: currency.to_string(),
        capacity: t.capacity,
        allocated: 0,
        zone_mask,
        zone: text("zone", t.zone.as_deref().unwrap_or(&label), 1, 100)?,
    })
}

/// Validated zones of a new event: numbers 0 to 31, names valid, both unique.
pub fn check_zones(input: &[ZoneView]) -> ApiResult<Vec<ZoneRecord>> {
    let records = input
        .iter()
        .map(|z| {
            Ok(ZoneRecord {
                zone: zones::check_number(u32::from(z.zone))?,
                name: zones::check_name(&z.name)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let numbers: HashSet<u8> = records.iter().map(|z| z.zone).collect();
    let names: HashSet<&str> = records.iter().map(|z| z.name.as_str()).collect();
    if numbers.len() != records.len() || names.len() != records.len() {
        return Err(ApiError::Validation(
            "zone numbers and names must be unique".into(),
        ));
    }
    Ok(records)
}

/// Validated tiers: at most 64, numbers and names unique.
pub fn check_tiers(
    event: EventId,
    currency: &str,
    zones: &[ZoneRecord],
    tiers: &[TierInput],
) -> ApiResult<Vec<TierRecord>> {
    if !valid_currency(currency) {
        return Err(ApiError::Validation(
            "currency must be an ISO 4217 code such as \"EUR\"".into(),
        ));
    }
    if tiers.len() > 64 {
        return Err(ApiError::Validation("an event has at most 64 tiers".into()));
    }
    let records = tiers
        .iter()
        .map(|t| check_tier(event, currency, zones, t))
        .collect::<ApiResult<Vec<_>>>()?;
    let numbers: HashSet<u16> = records.iter().map(|t| t.tier).collect();
    let names: HashSet<&str> = records.iter().map(|t| t.name.as_str()).collect();
    if numbers.len() != records.len() || names.len() != records.len() {
        return Err(ApiError::Validation(
            "tier numbers and names must be unique".into(),
        ));
    }
    Ok(records)
}
