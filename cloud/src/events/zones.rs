//! Named zones: `GET /events/{id}/zones`, `PUT` and `DELETE
//! /events/{id}/zones/{zone}`. An event names its zone numbers once
//! ("Balcony" = zone 2); tiers then admit to zones by name
//! (`TierInput.zones`), enrollment codes set up gates by name
//! (`zone_name`), and tiers, devices and gates show the names.
//!
//! The numbers stay what credentials and gate policies carry, so a rename
//! changes nothing signed. Reading is public for published events (like
//! `GET /public/events/{id}`); naming and removing need the event's
//! organizer or an admin.

use crate::auth::extract::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::model::{EventId, EventStatus};
use crate::state::AppState;
use crate::store::{DeleteZoneError, EventRecord, StoreError, ZoneRecord};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Zone numbers are the bits of a 32-bit `zone_mask`.
pub const ZONES: u32 = 32;

/// A named zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZoneView {
    /// Zone number (0 to 31): bit `zone` of a tier's `zone_mask`, the
    /// `zone` of a gate.
    #[schema(minimum = 0, maximum = 31)]
    pub zone: u8,
    /// Name, unique in the event (1 to 32 characters).
    pub name: String,
}

impl From<&ZoneRecord> for ZoneView {
    fn from(z: &ZoneRecord) -> Self {
        Self {
            zone: z.zone,
            name: z.name.clone(),
        }
    }
}

/// The name to give a zone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetZone {
    /// 1 to 32 characters, unique in the event, e.g. "Balcony".
    #[schema(min_length = 1, max_length = 32)]
    pub name: String,
}

/// A validated zone name.
pub fn check_name(name: &str) -> ApiResult<String> {
    crate::validate::text("zone name", name, 1, 32, false)
}

/// A validated zone number (0 to 31).
pub fn check_number(zone: u32) -> ApiResult<u8> {
    u8::try_from(zone)
        .ok()
        .filter(|z| u32::from(*z) < ZONES)
        .ok_or_else(|| ApiError::Validation(format!("zone must be 0 to 31, not {zone}")))
}

/// The name of zone `zone`, if the event named it.
pub fn name_of(zones: &[ZoneRecord], zone: Option<u8>) -> Option<String> {
    let zone = zone?;
    zones
        .iter()
        .find(|z| z.zone == zone)
        .map(|z| z.name.clone())
}

/// The names of the zones `mask` admits to, by number (unnamed bits are
/// left out).
pub fn names_in(zones: &[ZoneRecord], mask: u32) -> Vec<String> {
    zones
        .iter()
        .filter(|z| mask & (1 << z.zone) != 0)
        .map(|z| z.name.clone())
        .collect()
}

/// `422 unknown_zone`: names what the event does have, and how to add one.
fn unknown(zones: &[ZoneRecord], name: &str) -> ApiError {
    let known = if zones.is_empty() {
        "it has no named zones yet".to_string()
    } else {
        let list: Vec<String> = zones
            .iter()
            .map(|z| format!("{:?} ({})", z.name, z.zone))
            .collect();
        format!("its zones are {}", list.join(", "))
    };
    ApiError::coded(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_zone",
        format!(
            "this event has no zone named {name:?}: {known}; name a zone with PUT /events/{{id}}/zones/{{zone}} first"
        ),
    )
}

/// The number of the zone called `name` (names compare exactly, after
/// trimming).
pub fn number_of(zones: &[ZoneRecord], name: &str) -> ApiResult<u8> {
    let name = name.trim();
    zones
        .iter()
        .find(|z| z.name == name)
        .map(|z| z.zone)
        .ok_or_else(|| unknown(zones, name))
}

/// The mask admitting to the zones called `names` (at least one).
pub fn mask_of(zones: &[ZoneRecord], names: &[String]) -> ApiResult<u32> {
    if names.is_empty() {
        return Err(ApiError::Validation(
            "zones must name at least one zone".into(),
        ));
    }
    names
        .iter()
        .try_fold(0_u32, |mask, n| Ok(mask | 1 << number_of(zones, n)?))
}

/// Whether the caller may read `event`'s zones: anyone for a published
/// event, its organizer and admins for a draft.
fn readable(event: &EventRecord, user: Option<&AuthUser>) -> bool {
    event.status != EventStatus::Draft || user.is_some_and(|u| u.manages(event))
}

/// The event's named zones, ascending by number. No account needed for a
/// published event; a draft's zones only for its organizer and admins.
#[utoipa::path(get, path = "/events/{id}/zones", tag = "events", security((), ("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = Vec<ZoneView>),
              (status = 404, body = ErrorBody, description = "no such event (or a draft the caller does not manage)")))]
