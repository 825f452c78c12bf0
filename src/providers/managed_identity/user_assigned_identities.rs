//! `UserAssignedIdentities_*` (Microsoft.ManagedIdentity 2023-01-31 … 2026-05-31): synchronous
//! create/update, get, tag updates, delete, and lists by group and subscription. Each identity
//! has a service principal (id = principalId, appId = clientId) created and deleted with it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{client_secret_url, new_principal};
use crate::arm::paging::page;
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::clock::rfc3339;
use crate::directory::ServicePrincipal;
use crate::providers::authorization::role_assignments;
use crate::providers::resources::generic_resources;
use crate::providers::resources::locations::required_location;
use crate::providers::resources::subscriptions::Subscription;
use crate::state::AppState;
use crate::store::{StoreError, Tx};
use time::OffsetDateTime;

pub const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub fn identity_id(subscription: &str, group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourcegroups/{group}/providers/{TYPE}/{name}")
}

/// Azure's rule: 3–128 characters, letters, digits, '-' and '_', starting with a letter or digit.
fn validate_name(name: &str) -> ArmResult<()> {
    let len = name.chars().count();
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if (3..=128).contains(&len) && first_ok && rest_ok {
        return Ok(());
    }
    Err(arm_error!(
        InvalidResourceName,
        "Resource name '{name}' is invalid. The name can contain only letters, numbers, hyphens and underscores, must start with a letter or number, and must be between 3 and 128 characters long."
    )
    .with_target("resourceName"))
}

/// Whether `version` is at least `since` (api-versions compare as dates).
fn at_least(version: &str, since: &str) -> bool {
    version.get(..10).unwrap_or(version) >= since
}

/// The identity as this api-version shows it, with a `clientSecretUrl` on this armlet.
fn render(state: &AppState, req: &ArmRequest, stored: &Value) -> Value {
    let mut body = stored.clone();
    if let Some(properties) = body.get_mut("properties").and_then(Value::as_object_mut) {
        if !at_least(&req.api_version, "2024-11-30") {
            properties.remove("isolationScope");
        }
        if !at_least(&req.api_version, "2025-05-31") {
            properties.remove("assignmentRestrictions");
        }
        let field = |name: &str| properties.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let url =
            client_secret_url(&state.settings.https_url, &field("tenantId"), &field("principalId"), &field("clientId"));
        properties.insert("clientSecretUrl".into(), json!(url));
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityBody {
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    properties: Option<IdentityProperties>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IdentityProperties {
    #[serde(default)]
    isolation_scope: Option<String>,
    #[serde(default)]
    assignment_restrictions: Option<Value>,
}

fn system_data(req: &ArmRequest, created_at: &str, now: &str) -> Value {
    json!({
        "createdBy": req.caller.app_id,
        "createdByType": "Application",
        "createdAt": created_at,
        "lastModifiedBy": req.caller.app_id,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

/// `UserAssignedIdentities_CreateOrUpdate`: 201 with fresh principal and client ids on
/// create, 200 on update (ids, tenant and location stay).
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (subscription, group, name) = (
        req.param("subscriptionId").to_owned(),
        req.param("resourceGroupName").to_owned(),
        req.param("resourceName").to_owned(),
    );
    validate_name(&name)?;
    let body: Option<IdentityBody> = req.json()?;
    let body = body.ok_or_else(|| ArmError::invalid_request_content("The request content is empty."))?;
    let location = required_location(body.location.as_deref(), TYPE)?;
    let properties = body.properties.unwrap_or_default();
    if let Some(scope) = &properties.isolation_scope
        && scope != "None"
        && scope != "Regional"
    {
        return Err(arm_error!(
            BadRequest,
            "The value '{scope}' of property 'isolationScope' is invalid. Allowed values are 'None' and 'Regional'."
        )
        .with_target("properties.isolationScope"));
    }
    let sub: Subscription = state
        .db
        .get(&Subscription::key(&subscription))?
        .ok_or_else(|| ArmError::subscription_not_found(&subscription))?;
    let id = identity_id(&subscription, &group, &name);
    let now = state.clock.now();
    let now_text = rfc3339(now);
    let (created, identity) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            crate::providers::resources::resource_groups::require_in(tx, &subscription, &group)?;
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            let (principal_id, client_id, tenant_id, created_at) = match &existing {
                Some(existing) => {
                    let current = existing["location"].as_str().unwrap_or_default();
                    if current != location {
                        return Err(arm_error!(
                            LocationNotAvailableForResourceType,
                            "The location of an existing identity cannot change from '{current}' to '{location}'."
                        ));
                    }
                    let p = &existing["properties"];
                    (
                        p["principalId"].as_str().unwrap_or_default().to_owned(),
                        p["clientId"].as_str().unwrap_or_default().to_owned(),
                        p["tenantId"].as_str().unwrap_or_default().to_owned(),
                        existing["systemData"]["createdAt"].as_str().unwrap_or(&now_text).to_owned(),
                    )
                }
                None => {
                    let principal = new_principal(&id, &name, &sub.tenant_id, true, now);
                    principal.save(tx)?;
                    (principal.id, principal.app_id, principal.tenant_id, now_text.clone())
                }
            };
            let mut props = json!({ "tenantId": tenant_id, "principalId": principal_id, "clientId": client_id });
            props["isolationScope"] = json!(properties.isolation_scope.clone().unwrap_or_else(|| {
                existing
                    .as_ref()
                    .and_then(|e| e["properties"]["isolationScope"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "None".into())
            }));
            if let Some(restrictions) = &properties.assignment_restrictions {
                props["assignmentRestrictions"] = restrictions.clone();
            }
            let identity = json!({
                "id": id,
                "name": name,
                "type": TYPE,
                "location": location,
                "tags": body.tags.clone().unwrap_or_default(),
                "properties": props,
                "systemData": system_data(&req, &created_at, &now_text),
            });
            tx.put(storage_key(&id), &identity)?;
            Ok((existing.is_none(), identity))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, render(&state, &req, &identity))
}

fn load(state: &AppState, req: &ArmRequest) -> ArmResult<Value> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    state
        .db
        .get(&storage_key(&identity_id(req.param("subscriptionId"), group, name)))?
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, group))
}

/// `UserAssignedIdentities_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let identity = load(&state, &req)?;
    crate::arm::json(StatusCode::OK, render(&state, &req, &identity))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityPatch {
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    properties: Option<IdentityProperties>,
}

/// `UserAssignedIdentities_Update` (PATCH): tags and the writable properties.
pub async fn update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let patch: Option<IdentityPatch> = req.json()?;
    let patch = patch.unwrap_or(IdentityPatch { tags: None, properties: None });
    let (group, name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = identity_id(req.param("subscriptionId"), &group, &name);
    let now = rfc3339(state.clock.now());
    let identity = state
        .db
        .transact(|tx| -> ArmResult<Value> {
            let mut identity: Value =
                tx.get(&storage_key(&id))?.ok_or_else(|| ArmError::resource_not_found(TYPE, &name, &group))?;
            if let Some(tags) = &patch.tags {
                identity["tags"] = json!(tags);
            }
            if let Some(props) = &patch.properties {
                if let Some(scope) = &props.isolation_scope {
                    identity["properties"]["isolationScope"] = json!(scope);
                }
                if let Some(restrictions) = &props.assignment_restrictions {
                    identity["properties"]["assignmentRestrictions"] = restrictions.clone();
                }
            }
            identity["systemData"]["lastModifiedAt"] = json!(now);
            identity["systemData"]["lastModifiedBy"] = json!(req.caller.app_id);
            tx.put(storage_key(&id), &identity)?;
            Ok(identity)
        })
        .await?;
    crate::arm::json(StatusCode::OK, render(&state, &req, &identity))
}

/// `UserAssignedIdentities_Delete`: 200 when it existed, 204 when not; its service principal
/// and federated credentials go with it.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let id = identity_id(req.param("subscriptionId"), req.param("resourceGroupName"), req.param("resourceName"));
    let now = state.clock.now();
    let existed = state.db.transact(|tx| delete_in(tx, &id, now)).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::NO_CONTENT }.into_response())
}

