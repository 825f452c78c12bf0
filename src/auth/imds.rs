//! Managed-identity tokens, fetched the way a workload on Azure fetches them:
//!
//! * `GET /metadata/identity/oauth2/token`: the VM's Instance Metadata Service (IMDS). `az
//!   login --identity` (MSAL) and azure-identity's `ManagedIdentityCredential` call it when
//!   `AZURE_POD_IDENTITY_AUTHORITY_HOST` points at armlet (`armlet env` exports it);
//! * `GET /msi/token`: App Service's identity endpoint (`IDENTITY_ENDPOINT`), which wants the
//!   per-instance secret [`identity_header`] in `X-IDENTITY-HEADER`;
//! * `GET /msi/credentials`: the target of each identity's `clientSecretUrl`, the metadata of
//!   its current credential.
//!
//! The caller names its identity with `client_id`, `object_id` or a resource id; naming none
//! works when exactly one managed identity exists (a VM with a single identity). Tokens carry
//! `oid` = principalId, `appid` = clientId, `xms_mirid` = the identity's resource id, and
//! `cred_thumbprint`, the credential current on the simulated clock, so a test can watch the
//! 46-day rotation. Errors carry each service's own shape.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::entra::{TOKEN_LIFETIME, mint};
use crate::directory::{ServicePrincipal, sp_key};
use crate::providers::managed_identity::client_secret_url;
use crate::providers::managed_identity::credentials::MiCredential;
use crate::state::AppState;
use crate::store::StoreError;

/// The api-versions IMDS answers token requests for here, newest first.
pub const IMDS_API_VERSIONS: &[&str] = &["2019-08-01", "2018-02-01"];
/// The App Service identity protocol version armlet speaks.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// The path of the App Service form (what `IDENTITY_ENDPOINT` would point at).
pub const APP_SERVICE_PATH: &str = "/msi/token";

/// The secret App Service callers send in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`): fixed for
/// this armlet instance (derived from its signing key) and published by `GET /_armlet/info`.
pub fn identity_header(state: &AppState) -> String {
    let digest = Sha256::digest(format!("armlet identity header:{}", state.key.kid()).as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The query string, with names matched case-insensitively and empty values treated as absent.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty()).map(|(_, v)| v.as_str())
    }
}

/// How the caller named its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// By client (app) id.
    Client(String),
    /// By object (principal) id.
    Object(String),
    /// By the identity's resource id.
    Resource(String),
}

