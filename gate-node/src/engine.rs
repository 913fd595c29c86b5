//! The scan pipeline: text (from a decoder or a text source) → decision
//! against the store's key set, manifest and check-ins with the gate policy
//! and the best time → the scan record committed (fsync) → actuator → push
//! to peers. No network on this path.
//!
//! Invariants: the actuator is signalled only after the record is durable,
//! so a green light always has a record behind it; malformed texts are
//! counted, never recorded; repeat reads of one code within the debounce
//! window are one scan, whatever the source (the first decision is returned
//! again, nothing is recorded or signalled twice; see [`crate::debounce`]).
//! Where texts come from is [`crate::source`]'s business.

use crate::actuator::Actuator;
use crate::debounce::Debouncer;
use crate::decode::QrDecoder;
use crate::store::{RecordTemplate, Store, StoreError};
use crate::time::TimeSource;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use sync_protocol::{Decision, GatePolicy, Hlc, Outcome, Reason, ScanRecord, TicketId, decide};
use tokio::sync::mpsc::UnboundedSender;

/// A scan could not be processed (nothing was signalled).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed; the scan is not recorded and the gate stays shut.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one scan came to, as printed by the CLI and returned by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// `"admit"` or `"reject"`.
    pub decision: &'static str,
    /// Why it was rejected (`null` on admit).
    pub reason: Option<Reason>,
    /// The ticket, once the credential parsed.
    pub ticket_id: Option<TicketId>,
    /// Door-staff display name from the manifest.
    pub display_name: Option<String>,
    /// A time-dependent check ran on an untrusted clock.
    pub time_uncertain: bool,
    /// `node:seq` of the record, when one was written.
    pub scan_id: Option<String>,
    /// HLC of the record.
    pub hlc: Option<Hlc>,
    /// A repeat read inside the debounce window (nothing new recorded).
    pub repeat: bool,
}

/// `"admit"` or `"reject"`, as the CLI, the API and the logs spell it.
pub fn decision_label(outcome: Outcome) -> &'static str {
    if outcome.is_admit() {
        "admit"
    } else {
        "reject"
    }
}

impl ScanReport {
    fn new(d: &Decision, record: Option<&ScanRecord>) -> Self {
        Self {
            decision: decision_label(d.outcome),
            reason: d.outcome.reason(),
            ticket_id: d.ticket_id,
            display_name: d.display_name.clone(),
            time_uncertain: d.time_uncertain,
            scan_id: record.map(|r| r.id.to_string()),
            hlc: record.map(|r| r.hlc),
            repeat: false,
        }
    }
    /// Whether the gate opened.
    pub fn admitted(&self) -> bool {
        self.decision == "admit"
    }
}

/// Scan counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    /// Scans decided (including repeats).
    pub scans: AtomicU64,
    /// Admitted.
    pub admitted: AtomicU64,
    /// Rejected after parsing.
    pub rejected: AtomicU64,
    /// Not a credential.
    pub malformed: AtomicU64,
    /// Repeat reads folded into an earlier scan.
    pub repeats: AtomicU64,
    /// Store failures on the scan path.
    pub store_errors: AtomicU64,
    /// Actuator failures.
    pub actuator_errors: AtomicU64,
    /// Frames decoded and scanned (camera or image source).
    pub frames: AtomicU64,
    /// Frames or lines a source could not deliver (unreadable, too large).
    pub source_errors: AtomicU64,
}

/// A copy of [`Counters`] for JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Scans decided.
    pub scans: u64,
    /// Admitted.
    pub admitted: u64,
    /// Rejected after parsing.
    pub rejected: u64,
    /// Not a credential.
    pub malformed: u64,
    /// Repeat reads.
    pub repeats: u64,
    /// Store failures.
    pub store_errors: u64,
    /// Actuator failures.
    pub actuator_errors: u64,
    /// Frames decoded and scanned.
    pub frames: u64,
    /// Frames or lines a source could not deliver.
    pub source_errors: u64,
}

impl Counters {
    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            scans: g(&self.scans),
            admitted: g(&self.admitted),
            rejected: g(&self.rejected),
            malformed: g(&self.malformed),
            repeats: g(&self.repeats),
            store_errors: g(&self.store_errors),
            actuator_errors: g(&self.actuator_errors),
            frames: g(&self.frames),
            source_errors: g(&self.source_errors),
        }
    }
}

fn bump(c: &AtomicU64, name: &'static str) {
    c.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("gate_scans_total", "outcome" => name).increment(1);
}

/// The admission pipeline of one gate.
pub struct Engine {
    store: Arc<Store>,
    time: Arc<TimeSource>,
    policy: GatePolicy,
    template: RecordTemplate,
    actuator: Mutex<Option<Box<dyn Actuator>>>,
    debounce_ms: u64,
    debounce: Mutex<Debouncer<ScanReport>>,
    push: Mutex<Option<UnboundedSender<ScanRecord>>>,
    on_record: Mutex<Option<RecordHook>>,
    counters: Counters,
}

