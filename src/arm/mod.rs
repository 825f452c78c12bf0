//! The ARM protocol core. It knows no resource provider: paths and their patterns,
//! api-version rules, the error envelope, JSON bodies, response headers, paging and
//! long-running operations. Providers (`crate::providers`) build on it.

pub mod api_version;
pub mod dispatch;
pub mod error;
pub mod etag;
pub mod extract;
pub mod faults;
pub mod headers;
pub mod lro;
pub mod odata;
pub mod paging;
pub mod request;
pub mod resource_id;

pub use error::{ArmError, ArmResult, ErrorCode};
pub use request::{ArmRequest, Caller};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A JSON response with `status`.
pub fn json(status: StatusCode, body: serde_json::Value) -> ArmResult<Response> {
    Ok((status, axum::Json(body)).into_response())
}
