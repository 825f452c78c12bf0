//! `RoleAssignments_*` (2022-04-01) at any scope: create (the name is a GUID; the same scope,
//! role and principal under another name is 409 RoleAssignmentExists; an unknown principal,
//! or one younger than the directory's replication lag when no principalType is given, is
//! PrincipalNotFound), get, delete (the grant fades after the propagation delay), and lists
//! with `atScope()`, `assignedTo('…')` and `principalId eq '…'`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::role_definitions::RoleDefinition;
use crate::arm::odata::{self, Clause};
use crate::arm::paging::page;
use crate::arm::resource_id::{key, storage_key};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::auth::rbac::scope_contains;
use crate::clock::rfc3339;
use crate::directory::ServicePrincipal;
use crate::state::AppState;
use crate::store::{StoreError, Tx};

pub const TYPE: &str = "Microsoft.Authorization/roleAssignments";
const MARKER: &str = "/providers/microsoft.authorization/roleassignments/";

/// A deleted assignment, kept while its grant fades out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub assignment: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_on: OffsetDateTime,
}

fn tombstone_key(name: &str) -> String {
    format!("ratomb/{}", name.to_lowercase())
}

/// Every live role assignment.
pub fn all(tx: &Tx<'_>) -> Result<Vec<Value>, StoreError> {
    Ok(tx.scan::<Value>("res/")?.into_iter().filter(|(k, _)| k.contains(MARKER)).map(|(_, v)| v).collect())
}

/// Removes every assignment of `principal_id` (the principal is gone), fading them out.
pub fn remove_for_principal(tx: &mut Tx<'_>, principal_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    for assignment in all(tx)? {
        if assignment["properties"]["principalId"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(principal_id)) {
            let id = assignment["id"].as_str().unwrap_or_default().to_owned();
            let name = assignment["name"].as_str().unwrap_or_default().to_owned();
            tx.delete(storage_key(&id));
            tx.put(tombstone_key(&name), &Tombstone { assignment, deleted_on: now })?;
        }
    }
    Ok(())
}

