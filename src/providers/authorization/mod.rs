//! Microsoft.Authorization: role definitions, role assignments, and what the rest of armlet
//! asks of them — [`authorize`], the one gate every ARM request passes, which reads role
//! assignments through [`crate::auth::rbac::decide`].

pub mod role_assignments;
pub mod role_definitions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::response::IntoResponse;
use serde_json::Value;
use time::Duration;

use crate::arm::resource_id::key;
use crate::arm::{ArmError, ArmResult, Caller, ErrorCode};
use crate::auth::rbac::{self, Decision, Grant};
use crate::state::{AppState, RbacMode};
use crate::store::StoreError;
use role_definitions::RoleDefinition;

/// Where role assignments directly at `scope` are stored.
pub fn assignments_prefix(scope: &str) -> String {
    let scope_key = key(scope);
    let scope_key = if scope_key == "/" { String::new() } else { scope_key };
    format!("res{scope_key}/providers/microsoft.authorization/roleassignments/")
}

/// Turns a stored assignment into what the decision needs.
pub fn grant_of(state: &AppState, assignment: &Value, deleted_on: Option<time::OffsetDateTime>) -> Option<Grant> {
    let props = &assignment["properties"];
    let role_id = props["roleDefinitionId"].as_str()?;
    let role = RoleDefinition::find(state, role_id.rsplit('/').next()?).ok()??;
    Some(Grant {
        id: assignment["id"].as_str()?.to_owned(),
        scope: props["scope"].as_str()?.to_owned(),
        principal_id: props["principalId"].as_str()?.to_owned(),
        role_definition_id: role_id.to_owned(),
        role_name: role.role_name.clone(),
        permissions: role.permissions.clone(),
        created_on: crate::clock::parse_rfc3339(props["createdOn"].as_str()?).ok()?,
        deleted_on,
    })
}

/// Every grant (live or recently deleted) at `scope` and above, from the cache while the
/// store has not changed: every ARM request asks, and reading and decoding the assignments
/// at each ancestor scope was the largest part of a GET.
pub fn grants_at(state: &AppState, scope: &str) -> Result<Arc<Vec<Grant>>, StoreError> {
    // Read before the store, so a write landing meanwhile can only make the entry stale.
    let generation = state.grant_cache.writes.generation();
    if let Some(grants) = state.grant_cache.get(generation, scope) {
        return Ok(grants);
    }
    let grants = Arc::new(read_grants_at(state, scope)?);
    state.grant_cache.put(generation, scope, Arc::clone(&grants));
    Ok(grants)
}

fn read_grants_at(state: &AppState, scope: &str) -> Result<Vec<Grant>, StoreError> {
    let mut grants = Vec::new();
    for ancestor in rbac::ancestors(scope) {
        for (_, assignment) in state.db.scan::<Value>(&assignments_prefix(&ancestor))? {
            grants.extend(grant_of(state, &assignment, None));
        }
    }
    for (_, tomb) in state.db.scan::<role_assignments::Tombstone>("ratomb/")? {
        if let Some(grant) = grant_of(state, &tomb.assignment, Some(tomb.deleted_on))
            && rbac::scope_contains(&grant.scope, scope)
        {
            grants.push(grant);
        }
    }
    Ok(grants)
}

/// [`grants_at`]'s answers by scope, kept until role assignments or definitions change.
pub struct GrantCache {
    writes: Arc<crate::store::Watch>,
    entries: Mutex<CachedGrants>,
}

/// A generation of the role data and the grants read at each scope during it.
type CachedGrants = (u64, HashMap<String, Arc<Vec<Grant>>>);

impl GrantCache {
    /// How many scopes are kept (then it starts over).
    const CAPACITY: usize = 4096;

    pub fn new(db: &crate::store::Db) -> Self {
        Self { writes: db.watch(is_role_data), entries: Mutex::default() }
    }