pub async fn list_zones(
    State(state): State<AppState>,
    user: Option<AuthUser>,
    Path(id): Path<EventId>,
) -> ApiResult<Json<Vec<ZoneView>>> {
    let event = state.store.event(id).await?;
    if !readable(&event, user.as_ref()) {
        return Err(ApiError::NotFound("event not found".into()));
    }
    Ok(Json(event.zones.iter().map(ZoneView::from).collect()))
}

/// Loads the event in the path and checks the caller manages it.
async fn managed(state: &AppState, user: &AuthUser, id: EventId) -> ApiResult<EventRecord> {
    let event = state.store.event(id).await?;
    user.require_manager(
        &event,
        "only the event's organizer or an admin may name its zones",
    )?;
    Ok(event)
}

/// Names a zone, or renames it (its organizer or an admin). Tiers, codes
/// and devices keep the number, so they show the new name at once.
#[utoipa::path(put, path = "/events/{id}/zones/{zone}", tag = "events", security(("bearer" = [])), request_body = SetZone,
    params(("id" = String, Path, format = Uuid, description = "event id"),
           ("zone" = u32, Path, minimum = 0, maximum = 31, description = "zone number")),
    responses((status = 200, body = ZoneView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`duplicate`: another zone of the event has this name"),
              (status = 422, body = ErrorBody, description = "zone outside 0 to 31, or a bad name")))]
pub async fn set_zone(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, zone)): Path<(EventId, u32)>,
    Json(req): Json<SetZone>,
) -> ApiResult<Json<ZoneView>> {
    let event = managed(&state, &user, id).await?;
    let record = ZoneRecord {
        zone: check_number(zone)?,
        name: check_name(&req.name)?,
    };
    let saved = state
        .store
        .set_zone(event.id, &record, state.now_ms())
        .await?;
    Ok(Json(ZoneView::from(&saved)))
}

/// Removes a zone's name (its organizer or an admin): refused with `409
/// zone_in_use` while a tier's mask, an unused unexpired enrollment code
/// or an unrevoked device still uses the number.
#[utoipa::path(delete, path = "/events/{id}/zones/{zone}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"),
           ("zone" = u32, Path, minimum = 0, maximum = 31, description = "zone number")),
    responses((status = 204), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such event, or the zone has no name"),
              (status = 409, body = ErrorBody, description = "`zone_in_use`: the message names what uses it"),
              (status = 422, body = ErrorBody, description = "zone outside 0 to 31")))]
pub async fn delete_zone(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, zone)): Path<(EventId, u32)>,
) -> ApiResult<StatusCode> {
    let event = managed(&state, &user, id).await?;
    let zone = check_number(zone)?;
    match state
        .store
        .delete_zone(event.id, zone, state.now_ms())
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DeleteZoneError::InUse(users)) => Err(ApiError::coded(
            StatusCode::CONFLICT,
            "zone_in_use",
            format!(
                "zone {zone} is still used by {users}: move those tiers to other zones, revoke those devices or let the codes expire first"
            ),
        )),
        Err(DeleteZoneError::Store(StoreError::NotFound(_))) => Err(ApiError::NotFound(format!(
            "zone {zone} of this event has no name"
        ))),
        Err(DeleteZoneError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<ZoneRecord> {
        vec![
            ZoneRecord {
                zone: 0,
                name: "Floor".into(),
            },
            ZoneRecord {
                zone: 2,
                name: "Balcony".into(),
            },
        ]
    }

    #[test]
    fn names_become_mask_bits_and_back() {
        let z = zones();
        assert_eq!(mask_of(&z, &["Balcony".into()]).unwrap(), 0b100);
        assert_eq!(
            mask_of(&z, &["Floor".into(), " Balcony ".into()]).unwrap(),
            0b101
        );
        assert_eq!(names_in(&z, 0b111), vec!["Floor", "Balcony"]);
        assert_eq!(name_of(&z, Some(2)).as_deref(), Some("Balcony"));
        assert_eq!(name_of(&z, Some(1)), None);
        assert_eq!(name_of(&z, None), None);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = mask_of(&zones(), &["Roof".into()]).unwrap_err();
        assert_eq!(e.code(), "unknown_zone");
        let msg = e.to_string();
        assert!(
            msg.contains("\"Floor\" (0)") && msg.contains("\"Balcony\" (2)"),
            "{msg}"
        );
        assert!(mask_of(&zones(), &[]).is_err());
        assert!(check_number(31).is_ok() && check_number(32).is_err());
    }
}