/// A query parameter that names an identity, and what it names it by.
type SelectorParam = (&'static str, fn(String) -> Selector);

/// Why a managed-identity token request failed; each endpoint renders it in its own shape.
#[derive(Debug)]
enum MiError {
    MetadataHeader,
    IdentityHeaderMissing,
    IdentityHeaderWrong,
    ApiVersion(Option<String>),
    MissingResource,
    /// More than one of the identity parameters (their names).
    SeveralSelectors(Vec<String>),
    /// No identity named, and more than one exists.
    Ambiguous,
    NotFound,
    Internal(String),
}

impl From<StoreError> for MiError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Reads the identity parameters `names` (IMDS: `client_id`, `object_id`, `msi_res_id`,
/// `mi_res_id`; App Service adds `principal_id`). At most one may be given.
fn selector(query: &Query, names: &[SelectorParam]) -> Result<Option<Selector>, MiError> {
    let given: Vec<(&str, Selector)> =
        names.iter().filter_map(|(name, make)| query.get(name).map(|v| (*name, make(v.to_owned())))).collect();
    match given.len() {
        0 => Ok(None),
        1 => Ok(given.into_iter().next().map(|(_, s)| s)),
        _ => Err(MiError::SeveralSelectors(given.iter().map(|(n, _)| (*n).to_owned()).collect())),
    }
}

/// The managed identity the caller asked for; with no selector, the only one there is.
fn find_identity(state: &AppState, selector: Option<&Selector>) -> Result<ServicePrincipal, MiError> {
    let found = match selector {
        Some(Selector::Client(id)) => ServicePrincipal::find_by_app_id(&state.db, id)?,
        Some(Selector::Object(id)) => ServicePrincipal::find_by_id(&state.db, id)?,
        Some(Selector::Resource(id)) => ServicePrincipal::find_by_resource_id(&state.db, id)?,
        None => {
            let mut all: Vec<ServicePrincipal> = state
                .db
                .scan::<ServicePrincipal>(&sp_key(""))?
                .into_iter()
                .map(|(_, sp)| sp)
                .filter(ServicePrincipal::is_managed_identity)
                .collect();
            if all.len() > 1 {
                return Err(MiError::Ambiguous);
            }
            all.pop()
        }
    };
    found.filter(ServicePrincipal::is_managed_identity).ok_or(MiError::NotFound)
}

/// A token for `principal` to call `resource`, backed by its current credential.
fn token_for(state: &AppState, principal: &ServicePrincipal, resource: &str) -> (String, super::jwt::Claims) {
    let credential = MiCredential::current(principal, state.clock.now());
    mint(state, &principal.tenant_id, principal, resource, Some(credential.thumbprint))
}

fn api_version_ok(query: &Query, supported: &[&str]) -> Result<(), MiError> {
    match query.get("api-version") {
        Some(v) if supported.contains(&v) => Ok(()),
        other => Err(MiError::ApiVersion(other.map(str::to_owned))),
    }
}

fn header_is<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ---- IMDS ----

fn imds_error(error: MiError) -> Response {
    let invalid = |description: String| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_request", "error_description": description })))
    };
    match error {
        MiError::MetadataHeader => invalid("Required metadata header not specified".into()),
        MiError::ApiVersion(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
                "newest-versions": IMDS_API_VERSIONS,
            })),
        ),
        MiError::MissingResource => invalid("Required audience parameter not specified".into()),
        MiError::SeveralSelectors(names) => invalid(format!(
            "Only one of client_id, object_id, msi_res_id or mi_res_id may be specified; the request has {}",
            names.join(", ")
        )),
        MiError::Ambiguous => invalid(
            "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
                .into(),
        ),
        MiError::NotFound => invalid("Identity not found".into()),
        MiError::IdentityHeaderMissing | MiError::IdentityHeaderWrong => invalid("Bad request".into()),
        MiError::Internal(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "server_error", "error_description": message })),
        ),
    }
    .into_response()
}

