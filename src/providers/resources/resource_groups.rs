//! Resource groups (`ResourceGroups_*`, Microsoft.Resources 2024-11-01). Synchronous except
//! delete, which is a long-running operation that removes everything inside the group.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::Duration;

use crate::arm::lro::{Operation, OperationStatus};
use crate::arm::odata::{self, Clause};
use crate::arm::paging::page;
use crate::arm::resource_id::{storage_key, storage_prefix_under};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::directory::ServicePrincipal;
use crate::providers::authorization::role_assignments;
use crate::state::AppState;
use crate::store::{StoreError, Tx};
use crate::{arm_error, fixtures};

/// The operation kind that deletes a group.
pub const DELETE_OPERATION: &str = "Microsoft.Resources/resourceGroups/delete";

/// Simulated time a group deletion takes.
const DELETE_DURATION: Duration = Duration::ZERO;

pub fn group_id(subscription: &str, group: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}")
}

/// The stored group, if it exists.
pub fn load(state: &AppState, subscription: &str, group: &str) -> Result<Option<Value>, StoreError> {
    state.db.get(&storage_key(&group_id(subscription, group)))
}

/// For a write's transaction: the group still exists. The request's scope was checked
/// before the transaction, and a deletion that finished in between would leave what the
/// write makes orphaned under a group that is gone.
pub fn require_in(tx: &Tx<'_>, subscription: &str, group: &str) -> ArmResult<()> {
    match tx.get::<Value>(&storage_key(&group_id(subscription, group)))? {
        Some(_) => Ok(()),
        None => Err(ArmError::resource_group_not_found(group)),
    }
}

fn provisioning_state(group: &Value) -> &str {
    group["properties"]["provisioningState"].as_str().unwrap_or("Succeeded")
}

fn being_deleted(name: &str) -> ArmError {
    arm_error!(
        ResourceGroupBeingDeleted,
        "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
    )
}

/// ARM's name rule: 1–90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.
fn validate_name(name: &str) -> ArmResult<()> {
    let invalid: String = name.chars().filter(|c| !(c.is_alphanumeric() || "-_.()".contains(*c))).collect();
    if !invalid.is_empty() {
        return Err(arm_error!(
            InvalidResourceGroup,
            "The provided resource group name '{name}' has these invalid characters: '{invalid}'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'."
        ));
    }
    if name.chars().count() > 90 {
        return Err(arm_error!(
            InvalidResourceGroup,
            "The provided resource group name '{name}' is too long. The name can be at most 90 characters."
        ));
    }
    if name.ends_with('.') {
        return Err(arm_error!(
            InvalidResourceGroup,
            "The provided resource group name '{name}' cannot end with a period."
        ));
    }
    Ok(())
}

/// Resolves a location as ARM does (`West US 2` → `westus2`).
pub fn normalize_location(location: &str) -> ArmResult<String> {
    fixtures::region(location).map(|r| r.name.clone()).ok_or_else(|| {
        let names: Vec<&str> = fixtures::regions().iter().map(|r| r.name.as_str()).collect();
        arm_error!(
            LocationNotAvailableForResourceGroup,
            "The provided location '{location}' is not available for resource group. List of available regions is '{}'.",
            names.join(",")
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    managed_by: Option<String>,
}

/// `ResourceGroups_CreateOrUpdate`: 201 on create, 200 on update; the name keeps the casing
/// of the latest PUT; the location cannot change.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let subscription = req.param("subscriptionId").to_owned();
    let name = req.param("resourceGroupName").to_owned();
    validate_name(&name)?;
    let body: Option<GroupBody> = req.json()?;
    let body = body.ok_or_else(|| ArmError::invalid_request_content("The request content is empty."))?;
    let location = body
        .location
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| arm_error!(LocationRequired, "The location property is required for this definition."))?;
    let location = normalize_location(&location)?;
    let id = group_id(&subscription, &name);
    let (created, group) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            if let Some(existing) = &existing {
                if provisioning_state(existing) == "Deleting" {
                    return Err(being_deleted(&name));
                }
                let current = existing["location"].as_str().unwrap_or_default();
                if current != location {
                    return Err(arm_error!(
                        InvalidResourceGroupLocation,
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{current}'."
                    ));
                }
            }
            let mut group = json!({
                "id": id,
                "name": name,
                "type": "Microsoft.Resources/resourceGroups",
                "location": location,
                "properties": { "provisioningState": "Succeeded" },
            });
            if let Some(tags) = &body.tags {
                group["tags"] = json!(tags);
            }
            if let Some(managed_by) = &body.managed_by {
                group["managedBy"] = json!(managed_by);
            }
            tx.put(storage_key(&id), &group)?;
            Ok((existing.is_none(), group))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, group)
}

/// `ResourceGroups_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("resourceGroupName");
    let group =
        load(&state, req.param("subscriptionId"), name)?.ok_or_else(|| ArmError::resource_group_not_found(name))?;
    crate::arm::json(StatusCode::OK, group)
}

