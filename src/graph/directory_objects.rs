//! `/v1.0/directoryObjects`: `getByIds` (how az learns a principal's type from its object id)
//! and a typed get. Service principals and applications are the directory objects armlet
//! holds; there are no users or groups.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{GraphError, GraphRequest, GraphResult, applications, serve, service_principals};
use crate::directory::{Application, ServicePrincipal};
use crate::state::AppState;

/// The `types` getByIds accepts (Graph's directory object types).
const KNOWN_TYPES: [&str; 11] = [
    "user",
    "group",
    "device",
    "servicePrincipal",
    "application",
    "orgContact",
    "directoryRole",
    "directoryRoleTemplate",
    "directoryObjectPartnerReference",
    "administrativeUnit",
    "contract",
];

/// The object with id `id` (a service principal or an application of the caller's tenant),
/// with its `@odata.type`, if `wanted` allows its type.
fn lookup(g: &GraphRequest, id: &str, wanted: &dyn Fn(&str) -> bool) -> GraphResult<Option<Value>> {
    if wanted("servicePrincipal")
        && let Some(sp) = ServicePrincipal::find_by_id(&g.state.db, id)?.filter(|sp| g.in_tenant(&sp.tenant_id))
    {
        let properties = ServicePrincipal::properties(&g.state.db, &sp.id)?;
        let app = if sp.is_managed_identity() { None } else { Application::find_by_app_id(&g.state.db, &sp.app_id)? };
        return Ok(Some(typed(
            "#microsoft.graph.servicePrincipal",
            service_principals::to_json(&sp, &properties, app.as_ref()),
        )));
    }
    if wanted("application")
        && let Some(app) = Application::find_by_id(&g.state.db, id)?.filter(|a| g.in_tenant(&a.tenant_id))
    {
        let domain = applications::publisher_domain(g, &app.tenant_id)?;
        return Ok(Some(typed("#microsoft.graph.application", applications::to_json(&app, &domain))));
    }
    Ok(None)
}

fn typed(odata_type: &str, object: Value) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let mut out = serde_json::Map::new();
    out.insert("@odata.type".into(), Value::String(odata_type.to_owned()));
    out.extend(fields);
    Value::Object(out)
}

/// `POST /v1.0/directoryObjects/getByIds` `{"ids":[...],"types":[...]}`: the objects found,
/// each with its `@odata.type`; unknown ids are left out.
pub async fn get_by_ids(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.check_options(&["select"])?;
        let body = g.json_object()?;
        let ids: Vec<String> = match body.get("ids") {
            Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => {
                ids.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => {
                return Err(GraphError::bad_request(
                    "The property 'ids' is required and must be a list of object ids.",
                ));
            }
        };
        if ids.len() > 1000 {
            return Err(GraphError::bad_request("Too many ids: at most 1000 can be given."));
        }
        let types: Vec<String> = match body.get("types") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(types)) if types.iter().all(Value::is_string) => {
                types.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(_) => return Err(super::invalid_value("types", "directoryObject")),
        };
        if let Some(unknown) = types
            .iter()
            .find(|t| !KNOWN_TYPES.iter().any(|k| k.eq_ignore_ascii_case(t.trim_start_matches("microsoft.graph."))))
        {
            return Err(GraphError::bad_request(format!("Invalid type '{unknown}' specified in the 'types' list.")));
        }
        let wanted = |t: &str| {
            types.is_empty() || types.iter().any(|w| w.trim_start_matches("microsoft.graph.").eq_ignore_ascii_case(t))
        };
        let mut found = Vec::new();
        for id in &ids {
            if let Some(object) = lookup(&g, id, &wanted)? {
                found.push(object);
            }
        }
        g.collection(found, "directoryObjects", "directoryObject")
    })
    .await
}

/// `GET /v1.0/directoryObjects/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.check_options(&["select"])?;
        let object = lookup(&g, &id, &|_| true)?.ok_or_else(|| GraphError::not_found(&id))?;
        g.entity(StatusCode::OK, object, "directoryObjects/$entity", "directoryObject")
    })
    .await
}