    fn get(&self, generation: u64, scope: &str) -> Option<Arc<Vec<Grant>>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.0 != generation {
            return None;
        }
        entries.1.get(scope).cloned()
    }

    fn put(&self, generation: u64, scope: &str, grants: Arc<Vec<Grant>>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.0 > generation {
            return;
        }
        if entries.0 < generation || entries.1.len() >= Self::CAPACITY {
            *entries = (generation, HashMap::new());
        }
        entries.1.insert(scope.to_owned(), grants);
    }
}

/// Whether a stored key holds a role assignment, a deleted one's tombstone or a custom role:
/// everything [`grants_at`] reads.
fn is_role_data(key: &str) -> bool {
    key.contains("/providers/microsoft.authorization/roleassignments/")
        || key.starts_with("ratomb/")
        || key.starts_with("roledef/")
}

/// Decides, now, whether `principal` may do `action` at `scope`.
pub fn decide(state: &AppState, principal: &str, action: &str, scope: &str) -> Result<Decision, StoreError> {
    let grants = grants_at(state, scope)?;
    Ok(rbac::decide(&grants, principal, action, scope, state.clock.now(), state.settings.propagation_delay))
}

/// Whether `principal` holds any effective role in the subscription (what makes ARM list it).
pub fn has_any_access(state: &AppState, principal: &str, subscription: &str) -> bool {
    if state.settings.rbac == RbacMode::Off {
        return true;
    }
    let Ok(assignments) = state.db.scan::<Value>("res/") else { return false };
    let sub_scope = format!("/subscriptions/{subscription}");
    let now = state.clock.now();
    assignments
        .iter()
        .filter(|(k, _)| k.contains("/providers/microsoft.authorization/roleassignments/"))
        .filter_map(|(_, a)| grant_of(state, a, None))
        .any(|g| {
            g.principal_id.eq_ignore_ascii_case(principal)
                && (rbac::scope_contains(&sub_scope, &g.scope) || rbac::scope_contains(&g.scope, &sub_scope))
                && g.is_effective(now, state.settings.propagation_delay)
        })
}

/// ARM's 403 for a caller without an effective grant.
pub fn authorization_failed(caller: &Caller, action: &str, scope: &str) -> ArmError {
    ArmError::new(
        ErrorCode::AuthorizationFailed,
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            caller.app_id, caller.object_id
        ),
    )
}

/// The gate: in `enforce` mode a denied request gets 403 AuthorizationFailed; in `soft` mode
/// it proceeds and the denial is logged; `off` skips the check.
pub fn authorize(state: &AppState, caller: &Caller, action: &str, scope: &str) -> ArmResult<()> {
    if state.settings.rbac == RbacMode::Off {
        return Ok(());
    }
    if decide(state, &caller.object_id, action, scope)?.is_allowed() {
        return Ok(());
    }
    match state.settings.rbac {
        RbacMode::Enforce => Err(authorization_failed(caller, action, scope)),
        _ => {
            tracing::warn!(principal = %caller.object_id, action, scope, "RBAC denial (soft mode: allowed)");
            Ok(())
        }
    }
}

/// The assignment that makes a subscription's owner service principal Owner of it, dated a
/// day earlier so no propagation delay applies to it.
pub fn bootstrap_owner_assignment(subscription: &str, principal: &str, now: time::OffsetDateTime, name: &str) -> Value {
    let scope = format!("/subscriptions/{subscription}");
    let created = crate::clock::rfc3339(now - Duration::days(1));
    serde_json::json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{}", role_definitions::OWNER),
            "principalId": principal,
            "principalType": "ServicePrincipal",
            "scope": scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": created,
            "updatedOn": created,
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
            "description": "the subscription's owner service principal, made with the subscription",
        },
    })
}

