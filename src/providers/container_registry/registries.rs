//! `Registries_*` (Microsoft.ContainerRegistry): registries to attach to clusters. Writes
//! complete at once (az accepts a `Succeeded` body without polling). Whether a cluster's
//! nodes can pull from a registry is decided by RBAC: the credential the nodes use needs an
//! effective `Microsoft.ContainerRegistry/registries/pull/read` (AcrPull) on it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::arm::paging::page;
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::clock::rfc3339;
use crate::providers::resources::locations::required_location;
use crate::providers::resources::{generic_resources, resource_groups};
use crate::state::AppState;
use crate::store::{StoreError, Tx};

pub const TYPE: &str = "Microsoft.ContainerRegistry/registries";
/// The action AcrPull grants: pulling images.
pub const PULL_ACTION: &str = "Microsoft.ContainerRegistry/registries/pull/read";

pub fn registry_id(subscription: &str, group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{TYPE}/{name}")
}

/// ACR's rule: 5–50 letters and digits.
fn validate_name(name: &str) -> ArmResult<()> {
    if (5..=50).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(arm_error!(
        InvalidResourceName,
        "The registry name '{name}' is invalid: it must be 5 to 50 characters long and contain only letters and numbers."
    )
    .with_target("registryName"))
}

fn sku(name: &str) -> ArmResult<Value> {
    let canonical =
        ["Basic", "Standard", "Premium"].into_iter().find(|s| s.eq_ignore_ascii_case(name)).ok_or_else(|| {
            arm_error!(
                InvalidParameter,
                "The value '{name}' of 'sku.name' is invalid. Allowed values are 'Basic', 'Standard' and 'Premium'."
            )
            .with_target("sku.name")
        })?;
    Ok(json!({ "name": canonical, "tier": canonical }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sku {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegistryProperties {
    #[serde(default)]
    admin_user_enabled: Option<bool>,
    #[serde(default)]
    public_network_access: Option<String>,
    #[serde(default)]
    anonymous_pull_enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryBody {
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    sku: Option<Sku>,
    #[serde(default)]
    properties: Option<RegistryProperties>,
}

/// Any registry in any subscription using `name` (login servers are global).
fn name_taken(tx: &Tx<'_>, name: &str, except: &str) -> Result<bool, StoreError> {
    Ok(tx.scan::<Value>("res/subscriptions/")?.into_iter().any(|(k, v)| {
        k != storage_key(except)
            && v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(TYPE))
            && v["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))
    }))
}

/// `Registries_Create`: 201 (200 on update) with `provisioningState: Succeeded`.
pub async fn create(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (subscription, group, name) = (
        req.param("subscriptionId").to_owned(),
        req.param("resourceGroupName").to_owned(),
        req.param("registryName").to_owned(),
    );
    validate_name(&name)?;
    let body: Option<RegistryBody> = req.json()?;
    let body = body.ok_or_else(|| ArmError::invalid_request_content("The request content is empty."))?;
    let location = required_location(body.location.as_deref(), TYPE)?;
    let sku = sku(&body
        .sku
        .map(|s| s.name)
        .ok_or_else(|| arm_error!(InvalidParameter, "The property 'sku' is required.").with_target("sku"))?)?;
    resource_groups::load(&state, &subscription, &group)?.ok_or_else(|| ArmError::resource_group_not_found(&group))?;
    let props = body.properties.unwrap_or_default();
    let id = registry_id(&subscription, &group, &name);
    let now = rfc3339(state.clock.now());
    let (created, registry) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            // Again inside the write: the group may have been deleted since the check above.
            resource_groups::require_in(tx, &subscription, &group)?;
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            if existing.is_none() && name_taken(tx, &name, &id)? {
                return Err(arm_error!(
                    Conflict,
                    "The registry DNS name {}.azurecr.io is already in use. You can check if the name is already claimed using following API: https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/checknameavailability",
                    name.to_lowercase()
                ));
            }
            let created_at = existing
                .as_ref()
                .and_then(|e| e["properties"]["creationDate"].as_str().map(str::to_owned))
                .unwrap_or_else(|| now.clone());
            let old = existing.as_ref().map(|e| e["properties"].clone()).unwrap_or(json!({}));
            let registry = json!({
                "id": existing.as_ref().and_then(|e| e["id"].as_str()).unwrap_or(&id),
                "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&name),
                "type": TYPE,
                "location": location,
                "tags": body.tags.clone().unwrap_or_default(),
                "sku": sku,
                "properties": {
                    "loginServer": format!("{}.azurecr.io", name.to_lowercase()),
                    "creationDate": created_at,
                    "provisioningState": "Succeeded",
                    "adminUserEnabled": props.admin_user_enabled.or(old["adminUserEnabled"].as_bool()).unwrap_or(false),
                    "publicNetworkAccess": props.public_network_access.clone().or(old["publicNetworkAccess"].as_str().map(str::to_owned)).unwrap_or_else(|| "Enabled".into()),
                    "anonymousPullEnabled": props.anonymous_pull_enabled.or(old["anonymousPullEnabled"].as_bool()).unwrap_or(false),
                    "networkRuleBypassOptions": "AzureServices",
                    "zoneRedundancy": "Disabled",
                    "dataEndpointEnabled": false,
                    "encryption": { "status": "disabled" },
                    "policies": {
                        "quarantinePolicy": { "status": "disabled" },
                        "trustPolicy": { "type": "Notary", "status": "disabled" },
                        "retentionPolicy": { "days": 7, "status": "disabled" },
                        "exportPolicy": { "status": "enabled" },
                    },
                },
                "systemData": {
                    "createdBy": req.caller.app_id,
                    "createdByType": "Application",
                    "createdAt": created_at,
                    "lastModifiedBy": req.caller.app_id,
                    "lastModifiedByType": "Application",
                    "lastModifiedAt": now,
                },
            });
            tx.put(storage_key(&id), &registry)?;
            Ok((existing.is_none(), registry))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, registry)
}

fn load(state: &AppState, req: &ArmRequest) -> ArmResult<Value> {
    let (group, name) = (req.param("resourceGroupName"), req.param("registryName"));
    state
        .db
        .get(&storage_key(&registry_id(req.param("subscriptionId"), group, name)))?
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, group))
}

/// `Registries_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::arm::json(StatusCode::OK, load(&state, &req)?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryPatch {
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    sku: Option<Sku>,
    #[serde(default)]
    properties: Option<RegistryProperties>,
}

/// `Registries_Update` (PATCH): tags, SKU, admin user, public access, anonymous pull.
pub async fn update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let patch: Option<RegistryPatch> = req.json()?;
    let patch = patch.unwrap_or(RegistryPatch { tags: None, sku: None, properties: None });
    let sku = patch.sku.as_ref().map(|s| sku(&s.name)).transpose()?;
    let (group, name) = (req.param("resourceGroupName").to_owned(), req.param("registryName").to_owned());
    let id = registry_id(req.param("subscriptionId"), &group, &name);
    let now = rfc3339(state.clock.now());
    let registry = state
        .db
        .transact(|tx| -> ArmResult<Value> {
            let mut r: Value =
                tx.get(&storage_key(&id))?.ok_or_else(|| ArmError::resource_not_found(TYPE, &name, &group))?;
            if let Some(tags) = &patch.tags {
                r["tags"] = json!(tags);
            }
            if let Some(sku) = &sku {
                r["sku"] = sku.clone();
            }
            if let Some(p) = &patch.properties {
                if let Some(v) = p.admin_user_enabled {
                    r["properties"]["adminUserEnabled"] = json!(v);
                }
                if let Some(v) = &p.public_network_access {
                    r["properties"]["publicNetworkAccess"] = json!(v);
                }
                if let Some(v) = p.anonymous_pull_enabled {
                    r["properties"]["anonymousPullEnabled"] = json!(v);
                }
            }
            r["systemData"]["lastModifiedAt"] = json!(now);
            tx.put(storage_key(&id), &r)?;
            Ok(r)
        })
        .await?;
    crate::arm::json(StatusCode::OK, registry)
}

/// `Registries_Delete`: 200, or 204 when there was none.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let id = registry_id(req.param("subscriptionId"), req.param("resourceGroupName"), req.param("registryName"));
    let existed = state.db.transact(|tx| generic_resources::delete_with_children(tx, &id)).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::NO_CONTENT }.into_response())
}

/// `Registries_ListByResourceGroup`.
pub async fn list_by_resource_group(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = generic_resources::of_type_in_group(
        &state.db,
        req.param("subscriptionId"),
        req.param("resourceGroupName"),
        TYPE,
    )?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// Every registry in a subscription.
pub fn in_subscription(state: &AppState, subscription: &str) -> Result<Vec<Value>, StoreError> {
    generic_resources::of_type_in_subscription(&state.db, subscription, TYPE)
}

/// `Registries_List` (the subscription).
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = in_subscription(&state, req.param("subscriptionId"))?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_skus() {
        assert!(validate_name("myregistry1").is_ok());
        assert!(validate_name("abcd").is_err());
        assert!(validate_name("my-registry").is_err());
        assert_eq!(sku("basic").unwrap()["name"], "Basic");
        assert!(sku("Gold").is_err());
    }
}
