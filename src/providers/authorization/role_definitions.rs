//! `RoleDefinitions_*` (2022-05-01-preview, what az sends; 2022-04-01): the built-in roles
//! from `fixtures/role_definitions.json` at any scope, and custom roles.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::arm::odata::{self, Clause};
use crate::arm::paging::page;
use crate::arm::{ArmRequest, ArmResult};
use crate::auth::rbac::{Permission, scope_contains};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::store::StoreError;
use crate::{arm_error, fixtures};

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const MANAGED_IDENTITY_OPERATOR: &str = "f1a07417-d97a-45cb-824c-7a7467783830";
pub const MONITORING_METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";
pub const TYPE: &str = "Microsoft.Authorization/roleDefinitions";

/// A role, built-in or custom.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    pub name: String,
    pub role_name: String,
    pub description: String,
    pub role_type: String,
    pub permissions: Vec<Permission>,
    pub assignable_scopes: Vec<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub updated_on: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
}

fn custom_key(guid: &str) -> String {
    format!("roledef/{}", guid.to_lowercase())
}

/// The built-in roles, made once: every RBAC decision looks its grants' roles up here.
fn builtin() -> &'static [RoleDefinition] {
    static BUILTIN: std::sync::OnceLock<Vec<RoleDefinition>> = std::sync::OnceLock::new();
    BUILTIN.get_or_init(|| fixtures::role_definitions().iter().map(builtin_role).collect())
}

fn builtin_role(r: &fixtures::RoleDefinitionFixture) -> RoleDefinition {
    RoleDefinition {
        name: r.name.clone(),
        role_name: r.role_name.clone(),
        description: r.description.clone(),
        role_type: r.role_type.clone(),
        permissions: r.permissions.clone(),
        assignable_scopes: r.assignable_scopes.clone(),
        created_on: Some("2015-02-02T21:55:09.8806423Z".into()),
        updated_on: Some("2024-01-01T00:00:00.0000000Z".into()),
        created_by: None,
    }
}

impl RoleDefinition {
    /// A role by GUID.
    pub fn find(state: &AppState, guid: &str) -> Result<Option<Self>, StoreError> {
        if let Some(role) = builtin().iter().find(|r| r.name.eq_ignore_ascii_case(guid)).cloned() {
            return Ok(Some(role));
        }
        state.db.get(&custom_key(guid))
    }

    fn all(state: &AppState) -> Result<Vec<Self>, StoreError> {
        let mut roles: Vec<Self> = builtin().to_vec();
        roles.extend(state.db.scan::<Self>("roledef/")?.into_iter().map(|(_, r)| r));
        Ok(roles)
    }

    /// Whether the role may be used at `scope`.
    pub fn assignable_at(&self, scope: &str) -> bool {
        self.assignable_scopes.iter().any(|s| scope_contains(s, scope))
    }

    /// The ARM shape, with the id under `scope`'s subscription as ARM answers it.
    pub fn to_arm(&self, scope: &str) -> Value {
        json!({
            "id": format!("{}/providers/{TYPE}/{}", id_prefix(scope), self.name),
            "name": self.name,
            "type": TYPE,
            "properties": {
                "roleName": self.role_name,
                "type": self.role_type,
                "description": self.description,
                "assignableScopes": self.assignable_scopes,
                "permissions": self.permissions,
                "createdOn": self.created_on,
                "updatedOn": self.updated_on,
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
            },
        })
    }
}

/// Role definition ids live under the subscription of the scope they are read at (or the root).
pub fn id_prefix(scope: &str) -> String {
    let parts: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [first, sub, ..] if first.eq_ignore_ascii_case("subscriptions") => format!("/subscriptions/{sub}"),
        _ => String::new(),
    }
}

/// `RoleDefinitions_Get` (and `GetById`).
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let guid = req.param("roleDefinitionId");
    let role = RoleDefinition::find(&state, guid)?.ok_or_else(|| {
        arm_error!(RoleDefinitionDoesNotExist, "The specified role definition with ID '{guid}' does not exist.")
            .with_status(StatusCode::NOT_FOUND)
    })?;
    crate::arm::json(StatusCode::OK, role.to_arm(req.param("scope")))
}