fn imds(state: &AppState, headers: &HeaderMap, query: &Query) -> Result<Value, MiError> {
    if !header_is(headers, "metadata").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Err(MiError::MetadataHeader);
    }
    api_version_ok(query, IMDS_API_VERSIONS)?;
    let resource = query.get("resource").ok_or(MiError::MissingResource)?;
    let selector = selector(
        query,
        &[
            ("client_id", Selector::Client),
            ("object_id", Selector::Object),
            ("msi_res_id", Selector::Resource),
            ("mi_res_id", Selector::Resource),
        ],
    )?;
    let principal = find_identity(state, selector.as_ref())?;
    let (access_token, claims) = token_for(state, &principal, resource);
    Ok(json!({
        "access_token": access_token,
        "client_id": principal.app_id,
        "expires_in": TOKEN_LIFETIME.to_string(),
        "expires_on": claims.exp.to_string(),
        "ext_expires_in": TOKEN_LIFETIME.to_string(),
        "not_before": claims.nbf.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
}

/// `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=|&object_id=|&msi_res_id=]`
/// with `Metadata: true`: IMDS's token endpoint.
pub async fn imds_token(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    match imds(&state, &headers, &Query::parse(raw.as_deref())) {
        Ok(body) => Json(body).into_response(),
        Err(e) => imds_error(e),
    }
}

// ---- App Service ----

fn app_service_error(error: MiError) -> Response {
    let (status, message) = match error {
        MiError::IdentityHeaderMissing => (
            StatusCode::BAD_REQUEST,
            "The X-IDENTITY-HEADER header is required to request a managed identity token.".into(),
        ),
        MiError::IdentityHeaderWrong => (
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header does not match this environment's IDENTITY_HEADER.".into(),
        ),
        MiError::ApiVersion(version) => (
            StatusCode::BAD_REQUEST,
            format!(
                "The api-version '{}' is not supported. Use api-version={APP_SERVICE_API_VERSION}.",
                version.unwrap_or_default()
            ),
        ),
        MiError::MissingResource => (StatusCode::BAD_REQUEST, "The resource parameter is required.".into()),
        MiError::SeveralSelectors(names) => (
            StatusCode::BAD_REQUEST,
            format!(
                "Only one of client_id, principal_id (object_id) or mi_res_id may be specified; the request has {}.",
                names.join(", ")
            ),
        ),
        MiError::Ambiguous | MiError::NotFound => {
            (StatusCode::BAD_REQUEST, "Unable to load the proper Managed Identity.".into())
        }
        MiError::MetadataHeader => (StatusCode::BAD_REQUEST, "Bad request.".into()),
        MiError::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, message),
    };
    (
        status,
        Json(json!({ "statusCode": status.as_u16(), "message": message, "correlationId": crate::ids::uuid().to_string() })),
    )
        .into_response()
}

fn app_service(state: &AppState, headers: &HeaderMap, query: &Query) -> Result<Value, MiError> {
    let secret = header_is(headers, "x-identity-header").ok_or(MiError::IdentityHeaderMissing)?;
    if secret != identity_header(state) {
        return Err(MiError::IdentityHeaderWrong);
    }
    api_version_ok(query, &[APP_SERVICE_API_VERSION])?;
    let resource = query.get("resource").ok_or(MiError::MissingResource)?;
    let selector = selector(
        query,
        &[
            ("client_id", Selector::Client),
            ("principal_id", Selector::Object),
            ("object_id", Selector::Object),
            ("mi_res_id", Selector::Resource),
        ],
    )?;
    let principal = find_identity(state, selector.as_ref())?;
    let (access_token, claims) = token_for(state, &principal, resource);
    Ok(json!({
        "access_token": access_token,
        "expires_on": claims.exp.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": principal.app_id,
    }))
}

/// `GET /msi/token?api-version=2019-08-01&resource=R[&client_id=|&principal_id=|&mi_res_id=]`
/// with `X-IDENTITY-HEADER`: App Service's identity endpoint.
pub async fn app_service_token(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    match app_service(&state, &headers, &Query::parse(raw.as_deref())) {
        Ok(body) => Json(body).into_response(),
        Err(e) => app_service_error(e),
    }
}

// ---- clientSecretUrl ----

fn credentials_error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// `GET /msi/credentials?tid=..&oid=..&aid=..`: what an identity's `clientSecretUrl` answers,
/// the metadata (thumbprint, notBefore, renewAfter, notAfter) of its credential current on the
/// simulated clock. Never a key.
pub async fn credentials(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let query = Query::parse(raw.as_deref());
    let (Some(tid), Some(oid), Some(aid)) = (query.get("tid"), query.get("oid"), query.get("aid")) else {
        return credentials_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The query parameters 'tid', 'oid' and 'aid' are required.".into(),
        );
    };
    let principal = match ServicePrincipal::find_by_id(&state.db, oid) {
        Ok(found) => found.filter(|sp| {
            sp.is_managed_identity() && sp.app_id.eq_ignore_ascii_case(aid) && sp.tenant_id.eq_ignore_ascii_case(tid)
        }),
        Err(e) => return credentials_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()),
    };
    let Some(principal) = principal else {
        return credentials_error(
            StatusCode::NOT_FOUND,
            "IdentityNotFound",
            format!("No managed identity with object id '{oid}' and client id '{aid}' exists in tenant '{tid}'."),
        );
    };
    let url = client_secret_url(&state.settings.https_url, &principal.tenant_id, &principal.id, &principal.app_id);
    let authority = format!("{}/", state.settings.https_url);
    Json(MiCredential::current(&principal, state.clock.now()).metadata(&principal, &url, &authority)).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use axum::body::Body;
    use axum::http::Request;
    use time::Duration;
    use time::macros::datetime;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::jwt::{self, Claims};
    use crate::auth::keys::SigningKey;
    use crate::clock::Clock;
    use crate::fixtures;
    use crate::state::Settings;
    use crate::store::Db;

    const ARM: &str = "https://127.0.0.1:8443/";

    fn key() -> Arc<SigningKey> {
        static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
        KEY.get_or_init(|| Arc::new(SigningKey::generate().unwrap())).clone()
    }

    async fn state_with(clock: Clock) -> AppState {
        let state = AppState::new(Db::memory(), clock, key(), Settings::default());
        state.bootstrap().await.unwrap();
        state
    }

    async fn state() -> AppState {
        state_with(Clock::real()).await
    }

    fn resource_id(name: &str) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
            fixtures::defaults().subscription.subscription_id
        )
    }

    /// A user-assigned identity's principal, as the Microsoft.ManagedIdentity provider saves it.
    async fn identity(state: &AppState, name: &str) -> ServicePrincipal {
        let app_id = crate::ids::uuid().to_string();
        let sp = ServicePrincipal {
            id: crate::ids::uuid().to_string(),
            app_id: app_id.clone(),
            display_name: name.into(),
            tenant_id: fixtures::defaults().tenant.tenant_id.clone(),
            service_principal_type: "ManagedIdentity".into(),
            service_principal_names: vec![app_id],
            alternative_names: vec!["isExplicit=True".into(), resource_id(name)],
            password_credentials: Vec::new(),
            created_date_time: state.clock.now(),
        };
        state.db.transact(|tx| sp.save(tx)).await.unwrap();
        sp
    }

    async fn get(state: &AppState, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = Request::builder().method("GET").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = crate::app(state.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn enc(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    fn imds_uri(extra: &str) -> String {
        format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}{extra}", enc(ARM))
    }

    async fn imds(state: &AppState, extra: &str) -> (StatusCode, Value) {
        get(state, &imds_uri(extra), &[("Metadata", "true")]).await
    }

    fn claims_of(state: &AppState, body: &Value) -> Claims {
        let token = body["access_token"].as_str().expect("a token");
        jwt::verify(token, &state.key, Clock::wall_now().unix_timestamp()).expect("a valid token")
    }

    fn assert_imds_error(result: (StatusCode, Value), description: &str) {
        assert_eq!(result.0, StatusCode::BAD_REQUEST, "{}", result.1);
        assert_eq!(result.1["error"], "invalid_request", "{}", result.1);
        assert_eq!(result.1["error_description"], description);
    }

    #[tokio::test]
    async fn imds_token_for_a_named_identity() {
        let state = state().await;
        let sp = identity(&state, "web").await;
        let _other = identity(&state, "worker").await;
        let (status, body) = imds(&state, &format!("&client_id={}", sp.app_id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for field in ["expires_in", "expires_on", "ext_expires_in", "not_before"] {
            let value = body[field].as_str().unwrap_or_else(|| panic!("{field} is a string: {body}"));
            assert!(value.parse::<i64>().is_ok(), "{field} = {value}");
        }
        assert_eq!(body["expires_in"], TOKEN_LIFETIME.to_string());
        assert_eq!(body["client_id"], sp.app_id);
        assert_eq!(body["resource"], ARM);
        assert_eq!(body["token_type"], "Bearer");
        let claims = claims_of(&state, &body);
        assert_eq!(claims.oid, sp.id);
        assert_eq!(claims.sub, sp.id);
        assert_eq!(claims.appid.as_deref(), Some(sp.app_id.as_str()));
        assert_eq!(claims.tid, sp.tenant_id);
        assert_eq!(claims.aud, ARM, "the resource becomes aud as given");
        assert_eq!(claims.xms_mirid.as_deref(), Some(resource_id("web").as_str()));
        assert_eq!(claims.appidacr.as_deref(), Some("2"));
        assert_eq!(claims.exp.to_string(), body["expires_on"].as_str().unwrap());
        let current = MiCredential::current(&sp, state.clock.now());
        assert_eq!(claims.cred_thumbprint, Some(current.thumbprint));

        // The same identity by object id and by resource id (either parameter name, any case).
        for extra in [
            format!("&object_id={}", sp.id),
            format!("&msi_res_id={}", enc(&resource_id("web"))),
            format!("&mi_res_id={}", enc(&resource_id("web").to_uppercase())),
        ] {
            let (status, body) = imds(&state, &extra).await;
            assert_eq!(status, StatusCode::OK, "{extra}: {body}");
            assert_eq!(claims_of(&state, &body).oid, sp.id, "{extra}");
        }
    }

    #[tokio::test]
    async fn the_arm_token_is_accepted_by_arm() {
        let state = state().await;
        let sp = identity(&state, "web").await;
        // ARM authorizes the identity like anyone else: give it Reader on the subscription,
        // dated far enough back that the propagation delay has passed.
        let sub = &fixtures::defaults().subscription.subscription_id;
        let mut reader = crate::providers::authorization::bootstrap_owner_assignment(
            sub,
            &sp.id,
            state.clock.now(),
            &crate::ids::uuid().to_string(),
        );
        reader["properties"]["roleDefinitionId"] = serde_json::json!(format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        ));
        let id =
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{}", crate::ids::uuid());
        reader["id"] = serde_json::json!(id);
        state.db.transact(|tx| tx.put(crate::arm::resource_id::storage_key(&id), &reader)).await.unwrap();
        let (_, body) = imds(&state, &format!("&client_id={}", sp.app_id)).await;
        let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
        let (status, groups) = get(
            &state,
            &format!(
                "/subscriptions/{}/resourcegroups?api-version=2022-09-01",
                fixtures::defaults().subscription.subscription_id
            ),
            &[("Authorization", bearer.as_str())],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{groups}");
    }

    #[tokio::test]
    async fn imds_request_errors() {
        let state = state().await;
        let sp = identity(&state, "web").await;
        let named = format!("&client_id={}", sp.app_id);
        // No Metadata header, or not "true".
        assert_imds_error(get(&state, &imds_uri(&named), &[]).await, "Required metadata header not specified");
        assert_imds_error(
            get(&state, &imds_uri(&named), &[("Metadata", "false")]).await,
            "Required metadata header not specified",
        );
        // api-version: missing or unsupported.
        for uri in [
            format!("/metadata/identity/oauth2/token?resource={}{named}", enc(ARM)),
            format!("/metadata/identity/oauth2/token?api-version=2017-09-01&resource={}{named}", enc(ARM)),
        ] {
            let (status, body) = get(&state, &uri, &[("Metadata", "true")]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body["error"].as_str().unwrap().contains("api-version is invalid"), "{body}");
            assert_eq!(body["newest-versions"], json!(["2019-08-01", "2018-02-01"]));
        }
        // 2019-08-01 works too.
        let uri = format!("/metadata/identity/oauth2/token?api-version=2019-08-01&resource={}{named}", enc(ARM));
        assert_eq!(get(&state, &uri, &[("Metadata", "true")]).await.0, StatusCode::OK);
        // No resource.
        assert_imds_error(
            get(
                &state,
                &format!("/metadata/identity/oauth2/token?api-version=2018-02-01{named}"),
                &[("Metadata", "true")],
            )
            .await,
            "Required audience parameter not specified",
        );
        // Two ways of naming the identity at once.
        let (status, body) = imds(&state, &format!("{named}&object_id={}", sp.id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error_description"].as_str().unwrap().contains("client_id, object_id"), "{body}");
        // Unknown identities, and principals that are not managed identities.
        let unknown = crate::ids::uuid();
        for extra in [
            format!("&client_id={unknown}"),
            format!("&object_id={unknown}"),
            format!("&msi_res_id={}", enc(&resource_id("nope"))),
            format!("&client_id={}", fixtures::defaults().service_principal.app_id),
            format!("&object_id={}", fixtures::defaults().service_principal.object_id),
        ] {
            assert_imds_error(imds(&state, &extra).await, "Identity not found");
        }
    }

    #[tokio::test]
    async fn imds_without_a_named_identity() {
        let state = state().await;
        // None at all (the default service principal is not a managed identity).
        assert_imds_error(imds(&state, "").await, "Identity not found");
        // Exactly one: it is used, like a VM with a single identity.
        let only = identity(&state, "only").await;
        let (status, body) = imds(&state, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(claims_of(&state, &body).oid, only.id);
        // Several: the caller must say which.
        identity(&state, "second").await;
        assert_imds_error(
            imds(&state, "").await,
            "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
        );
    }

    #[tokio::test]
    async fn app_service_form() {
        let state = state().await;
        let sp = identity(&state, "web").await;
        identity(&state, "worker").await;
        let secret = identity_header(&state);
        assert_eq!(secret, identity_header(&state), "fixed per instance");
        let uri = |extra: &str| format!("/msi/token?api-version=2019-08-01&resource={}{extra}", enc(ARM));
        for extra in [
            format!("&client_id={}", sp.app_id),
            format!("&principal_id={}", sp.id),
            format!("&object_id={}", sp.id),
            format!("&mi_res_id={}", enc(&resource_id("web"))),
        ] {
            let (status, body) = get(&state, &uri(&extra), &[("X-IDENTITY-HEADER", secret.as_str())]).await;
            assert_eq!(status, StatusCode::OK, "{extra}: {body}");
            assert_eq!(body["client_id"], sp.app_id);
            assert_eq!(body["resource"], ARM);
            assert_eq!(body["token_type"], "Bearer");
            assert!(body["expires_on"].as_str().unwrap().parse::<i64>().is_ok(), "{body}");
            let claims = claims_of(&state, &body);
            assert_eq!((claims.oid, claims.aud), (sp.id.clone(), ARM.to_owned()));
        }
        let named = format!("&client_id={}", sp.app_id);
        let error = |result: (StatusCode, Value), status: StatusCode, message: &str| {
            assert_eq!(result.0, status, "{}", result.1);
            assert_eq!(result.1["statusCode"], status.as_u16());
            assert!(result.1["message"].as_str().unwrap().contains(message), "{}", result.1);
        };
        error(get(&state, &uri(&named), &[]).await, StatusCode::BAD_REQUEST, "X-IDENTITY-HEADER");
        error(
            get(&state, &uri(&named), &[("X-IDENTITY-HEADER", "wrong")]).await,
            StatusCode::UNAUTHORIZED,
            "X-IDENTITY-HEADER",
        );
        let header = [("X-IDENTITY-HEADER", secret.as_str())];
        error(
            get(&state, &format!("/msi/token?api-version=2017-09-01&resource={}{named}", enc(ARM)), &header).await,
            StatusCode::BAD_REQUEST,
            "api-version",
        );
        error(
            get(&state, &format!("/msi/token?api-version=2019-08-01{named}"), &header).await,
            StatusCode::BAD_REQUEST,
            "resource",
        );
        error(
            get(&state, &uri(&format!("&client_id={}", crate::ids::uuid())), &header).await,
            StatusCode::BAD_REQUEST,
            "Unable to load the proper Managed Identity.",
        );
        error(
            get(&state, &uri(""), &header).await,
            StatusCode::BAD_REQUEST,
            "Unable to load the proper Managed Identity.",
        );
        error(
            get(&state, &uri(&format!("{named}&mi_res_id={}", enc(&resource_id("web")))), &header).await,
            StatusCode::BAD_REQUEST,
            "Only one of",
        );
    }

    #[tokio::test]
    async fn credential_rotation_changes_the_thumbprint_and_the_client_secret_url() {
        let state = state_with(Clock::frozen_at(datetime!(2026-01-01 0:00 UTC))).await;
        let sp = identity(&state, "web").await;
        let named = format!("&client_id={}", sp.app_id);
        let credentials_uri = format!("/msi/credentials?tid={}&oid={}&aid={}", sp.tenant_id, sp.id, sp.app_id);

        let (_, before) = imds(&state, &named).await;
        let first = claims_of(&state, &before).cred_thumbprint.unwrap();
        let (status, meta_before) = get(&state, &credentials_uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{meta_before}");
        assert_eq!(meta_before["thumbprint"], first);
        assert_eq!(meta_before["client_id"], sp.app_id);
        assert_eq!(meta_before["object_id"], sp.id);
        assert_eq!(meta_before["tenant_id"], sp.tenant_id);
        assert_eq!(meta_before["client_secret_url"], format!("https://127.0.0.1:8443{credentials_uri}"));
        assert_eq!(meta_before["authentication_endpoint"], "https://127.0.0.1:8443/");
        assert_eq!(meta_before["not_before"], "2026-01-01T00:00:00.0000000Z");
        assert_eq!(meta_before["renew_after"], "2026-02-16T00:00:00.0000000Z");
        assert_eq!(meta_before["not_after"], "2026-04-01T00:00:00.0000000Z");

        // 45 days on: the same credential.
        state.clock.advance_by(Duration::days(45)).unwrap();
        let (_, still) = imds(&state, &named).await;
        assert_eq!(claims_of(&state, &still).cred_thumbprint.unwrap(), first);

        // Past renewAfter: a new credential backs new tokens.
        state.clock.advance_by(Duration::days(1)).unwrap();
        let (_, after) = imds(&state, &named).await;
        let second = claims_of(&state, &after).cred_thumbprint.unwrap();
        assert_ne!(second, first);
        let (_, meta_after) = get(&state, &credentials_uri, &[]).await;
        assert_eq!(meta_after["thumbprint"], second);
        assert_eq!(meta_after["not_before"], "2026-02-16T00:00:00.0000000Z");
        assert_eq!(meta_after["renew_after"], "2026-04-03T00:00:00.0000000Z");

        // The App Service form sees the same credential.
        let header = identity_header(&state);
        let (_, app) = get(
            &state,
            &format!("/msi/token?api-version=2019-08-01&resource={}{named}", enc(ARM)),
            &[("X-IDENTITY-HEADER", header.as_str())],
        )
        .await;
        assert_eq!(claims_of(&state, &app).cred_thumbprint.unwrap(), second);
    }

    #[tokio::test]
    async fn client_secret_url_errors() {
        let state = state().await;
        let sp = identity(&state, "web").await;
        let (status, body) = get(&state, "/msi/credentials", &[]).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
        let defaults = fixtures::defaults();
        for uri in [
            format!("/msi/credentials?tid={}&oid={}&aid={}", sp.tenant_id, crate::ids::uuid(), sp.app_id),
            format!("/msi/credentials?tid={}&oid={}&aid={}", sp.tenant_id, sp.id, crate::ids::uuid()),
            format!("/msi/credentials?tid={}&oid={}&aid={}", crate::ids::uuid(), sp.id, sp.app_id),
            format!(
                "/msi/credentials?tid={}&oid={}&aid={}",
                defaults.tenant.tenant_id, defaults.service_principal.object_id, defaults.service_principal.app_id
            ),
        ] {
            let (status, body) = get(&state, &uri, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "IdentityNotFound");
        }
    }
}
