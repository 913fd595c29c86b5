//! Extractors whose rejections use the API's error shape, and pagination.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `axum::Json` with rejections mapped to [`ApiError`] (bad JSON 400, wrong
/// types and unknown fields 422, wrong content type 415, too large 413).
///
/// Every request body of this API is a JSON object: serde would otherwise
/// also fill a struct from an array of its fields in order
/// (`["a@b.c","pw"]` as a login), which the schema does not allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::Validation(format!(
                "the request body must be a JSON object, not {}",
                json_kind(&value)
            )));
        }
        T::deserialize(value)
            .map(Json)
            .map_err(|e| ApiError::Validation(format!("invalid request body: {e}")))
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with rejections mapped to [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with rejections mapped to [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Largest page.
pub const MAX_PAGE: u32 = 100;
/// Default page.
pub const DEFAULT_PAGE: u32 = 50;

/// Keyset pagination: items are ordered by id (UUIDv7, so creation order);
/// pass the previous page's `next_cursor` as `cursor`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Id of the last item of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

impl PageParams {
    /// The page size, validated.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(DEFAULT_PAGE) {
            n @ 1..=MAX_PAGE => Ok(i64::from(n)),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                "limit must be between 1 and 100",
            )),
        }
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, ascending by id.
    pub items: Vec<T>,
    /// Cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit` items; `id` gives an item's cursor.
    pub fn new(items: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() as i64 == limit {
            items.last().map(id)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
