//! What a provider handler receives: the matched request, already authenticated and
//! api-version checked.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde::de::DeserializeOwned;

use super::error::ArmResult;
use super::extract::parse_json;

/// The authenticated principal behind a request (from its bearer token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub object_id: String,
    pub app_id: String,
    pub tenant_id: String,
}

/// Which listener a request arrived on; absolute URLs we hand out (nextLink, operation
/// status) use the same scheme and host the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// `scheme://host[:port]` as the client addressed us (its `Host` header), so absolute URLs
/// armlet hands out (`nextLink`, operation status, OData contexts) lead back the same way.
pub fn base_url(scheme: Scheme, headers: &HeaderMap, uri: &Uri) -> String {
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("127.0.0.1");
    format!("{scheme}://{host}")
}

/// A matched ARM request.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Path parameters captured by the route pattern, named as in the swagger templates.
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(String, String)>,
    pub api_version: String,
    pub body: Bytes,
    pub caller: Caller,
    pub scheme: Scheme,
}

impl ArmRequest {
    /// A path parameter (empty if the route has none of that name).
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }

    /// A query parameter, matched case-insensitively as ARM does (`$filter`, `$skipToken`).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; bad bodies become InvalidRequestContent.
    pub fn json<T: DeserializeOwned>(&self) -> ArmResult<T> {
        parse_json(&self.body)
    }

    /// `scheme://host[:port]` as the client addressed us.
    pub fn base_url(&self) -> String {
        base_url(self.scheme, &self.headers, &self.uri)
    }

    /// This request's absolute URL with `query` replacing its query string.
    pub fn url_with_query(&self, query: &[(String, String)]) -> String {
        let mut url = format!("{}{}", self.base_url(), self.uri.path());
        if !query.is_empty() {
            url.push('?');
            url.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish());
        }
        url
    }
}
