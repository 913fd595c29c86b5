//! Reports: sales, attendance, revenue, demographic and performance, stored
//! as a table (columns and rows) and served as JSON or CSV.

use super::analytics::{analytics_from, stats_from};
use crate::auth::extract::{AuthUser, ManagedEvent};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{EventId, ReportId, UserId, from_millis};
use crate::state::AppState;
use crate::store::ReportRecord;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Report types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportType {
    /// Tickets and revenue per tier.
    Sales,
    /// Check-ins per tier.
    Attendance,
    /// Orders and money per channel and status.
    Revenue,
    /// Tickets per holder country and birth decade.
    Demographic,
    /// Funnel and sell-out figures.
    Performance,
}

impl ReportType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sales => "sales",
            Self::Attendance => "attendance",
            Self::Revenue => "revenue",
            Self::Demographic => "demographic",
            Self::Performance => "performance",
        }
    }
}

/// A report request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// Which report.
    #[serde(rename = "type")]
    pub kind: ReportType,
}

/// A report as a table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportTable {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of values (strings and numbers; null where a value is missing).
    #[schema(schema_with = report_rows)]
    pub rows: Vec<Vec<Value>>,
}

/// `rows`: arrays of string, number or null cells.
fn report_rows() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let cell = ObjectBuilder::new().schema_type(SchemaType::from_iter([
        Type::String,
        Type::Number,
        Type::Null,
    ]));
    ArrayBuilder::new()
        .items(ArrayBuilder::new().items(cell))
        .build()
}

/// A stored report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// Id.
    pub id: ReportId,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who asked for it.
    pub created_by: UserId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The figures.
    #[serde(flatten)]
    pub table: ReportTable,
}

/// `?format=` of a report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

fn view(r: &ReportRecord) -> ApiResult<ReportView> {
    let table = serde_json::from_str(&r.data)
        .map_err(|e| ApiError::Internal(format!("stored report: {e}")))?;
    Ok(ReportView {
        id: r.id,
        event_id: r.event_id,
        kind: r.kind.clone(),
        created_by: r.created_by,
        created_at: from_millis(r.created_at),
        table,
    })
}

