//! Request bodies. Bad JSON and wrong types become ARM's InvalidRequestContent, and bodies
//! over the limit ARM's 413, instead of axum's plain-text rejections.

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
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

/// A query string for the fixed routes (`/_armlet`), with ARM-shaped rejections (axum's
/// `Query` answers a plain-text 400).
pub struct ArmQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ArmQuery<T> {
    type Rejection = ArmError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| ArmQuery(value))
            .map_err(|e| arm_error!(BadRequest, "The query string is invalid: {}.", e.body_text()))
    }
}

/// Reads a request's whole body (up to `limit`) before the application answers, as a
/// middleware around it. An answer given before the body was read (a bad token, an unknown
/// api-version or route, a 405) would otherwise leave the body unread, and hyper then closes
/// the connection behind that answer without saying `Connection: close`: a client that
/// reuses the connection (requests, so az and the Azure SDK for Python) has its next request
/// fail. A body over `limit` (or one that fails to arrive) is not read further: the handler
/// reading it still gets the error (a 413 for the limit) and the answer says
/// `Connection: close`.
pub async fn read_body_first(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Err(e) => {
            // A body that fails as this one did when the handler reads it: with a real
            // `LengthLimitError` (which axum's extractors turn into 413 too), or the message.
            let failing = Limited::new(Full::new(Bytes::from_static(b" ")), 0);
            let failing = if e.is::<LengthLimitError>() {
                Body::new(failing)
            } else {
                let message = e.to_string();
                Body::new(failing.map_err(move |_| message.clone()))
            };
            // (HTTP/2 has no `Connection` header; its streams are independent.)
            let http1 = parts.version < Version::HTTP_2;
            let mut response = next.run(Request::from_parts(parts, failing)).await;
            if http1 {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
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
