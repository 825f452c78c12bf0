//! The harness every in-process test uses: an armlet built around an in-memory store, driven
//! through `tower::ServiceExt::oneshot` without a socket, plus token helpers and assertions
//! on ARM's error envelope.

use std::sync::{Arc, OnceLock};

use armlet::auth::jwt::{self, Claims};
use armlet::auth::keys::SigningKey;
use armlet::clock::Clock;
use armlet::fixtures;
use armlet::{AppState, Settings};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

pub mod server;

/// The api-version of Microsoft.Resources resource groups, providers and generic resources.
pub const RG_API: &str = "2024-11-01";
/// The api-version of subscriptions, tenants and locations.
pub const SUB_API: &str = "2022-12-01";
/// Where frozen test clocks stand.
pub const FROZEN_AT: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
/// The `Host` every request carries, matching `Settings::default().https_url`.
pub const HOST: &str = "127.0.0.1:8443";
/// armlet's own ARM audience under the default settings.
pub const AUDIENCE: &str = "https://127.0.0.1:8443";

/// The one signing key every in-process armlet shares (RSA generation is slow).
pub fn key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(SigningKey::generate().expect("generate the test signing key"))).clone()
}

/// A key armlet does not know, for forged tokens.
pub fn other_key() -> &'static SigningKey {
    static OTHER: OnceLock<SigningKey> = OnceLock::new();
    OTHER.get_or_init(|| SigningKey::generate().expect("generate a foreign signing key"))
}

pub fn tenant_id() -> &'static str {
    &fixtures::defaults().tenant.tenant_id
}

pub fn sub_id() -> &'static str {
    &fixtures::defaults().subscription.subscription_id
}

pub fn client_id() -> &'static str {
    &fixtures::defaults().service_principal.app_id
}

pub fn client_secret() -> &'static str {
    &fixtures::defaults().service_principal.secret
}

pub fn object_id() -> &'static str {
    &fixtures::defaults().service_principal.object_id
}

/// `/subscriptions/{default}/resourcegroups/{name}?api-version=...`.
pub fn group_uri(name: &str) -> String {
    format!("/subscriptions/{}/resourcegroups/{name}?api-version={RG_API}", sub_id())
}

/// The id ARM gives the group `name` of the default subscription.
pub fn group_id(name: &str) -> String {
    format!("/subscriptions/{}/resourceGroups/{name}", sub_id())
}

/// Claims of a token armlet would accept, signed now (wall time) for `AUDIENCE`.
pub fn valid_claims() -> Claims {
    let now = Clock::wall_now().unix_timestamp();
    Claims {
        aud: AUDIENCE.into(),
        iss: format!("{AUDIENCE}/{}/", tenant_id()),
        iat: now,
        nbf: now,
        exp: now + 3599,
        tid: tenant_id().into(),
        oid: object_id().into(),
        sub: object_id().into(),
        appid: Some(client_id().into()),
        ver: Some("1.0".into()),
        ..Default::default()
    }
}

/// Signs arbitrary claims.
pub fn mint(claims: &Claims, key: &SigningKey) -> String {
    jwt::sign(claims, key)
}

/// The decoded JSON of a JWT segment (0 = header, 1 = claims).
pub fn jwt_segment(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap_or_else(|| panic!("token has no segment {index}: {token}"));
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("JWT segment is base64url");
    serde_json::from_slice(&bytes).expect("JWT segment is JSON")
}

