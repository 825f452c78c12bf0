//! Microsoft Graph v1.0, the subset az and common tools need: service principals,
//! applications, `directoryObjects/getByIds`, and empty user lookups. The objects live in
//! [`crate::directory`], the same store the token endpoint signs principals in from.
//!
//! Graph is served on armlet's HTTPS URL (az's `microsoftGraphResourceId`), so requests
//! arrive as `https://127.0.0.1:<port>/v1.0/...` with a token whose audience is that URL;
//! tokens for `https://graph.microsoft.com` are accepted too. Every answer, errors included,
//! is JSON in Graph's shape ([`error`]).
//!
//! Handlers share [`serve`]: it authenticates, reads the body, runs the handler and stamps
//! `request-id` / `client-request-id` on the answer.

pub mod applications;
pub mod directory_objects;
pub mod error;
pub mod filter;
pub mod service_principals;
pub mod users;

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::arm::extract::read_body;
use crate::arm::request::Scheme;
use crate::arm::{Caller, ErrorCode};
use crate::auth::bearer;
use crate::clock::Clock;
use crate::directory::PasswordCredential;
use crate::state::{AppState, Settings};
pub use error::{GraphError, GraphResult};
use filter::Filter;

/// Graph's own application id, which v2 tokens for Graph carry as their audience.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Items per page unless `$top` asks for another size (Graph's default for directory lists).
pub const PAGE_SIZE: usize = 100;

/// The audiences a Graph token may carry: armlet's own HTTPS URL (under every host name it
/// answers to), the public Graph URL and Graph's application id. ARM's public audiences are
/// not Graph's.
pub fn audiences(settings: &Settings) -> Vec<String> {
    const PUBLIC_ARM: [&str; 2] = ["https://management.azure.com", "https://management.core.windows.net"];
    let mut audiences: Vec<String> =
        bearer::allowed_audiences(settings).into_iter().filter(|a| !PUBLIC_ARM.contains(&a.as_str())).collect();
    audiences.push("https://graph.microsoft.com".into());
    audiences.push(GRAPH_APP_ID.into());
    audiences
}

/// An authenticated Graph request.
pub struct GraphRequest {
    pub state: AppState,
    pub caller: Caller,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub scheme: Scheme,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
}

impl GraphRequest {
    /// A query option, matched case-insensitively (`$skipToken` and `$skiptoken` alike).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// `scheme://host[:port]` as the client addressed us.
    pub fn base_url(&self) -> String {
        crate::arm::request::base_url(self.scheme, &self.headers, &self.uri)
    }

    /// `@odata.context` for `fragment`, e.g. `servicePrincipals/$entity`.
    pub fn context(&self, fragment: &str) -> String {
        format!("{}/v1.0/$metadata#{fragment}", self.base_url())
    }

    /// The simulated time.
    pub fn now(&self) -> OffsetDateTime {
        self.state.clock.now()
    }