/// Filters a list response down to the items `caller` may read (each checked with `action` at
/// the item's own id); when none are readable the caller gets `denied`, as ARM answers.
pub async fn keep_readable(
    state: &AppState,
    caller: &Caller,
    action: &str,
    response: axum::response::Response,
    denied: ArmError,
) -> ArmResult<axum::response::Response> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| ArmError::internal(&e.to_string()))?;
    let Ok(mut page) = serde_json::from_slice::<Value>(&bytes) else { return Err(denied) };
    let Some(items) = page.get_mut("value").and_then(Value::as_array_mut) else { return Err(denied) };
    let mut kept = Vec::new();
    for item in items.drain(..) {
        let id = item["id"].as_str().unwrap_or_default();
        if !id.is_empty() && decide(state, &caller.object_id, action, id)?.is_allowed() {
            kept.push(item);
        }
    }
    if kept.is_empty() {
        return Err(denied);
    }
    page["value"] = Value::Array(kept);
    let mut response = axum::Json(page).into_response();
    *response.status_mut() = parts.status;
    Ok(response)
}

/// Built-in roles that would allow `action`, narrowest first (fewest permissions).
pub fn roles_granting(action: &str) -> Vec<String> {
    let mut roles: Vec<(usize, String)> = crate::fixtures::role_definitions()
        .iter()
        .filter(|r| {
            r.permissions.iter().any(|p| {
                p.actions.iter().any(|a| rbac::matches(a, action))
                    && !p.not_actions.iter().any(|n| rbac::matches(n, action))
            })
        })
        .map(|r| {
            // Narrow roles first: every listed action counts one, a bare `*` a great many.
            let breadth: usize =
                r.permissions.iter().flat_map(|p| &p.actions).map(|a| if a == "*" { 500 } else { 1 }).sum();
            let owner = if r.role_name == "Owner" { 1000 } else { 0 };
            (breadth + owner, r.role_name.clone())
        })
        .collect();
    roles.sort();
    roles.into_iter().map(|(_, name)| name).collect()
}

/// Why `principal` may or may not do `action` at `scope` now: the grant that allows it, or the
/// pending grants and the built-in roles that would.
pub fn explain(state: &AppState, principal: &str, action: &str, scope: &str) -> Result<Value, StoreError> {
    let now = state.clock.now();
    let describe = |g: &Grant| {
        serde_json::json!({
            "roleAssignmentId": g.id,
            "roleName": g.role_name,
            "scope": g.scope,
            "createdOn": crate::clock::rfc3339(g.created_on),
            "deletedOn": g.deleted_on.map(crate::clock::rfc3339),
        })
    };
    let mut body = serde_json::json!({
        "principal": principal,
        "action": action,
        "scope": scope,
        "time": crate::clock::rfc3339(now),
        "rbac": format!("{:?}", state.settings.rbac).to_lowercase(),
        "propagationDelaySeconds": state.settings.propagation_delay.whole_seconds(),
    });
    match decide(state, principal, action, scope)? {
        Decision::Allowed(grant) => {
            body["allowed"] = Value::Bool(true);
            body["grantedBy"] = describe(&grant);
            body["grantedBy"]["effectiveSince"] =
                Value::String(crate::clock::rfc3339(grant.effective_from(state.settings.propagation_delay)));
        }
        Decision::Denied { pending } => {
            body["allowed"] = Value::Bool(false);
            body["missingAction"] = Value::String(action.to_owned());
            body["pending"] = pending
                .iter()
                .map(|(g, at)| {
                    let mut p = describe(g);
                    p["effectiveAt"] = Value::String(crate::clock::rfc3339(*at));
                    p
                })
                .collect();
            body["rolesThatWouldAllow"] = serde_json::json!(roles_granting(action));
        }
    }
    Ok(body)
}

/// `Permissions_ListForResourceGroup` / `Permissions_ListForResource`: the caller's effective
/// permission blocks at the scope, for tools that check before they act.
pub async fn list_permissions(state: AppState, req: crate::arm::ArmRequest) -> ArmResult<axum::response::Response> {
    let scope = req.param("scope").to_owned();
    let now = state.clock.now();
    let items: Vec<Value> = grants_at(&state, &scope)?
        .iter()
        .filter(|g| {
            g.principal_id.eq_ignore_ascii_case(&req.caller.object_id)
                && g.is_effective(now, state.settings.propagation_delay)
        })
        .flat_map(|g| g.permissions.iter())
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    crate::arm::json(axum::http::StatusCode::OK, serde_json::json!({ "value": items }))
}