fn assignment_id(scope: &str, name: &str) -> String {
    let scope = scope.trim_end_matches('/');
    format!("{scope}/providers/{TYPE}/{name}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentBody {
    properties: Option<AssignmentProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentProperties {
    role_definition_id: Option<String>,
    principal_id: Option<String>,
    #[serde(default)]
    principal_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    condition_version: Option<String>,
}

fn principal_not_found(principal: &str, tenant: &str) -> ArmError {
    arm_error!(
        PrincipalNotFound,
        "Principal {} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
        principal.replace('-', "")
    )
}

/// `RoleAssignments_Create` (and `CreateById`).
pub async fn create(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("roleAssignmentName").to_owned();
    if uuid::Uuid::parse_str(&name).is_err() {
        return Err(arm_error!(
            InvalidRoleAssignmentId,
            "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
        ));
    }
    let scope = req.param("scope").to_owned();
    let body: Option<AssignmentBody> = req.json()?;
    let props = body.and_then(|b| b.properties).ok_or_else(|| {
        arm_error!(
            InvalidRequestContent,
            "The request content must have 'properties' with roleDefinitionId and principalId."
        )
    })?;
    let role_definition_id = props
        .role_definition_id
        .clone()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| arm_error!(InvalidRoleDefinitionId, "The role definition ID '' is not valid."))?;
    let principal_id =
        props.principal_id.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
            arm_error!(InvalidPrincipalId, "A valid principal ID must be provided for role assignment.")
        })?;
    if uuid::Uuid::parse_str(&principal_id).is_err() {
        return Err(arm_error!(InvalidPrincipalId, "A valid principal ID must be provided for role assignment."));
    }
    let role_guid = role_definition_id.rsplit('/').next().unwrap_or_default().to_owned();
    let role = RoleDefinition::find(&state, &role_guid)?.ok_or_else(|| {
        arm_error!(RoleDefinitionDoesNotExist, "The specified role definition with ID '{role_guid}' does not exist.")
    })?;
    if !role.assignable_at(&scope) {
        return Err(arm_error!(
            InvalidRoleDefinitionId,
            "The role definition '{role_guid}' cannot be assigned at scope '{scope}' (not in its assignableScopes)."
        ));
    }
    let now = state.clock.now();
    let tenant = req.caller.tenant_id.clone();
    let principal = ServicePrincipal::find_by_id(&state.db, &principal_id)?;
    let known = match &principal {
        None => false,
        // The directory has not replicated a brand-new principal to ARM yet, unless the
        // caller names its type (Azure's documented way around the delay).
        Some(p) => props.principal_type.is_some() || p.created_date_time + state.settings.replication_lag <= now,
    };
    if !known {
        return Err(principal_not_found(&principal_id, &tenant));
    }
    let principal_type = props.principal_type.clone().unwrap_or_else(|| "ServicePrincipal".into());
    let id = assignment_id(&scope, &name);
    let now_text = rfc3339(now);
    let caller = req.caller.object_id.clone();
    let full_role_id = format!(
        "{}/providers/Microsoft.Authorization/roleDefinitions/{}",
        super::role_definitions::id_prefix(&scope),
        role.name
    );
    let assignment = state
        .db
        .transact(|tx| -> ArmResult<Value> {
            // Checked again where the assignment is written: a principal deleted since the
            // lookup above took its assignments with it, and this one must not outlive it.
            if ServicePrincipal::find_by_id_in(tx, &principal_id)?.is_none() {
                return Err(principal_not_found(&principal_id, &tenant));
            }
            if let Some(parts) = crate::arm::resource_id::parse_scope(&scope)
                && let (Some(subscription), Some(group)) = (&parts.subscription, &parts.resource_group)
            {
                crate::providers::resources::resource_groups::require_in(tx, subscription, group)?;
            }
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            for other in all(tx)? {
                let p = &other["properties"];
                let same_triple = p["principalId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&principal_id))
                    && p["roleDefinitionId"]
                        .as_str()
                        .is_some_and(|x| x.to_lowercase().ends_with(&role.name.to_lowercase()))
                    && p["scope"].as_str().is_some_and(|x| key(x) == key(&scope));
                if same_triple && !other["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)) {
                    return Err(arm_error!(RoleAssignmentExists, "The role assignment already exists.")
                        .with_target(other["id"].as_str().unwrap_or_default().to_owned()));
                }
            }
            if let Some(existing) = existing {
                let p = &existing["properties"];
                let same = p["principalId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&principal_id))
                    && p["roleDefinitionId"]
                        .as_str()
                        .is_some_and(|x| x.to_lowercase().ends_with(&role.name.to_lowercase()));
                if !same {
                    return Err(arm_error!(
                        RoleAssignmentUpdateNotPermitted,
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."
                    ));
                }
                return Ok(existing);
            }
            let assignment = json!({
                "id": id,
                "name": name,
                "type": TYPE,
                "properties": {
                    "roleDefinitionId": full_role_id,
                    "principalId": principal_id,
                    "principalType": principal_type,
                    "scope": scope,
                    "condition": props.condition,
                    "conditionVersion": props.condition_version,
                    "createdOn": now_text,
                    "updatedOn": now_text,
                    "createdBy": caller,
                    "updatedBy": caller,
                    "delegatedManagedIdentityResourceId": null,
                    "description": props.description,
                },
            });
            tx.delete(tombstone_key(&name));
            tx.put(storage_key(&id), &assignment)?;
            Ok(assignment)
        })
        .await?;
    crate::arm::json(StatusCode::CREATED, assignment)
}

/// Makes sure `principal_id` holds the built-in role `role_guid` at `scope`, the way a
/// resource provider grants its own identities (AKS's default role assignments). Like any
/// new assignment it takes effect after the propagation delay.
pub fn ensure_in(
    tx: &mut Tx<'_>,
    scope: &str,
    role_guid: &str,
    principal_id: &str,
    now: OffsetDateTime,
    description: &str,
) -> Result<(), StoreError> {
    let exists = tx.scan::<Value>(&super::assignments_prefix(scope))?.iter().any(|(_, a)| {
        let p = &a["properties"];
        p["principalId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(principal_id))
            && p["roleDefinitionId"].as_str().is_some_and(|x| x.to_lowercase().ends_with(&role_guid.to_lowercase()))
    });
    if exists {
        return Ok(());
    }
    let name = crate::ids::uuid().to_string();
    let id = assignment_id(scope, &name);
    let now_text = rfc3339(now);
    let assignment = json!({
        "id": id,
        "name": name,
        "type": TYPE,
        "properties": {
            "roleDefinitionId": format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
                super::role_definitions::id_prefix(scope)
            ),
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
            "scope": scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": now_text,
            "updatedOn": now_text,
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
            "description": description,
        },
    });
    tx.put(storage_key(&id), &assignment)
}

fn not_found(name: &str) -> ArmError {
    arm_error!(RoleAssignmentNotFound, "The role assignment '{name}' is not found.")
}

/// `RoleAssignments_Get` (and `GetById`).
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("roleAssignmentName");
    let assignment: Value =
        state.db.get(&storage_key(&assignment_id(req.param("scope"), name)))?.ok_or_else(|| not_found(name))?;
    crate::arm::json(StatusCode::OK, assignment)
}

