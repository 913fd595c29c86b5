//! Configuration of the shop (`[commerce]`): holds, limits, resale defaults.

use serde::{Deserialize, Serialize};

/// Online sales settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommerceConfig {
    /// How long a pending order holds its inventory.
    pub hold_secs: u64,
    /// How often expired holds are returned to stock and due refunds retried.
    pub sweep_interval_ms: u64,
    /// Default most tickets per customer per event (an event's sales policy
    /// overrides it).
    pub max_tickets_per_customer: i64,
    /// Default: whether tickets may be resold.
    pub resale_enabled: bool,
    /// Default resale price cap, percent of face value (100 = face value).
    pub resale_max_percent: i64,
}

impl Default for CommerceConfig {
    fn default() -> Self {
        Self {
            hold_secs: 600,
            sweep_interval_ms: 5_000,
            max_tickets_per_customer: 10,
            resale_enabled: true,
            resale_max_percent: 100,
        }
    }
}

impl CommerceConfig {
    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.hold_secs == 0 || self.hold_secs > 86_400 {
            return Err("commerce.hold_secs must be between 1 and 86400".into());
        }
        if self.sweep_interval_ms < 50 {
            return Err("commerce.sweep_interval_ms must be at least 50".into());
        }
        if !(1..=1_000_000).contains(&self.max_tickets_per_customer) {
            return Err("commerce.max_tickets_per_customer must be between 1 and 1000000".into());
        }
        if !(0..=1_000).contains(&self.resale_max_percent) {
            return Err("commerce.resale_max_percent must be between 0 and 1000".into());
        }
        Ok(())
    }
}
