//! The cloud metadata endpoint az reads to learn a cloud's endpoints, served on both
//! listeners (`ARM_CLOUD_METADATA_URL` is fetched with urllib, which ignores
//! `REQUESTS_CA_BUNDLE`, so plain HTTP is the easy path). `api-version=2022-09-01` (what
//! `az cloud register` asks for) answers one cloud object; older versions an array.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::state::AppState;

/// The cloud's name; never `AzureCloud`, for which az forces the public login endpoint.
pub const CLOUD_NAME: &str = "armlet";

/// The host name (without port) the client used, so `localhost` clients get `localhost` URLs.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| format!("[{h}]"));
    }
    Some(host.split(':').next().unwrap_or(host).to_owned())
}

/// The cloud description pointing every endpoint at armlet's HTTPS listener.
pub fn cloud(state: &AppState, headers: &HeaderMap) -> Value {
    let port = state.settings.https_authority().rsplit(':').next().unwrap_or("8443").to_owned();
    let base = match request_host(headers) {
        Some(host) => format!("https://{host}:{port}/"),
        None => format!("{}/", state.settings.https_url),
    };
    json!({
        "name": CLOUD_NAME,
        "portal": format!("{base}portal"),
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": [base],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "microsoftGraphResourceId": base,
        "graph": base,
        "graphAudience": base,
        "suffixes": {
            "acrLoginServer": "azurecr.io",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "sqlServerHostname": "database.windows.net",
        },
    })
}

/// `GET /metadata/endpoints?api-version=...`.
pub async fn endpoints(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let cloud = cloud(&state, &headers);
    let version = query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.as_str());
    match version {
        Some(v) if v >= "2022-09-01" => Json(cloud).into_response(),
        _ => Json(json!([cloud])).into_response(),
    }
}
