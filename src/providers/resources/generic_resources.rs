//! The generic resource lists (`Resources_List`, `Resources_ListByResourceGroup`): every
//! tracked top-level resource of any provider, with `$filter` on resourceType, name and tags.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::arm::odata::{self, Clause};
use crate::arm::paging::page;
use crate::arm::{ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;

/// Whether the key suffix after `resourcegroups/` is `{rg}/providers/{ns}/{type}/{name}`.
fn is_top_level(suffix: &str) -> bool {
    let parts: Vec<&str> = suffix.split('/').collect();
    parts.len() == 5 && parts[1] == "providers"
}

fn matches(resource: &Value, clauses: &[Clause]) -> bool {
    clauses.iter().all(|clause| match clause {
        Clause::Eq(field, want) => {
            let field = field.to_lowercase();
            match field.as_str() {
                "resourcetype" => resource["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(want)),
                "name" => resource["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(want)),
                "location" => resource["location"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case(want)),
                "tagname" => resource["tags"]
                    .as_object()
                    .is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case(want))),
                "tagvalue" => resource["tags"]
                    .as_object()
                    .is_some_and(|t| t.values().any(|v| v.as_str() == Some(want.as_str()))),
                _ => false,
            }
        }
        Clause::Call(..) => false,
    })
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

async fn list_under(
    state: &AppState,
    req: &ArmRequest,
    group: Option<&str>,
) -> ArmResult<Response> {
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
    let base = format!(
        "res/subscriptions/{}/resourcegroups/",
        req.param("subscriptionId").to_lowercase()
    );
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