/// Deletes an identity with its service principal, role assignments and federated
/// credentials; false when there was none.
pub fn delete_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
    let Some(identity) = tx.get::<Value>(&storage_key(id))? else {
        return Ok(false);
    };
    let stored_id = identity["id"].as_str().unwrap_or(id).to_owned();
    if let Some(principal) = ServicePrincipal::find_by_resource_id_in(tx, &stored_id)? {
        principal.remove(tx);
        role_assignments::remove_for_principal(tx, &principal.id, now)?;
    }
    generic_resources::delete_with_children(tx, &stored_id)
}

/// Creates an identity on another resource provider's behalf (AKS's kubelet and add-on
/// identities), or returns the one already there.
#[allow(clippy::too_many_arguments)]
pub fn create_for_provider(
    tx: &mut Tx<'_>,
    subscription: &str,
    group: &str,
    name: &str,
    location: &str,
    tenant_id: &str,
    created_by: &str,
    now: OffsetDateTime,
) -> Result<Value, StoreError> {
    let id = identity_id(subscription, group, name);
    if let Some(existing) = tx.get::<Value>(&storage_key(&id))? {
        return Ok(existing);
    }
    let principal = new_principal(&id, name, tenant_id, true, now);
    principal.save(tx)?;
    let now_text = rfc3339(now);
    let identity = json!({
        "id": id,
        "name": name,
        "type": TYPE,
        "location": location,
        "tags": {},
        "properties": {
            "tenantId": principal.tenant_id,
            "principalId": principal.id,
            "clientId": principal.app_id,
            "isolationScope": "None",
        },
        "systemData": {
            "createdBy": created_by,
            "createdByType": "Application",
            "createdAt": now_text,
            "lastModifiedBy": created_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": now_text,
        },
    });
    tx.put(storage_key(&id), &identity)?;
    Ok(identity)
}

fn rendered(state: &AppState, req: &ArmRequest, items: Vec<Value>) -> ArmResult<Response> {
    let items: Vec<Value> = items.iter().map(|v| render(state, req, v)).collect();
    crate::arm::json(StatusCode::OK, page(req, items, "value")?)
}

/// `UserAssignedIdentities_ListByResourceGroup`.
pub async fn list_by_resource_group(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (subscription, group) = (req.param("subscriptionId"), req.param("resourceGroupName"));
    rendered(&state, &req, generic_resources::of_type_in_group(&state.db, subscription, group, TYPE)?)
}

/// `UserAssignedIdentities_ListBySubscription`.
pub async fn list_by_subscription(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    rendered(&state, &req, generic_resources::of_type_in_subscription(&state.db, req.param("subscriptionId"), TYPE)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("myIdentity").is_ok());
        assert!(validate_name("a_b-c").is_ok());
        assert!(validate_name("ab").is_err());
        assert!(validate_name("-abc").is_err());
        assert!(validate_name("a.bc").is_err());
        assert!(validate_name(&"a".repeat(129)).is_err());
        assert!(validate_name(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn versions_compare_as_dates() {
        assert!(at_least("2025-05-31-preview", "2024-11-30"));
        assert!(!at_least("2023-01-31", "2024-11-30"));
        assert!(at_least("2024-11-30", "2024-11-30"));
    }
}