/// `ResourceGroups_CheckExistence`: HEAD answers 204 or 404 with no body.
pub async fn check_existence(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let exists = load(&state, req.param("subscriptionId"), req.param("resourceGroupName"))?.is_some();
    Ok(if exists { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupPatch {
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    managed_by: Option<String>,
}

/// `ResourceGroups_Update` (PATCH): replaces tags and managedBy when given.
pub async fn update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let patch: Option<GroupPatch> = req.json()?;
    let patch = patch.unwrap_or(GroupPatch { tags: None, managed_by: None });
    let name = req.param("resourceGroupName").to_owned();
    let id = group_id(req.param("subscriptionId"), &name);
    let group = state
        .db
        .transact(|tx| -> ArmResult<Value> {
            let mut group: Value =
                tx.get(&storage_key(&id))?.ok_or_else(|| ArmError::resource_group_not_found(&name))?;
            if provisioning_state(&group) == "Deleting" {
                return Err(being_deleted(&name));
            }
            if let Some(tags) = &patch.tags {
                group["tags"] = json!(tags);
            }
            if let Some(managed_by) = &patch.managed_by {
                group["managedBy"] = json!(managed_by);
            }
            tx.put(storage_key(&id), &group)?;
            Ok(group)
        })
        .await?;
    crate::arm::json(StatusCode::OK, group)
}

/// `ResourceGroups_Delete`: 202 with `Location` (and `Retry-After`); the group shows
/// `Deleting` until the operation completes and takes everything inside with it.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let subscription = req.param("subscriptionId").to_owned();
    let name = req.param("resourceGroupName").to_owned();
    let now = state.clock.now();
    let op = state
        .db
        .transact(|tx| -> ArmResult<Operation> {
            let mut group: Value = tx
                .get(&storage_key(&group_id(&subscription, &name)))?
                .ok_or_else(|| ArmError::resource_group_not_found(&name))?;
            let id = group["id"].as_str().unwrap_or_default().to_owned();
            group["properties"]["provisioningState"] = json!("Deleting");
            tx.put(storage_key(&id), &group)?;
            let op_id = crate::ids::uuid().to_string();
            let op = Operation {
                id: op_id.clone(),
                kind: DELETE_OPERATION.into(),
                resource_id: id,
                status: OperationStatus::InProgress,
                start_time: now,
                end_time: None,
                due_at: now + DELETE_DURATION,
                error: None,
                status_path: None,
                result_path: format!("/subscriptions/{subscription}/operationresults/{op_id}"),
                api_version: req.api_version.clone(),
                done_status: 200,
                result: None,
                polls_remaining: 0,
                injected_failure: None,
            };
            Operation::start(tx, &op)?;
            Ok(op)
        })
        .await?;
    Ok(op.accepted(&req, StatusCode::ACCEPTED, None))
}

/// Finishes a group deletion: the group and every resource under it go in one batch.
pub async fn complete_delete(state: &AppState, op: Operation) -> Result<Operation, StoreError> {
    let now = state.clock.now();
    state
        .db
        .transact(|tx| {
            for (key, resource) in tx.scan::<Value>(&storage_prefix_under(&op.resource_id))? {
                // A cluster takes its node resource group and everything AKS made with it.
                if resource["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(crate::providers::container_service::CLUSTER_TYPE))
                {
                    crate::providers::container_service::managed_clusters::teardown(tx, &resource, now)?;
                }
                // Identities (user- or system-assigned) leave the directory with their resource.
                if let Some(id) = resource["id"].as_str()
                    && let Some(principal) = ServicePrincipal::find_by_resource_id_in(tx, id)?
                {
                    principal.remove(tx);
                    role_assignments::remove_for_principal(tx, &principal.id, now)?;
                }
                tx.delete(key);
            }
            tx.delete(storage_key(&op.resource_id));
            op.finish(tx, Ok(None), now)
        })
        .await
}

/// `ResourceGroups_List`, with `$filter=tagName eq 'x' [and tagValue eq 'y']` and `$top`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let clauses = match req.query("$filter") {
        Some(f) => odata::parse(f)?,
        None => Vec::new(),
    };
    let mut tag_name = None;
    let mut tag_value = None;
    for clause in &clauses {
        match clause {
            Clause::Eq(f, v) if f.eq_ignore_ascii_case("tagName") => tag_name = Some(v.clone()),
            Clause::Eq(f, v) if f.eq_ignore_ascii_case("tagValue") => tag_value = Some(v.clone()),
            _ => {
                return Err(arm_error!(
                    InvalidFilterInQueryString,
                    "Invalid $filter '{}' specified in the query string.",
                    req.query("$filter").unwrap_or_default()
                ));
            }
        }
    }
    let prefix = format!("res/subscriptions/{}/resourcegroups/", req.param("subscriptionId").to_lowercase());
    let items: Vec<Value> = state
        .db
        .scan::<Value>(&prefix)?
        .into_iter()
        .filter(|(key, _)| !key[prefix.len()..].contains('/'))
        .map(|(_, group)| group)
        .filter(|group| match &tag_name {
            None => true,
            Some(name) => group["tags"].as_object().is_some_and(|tags| {
                tags.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case(name)
                        && tag_value.as_ref().is_none_or(|want| v.as_str() == Some(want.as_str()))
                })
            }),
        })
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("myResourceGroup").is_ok());
        assert!(validate_name("a-b_c.(d)").is_ok());
        assert!(validate_name("bad name").is_err());
        assert!(validate_name("ends.").is_err());
        assert!(validate_name(&"x".repeat(91)).is_err());
        assert_eq!(validate_name("a/b").unwrap_err().code.as_str(), "InvalidResourceGroup");
    }
}
