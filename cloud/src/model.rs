//! Domain types shared by the store and the HTTP modules: typed ids (UUIDv7),
//! roles, lifecycles, and time. `EventId` and `TicketId` come from
//! `sync-protocol` because the credential and the manifest carry them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use sync_protocol::{EventId, TicketId};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// A ticket tier of an event.
    TierId
);
id_type!(
    /// An order (box-office sales now; the online shop later).
    OrderId
);
id_type!(
    /// A payment attempt of an order (Stripe, manual or free).
    PaymentId
);
id_type!(
    /// A resale listing.
    ListingId
);
id_type!(
    /// A generated report.
    ReportId
);
id_type!(
    /// A custodial or external EVM wallet of a user.
    WalletId
);
id_type!(
    /// A login session: every refresh token rotated from one login.
    SessionId
);

/// A fresh UUIDv7 event id.
pub fn new_event_id() -> EventId {
    EventId(Uuid::now_v7())
}

/// A fresh UUIDv7 ticket id.
pub fn new_ticket_id() -> TicketId {
    TicketId(Uuid::now_v7())
}

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Buys tickets, sees only their own.
    Customer,
    /// Runs events: sees and manages only their own.
    Organizer,
    /// Door staff.
    Staff,
    /// Everything, including granting roles.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Organizer => "organizer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "customer" => Role::Customer,
            "organizer" => Role::Organizer,
            "staff" => Role::Staff,
            "admin" => Role::Admin,
            other => return Err(format!("unknown role {other:?}")),
        })
    }
}

/// Event lifecycle: Draft → Active → Live → Ended; Cancelled from any
/// state before Ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Being prepared; visible to its organizer only.
    Draft,
    /// Published and on sale.
    Active,
    /// Doors open.
    Live,
    /// Over.
    Ended,
    /// Called off; every ticket is revoked.
    Cancelled,
}

impl EventStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Live => "live",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }
    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn can_become(self, next: Self) -> bool {
        use EventStatus::*;
        matches!(
            (self, next),
            (Draft, Active) | (Active, Live) | (Live, Ended) | (Draft | Active | Live, Cancelled)
        )
    }
    /// Whether tickets may be sold or issued.
    pub fn on_sale(self) -> bool {
        matches!(self, Self::Active | Self::Live)
    }
    /// Whether the event and its tiers may still be edited.
    pub fn editable(self) -> bool {
        matches!(self, Self::Draft | Self::Active | Self::Live)
    }
    /// What the status means at the door (signed into every manifest):
    /// active and live admit, draft, ended and cancelled refuse entry.
    pub fn door(self) -> sync_protocol::manifest::DoorState {
        use sync_protocol::manifest::DoorState;
        match self {
            Self::Draft => DoorState::Draft,
            Self::Active => DoorState::OnSale,
            Self::Live => DoorState::Live,
            Self::Ended => DoorState::Ended,
            Self::Cancelled => DoorState::Cancelled,
        }
    }
}

impl FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "draft" => Self::Draft,
            "active" => Self::Active,
            "live" => Self::Live,
            "ended" => Self::Ended,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown event status {other:?}")),
        })
    }
}

/// Ticket lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Holds capacity, no credential yet.
    Reserved,
    /// Has a valid credential.
    Issued,
    /// Moved to another holder (new credential generation).
    Transferred,
    /// Admitted at the door.
    CheckedIn,
    /// Called off; the credential is revoked.
    Cancelled,
    /// Money returned; the credential is revoked.
    Refunded,
}

impl TicketStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Issued => "issued",
            Self::Transferred => "transferred",
            Self::CheckedIn => "checked_in",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }
    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn can_become(self, next: Self) -> bool {
        use TicketStatus::*;
        matches!(
            (self, next),
            (Reserved, Issued | Cancelled)
                | (
                    Issued | Transferred,
                    Transferred | CheckedIn | Cancelled | Refunded
                )
                | (CheckedIn, Refunded)
        )
    }
    /// Whether the ticket holds a valid credential (counts as sold).
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Issued | Self::Transferred | Self::CheckedIn)
    }
    /// Whether a change to this status must reach the door (manifest).
    pub fn in_manifest(self) -> bool {
        !matches!(self, Self::Reserved)
    }
}

impl FromStr for TicketStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "reserved" => Self::Reserved,
            "issued" => Self::Issued,
            "transferred" => Self::Transferred,
            "checked_in" => Self::CheckedIn,
            "cancelled" => Self::Cancelled,
            "refunded" => Self::Refunded,
            other => return Err(format!("unknown ticket status {other:?}")),
        })
    }
}

/// Milliseconds since the unix epoch (how the store keeps time, UTC).
pub type UnixMillis = i64;

/// `OffsetDateTime` → unix milliseconds.
pub fn to_millis(t: OffsetDateTime) -> UnixMillis {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds → UTC `OffsetDateTime` (saturating at the epoch on garbage).
pub fn from_millis(ms: UnixMillis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Where time comes from (a fixed clock in tests).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Validates an ISO 4217 currency code's shape (three uppercase letters).
pub fn valid_currency(code: &str) -> bool {
    crate::validate::currency(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lifecycle_allows_only_forward_steps_and_cancel() {
        use EventStatus::*;
        assert!(Draft.can_become(Active) && Active.can_become(Live) && Live.can_become(Ended));
        assert!(Draft.can_become(Cancelled) && Live.can_become(Cancelled));
        assert!(!Draft.can_become(Live), "no skipping publication");
        assert!(!Ended.can_become(Cancelled) && !Cancelled.can_become(Active));
        assert!(!Active.can_become(Draft));
    }

    #[test]
    fn ticket_lifecycle_refuses_resurrection() {
        use TicketStatus::*;
        assert!(Reserved.can_become(Issued) && Issued.can_become(Refunded));
        assert!(!Cancelled.can_become(Issued) && !Refunded.can_become(Issued));
        assert!(!Reserved.can_become(CheckedIn));
    }

    #[test]
    fn millis_round_trip() {
        let t = from_millis(1_790_000_000_123);
        assert_eq!(to_millis(t), 1_790_000_000_123);
    }
}