    /// The body as a JSON object (an empty body is `{}`).
    pub fn json_object(&self) -> GraphResult<Map<String, Value>> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(GraphError::malformed(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )),
        }
    }

    /// Refuses `$` query options outside `allowed` (lower-case names without the `$`), so an
    /// option armlet does not evaluate is never silently ignored.
    pub fn check_options(&self, allowed: &[&str]) -> GraphResult<()> {
        for (key, _) in &self.query {
            let Some(option) = key.strip_prefix('$') else {
                continue;
            };
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(option)) {
                return Err(GraphError::unsupported_query(format!(
                    "The query option '${option}' is not supported on this request."
                )));
            }
        }
        Ok(())
    }

    /// The parsed `$filter`, if any.
    pub fn filter(&self) -> GraphResult<Option<Filter>> {
        self.query("$filter").map(filter::parse).transpose()
    }

    /// Whether `tenant_id` is the caller's (Graph only ever shows the caller's own tenant).
    pub fn in_tenant(&self, tenant_id: &str) -> bool {
        tenant_id.eq_ignore_ascii_case(&self.caller.tenant_id)
    }

    /// A collection answer: `$orderby=displayName`, `$count`, `$top` / `$skiptoken` paging
    /// with an absolute `@odata.nextLink`, and `$select`, applied to the already filtered
    /// `items`.
    pub fn collection(&self, mut items: Vec<Value>, context: &str, type_name: &str) -> GraphResult<Response> {
        if let Some(order) = self.query("$orderby") {
            let mut words = order.split_whitespace();
            let property = words.next().unwrap_or_default();
            let descending = match words.next().map(str::to_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => return Err(GraphError::unsupported_query(format!("Invalid $orderby '{order}'."))),
            };
            if !property.eq_ignore_ascii_case("displayName") || words.next().is_some() {
                return Err(GraphError::unsupported_query(format!(
                    "Sorting by '{order}' is not supported; only 'displayName' is."
                )));
            }
            let key = |v: &Value| v["displayName"].as_str().unwrap_or_default().to_lowercase();
            items.sort_by_key(key);
            if descending {
                items.reverse();
            }
        }
        let count = match self.query("$count").map(str::to_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(GraphError::malformed(format!("Invalid value '{other}' for the query option '$count'.")));
            }
        };
        let skip = match self.query("$skiptoken") {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                GraphError::bad_request(format!("The specified page token value '{token}' is not valid."))
            })?,
        };
        let size = match self.query("$top") {
            None => PAGE_SIZE,
            Some(top) => match top.parse::<usize>() {
                Ok(n) if (1..=999).contains(&n) => n,
                _ => {
                    return Err(GraphError::bad_request(format!(
                        "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
                    )));
                }
            },
        };
        let total = items.len();
        let page = items
            .into_iter()
            .skip(skip)
            .take(size)
            .map(|item| self.select(item, type_name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut body = Map::new();
        body.insert("@odata.context".into(), json!(self.context(context)));
        if count {
            body.insert("@odata.count".into(), json!(total));
        }
        if skip + size < total {
            let mut query: Vec<(String, String)> =
                self.query.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken")).cloned().collect();
            query.push(("$skiptoken".into(), (skip + size).to_string()));
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish();
            body.insert("@odata.nextLink".into(), json!(format!("{}{}?{encoded}", self.base_url(), self.uri.path())));
        }
        body.insert("value".into(), Value::Array(page));
        Ok(Json(Value::Object(body)).into_response())
    }

    /// One entity, with `@odata.context` and `$select` applied.
    pub fn entity(&self, status: StatusCode, item: Value, context: &str, type_name: &str) -> GraphResult<Response> {
        let Value::Object(fields) = self.select(item, type_name)? else {
            return Err(GraphError::internal("an entity is not a JSON object"));
        };
        let mut body = Map::new();
        body.insert("@odata.context".into(), json!(self.context(context)));
        body.extend(fields);
        Ok((status, Json(Value::Object(body))).into_response())
    }

    /// Applies `$select` to one object (`@odata.type` is always kept).
    fn select(&self, item: Value, type_name: &str) -> GraphResult<Value> {
        let Some(select) = self.query("$select") else {
            return Ok(item);
        };
        let Value::Object(fields) = item else {
            return Ok(item);
        };
        let mut out = Map::new();
        if let Some(t) = fields.get("@odata.type") {
            out.insert("@odata.type".into(), t.clone());
        }
        for wanted in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let found = fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(wanted));
            match found {
                Some((k, v)) => {
                    out.insert(k.clone(), v.clone());
                }
                None => {
                    return Err(GraphError::malformed(format!(
                        "Parsing OData Select and Expand failed: Could not find a property named '{wanted}' on type 'microsoft.graph.{type_name}'."
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Runs a Graph handler: authentication (Graph's 401s), body, then `handler`; stamps the
/// request ids on the answer, errors included.
pub async fn serve<F, Fut>(state: AppState, request: Request, handler: F) -> Response
where
    F: FnOnce(GraphRequest) -> Fut,
    Fut: Future<Output = GraphResult<Response>>,
{
    let request_id = crate::ids::uuid().to_string();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .map_or_else(|| request_id.clone(), str::to_owned);
    let date = state.clock.now();
    let outcome = async {
        let (parts, body) = request.into_parts();
        let caller = bearer::authenticate_for(&state, &parts.headers, &audiences(&state.settings))
            .map_err(GraphError::unauthenticated)?;
        let body = read_body(body, state.settings.max_body_bytes).await.map_err(|e| {
            if e.code == ErrorCode::RequestEntityTooLarge {
                GraphError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request_EntityTooLarge", e.message)
            } else {
                GraphError::malformed(e.message)
            }
        })?;
        let query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let request = GraphRequest {
            scheme: parts.extensions.get::<Scheme>().copied().unwrap_or(Scheme::Https),
            state: state.clone(),
            caller,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            query,
            body,
        };
        handler(request).await
    }
    .await;
    let mut response = outcome.unwrap_or_else(|e| {
        let body = e.body(&date_string(date), &request_id, &client_request_id);
        let mut response = (e.status, Json(body)).into_response();
        for (name, value) in e.headers {
            response.headers_mut().insert(name, value);
        }
        response
    });
    let headers = response.headers_mut();
    for (name, value) in [("request-id", &request_id), ("client-request-id", &client_request_id)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// `innerError.date`: seconds precision, no offset, as Graph writes it.
fn date_string(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

/// A Graph time: RFC 3339 in UTC, whole seconds (`2027-01-02T03:04:05Z`).
pub fn graph_time(t: OffsetDateTime) -> String {
    format!("{}Z", date_string(t))
}

/// Parses a client's date-time: RFC 3339, or without an offset (taken as UTC), or a bare date.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let naive = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let naive_fraction = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let date = time::macros::format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(s, &naive)
        .or_else(|_| PrimitiveDateTime::parse(s, &naive_fraction))
        .map(PrimitiveDateTime::assume_utc)
        .ok()
        .or_else(|| time::Date::parse(s, &date).ok().map(|d| d.midnight().assume_utc()))
}

/// How far simulated time is ahead of the wall clock, to whole seconds. Clients compute the
/// dates they send (az: `startDateTime` = now, `endDateTime` = now + years) from their own
/// wall clock; armlet moves such dates into simulated time by this much, so a one-year secret
/// created after the clock was advanced still lasts a simulated year.
pub fn client_clock_shift(clock: &Clock) -> Duration {
    let shift = clock.now() - Clock::wall_now();
    Duration::seconds(shift.as_seconds_f64().round() as i64)
}

/// A new client secret shaped like Azure's: 40 characters, a 3-character hint, a digit,
/// `Q~`, then 34 characters of `[A-Za-z0-9_.~-]`.
pub fn new_secret() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const BODY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-";
    // From armlet's generator, so `--seed` reproduces them too (demos, golden files).
    let mut bytes = [0u8; 38];
    crate::ids::fill(&mut bytes);
    let pick = |set: &[u8], b: u8| set[b as usize % set.len()] as char;
    let mut secret: String = bytes[..3].iter().map(|b| pick(ALNUM, *b)).collect();
    secret.push(char::from(b'0' + bytes[3] % 10));
    secret.push_str("Q~");
    secret.extend(bytes[4..].iter().map(|b| pick(BODY, *b)));
    secret
}

/// The `passwordCredential` JSON (`secretText` only in the `addPassword` answer).
pub fn password_json(credential: &PasswordCredential, secret: Option<&str>) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": credential.display_name,
        "endDateTime": credential.end_date_time.map(graph_time),
        "hint": credential.hint,
        "keyId": credential.key_id,
        "secretText": secret,
        "startDateTime": graph_time(credential.start_date_time),
    })
}

/// Builds the credential `addPassword` asks for (body `{"passwordCredential":{displayName?,
/// startDateTime?, endDateTime?}}`) and its secret. Without an `endDateTime` the secret lasts
/// one simulated year; client dates are moved by [`client_clock_shift`].
pub fn new_password(request: &GraphRequest) -> GraphResult<(PasswordCredential, String)> {
    let body = request.json_object()?;
    let spec = match body.get("passwordCredential") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(spec)) => spec.clone(),
        Some(_) => return Err(invalid_value("passwordCredential", "passwordCredential")),
    };
    let text = |name: &str| -> GraphResult<Option<String>> {
        match spec.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid_value(name, "passwordCredential")),
        }
    };
    let shift = client_clock_shift(&request.state.clock);
    let time = |name: &str| -> GraphResult<Option<OffsetDateTime>> {
        text(name)?
            .map(|s| parse_time(&s).map(|t| t + shift).ok_or_else(|| invalid_value(name, "passwordCredential")))
            .transpose()
    };
    let now = request.now();
    let start = time("startDateTime")?.unwrap_or(now);
    let start = start.replace_nanosecond(0).unwrap_or(start);
    let end = match time("endDateTime")? {
        Some(end) => end,
        None => start.max(now) + Duration::days(365),
    };
    let end = end.replace_nanosecond(0).unwrap_or(end);
    if end <= start {
        return Err(GraphError::bad_request(
            "Invalid value specified for property 'endDateTime' of resource 'passwordCredential': it must be later than 'startDateTime'.",
        ));
    }
    let secret = new_secret();
    let mut credential = PasswordCredential::new(crate::ids::uuid().to_string(), &secret, start, Some(end));
    credential.display_name = text("displayName")?;
    Ok((credential, secret))
}

/// Removes the credential `removePassword` names (body `{"keyId"}`) from `credentials`.
pub fn remove_password(request: &GraphRequest, credentials: &mut Vec<PasswordCredential>) -> GraphResult<()> {
    let body = request.json_object()?;
    let key_id = match body.get("keyId") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        _ => return Err(GraphError::bad_request("The property 'keyId' is required.")),
    };
    let before = credentials.len();
    credentials.retain(|c| !c.key_id.eq_ignore_ascii_case(&key_id));
    if credentials.len() == before {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("No password credential found with keyId '{key_id}'."),
        ));
    }
    Ok(())
}

