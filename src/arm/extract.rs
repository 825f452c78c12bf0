//! Request bodies. Bad JSON and wrong types become ARM's InvalidRequestContent, and bodies
//! over the limit ARM's 413, instead of axum's plain-text rejections.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::{ArmError, ArmResult};
use crate::arm_error;

/// Parses a JSON body. An empty body parses as JSON `null`, so types with defaults accept it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ArmResult<T> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) { &b"null"[..] } else { bytes };
    serde_json::from_slice(text).map_err(|e| ArmError::invalid_request_content(&e.to_string()))
}

pub fn too_large(limit: usize) -> ArmError {
    arm_error!(RequestEntityTooLarge, "The request content size exceeds the maximum allowed size of {limit} bytes.")
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> ArmResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes reports both an exceeded limit and a broken connection through one type.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit")
        {
            too_large(limit)
        } else {
            arm_error!(InvalidRequestContent, "The request content could not be read: {e}")
        }
    })
}

/// Body size limit for the fixed (non-ARM) routes.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body for the fixed routes (`/_armlet`), with ARM-shaped rejections.
pub struct ArmJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ArmJson<T> {
    type Rejection = ArmError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), DEFAULT_BODY_LIMIT).await?;
        parse_json(&bytes).map(ArmJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_is_invalid_request_content() {
        let err = parse_json::<serde_json::Value>(b"{not json").unwrap_err();
        assert_eq!(err.code.as_str(), "InvalidRequestContent");
        assert_eq!(err.status.as_u16(), 400);
        #[derive(Debug, serde::Deserialize)]
        struct Typed {
            location: String,
        }
        assert_eq!(parse_json::<Typed>(br#"{"location": 5}"#).unwrap_err().code.as_str(), "InvalidRequestContent");
        assert_eq!(parse_json::<Option<Typed>>(b"  ").unwrap().map(|t| t.location), None);
    }
}
