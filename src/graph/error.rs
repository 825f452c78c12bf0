//! Microsoft Graph's error shape, `{"error":{"code","message","innerError":{"date",
//! "request-id","client-request-id"}}}`. Every Graph answer armlet gives is JSON: az reads
//! `response.json()['error']['message']` and crashes on anything else.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::arm::{ArmError, ErrorCode};
use crate::store::StoreError;

/// A Graph error response (the request ids are filled in when it is sent).
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers, e.g. `WWW-Authenticate` on 401s.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type GraphResult<T> = Result<T, GraphError>;

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: Vec::new() }
    }

    /// 400 `Request_BadRequest`: the request is well-formed but not acceptable.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// 400 `BadRequest`: the request itself is malformed (bad JSON, unknown property, unknown
    /// path segment).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `Request_UnsupportedQuery`: a `$filter` (or other query option) armlet does not
    /// evaluate. Never a silent wrong answer.
    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// 404 `Request_ResourceNotFound`, worded as Graph words it.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    pub fn internal(reason: &str) -> Self {
        tracing::error!(error = reason, "internal error (graph)");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "generalException", "General exception while processing.")
    }

    /// The bearer check's refusal, in Graph's words (always 401 `InvalidAuthenticationToken`;
    /// the `WWW-Authenticate` challenge is kept).
    pub fn unauthenticated(e: ArmError) -> Self {
        let message = match e.code {
            ErrorCode::AuthenticationFailed => "Access token is empty.".to_owned(),
            ErrorCode::ExpiredAuthenticationToken => "Lifetime validation failed, the token is expired.".to_owned(),
            ErrorCode::InvalidAuthenticationTokenAudience => {
                "Access token validation failure. Invalid audience.".to_owned()
            }
            ErrorCode::InvalidAuthenticationToken => format!("Access token validation failure. {}", e.message),
            _ => e.message.clone(),
        };
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
        error.headers = e.headers.into_iter().filter(|(name, _)| name == header::WWW_AUTHENTICATE).collect();
        error
    }

    /// The JSON body.
    pub fn body(&self, date: &str, request_id: &str, client_request_id: &str) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        })
    }
}

impl From<StoreError> for GraphError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm_error;

    #[test]
    fn authentication_errors_become_graph_401s() {
        let e = GraphError::unauthenticated(
            arm_error!(AuthenticationFailed, "missing").with_header(header::WWW_AUTHENTICATE, "Bearer x"),
        );
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.code, "InvalidAuthenticationToken");
        assert_eq!(e.message, "Access token is empty.");
        assert_eq!(e.headers.len(), 1);
        let body = e.body("2026-01-01T00:00:00", "r", "c");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
        assert_eq!(body["error"]["innerError"]["client-request-id"], "c");
        let audience = GraphError::unauthenticated(arm_error!(InvalidAuthenticationTokenAudience, "x"));
        assert_eq!(audience.code, "InvalidAuthenticationToken");
        assert!(audience.message.contains("Invalid audience"));
    }
}
