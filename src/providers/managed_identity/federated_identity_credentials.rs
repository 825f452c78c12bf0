//! `FederatedIdentityCredentials_*`: trust relationships (issuer, subject, audiences) under a
//! user-assigned identity, at most 20 per identity as in Azure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::user_assigned_identities::{TYPE as IDENTITY_TYPE, identity_id};
use crate::arm::paging::page;
use crate::arm::resource_id::{storage_key, storage_prefix_under};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::clock::rfc3339;
use crate::state::AppState;

pub const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";

/// Azure's limit per identity.
pub const MAX_PER_IDENTITY: usize = 20;

/// `^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`, from the spec.
fn validate_name(name: &str) -> ArmResult<()> {
    let len = name.chars().count();
    let ok = (3..=120).contains(&len)
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(arm_error!(
        InvalidResourceName,
        "Resource name '{name}' is invalid. The name must be 3 to 120 characters long, start with a letter or number, and contain only letters, numbers, hyphens and underscores."
    )
    .with_target("federatedIdentityCredentialResourceName"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialBody {
    properties: Option<CredentialProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialProperties {
    issuer: Option<String>,
    subject: Option<String>,
    audiences: Option<Vec<String>>,
    #[serde(default)]
    claims_matching_expression: Option<Value>,
}

fn parent(req: &ArmRequest) -> String {
    identity_id(req.param("subscriptionId"), req.param("resourceGroupName"), req.param("resourceName"))
}

fn credential_id(req: &ArmRequest) -> String {
    format!("{}/federatedIdentityCredentials/{}", parent(req), req.param("federatedIdentityCredentialResourceName"))
}

fn require_parent(state: &AppState, req: &ArmRequest) -> ArmResult<Value> {
    state.db.get(&storage_key(&parent(req)))?.ok_or_else(|| {
        ArmError::resource_not_found(IDENTITY_TYPE, req.param("resourceName"), req.param("resourceGroupName"))
    })
}

fn missing(property: &str) -> ArmError {
    arm_error!(BadRequest, "The property '{property}' is required.").with_target(format!("properties.{property}"))
}

/// `FederatedIdentityCredentials_CreateOrUpdate`: 201 on create, 200 on update.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("federatedIdentityCredentialResourceName").to_owned();
    validate_name(&name)?;
    let body: Option<CredentialBody> = req.json()?;
    let props = body.and_then(|b| b.properties).ok_or_else(|| missing("properties"))?;
    let issuer = props.issuer.filter(|s| !s.is_empty()).ok_or_else(|| missing("issuer"))?;
    let subject = props.subject.filter(|s| !s.is_empty()).ok_or_else(|| missing("subject"))?;
    let audiences = props.audiences.filter(|a| !a.is_empty()).ok_or_else(|| missing("audiences"))?;
    if !issuer.starts_with("https://") {
        return Err(arm_error!(BadRequest, "The issuer '{issuer}' is invalid: it must be an https URL.")
            .with_target("properties.issuer"));
    }
    let identity = require_parent(&state, &req)?;
    let parent_id = identity["id"].as_str().unwrap_or_default().to_owned();
    let id = format!("{parent_id}/federatedIdentityCredentials/{name}");
    let now = rfc3339(state.clock.now());
    let (created, credential) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            // Again inside the write: the identity may have been deleted since it was read.
            if tx.get::<Value>(&storage_key(&parent_id))?.is_none() {
                return Err(ArmError::resource_not_found(
                    IDENTITY_TYPE,
                    identity["name"].as_str().unwrap_or_default(),
                    req.param("resourceGroupName"),
                ));
            }
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            if existing.is_none() {
                let count = tx.scan::<Value>(&storage_prefix_under(&parent_id))?.len();
                if count >= MAX_PER_IDENTITY {
                    return Err(arm_error!(
                        BadRequest,
                        "The managed identity '{}' already has the maximum of {MAX_PER_IDENTITY} federated identity credentials.",
                        identity["name"].as_str().unwrap_or_default()
                    ));
                }
            }
            let created_at =
                existing.as_ref().and_then(|e| e["systemData"]["createdAt"].as_str().map(str::to_owned)).unwrap_or(now.clone());
            let mut properties = json!({ "issuer": issuer, "subject": subject, "audiences": audiences });
            if let Some(expr) = &props.claims_matching_expression {
                properties["claimsMatchingExpression"] = expr.clone();
            }
            let credential = json!({
                "id": id,
                "name": name,
                "type": TYPE,
                "properties": properties,
                "systemData": {
                    "createdBy": req.caller.app_id, "createdByType": "Application", "createdAt": created_at,
                    "lastModifiedBy": req.caller.app_id, "lastModifiedByType": "Application", "lastModifiedAt": now,
                },
            });
            tx.put(storage_key(&id), &credential)?;
            Ok((existing.is_none(), credential))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, credential)
}

/// `FederatedIdentityCredentials_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    require_parent(&state, &req)?;
    let name = req.param("federatedIdentityCredentialResourceName");
    let credential: Value = state.db.get(&storage_key(&credential_id(&req)))?.ok_or_else(|| {
        ArmError::resource_not_found(
            TYPE,
            &format!("{}/{name}", req.param("resourceName")),
            req.param("resourceGroupName"),
        )
    })?;
    crate::arm::json(StatusCode::OK, credential)
}

/// `FederatedIdentityCredentials_List`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let identity = require_parent(&state, &req)?;
    let items: Vec<Value> = state
        .db
        .scan::<Value>(&storage_prefix_under(identity["id"].as_str().unwrap_or_default()))?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `FederatedIdentityCredentials_Delete`: 200 when it existed, 204 when not.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    require_parent(&state, &req)?;
    let key = storage_key(&credential_id(&req));
    let existed = state
        .db
        .transact(|tx| -> ArmResult<bool> {
            let existed = tx.get_raw(&key)?.is_some();
            tx.delete(key.clone());
            Ok(existed)
        })
        .await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::NO_CONTENT }.into_response())
}