pub fn invalid_value(property: &str, resource: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid value specified for property '{property}' of resource '{resource}'."))
}

/// What a writable property holds, for checking request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A string (or null).
    Text,
    /// An array of strings.
    TextList,
    /// An array of objects.
    ObjectList,
    /// An object (or null).
    Object,
}

/// Checks `body`'s properties against the writable ones (`writable`) and read-only ones of
/// `resource`; returns them, still as JSON.
pub fn check_properties(
    body: &Map<String, Value>,
    writable: &[(&str, Kind)],
    read_only: &[&str],
    resource: &str,
) -> GraphResult<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in body {
        if key.starts_with("@odata.") {
            continue;
        }
        if read_only.iter().any(|r| r.eq_ignore_ascii_case(key)) {
            return Err(GraphError::bad_request(format!("Property '{key}' is read-only and cannot be set.")));
        }
        let Some((name, kind)) = writable.iter().find(|(w, _)| w.eq_ignore_ascii_case(key)) else {
            return Err(GraphError::malformed(format!(
                "Property '{key}' does not exist as a declared property or extension property."
            )));
        };
        let fits = match (kind, value) {
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Text | Kind::Object | Kind::Bool, Value::Null) => true,
            (Kind::Text, Value::String(_)) => true,
            (Kind::Object, Value::Object(_)) => true,
            (Kind::TextList, Value::Array(items)) => items.iter().all(Value::is_string),
            (Kind::ObjectList, Value::Array(items)) => items.iter().all(Value::is_object),
            _ => false,
        };
        if !fits {
            return Err(invalid_value(name, resource));
        }
        out.insert((*name).to_owned(), value.clone());
    }
    Ok(out)
}

