//! The gate fleet's self-reports. A gate sends an optional
//! `X-Gate-Status` header (a small JSON object) with each check-in sync;
//! the cloud records it with the sync's time. The header is advisory: a
//! missing or malformed one never fails the sync (old gates keep working),
//! it only leaves the fields unknown.

use crate::devices::auth::EventDevice;
use crate::state::AppState;
use crate::store::GateReport;
use axum::http::{HeaderMap, HeaderName};
use sync_protocol::device_api::GateStatusReport;

/// The header a gate reports its state in.
pub const GATE_STATUS_HEADER: HeaderName =
    HeaderName::from_static(sync_protocol::device_api::GATE_STATUS_HEADER);
/// Longest accepted header value.
const MAX_HEADER_LEN: usize = 512;

fn short_text(s: Option<String>, max: usize) -> Option<String> {
    s.filter(|s| {
        !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    })
}

/// The report in `headers` (every field `None` when absent or malformed).
pub fn parse(headers: &HeaderMap) -> GateReport {
    let wire: GateStatusReport = headers
        .get(GATE_STATUS_HEADER)
        .filter(|v| v.len() <= MAX_HEADER_LEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let small = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok());
    GateReport {
        scans_waiting: small(wire.scans_waiting),
        manifest_version: small(wire.manifest_version),
        clock: short_text(wire.clock, 32),
        clock_trusted: wire.clock_trusted,
        software: short_text(wire.software, 64),
    }
}

/// Records the sync's report; a failure is logged, never the sync's error.
pub async fn record(state: &AppState, dev: &EventDevice, headers: &HeaderMap) {
    let report = parse(headers);
    if let Err(e) = state
        .store
        .record_gate_report(dev.device.id, dev.event_id, &report, state.now_ms())
        .await
    {
        tracing::warn!(device = %dev.device.id, error = %e, "could not record the gate's status report");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(GATE_STATUS_HEADER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_full_report_is_read() {
        let r = parse(&with(
            r#"{"scans_waiting":3,"manifest_version":7,"clock":"cloud","clock_trusted":true,"software":"0.1.0"}"#,
        ));
        assert_eq!(
            r,
            GateReport {
                scans_waiting: Some(3),
                manifest_version: Some(7),
                clock: Some("cloud".into()),
                clock_trusted: Some(true),
                software: Some("0.1.0".into()),
            }
        );
    }

    #[test]
    fn missing_malformed_or_hostile_reports_leave_fields_unknown() {
        assert_eq!(
            parse(&HeaderMap::new()),
            GateReport::default(),
            "old gates send nothing"
        );
        assert_eq!(parse(&with("not json")), GateReport::default());
        assert_eq!(parse(&with(r#"["a"]"#)), GateReport::default());
        let r = parse(&with(
            r#"{"software":"<script>","clock":"cloud","future_field":1}"#,
        ));
        assert_eq!(r.software, None, "markup is never stored");
        assert_eq!(
            r.clock.as_deref(),
            Some("cloud"),
            "unknown fields are ignored (newer gates)"
        );
        let r = parse(&with(r#"{"scans_waiting":18446744073709551615}"#));
        assert_eq!(r.scans_waiting, None, "out of range");
    }
}