/// Asserts `body` is exactly ARM's error envelope with `code` (and `status`), and returns the
/// message.
pub fn assert_arm_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) -> String {
    assert_eq!(status, want, "status for {code}; body: {body}");
    let outer = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(outer.keys().collect::<Vec<_>>(), vec!["error"], "error body has exactly one member, 'error': {body}");
    let error = body["error"].as_object().unwrap_or_else(|| panic!("'error' is not an object: {body}"));
    for k in error.keys() {
        assert!(
            ["code", "message", "target", "details"].contains(&k.as_str()),
            "unexpected member '{k}' in error: {body}"
        );
    }
    assert_eq!(body["error"]["code"], code, "error code; body: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("error message is not a string: {body}"));
    assert!(!message.is_empty(), "error message is empty: {body}");
    message.to_owned()
}

/// An in-process armlet.
pub struct TestApp {
    pub state: AppState,
    router: Router,
}

impl TestApp {
    /// A frozen clock at [`FROZEN_AT`] and default settings.
    pub async fn new() -> Self {
        Self::with(Clock::frozen_at(FROZEN_AT), Settings::default()).await
    }

    /// A frozen clock with `settings`.
    pub async fn with_settings(settings: Settings) -> Self {
        Self::with(Clock::frozen_at(FROZEN_AT), settings).await
    }

    pub async fn with(clock: Clock, settings: Settings) -> Self {
        let state = AppState::new(armlet::store::Db::memory(), clock, key(), settings);
        state.bootstrap().await.expect("bootstrap");
        let router = armlet::app(state.clone());
        Self { state, router }
    }

    /// Sends `request` as is (a `Host` header is added when missing).
    pub async fn call(&self, mut request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        if !request.headers().contains_key(header::HOST) {
            request.headers_mut().insert(header::HOST, HOST.parse().expect("host header"));
        }
        let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("read the response body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    /// Sends raw bytes with extra headers; the body comes back as JSON (`Null` when empty,
    /// a JSON string holding the text when it is not JSON).
    pub async fn send_raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Body::from(body)).expect("build the request");
        let (status, headers, bytes) = self.call(request).await;
        (status, headers, to_json(&bytes))
    }

    /// Sends `body` (if any) as JSON with a bearer `token` (if any).
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let (headers, bytes): (&[(&str, &str)], Vec<u8>) = match &body {
            Some(v) => (&[("content-type", "application/json")], serde_json::to_vec(v).expect("serialise the body")),
            None => (&[], Vec::new()),
        };
        self.send_raw(method, uri, token, headers, bytes).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send(Method::GET, uri, Some(token), None).await;
        (status, body)
    }

    /// A GET without credentials (metadata, discovery, the control API).
    pub async fn get_public(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send(Method::GET, uri, None, None).await;
        (status, body)
    }

    /// POSTs a form (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, uri: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let (status, _, value) = self
            .send_raw(
                Method::POST,
                uri,
                None,
                &[("content-type", "application/x-www-form-urlencoded")],
                body.into_bytes(),
            )
            .await;
        (status, value)
    }

    /// A token from armlet's own v2 token endpoint with the well-known credentials.
    pub async fn token(&self) -> String {
        let (status, body) = self
            .post_form(
                &format!("/{}/oauth2/v2.0/token", tenant_id()),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id()),
                    ("client_secret", client_secret()),
                    ("scope", &format!("{AUDIENCE}/.default")),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "token endpoint: {body}");
        body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {body}")).to_owned()
    }

    /// PUTs the group `name` in `location` and returns status and body.
    pub async fn put_group(&self, token: &str, name: &str, location: &str) -> (StatusCode, Value) {
        let (status, _, body) =
            self.send(Method::PUT, &group_uri(name), Some(token), Some(json!({ "location": location }))).await;
        (status, body)
    }

    /// Writes a resource straight into the store, as a provider would.
    pub async fn put_raw_resource(&self, id: &str, value: &Value) {
        self.state
            .db
            .transact(|tx| tx.put(armlet::arm::resource_id::storage_key(id), value))
            .await
            .expect("write a resource into the store");
    }

    /// The stored resource under `id`, if any.
    pub fn stored(&self, id: &str) -> Option<Value> {
        self.state.db.get::<Value>(&armlet::arm::resource_id::storage_key(id)).expect("read the store")
    }
}

fn to_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The path and query of an absolute URL (what a client sends after following a link).
pub fn path_of(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("'{url}' is not an absolute http(s) URL"));
    rest[rest.find('/').unwrap_or(rest.len())..].to_owned()
}

/// The decoded query pairs of a URL.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A header's value as text.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