fn table(columns: &[&str], rows: Vec<Vec<Value>>) -> ReportTable {
    ReportTable {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

async fn build(
    state: &AppState,
    event: EventId,
    currency: &str,
    kind: ReportType,
) -> ApiResult<ReportTable> {
    let store = &state.store;
    Ok(match kind {
        ReportType::Sales => {
            let rows = store
                .tier_stats(event)
                .await?
                .iter()
                .map(|t| {
                    vec![
                        json!(t.tier),
                        json!(t.name),
                        json!(t.capacity),
                        json!(t.sold),
                        json!(t.reserved),
                        json!(t.revenue_minor),
                        json!(currency),
                    ]
                })
                .collect();
            table(
                &[
                    "tier",
                    "name",
                    "capacity",
                    "sold",
                    "reserved",
                    "revenue_minor",
                    "currency",
                ],
                rows,
            )
        }
        ReportType::Attendance => {
            let rows = store
                .tier_stats(event)
                .await?
                .iter()
                .map(|t| {
                    vec![
                        json!(t.tier),
                        json!(t.name),
                        json!(t.sold),
                        json!(t.checked_in),
                        json!(if t.sold > 0 {
                            t.checked_in as f64 / t.sold as f64
                        } else {
                            0.0
                        }),
                    ]
                })
                .collect();
            table(
                &["tier", "name", "sold", "checked_in", "attendance_rate"],
                rows,
            )
        }
        ReportType::Revenue => {
            let rows = store
                .revenue(event)
                .await?
                .iter()
                .map(|l| {
                    vec![
                        json!(l.channel),
                        json!(l.status),
                        json!(l.orders),
                        json!(l.total_minor),
                        json!(currency),
                    ]
                })
                .collect();
            table(
                &["channel", "status", "orders", "total_minor", "currency"],
                rows,
            )
        }
        ReportType::Demographic => {
            let rows = store
                .demographics(event)
                .await?
                .iter()
                .map(|l| vec![json!(l.country), json!(l.birth_decade), json!(l.tickets)])
                .collect();
            table(&["country", "birth_decade", "tickets"], rows)
        }
        ReportType::Performance => {
            state.views.flush(store.as_ref()).await;
            let tiers = store.tier_stats(event).await?;
            let s = stats_from(event, currency, &tiers);
            let a = analytics_from(event, store.funnel(event).await?, s.sold);
            let metric = |name: &str, v: Value| vec![json!(name), v];
            let rows = vec![
                metric("views", json!(a.views)),
                metric("orders", json!(a.orders)),
                metric("paid_orders", json!(a.paid)),
                metric("tickets_sold", json!(s.sold)),
                metric("checked_in", json!(a.checked_in)),
                metric("capacity", json!(s.capacity)),
                metric("sell_out_rate", json!(s.sell_out_rate)),
                metric("view_to_order_rate", json!(a.view_to_order_rate)),
                metric("order_to_paid_rate", json!(a.order_to_paid_rate)),
                metric("attendance_rate", json!(a.attendance_rate)),
                metric("revenue_minor", json!(s.revenue_minor)),
            ];
            table(&["metric", "value"], rows)
        }
    })
}

/// RFC 4180 CSV; cells that a spreadsheet would run as a formula are
/// prefixed with `'` (CSV injection).
pub fn to_csv(t: &ReportTable) -> String {
    fn cell(v: &Value) -> String {
        let raw = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let raw = if !matches!(v, Value::Number(_))
            && raw.starts_with(['=', '+', '-', '@', '\t', '\r'])
        {
            format!("'{raw}")
        } else {
            raw
        };
        if raw.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", raw.replace('"', "\"\""))
        } else {
            raw
        }
    }
    let mut out = t
        .columns
        .iter()
        .map(|c| cell(&json!(c)))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for row in &t.rows {
        out.push_str(&row.iter().map(cell).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// Generates and stores a report (organizer of the event, admin).
#[utoipa::path(post, path = "/events/{id}/reports", tag = "analytics", security(("bearer" = [])), request_body = CreateReport,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, body = ReportView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_report(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<CreateReport>,
) -> ApiResult<(StatusCode, Json<ReportView>)> {
    let data = build(&state, m.event.id, &m.event.currency, req.kind).await?;
    let record = ReportRecord {
        id: ReportId::new(),
        event_id: m.event.id,
        kind: req.kind.as_str().into(),
        created_by: m.user.id,
        created_at: state.now_ms(),
        data: serde_json::to_string(&data).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    state.store.save_report(&record).await?;
    Ok((StatusCode::CREATED, Json(view(&record)?)))
}

/// An event's reports, ascending by id.
#[utoipa::path(get, path = "/events/{id}/reports", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"), PageParams),
    responses((status = 200, body = Page<ReportView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_reports(
    State(state): State<AppState>,
    m: ManagedEvent,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<ReportView>>> {
    let limit = p.limit()?;
    let records = state
        .store
        .list_reports(m.event.id, p.cursor.map(ReportId), limit)
        .await?;
    let views = records.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Page::new(views, limit, |r: &ReportView| {
        r.id.to_string()
    })))
}

/// One report as JSON or CSV (organizer of its event, admin).
#[utoipa::path(get, path = "/events/reports/{id}", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "report id"), FormatQuery),
    responses((status = 200, body = ReportView, description = "JSON, or text/csv with ?format=csv"),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_report(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ReportId>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let record = state.store.report(id).await?;
    if !user.manages(&state.store.event(record.event_id).await?) {
        return Err(ApiError::Forbidden(
            "only the event's organizer or an admin may read its reports".into(),
        ));
    }
    let v = view(&record)?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(v).into_response()),
        "csv" => {
            let disposition = format!("attachment; filename=\"{}-{}.csv\"", v.kind, v.id);
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                to_csv(&v.table),
            )
                .into_response())
        }
        _ => Err(ApiError::bad_request(
            "invalid_query",
            "format must be json or csv",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let t = table(
            &["name", "n"],
            vec![
                vec![json!("=HYPERLINK(\"x\")"), json!(-3)],
                vec![json!("a,b"), json!(1.5)],
            ],
        );
        let csv = to_csv(&t);
        assert_eq!(
            csv,
            "name,n\r\n\"'=HYPERLINK(\"\"x\"\")\",-3\r\n\"a,b\",1.5\r\n"
        );
    }
}
