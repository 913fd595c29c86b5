//! Extractors whose rejections use the API's error shape, and pagination.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `axum::Json` with rejections mapped to [`ApiError`] (bad JSON 400, wrong
/// types and unknown fields 422, wrong content type 415, too large 413).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

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