/// Merges `patch` into `target` the way Graph applies a PATCH: objects merge property by
/// property, everything else (arrays included) is replaced.
pub fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(update)) => merge(existing, update),
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

/// `defaults` overlaid with `stored` (deeply, so a stored `web` keeps the default keys it
/// does not name).
pub fn with_defaults(defaults: Value, stored: &Map<String, Value>) -> Map<String, Value> {
    let Value::Object(mut out) = defaults else {
        return stored.clone();
    };
    merge(&mut out, stored.clone());
    out
}

/// `/v1.0/{segment}`: alternate keys (`servicePrincipals(appId='…')`,
/// `applications(appId='…')`); anything else is an unknown segment.
pub async fn keyed(State(state): State<AppState>, Path(segment): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        match alternate_key(&segment) {
            Some((collection, app_id)) if collection.eq_ignore_ascii_case("servicePrincipals") => {
                service_principals::by_app_id(&g, &app_id).await
            }
            Some((collection, app_id)) if collection.eq_ignore_ascii_case("applications") => {
                applications::by_app_id(&g, &app_id).await
            }
            _ => Err(unknown_segment(&segment)),
        }
    })
    .await
}

/// Any deeper path armlet does not serve (`/v1.0/groups/…`, `/v1.0/servicePrincipals/{id}/owners`).
pub async fn unknown(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    serve(state, request, |_| async move {
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        Err(unknown_segment(&last))
    })
    .await
}

/// The answer for a method a Graph route does not take.
pub async fn method_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            format!("The HTTP method '{}' is not allowed for the request '{}'.", g.method, g.uri.path()),
        ))
    })
    .await
}

fn unknown_segment(segment: &str) -> GraphError {
    GraphError::malformed(format!("Resource not found for the segment '{segment}'."))
}

/// Splits `servicePrincipals(appId='x')` into `("servicePrincipals", "x")`.
fn alternate_key(segment: &str) -> Option<(String, String)> {
    let (collection, rest) = segment.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let (key, value) = inner.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case("appId") {
        return None;
    }
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
    Some((collection.to_owned(), value))
}

#[cfg(test)]
mod tests;