/// Called after every durable scan record (see [`Engine::set_on_record`]).
pub type RecordHook = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("template", &self.template)
            .field("debounce_ms", &self.debounce_ms)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over a provisioned store. `actuator` is `None` on a machine
    /// without gate hardware (decisions are only logged and returned).
    pub fn new(
        store: Arc<Store>,
        time: Arc<TimeSource>,
        actuator: Option<Box<dyn Actuator>>,
        debounce_ms: u64,
        operator: &str,
    ) -> Result<Self, EngineError> {
        let id = store.require_identity()?;
        let template = RecordTemplate {
            node: id.node_id,
            event_id: id.event_id,
            direction: id.policy.direction,
            zone: id.policy.zone,
            gate: id.gate.clone(),
            operator: operator.to_owned(),
        };
        Ok(Self {
            store,
            time,
            policy: id.policy,
            template,
            actuator: Mutex::new(actuator),
            debounce_ms,
            debounce: Mutex::new(Debouncer::new(debounce_ms)),
            push: Mutex::new(None),
            on_record: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    /// Sends every admitted record to `tx` right after it is durable (the
    /// peer task pushes it to the other gates).
    pub fn set_push(&self, tx: UnboundedSender<ScanRecord>) {
        *self.push.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Calls `hook` after every scan record is durable, admitted or not
    /// (the cloud sync uploads soon after). It must not block.
    pub fn set_on_record(&self, hook: RecordHook) {
        *self.on_record.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The time source.
    pub fn time(&self) -> &Arc<TimeSource> {
        &self.time
    }

    /// Counters since start.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// The live counters, for the scan sources to bump.
    pub(crate) fn counters_mut(&self) -> &Counters {
        &self.counters
    }

    /// Removes the actuator (at shutdown, so a GPIO actuator finishes its
    /// pulse and leaves every line off even if a source thread still holds
    /// the engine). Later decisions are only logged.
    pub fn take_actuator(&self) -> Option<Box<dyn Actuator>> {
        self.actuator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn debouncer(&self) -> MutexGuard<'_, Debouncer<ScanReport>> {
        self.debounce.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on one scanned text, records it durably, then signals the
    /// actuator and queues an admission for the peers. A repeat read inside
    /// the debounce window returns the first read's report with `repeat`.
    pub fn scan_text(&self, text: &str) -> Result<ScanReport, EngineError> {
        let started = std::time::Instant::now();
        let text = text.trim_end_matches(['\r', '\n']);
        let mono = self.time.clock().monotonic_ms();
        // Held for the whole scan: two sources reading one code at once are
        // still one scan (scans are serialised by the store's write lock
        // anyway).
        let mut debounce = self.debouncer();
        if let Some(first) = debounce.repeat(text, mono) {
            let repeat = ScanReport {
                repeat: true,
                ..first.clone()
            };
            bump(&self.counters.repeats, "repeat");
            return Ok(repeat);
        }
        let best = self.time.now();
        let reading = best.reading();
        let result =
            self.store
                .decide_and_record(best.ms, &self.template, |keys, manifest, checkins| {
                    decide(text, keys, manifest, checkins, &self.policy, reading)
                });
        let (decision, record) = match result {
            Ok(r) => r,
            Err(e) => {
                bump(&self.counters.store_errors, "store_error");
                tracing::error!(error = %e, "scan not recorded: the store failed");
                return Err(e.into());
            }
        };
        bump(&self.counters.scans, "decided");
        match decision.outcome {
            Outcome::Admit => bump(&self.counters.admitted, "admit"),
            Outcome::Reject(Reason::Malformed) => bump(&self.counters.malformed, "malformed"),
            Outcome::Reject(_) => bump(&self.counters.rejected, "reject"),
        }
        self.signal(&decision);
        if let Some(r) = &record
            && r.outcome.is_admit()
            && let Some(tx) = self.push.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            // The peer task may have stopped at shutdown; the record is
            // durable and anti-entropy delivers it later.
            let _ = tx.send(r.clone());
        }
        if record.is_some()
            && let Some(hook) = self
                .on_record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
        {
            hook();
        }
        let report = ScanReport::new(&decision, record.as_ref());
        debounce.remember(text, mono, report.clone());
        drop(debounce);
        metrics::histogram!("gate_scan_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(
            decision = report.decision,
            reason = report.reason.map(Reason::as_str),
            ticket = ?report.ticket_id,
            scan = report.scan_id.as_deref(),
            "scan"
        );
        Ok(report)
    }

    fn signal(&self, decision: &Decision) {
        let mut actuator = self.actuator.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = actuator.as_mut()
            && let Err(e) = a.signal(decision)
        {
            bump(&self.counters.actuator_errors, "actuator_error");
            tracing::error!(error = %e, "actuator failed (the scan is recorded)");
        }
    }

    /// Decodes one frame and scans every code found in it. Decoding takes
    /// milliseconds of CPU: call this from a blocking thread, never from the
    /// async runtime.
    pub fn scan_frame(
        &self,
        decoder: &dyn QrDecoder,
        frame: &image::GrayImage,
    ) -> Result<Vec<ScanReport>, EngineError> {
        let reports = decoder
            .decode(frame)
            .iter()
            .map(|text| self.scan_text(text))
            .collect();
        // Counted once its scans are done, so `frames` in /status says how
        // far a replay has got.
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("gate_frames_total").increment(1);
        reports
    }
}

/// Decides on `text` against the store without recording or signalling
/// anything.
pub fn dry_run(store: &Store, time: &TimeSource, text: &str) -> Result<ScanReport, EngineError> {
    let reading = time.now().reading();
    let text = text.trim_end_matches(['\r', '\n']);
    // One lock, and the stored policy read in place: no copy of the
    // identity (and its secrets) per scan.
    let decision = store.decide_only(|policy, keys, manifest, checkins| {
        decide(text, keys, manifest, checkins, policy, reading)
    })?;
    Ok(ScanReport::new(&decision, None))
}

mod manual;

#[cfg(test)]
mod tests;
