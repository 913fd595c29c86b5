//! The one error type of the HTTP API and its JSON shape:
//! `{"error": {"code": "...", "message": "..."}}` for every non-2xx answer.
//! Internal errors are logged with their cause and answered with a generic
//! message, so nothing about the database or keys leaks to clients.

use crate::store::StoreError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad query, bad path parameter).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// Well-formed but semantically invalid input.
    #[error("{0}")]
    Validation(String),
    /// Missing or invalid credentials.
    #[error("{message}")]
    Unauthorized {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The resource is in a state that forbids the request.
    #[error("{0}")]
    Conflict(String),
    /// Any status with its own stable code (device and sync endpoints:
    /// `410 code_used`, `409 full_manifest_required`, `422 invalid_proof`).
    #[error("{message}")]
    Coded {
        /// HTTP status.
        status: StatusCode,
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The path exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// Body larger than the configured limit.
    #[error("request body is larger than the configured limit")]
    PayloadTooLarge,
    /// Unsupported body media type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Rate limit hit; retry after this many seconds.
    #[error("rate limit exceeded: retry in {0} s")]
    TooManyRequests(u64),
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// A dependency (the database) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// A transient conflict (deadlock, serialization failure, too busy):
    /// nothing changed; the same request can succeed in a moment.
    #[error("{0}")]
    Retry(String),
    /// A bug or an infrastructure failure; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response, and its code and message: the
/// device API's wire types, shared with the clients.
pub use sync_protocol::device_api::{ErrorBody, ErrorDetail};

impl ApiError {
    /// A 400 with a specific code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
    /// A 401 with a specific code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// An error with any status and its own code.
    pub fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Coded {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Coded { status, .. } => *status,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::Retry(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Coded { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests(_) => "rate_limited",
            Self::Timeout => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Retry(_) => "try_again",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            Self::TooManyRequests(secs) => Some(secs.max(1)),
            Self::Retry(_) => Some(1),
            Self::Coded {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..
            } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let conflict =
            |code, e: &StoreError| Self::coded(StatusCode::CONFLICT, code, e.to_string());
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::SoldOut { .. } => conflict("sold_out", &e),
            StoreError::PurchaseLimit { .. } => conflict("purchase_limit", &e),
            StoreError::NotOnSale(_) => conflict("not_on_sale", &e),
            StoreError::IllegalTransition { .. } => conflict("illegal_transition", &e),
            StoreError::Duplicate(_) => conflict("duplicate", &e),
            StoreError::Gone(_) => conflict("gone", &e),
            StoreError::InvalidState(_) => conflict("invalid_state", &e),
            StoreError::Retryable(why) => Self::Retry(why),
            StoreError::Unavailable(why) => Self::Unavailable(why),
            StoreError::SchemaTooNew { .. } | StoreError::Other(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        use JsonRejection as J;
        match &r {
            J::JsonDataError(e) => {
                Self::Validation(format!("invalid request body: {}", e.body_text()))
            }
            J::JsonSyntaxError(e) => {
                Self::bad_request("invalid_json", format!("malformed JSON: {}", e.body_text()))
            }
            J::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "expected a request with `Content-Type: application/json`".into(),
            ),
            J::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            _ => Self::bad_request("invalid_body", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
