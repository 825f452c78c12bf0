//! The generic resource lists (`Resources_List`, `Resources_ListByResourceGroup`): every
//! tracked top-level resource of any provider, with `$filter` on resourceType, name and tags.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::arm::odata::{self, Clause};
use crate::arm::paging::page;
use crate::arm::resource_id::{storage_key, storage_prefix_under};
use crate::arm::{ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;
use crate::store::{Db, StoreError, Tx};

/// Whether the key suffix after `resourcegroups/` is `{rg}/providers/{ns}/{type}/{name}`.
fn is_top_level(suffix: &str) -> bool {
    let parts: Vec<&str> = suffix.split('/').collect();
    parts.len() == 5 && parts[1] == "providers"
}

fn is_type(resource: &Value, type_name: &str) -> bool {
    resource["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(type_name))
}

/// The stored top-level resources of one type in a resource group (what a provider's
/// `ListByResourceGroup` answers).
pub fn of_type_in_group(db: &Db, subscription: &str, group: &str, type_name: &str) -> Result<Vec<Value>, StoreError> {
    let prefix = format!(
        "res/subscriptions/{}/resourcegroups/{}/providers/{}/",
        subscription.to_lowercase(),
        group.to_lowercase(),
        type_name.to_lowercase()
    );
    Ok(db
        .scan::<Value>(&prefix)?
        .into_iter()
        .filter(|(k, v)| !k[prefix.len()..].contains('/') && is_type(v, type_name))
        .map(|(_, v)| v)
        .collect())
}

/// The stored top-level resources of one type in a subscription (a provider's `List`).
pub fn of_type_in_subscription(db: &Db, subscription: &str, type_name: &str) -> Result<Vec<Value>, StoreError> {
    let base = format!("res/subscriptions/{}/resourcegroups/", subscription.to_lowercase());
    Ok(db
        .scan::<Value>(&base)?
        .into_iter()
        .filter(|(k, v)| is_top_level(&k[base.len()..]) && is_type(v, type_name))
        .map(|(_, v)| v)
        .collect())
}

/// Deletes the resource `id` with everything stored under it (child and extension
/// resources); false when there was none.
pub fn delete_with_children(tx: &mut Tx<'_>, id: &str) -> Result<bool, StoreError> {
    let Some(resource) = tx.get::<Value>(&storage_key(id))? else { return Ok(false) };
    let stored = resource["id"].as_str().unwrap_or(id).to_owned();
    for (key, _) in tx.scan::<Value>(&storage_prefix_under(&stored))? {
        tx.delete(key);
    }
    tx.delete(storage_key(&stored));
    Ok(true)
}

fn matches(resource: &Value, clauses: &[Clause]) -> bool {
    let eq = |name: &str| {
        clauses.iter().find_map(|c| match c {
            Clause::Eq(field, want) if field.eq_ignore_ascii_case(name) => Some(want.as_str()),
            _ => None,
        })
    };
    let field_is = |field: &str, want: Option<&str>| {
        want.is_none_or(|want| resource[field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(want)))
    };
    // `tagValue` is the value of the tag `tagName` names, as ARM pairs them.
    let tags_ok = match (eq("tagName"), eq("tagValue")) {
        (None, None) => true,
        (Some(name), value) => resource["tags"].as_object().is_some_and(|tags| {
            tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(name) && value.is_none_or(|want| v.as_str() == Some(want)))
        }),
        (None, Some(value)) => {
            resource["tags"].as_object().is_some_and(|tags| tags.values().any(|v| v.as_str() == Some(value)))
        }
    };
    let known = ["resourceType", "name", "location", "tagName", "tagValue"];
    let all_known =
        clauses.iter().all(|c| matches!(c, Clause::Eq(f, _) if known.iter().any(|k| k.eq_ignore_ascii_case(f))));
    all_known
        && tags_ok
        && field_is("type", eq("resourceType"))
        && field_is("name", eq("name"))
        && field_is("location", eq("location"))
}

fn expanded(resource: &Value) -> Value {
    let mut item = json!({
        "id": resource["id"],
        "name": resource["name"],
        "type": resource["type"],
        "location": resource["location"],
    });
    for field in ["tags", "kind", "sku", "identity", "managedBy", "plan"] {
        if let Some(v) = resource.get(field).filter(|v| !v.is_null()) {
            item[field] = v.clone();
        }
    }
    item
}

async fn list_under(state: &AppState, req: &ArmRequest, group: Option<&str>) -> ArmResult<Response> {
    let clauses = match req.query("$filter") {
        Some(f) => odata::parse(f)?,
        None => Vec::new(),
    };
    if clauses.iter().any(|c| matches!(c, Clause::Call(..))) {
        return Err(arm_error!(
            InvalidFilterInQueryString,
            "Invalid $filter '{}' specified in the query string.",
            req.query("$filter").unwrap_or_default()
        ));
    }
    let base = format!("res/subscriptions/{}/resourcegroups/", req.param("subscriptionId").to_lowercase());
    let prefix = match group {
        Some(g) => format!("{base}{}/", g.to_lowercase()),
        None => base.clone(),
    };
    let items: Vec<Value> = state
        .db
        .scan::<Value>(&prefix)?
        .into_iter()
        .filter(|(key, value)| is_top_level(&key[base.len()..]) && value.get("location").is_some())
        .map(|(_, value)| value)
        .filter(|value| matches(value, &clauses))
        .map(|value| expanded(&value))
        .collect();
    crate::arm::json(StatusCode::OK, page(req, items, "value")?)
}

/// `Resources_List`: tracked resources across the subscription.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    list_under(&state, &req, None).await
}

/// `Resources_ListByResourceGroup`.
pub async fn list_by_resource_group(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let group = req.param("resourceGroupName").to_owned();
    list_under(&state, &req, Some(&group)).await
}
