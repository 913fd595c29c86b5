//! The push channel's events (`GET /sync/events/{id}/push`, server-sent
//! events): what changed, never the change itself. A device answers a
//! `manifest` event by fetching the delta and a `roster` event by fetching
//! the roster, exactly as its periodic pull would, so the push carries
//! nothing that must be signed or trusted: a forged or lost event costs one
//! request or one poll period, never a wrong decision.

use serde::{Deserialize, Serialize};

/// The SSE `event:` name of a [`PushManifest`].
pub const PUSH_MANIFEST: &str = "manifest";
/// The SSE `event:` name of a [`PushRoster`].
pub const PUSH_ROSTER: &str = "roster";

/// `event: manifest`: the event's manifest is at `version` (sent on connect
/// and after every new version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushManifest {
    /// The current manifest version.
    pub version: u64,
}

/// `event: roster`: the event's devices changed (sent on connect and after
/// every enrollment or revocation). The counts only tell one state from the
/// next; the roster version is published when a device fetches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushRoster {
    /// Devices ever enrolled for the event.
    pub devices: u64,
    /// Of those, revoked.
    pub revoked: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_events_have_the_documented_json() {
        let m = serde_json::to_string(&PushManifest { version: 7 }).unwrap();
        assert_eq!(m, r#"{"version":7}"#);
        let r = serde_json::to_string(&PushRoster {
            devices: 3,
            revoked: 1,
        })
        .unwrap();
        assert_eq!(r, r#"{"devices":3,"revoked":1}"#);
        let extra: PushManifest = serde_json::from_str(r#"{"version":2,"later":true}"#)
            .expect("answers accept fields a newer cloud adds");
        assert_eq!(extra.version, 2);
    }
}
