//! Entra ID's endpoints (served on HTTPS, as MSAL requires): OpenID discovery, JWKS and the
//! v2/v1 token endpoints for `client_credentials` with a client secret. Errors carry AAD's
//! shape, `{"error","error_description","error_codes",...}`, with its AADSTS numbers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::jwt::{self, Claims};
use crate::clock::{Clock, rfc3339};
use crate::directory::{Application, SecretCheck, ServicePrincipal, check_secret};
use crate::providers::resources::subscriptions::Tenant;
use crate::state::AppState;

/// Access token lifetime in seconds (wall time).
pub const TOKEN_LIFETIME: i64 = 3599;

/// An AAD error response.
pub struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self { status, error, code, description: description.into() }
    }
}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let trace_id = crate::ids::uuid().to_string();
        let correlation_id = crate::ids::uuid().to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {}",
                self.code,
                self.description,
                rfc3339(Clock::wall_now())
            ),
            "error_codes": [self.code],
            "timestamp": rfc3339(Clock::wall_now()),
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        (self.status, Json(body)).into_response()
    }
}

/// Resolves a tenant given by id or by domain name.
fn find_tenant(state: &AppState, tenant: &str) -> Result<Tenant, AadError> {
    let tenants = state.db.scan::<Tenant>("tenant/").map_err(|e| {
        AadError::new(StatusCode::INTERNAL_SERVER_ERROR, "temporarily_unavailable", 90033, e.to_string())
    })?;
    tenants
        .into_iter()
        .map(|(_, t)| t)
        .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant) || t.default_domain.eq_ignore_ascii_case(tenant))
        .ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            )
        })
}

fn discovery(state: &AppState, tenant: &str, v2: bool) -> Result<Value, AadError> {
    let tenant = find_tenant(state, tenant)?;
    let base = &state.settings.https_url;
    let tid = &tenant.tenant_id;
    let (suffix, keys) = if v2 { ("/v2.0", "discovery/v2.0/keys") } else { ("", "discovery/keys") };
    let oauth = if v2 { "oauth2/v2.0" } else { "oauth2" };
    Ok(json!({
        "token_endpoint": format!("{base}/{tid}/{oauth}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tid}/{keys}"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}{suffix}"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{tid}/{oauth}/authorize"),
        "device_authorization_endpoint": format!("{base}/{tid}/{oauth}/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tid}/{oauth}/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "idtyp"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "armlet",
        "cloud_graph_host_name": state.settings.https_authority(),
        "msgraph_host": state.settings.https_authority(),
    }))
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: what MSAL reads before a login.
pub async fn openid_configuration_v2(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    discovery(&state, &tenant, true).map(Json).into_response()
}

/// `GET /{tenant}/.well-known/openid-configuration` (the v1 authority).
pub async fn openid_configuration_v1(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    discovery(&state, &tenant, false).map(Json).into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys` and friends: the key tokens are signed with.
pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "keys": [state.key.jwk()] }))
}

/// The parsed token request, whichever endpoint version it came through.
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
    /// The resource the token is for (`aud`).
    resource: String,
}

/// `client_secret_basic`: `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    Some((unescape(id), unescape(secret)))
}

fn parse_form(body: &[u8], headers: &HeaderMap, v2: bool) -> Result<TokenRequest, AadError> {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    if let Some((id, secret)) = basic_credentials(headers) {
        fields.entry("client_id".to_owned()).or_insert(id);
        fields.entry("client_secret".to_owned()).or_insert(secret);
    }
    let required = |name: &str| {
        fields.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    let grant_type = required("grant_type")?;
    let client_id = required("client_id")?;
    let client_secret = fields.get("client_secret").cloned().unwrap_or_default();
    let resource = if v2 {
        let scope = required("scope")?;
        let resource = scope.split_whitespace().find_map(|s| s.strip_suffix("/.default")).map(str::to_owned);
        resource.ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        })?
    } else {
        required("resource")?
    };
    Ok(TokenRequest { grant_type, client_id, client_secret, resource })
}

/// Mints an access token for `principal` (an application or a managed identity) to call
/// `resource`. Lifetimes are wall time (clients cache tokens by their own clock).
/// `credential` is the thumbprint of the managed-identity credential that backs the token.
pub fn mint(
    state: &AppState,
    tenant_id: &str,
    principal: &ServicePrincipal,
    resource: &str,
    credential: Option<String>,
) -> (String, Claims) {
    let now = Clock::wall_now().unix_timestamp();
    let claims = Claims {
        aud: resource.to_owned(),
        iss: format!("{}/{tenant_id}/", state.settings.https_url),
        iat: now,
        nbf: now,
        exp: now + TOKEN_LIFETIME,
        tid: tenant_id.to_owned(),
        oid: principal.id.clone(),
        sub: principal.id.clone(),
        appid: Some(principal.app_id.clone()),
        appidacr: Some(if principal.is_managed_identity() { "2" } else { "1" }.into()),
        idtyp: Some("app".into()),
        ver: Some("1.0".into()),
        uti: Some(crate::ids::uuid().simple().to_string()),
        xms_mirid: principal.managed_identity_resource_id().map(str::to_owned),
        cred_thumbprint: credential,
        ..Default::default()
    };
    (jwt::sign(&claims, &state.key), claims)
}

async fn issue(state: &AppState, tenant: &str, headers: &HeaderMap, body: &[u8], v2: bool) -> Result<Value, AadError> {
    let tenant = find_tenant(state, tenant)?;
    let request = parse_form(body, headers, v2)?;
    if request.grant_type != "client_credentials" {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{}'.", request.grant_type),
        ));
    }
    let internal = |e: crate::store::StoreError| {
        AadError::new(StatusCode::INTERNAL_SERVER_ERROR, "temporarily_unavailable", 90033, e.to_string())
    };
    let principal = ServicePrincipal::find_by_app_id(&state.db, &request.client_id)
        .map_err(internal)?
        .filter(|sp| sp.tenant_id.eq_ignore_ascii_case(&tenant.tenant_id))
        .ok_or_else(|| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    request.client_id, tenant.display_name
                ),
            )
        })?;
    if request.client_secret.is_empty() {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let application = Application::find_by_app_id(&state.db, &principal.app_id).map_err(internal)?;
    let credentials =
        principal.password_credentials.iter().chain(application.iter().flat_map(|a| a.password_credentials.iter()));
    match check_secret(credentials, &request.client_secret, state.clock.now()) {
        SecretCheck::Valid => {}
        SecretCheck::Wrong => {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    principal.app_id
                ),
            ));
        }
        SecretCheck::Expired => {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    principal.app_id
                ),
            ));
        }
    }
    let (access_token, claims) = mint(state, &tenant.tenant_id, &principal, &request.resource, None);
    Ok(if v2 {
        json!({ "token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME, "access_token": access_token })
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.to_string(),
            "ext_expires_in": TOKEN_LIFETIME.to_string(),
            "expires_on": claims.exp.to_string(),
            "not_before": claims.nbf.to_string(),
            "resource": request.resource,
            "access_token": access_token,
        })
    })
}

/// `POST /{tenant}/oauth2/v2.0/token`: client credentials with a secret (`scope=<aud>/.default`).
pub async fn token_v2(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue(&state, &tenant, &headers, &body, true).await.map(Json).into_response()
}

/// `POST /{tenant}/oauth2/token`: the v1 endpoint (`resource=<aud>`).
pub async fn token_v1(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue(&state, &tenant, &headers, &body, false).await.map(Json).into_response()
}