/// `RoleDefinitions_List`: `$filter=roleName eq '…'` (case-insensitive, as az asks for
/// `acrpull`) or `type eq 'BuiltInRole'|'CustomRole'`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let clauses = match req.query("$filter") {
        Some(f) => odata::parse(f)?,
        None => Vec::new(),
    };
    let scope = req.param("scope").to_owned();
    let mut roles = RoleDefinition::all(&state)?;
    for clause in &clauses {
        match clause {
            Clause::Eq(field, value) if field.eq_ignore_ascii_case("roleName") => {
                roles.retain(|r| r.role_name.eq_ignore_ascii_case(value));
            }
            Clause::Eq(field, value) if field.eq_ignore_ascii_case("type") => {
                roles.retain(|r| r.role_type.eq_ignore_ascii_case(value));
            }
            Clause::Call(name, None) if name.eq_ignore_ascii_case("atScopeAndBelow") => {}
            _ => {
                return Err(arm_error!(
                    InvalidFilterInQueryString,
                    "Invalid $filter '{}' specified in the query string.",
                    req.query("$filter").unwrap_or_default()
                ));
            }
        }
    }
    roles.retain(|r| {
        r.role_type == "BuiltInRole"
            || r.assignable_scopes.iter().any(|s| scope_contains(s, &scope) || scope_contains(&scope, s))
    });
    let items = roles.iter().map(|r| r.to_arm(&scope)).collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleBody {
    properties: Option<RoleBodyProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleBodyProperties {
    role_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    assignable_scopes: Vec<String>,
}

/// `RoleDefinitions_CreateOrUpdate`: custom roles only; the GUID must be new or custom.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let guid = req.param("roleDefinitionId").to_lowercase();
    if uuid::Uuid::parse_str(&guid).is_err() {
        return Err(arm_error!(
            InvalidRoleDefinitionId,
            "The role definition ID '{guid}' is not valid. It must be a GUID."
        ));
    }
    if builtin().iter().any(|r| r.name == guid) {
        return Err(arm_error!(RoleDefinitionWithSameNameExists, "The built-in role '{guid}' cannot be changed."));
    }
    let body: Option<RoleBody> = req.json()?;
    let props = body
        .and_then(|b| b.properties)
        .ok_or_else(|| arm_error!(InvalidRequestContent, "The request content must have 'properties'."))?;
    let role_name = props.role_name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        arm_error!(RoleDefinitionNameNullOrEmpty, "The role definition name cannot be null or empty.")
    })?;
    let scope = req.param("scope").to_owned();
    let assignable = if props.assignable_scopes.is_empty() { vec![scope.clone()] } else { props.assignable_scopes };
    let now = rfc3339(state.clock.now());
    let caller = req.caller.object_id.clone();
    let (created, role) = state
        .db
        .transact(|tx| -> ArmResult<(bool, RoleDefinition)> {
            let existing: Option<RoleDefinition> = tx.get(&custom_key(&guid))?;
            let clash = tx
                .scan::<RoleDefinition>("roledef/")?
                .into_iter()
                .any(|(_, r)| r.name != guid && r.role_name.eq_ignore_ascii_case(&role_name));
            if clash || builtin().iter().any(|r| r.role_name.eq_ignore_ascii_case(&role_name)) {
                return Err(arm_error!(
                    RoleDefinitionWithSameNameExists,
                    "A custom role with the same name '{role_name}' already exists in this directory."
                ));
            }
            let role = RoleDefinition {
                name: guid.clone(),
                role_name: role_name.clone(),
                description: props.description.clone().unwrap_or_default(),
                role_type: "CustomRole".into(),
                permissions: props.permissions.clone(),
                assignable_scopes: assignable.clone(),
                created_on: existing.as_ref().and_then(|e| e.created_on.clone()).or(Some(now.clone())),
                updated_on: Some(now.clone()),
                created_by: Some(caller.clone()),
            };
            tx.put(custom_key(&guid), &role)?;
            Ok((existing.is_none(), role))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, role.to_arm(&scope))
}

/// `RoleDefinitions_Delete`: 200 with the deleted role, 204 if there was none.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let guid = req.param("roleDefinitionId").to_lowercase();
    if builtin().iter().any(|r| r.name == guid) {
        return Err(arm_error!(BadRequest, "Built-in role definitions cannot be deleted."));
    }
    let scope = req.param("scope").to_owned();
    let deleted = state
        .db
        .transact(|tx| -> ArmResult<Option<RoleDefinition>> {
            let existing: Option<RoleDefinition> = tx.get(&custom_key(&guid))?;
            if existing.is_some() {
                let in_use = super::role_assignments::all(tx)?.iter().any(|v| {
                    v["properties"]["roleDefinitionId"].as_str().is_some_and(|id| id.to_lowercase().ends_with(&guid))
                });
                if in_use {
                    return Err(arm_error!(
                        RoleDefinitionHasAssignments,
                        "There are existing role assignments referencing role (code: RoleDefinitionHasAssignments)."
                    ));
                }
                tx.delete(custom_key(&guid));
            }
            Ok(existing)
        })
        .await?;
    Ok(match deleted {
        Some(role) => (StatusCode::OK, axum::Json(role.to_arm(&scope))).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