/// `RoleAssignments_Delete` (and `DeleteById`): 200 with the deleted assignment, 204 if none.
/// The grant keeps working for the propagation delay, as in Azure.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("roleAssignmentName").to_owned();
    let id = assignment_id(req.param("scope"), &name);
    let now = state.clock.now();
    let deleted = state
        .db
        .transact(|tx| -> ArmResult<Option<Value>> {
            let Some(assignment) = tx.get::<Value>(&storage_key(&id))? else { return Ok(None) };
            tx.delete(storage_key(&id));
            tx.put(tombstone_key(&name), &Tombstone { assignment: assignment.clone(), deleted_on: now })?;
            Ok(Some(assignment))
        })
        .await?;
    Ok(match deleted {
        Some(a) => (StatusCode::OK, axum::Json(a)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `RoleAssignments_ListForScope` (also serving `ListForSubscription`, `ListForResourceGroup`
/// and `ListForResource`): assignments at, above and below the scope; `atScope()` keeps those
/// at or above; `assignedTo('x')` and `principalId eq 'x'` keep one principal's.
pub async fn list_for_scope(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let scope = req.param("scope").to_owned();
    let clauses = match req.query("$filter") {
        Some(f) => odata::parse(f)?,
        None => Vec::new(),
    };
    let mut at_scope = false;
    let mut principal: Option<String> = None;
    for clause in &clauses {
        match clause {
            Clause::Call(name, None) if name.eq_ignore_ascii_case("atScope") => at_scope = true,
            Clause::Call(name, Some(p)) if name.eq_ignore_ascii_case("assignedTo") => principal = Some(p.clone()),
            Clause::Eq(field, p) if field.eq_ignore_ascii_case("principalId") => principal = Some(p.clone()),
            _ => {
                return Err(arm_error!(
                    InvalidFilterInQueryString,
                    "Invalid $filter '{}' specified in the query string.",
                    req.query("$filter").unwrap_or_default()
                ));
            }
        }
    }
    let all = state.db.scan::<Value>("res/")?;
    let items: Vec<Value> = all
        .into_iter()
        .filter(|(k, _)| k.contains(MARKER))
        .map(|(_, v)| v)
        .filter(|a| {
            let Some(a_scope) = a["properties"]["scope"].as_str() else { return false };
            let above = scope_contains(a_scope, &scope);
            let below = scope_contains(&scope, a_scope);
            (above || (!at_scope && below))
                && principal
                    .as_ref()
                    .is_none_or(|p| a["properties"]["principalId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(p)))
        })
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}
