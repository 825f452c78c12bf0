//! System-assigned identities: the identity a resource (an AKS cluster, a VM) carries itself.
//! Providers call [`assign`] and [`remove`] inside their transactions; ARM exposes it at
//! `GET {scope}/providers/Microsoft.ManagedIdentity/identities/default`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{client_secret_url, new_principal};
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmRequest, ArmResult};
use crate::arm_error;
use crate::directory::ServicePrincipal;
use crate::state::AppState;
use crate::store::{StoreError, Tx};

/// Gives `resource_id` a system-assigned identity (or returns the one it has).
pub fn assign(
    tx: &mut Tx<'_>,
    resource_id: &str,
    name: &str,
    tenant_id: &str,
    now: OffsetDateTime,
) -> Result<ServicePrincipal, StoreError> {
    if let Some(existing) = ServicePrincipal::find_by_resource_id_in(tx, resource_id)? {
        return Ok(existing);
    }
    let principal = new_principal(resource_id, name, tenant_id, false, now);
    principal.save(tx)?;
    Ok(principal)
}

/// Removes the resource's system-assigned identity, if any.
pub fn remove(tx: &mut Tx<'_>, resource_id: &str) -> Result<(), StoreError> {
    if let Some(principal) = ServicePrincipal::find_by_resource_id_in(tx, resource_id)? {
        principal.remove(tx);
    }
    Ok(())
}

/// `SystemAssignedIdentities_GetByScope`.
pub async fn get_by_scope(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let scope = req.param("scope").to_owned();
    let principal = ServicePrincipal::find_by_resource_id(&state.db, &scope)?
        .filter(|p| p.alternative_names.iter().any(|n| n == "isExplicit=False"))
        .ok_or_else(|| {
            arm_error!(ResourceNotFound, "The resource '{scope}' does not have a system-assigned managed identity.")
        })?;
    let resource: Option<Value> = state.db.get(&storage_key(&scope))?;
    let stored_scope = principal.managed_identity_resource_id().unwrap_or(&scope).to_owned();
    let location = resource.as_ref().and_then(|r| r["location"].as_str()).unwrap_or_default();
    let tags = resource.as_ref().map(|r| r["tags"].clone()).filter(|t| !t.is_null()).unwrap_or(json!({}));
    crate::arm::json(
        StatusCode::OK,
        json!({
            "id": format!("{stored_scope}/providers/Microsoft.ManagedIdentity/identities/default"),
            "name": "default",
            "type": "Microsoft.ManagedIdentity/identities",
            "location": location,
            "tags": tags,
            "properties": {
                "tenantId": principal.tenant_id,
                "principalId": principal.id,
                "clientId": principal.app_id,
                "clientSecretUrl": client_secret_url(&state.settings.https_url, &principal.tenant_id, &principal.id, &principal.app_id),
            },
        }),
    )
}
