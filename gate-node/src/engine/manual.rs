//! Decisions a person takes at a scanner app, through the same store
//! transaction and record as a scan: a manual check-in of a ticket found in
//! the manifest ([`sync_protocol::decide_listed`]), and an engine whose
//! direction and zone differ from the enrolled policy (a desk switched to
//! exit mode).
//!
//! The record's operator label says who let the holder in and why
//! (`"manual: <operator>: <reason>"`, cut to the label limit), so the cloud
//! and every peer see it with the scan.

use super::{Engine, EngineError, ScanReport, bump};
use crate::actuator::Actuator;
use crate::store::Store;
use crate::time::TimeSource;
use std::sync::Arc;
use sync_protocol::{GatePolicy, Outcome, Reason, TicketId, decide_listed};

impl Engine {
    /// An engine like [`Engine::new`] deciding with `policy` instead of the
    /// enrolled one (same event: direction, zone and grace may differ).
    pub fn with_policy(
        store: Arc<Store>,
        time: Arc<TimeSource>,
        actuator: Option<Box<dyn Actuator>>,
        debounce_ms: u64,
        operator: &str,
        policy: GatePolicy,
    ) -> Result<Self, EngineError> {
        let mut engine = Self::new(store, time, actuator, debounce_ms, operator)?;
        if policy.event_id != engine.template.event_id {
            return Err(EngineError::Store(crate::store::StoreError::WrongEvent));
        }
        engine.template.direction = policy.direction;
        engine.template.zone = policy.zone;
        engine.policy = policy;
        Ok(engine)
    }

    /// The policy this engine decides with.
    pub fn policy(&self) -> &GatePolicy {
        &self.policy
    }

    /// Checks in `ticket` by hand: decided by [`decide_listed`] against the
    /// manifest and check-ins, recorded (fsync) with `operator` and `reason`
    /// in the record's operator label, signalled and pushed like a scan.
    pub fn check_in_manually(
        &self,
        ticket: &TicketId,
        operator: &str,
        reason: &str,
    ) -> Result<ScanReport, EngineError> {
        let mut template = self.template.clone();
        template.operator = format!("manual: {operator}: {reason}");
        let best = self.time.now();
        let (decision, record) = self
            .store
            .decide_and_record(best.ms, &template, |_keys, manifest, checkins| {
                decide_listed(ticket, manifest, checkins, &self.policy)
            })
            .inspect_err(|_| bump(&self.counters.store_errors, "store_error"))?;
        bump(&self.counters.scans, "decided");
        match decision.outcome {
            Outcome::Admit => bump(&self.counters.admitted, "admit"),
            Outcome::Reject(_) => bump(&self.counters.rejected, "reject"),
        }
        self.signal(&decision);
        if let Some(r) = &record
            && r.outcome.is_admit()
            && let Some(tx) = self.push.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            let _ = tx.send(r.clone());
        }
        let report = ScanReport::new(&decision, record.as_ref());
        tracing::info!(
            decision = report.decision,
            reason = report.reason.map(Reason::as_str),
            ticket = %ticket,
            operator,
            why = reason,
            "manual check-in"
        );
        Ok(report)
    }
}
