//! `/v1.0/servicePrincipals`: list with `$filter`, get by object id or `(appId='…')`, create
//! for an application of the tenant, update, delete, and password credentials.
//!
//! Managed identities' principals are listed and read like the others but changed only
//! through ARM (Graph refuses to delete them or give them passwords).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::filter::Field;
use super::{GraphError, GraphRequest, GraphResult, Kind, check_properties, merge, password_json, serve};
use crate::directory::{Application, ServicePrincipal};
use crate::state::AppState;

/// The tenant that owns managed identities' applications in Azure (Microsoft Services).
pub const MANAGED_IDENTITY_OWNER_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

const TYPE_NAME: &str = "servicePrincipal";

/// Properties a client may set on POST or PATCH (besides `displayName` and, on POST, `appId`).
const WRITABLE: &[(&str, Kind)] = &[
    ("displayName", Kind::Text),
    ("accountEnabled", Kind::Bool),
    ("appRoleAssignmentRequired", Kind::Bool),
    ("appRoles", Kind::ObjectList),
    ("description", Kind::Text),
    ("homepage", Kind::Text),
    ("keyCredentials", Kind::ObjectList),
    ("loginUrl", Kind::Text),
    ("logoutUrl", Kind::Text),
    ("notes", Kind::Text),
    ("notificationEmailAddresses", Kind::TextList),
    ("preferredSingleSignOnMode", Kind::Text),
    ("replyUrls", Kind::TextList),
    ("samlSingleSignOnSettings", Kind::Object),
    ("tags", Kind::TextList),
    ("tokenEncryptionKeyId", Kind::Text),
];

const READ_ONLY: &[&str] = &[
    "id",
    "appId",
    "deletedDateTime",
    "servicePrincipalType",
    "servicePrincipalNames",
    "alternativeNames",
    "appOwnerOrganizationId",
    "appDisplayName",
    "passwordCredentials",
    "signInAudience",
];

/// Defaults of the properties kept beside the principal.
fn property_defaults() -> Value {
    json!({
        "accountEnabled": true,
        "appRoleAssignmentRequired": false,
        "appRoles": [],
        "description": null,
        "homepage": null,
        "keyCredentials": [],
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "replyUrls": [],
        "samlSingleSignOnSettings": null,
        "tags": [],
        "tokenEncryptionKeyId": null,
    })
}

/// The principal as Graph shows it.
pub fn to_json(sp: &ServicePrincipal, properties: &Map<String, Value>, app: Option<&Application>) -> Value {
    let mut out = super::with_defaults(property_defaults(), properties);
    let owner = if sp.is_managed_identity() {
        MANAGED_IDENTITY_OWNER_TENANT.to_owned()
    } else {
        app.map_or_else(|| sp.tenant_id.clone(), |a| a.tenant_id.clone())
    };
    let keys: Vec<Value> = out
        .get("keyCredentials")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().map(hide_key).collect())
        .unwrap_or_default();
    let fixed = json!({
        "id": sp.id,
        "deletedDateTime": null,
        "alternativeNames": sp.alternative_names,
        "appDisplayName": if sp.is_managed_identity() { None } else { Some(app.map_or(&sp.display_name, |a| &a.display_name)) },
        "appDescription": null,
        "appId": sp.app_id,
        "applicationTemplateId": null,
        "appOwnerOrganizationId": owner,
        "disabledByMicrosoftStatus": null,
        "displayName": sp.display_name,
        "preferredTokenSigningKeyThumbprint": null,
        "servicePrincipalNames": names(sp),
        "servicePrincipalType": sp.service_principal_type,
        "signInAudience": app.and_then(|a| a.sign_in_audience.clone()).unwrap_or_else(|| "AzureADMyOrg".into()),
        "addIns": [],
        "info": {
            "logoUrl": null,
            "marketingUrl": null,
            "privacyStatementUrl": null,
            "supportUrl": null,
            "termsOfServiceUrl": null,
        },
        "keyCredentials": keys,
        "oauth2PermissionScopes": [],
        "passwordCredentials": sp.password_credentials.iter().map(|c| password_json(c, None)).collect::<Vec<_>>(),
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": { "displayName": null, "verifiedPublisherId": null, "addedDateTime": null },
    });
    if let Value::Object(fixed) = fixed {
        out.extend(fixed);
    }
    Value::Object(out)
}

/// Graph never returns a key credential's `key`.
pub fn hide_key(credential: &Value) -> Value {
    let mut credential = credential.clone();
    if let Value::Object(fields) = &mut credential {
        fields.insert("key".into(), Value::Null);
    }
    credential
}

/// `servicePrincipalNames`, always including the appId.
fn names(sp: &ServicePrincipal) -> Vec<String> {
    let mut names = sp.service_principal_names.clone();
    if !names.iter().any(|n| n.eq_ignore_ascii_case(&sp.app_id)) {
        names.insert(0, sp.app_id.clone());
    }
    names
}

/// The properties `$filter` may name, and what kind they are.
fn filterable(name: &str) -> Option<Field> {
    probe(None, name)
}

fn probe(object: Option<(&ServicePrincipal, &Map<String, Value>)>, name: &str) -> Option<Field> {
    let text = |f: fn(&ServicePrincipal) -> String| Some(Field::Str(object.map(|(sp, _)| f(sp)).unwrap_or_default()));
    let list = |f: fn(&ServicePrincipal, &Map<String, Value>) -> Vec<String>| {
        Some(Field::List(object.map(|(sp, p)| f(sp, p)).unwrap_or_default()))
    };
    match name.to_lowercase().as_str() {
        "id" => text(|sp| sp.id.clone()),
        "appid" => text(|sp| sp.app_id.clone()),
        "displayname" => text(|sp| sp.display_name.clone()),
        "serviceprincipaltype" => text(|sp| sp.service_principal_type.clone()),
        "appownerorganizationid" => {
            text(
                |sp| {
                    if sp.is_managed_identity() {
                        MANAGED_IDENTITY_OWNER_TENANT.to_owned()
                    } else {
                        sp.tenant_id.clone()
                    }
                },
            )
        }
        "accountenabled" => Some(Field::Bool(
            object.is_none_or(|(_, p)| p.get("accountEnabled").and_then(Value::as_bool).unwrap_or(true)),
        )),
        "serviceprincipalnames" => list(|sp, _| names(sp)),
        "alternativenames" => list(|sp, _| sp.alternative_names.clone()),
        "tags" => list(|_, p| {
            p.get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        }),
        _ => None,
    }
}

/// The caller's tenant's principal with object id `id`.
fn find(g: &GraphRequest, id: &str) -> GraphResult<ServicePrincipal> {
    ServicePrincipal::find_by_id(&g.state.db, id)?
        .filter(|sp| g.in_tenant(&sp.tenant_id))
        .ok_or_else(|| GraphError::not_found(id))
}

fn render(g: &GraphRequest, sp: &ServicePrincipal) -> GraphResult<Value> {
    let properties = ServicePrincipal::properties(&g.state.db, &sp.id)?;
    let app = if sp.is_managed_identity() { None } else { Application::find_by_app_id(&g.state.db, &sp.app_id)? };
    Ok(to_json(sp, &properties, app.as_ref()))
}

/// `GET /v1.0/servicePrincipals`.
pub async fn list(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.check_options(&["filter", "top", "skiptoken", "count", "select", "orderby"])?;
        let filter = g.filter()?;
        if let Some(f) = &filter {
            f.validate("ServicePrincipal", filterable)?;
        }
        let mut items = Vec::new();
        for sp in ServicePrincipal::list(&g.state.db)? {
            if !g.in_tenant(&sp.tenant_id) {
                continue;
            }
            let properties = ServicePrincipal::properties(&g.state.db, &sp.id)?;
            if filter.as_ref().is_some_and(|f| !f.matches(|name| probe(Some((&sp, &properties)), name))) {
                continue;
            }
            let app =
                if sp.is_managed_identity() { None } else { Application::find_by_app_id(&g.state.db, &sp.app_id)? };
            items.push(to_json(&sp, &properties, app.as_ref()));
        }
        g.collection(items, "servicePrincipals", TYPE_NAME)
    })
    .await
}

/// `GET /v1.0/servicePrincipals/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { show(&g, &id) }).await
}

fn show(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    g.check_options(&["select"])?;
    let sp = find(g, id)?;
    g.entity(StatusCode::OK, render(g, &sp)?, "servicePrincipals/$entity", TYPE_NAME)
}

/// `GET|PATCH|DELETE /v1.0/servicePrincipals(appId='…')`.
pub async fn by_app_id(g: &GraphRequest, app_id: &str) -> GraphResult<Response> {
    let sp = ServicePrincipal::find_by_app_id(&g.state.db, app_id)?
        .filter(|sp| g.in_tenant(&sp.tenant_id))
        .ok_or_else(|| GraphError::not_found(app_id))?;
    match g.method.as_str() {
        "GET" => show(g, &sp.id),
        "PATCH" => patch(g, &sp.id).await,
        "DELETE" => remove(g, &sp.id).await,
        _ => Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "The HTTP method is not allowed.",
        )),
    }
}

/// `POST /v1.0/servicePrincipals` `{"appId": …}`: the service principal of one of the
/// tenant's applications.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        let mut body = g.json_object()?;
        let app_id = match body.remove("appId") {
            Some(Value::String(app_id)) if !app_id.is_empty() => app_id,
            Some(_) => return Err(super::invalid_value("appId", "ServicePrincipal")),
            None => return Err(GraphError::bad_request("The property 'appId' is required to create a service principal.")),
        };
        let mut properties = check_properties(&body, WRITABLE, READ_ONLY, "ServicePrincipal")?;
        let display_name = properties.remove("displayName");
        let now = g.now();
        let sp = g
            .state
            .db
            .transact(|tx| {
                let app = Application::find_by_app_id_in(tx, &app_id)?.filter(|a| g.in_tenant(&a.tenant_id)).ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "The appId '{app_id}' of the service principal does not reference a valid application object."
                    ))
                })?;
                if ServicePrincipal::find_by_app_id_in(tx, &app.app_id)?.is_some() {
                    return Err(GraphError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        format!(
                            "The service principal cannot be created, updated, or restored because the service principal name {} is already in use.",
                            app.app_id
                        ),
                    ));
                }
                let mut service_principal_names = vec![app.app_id.clone()];
                service_principal_names.extend(app.identifier_uris.iter().cloned());
                let sp = ServicePrincipal {
                    id: crate::ids::uuid().to_string(),
                    app_id: app.app_id.clone(),
                    display_name: display_name.as_ref().and_then(Value::as_str).map_or_else(|| app.display_name.clone(), str::to_owned),
                    tenant_id: app.tenant_id.clone(),
                    service_principal_type: "Application".into(),
                    service_principal_names,
                    alternative_names: Vec::new(),
                    password_credentials: Vec::new(),
                    created_date_time: now,
                };
                sp.save(tx)?;
                ServicePrincipal::save_properties(tx, &sp.id, &properties)?;
                Ok(sp)
            })
            .await?;
        g.entity(StatusCode::CREATED, render(&g, &sp)?, "servicePrincipals/$entity", TYPE_NAME)
    })
    .await
}

/// `PATCH /v1.0/servicePrincipals/{id}`.
pub async fn update(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { patch(&g, &id).await }).await
}

fn refuse_managed_identity(sp: &ServicePrincipal, what: &str) -> GraphResult<()> {
    if sp.is_managed_identity() {
        return Err(GraphError::bad_request(format!(
            "The service principal '{}' belongs to a managed identity: {what} it through Azure Resource Manager (the identity resource), not Microsoft Graph.",
            sp.id
        )));
    }
    Ok(())
}

async fn patch(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    let body = g.json_object()?;
    let mut changes = check_properties(&body, WRITABLE, READ_ONLY, "ServicePrincipal")?;
    let display_name = changes.remove("displayName");
    g.state
        .db
        .transact(|tx| {
            let mut sp = ServicePrincipal::find_by_id_in(tx, id)?
                .filter(|sp| g.in_tenant(&sp.tenant_id))
                .ok_or_else(|| GraphError::not_found(id))?;
            refuse_managed_identity(&sp, "change")?;
            match display_name {
                None => {}
                Some(Value::String(name)) if !name.trim().is_empty() => {
                    sp.display_name = name;
                    sp.save(tx)?;
                }
                Some(_) => return Err(super::invalid_value("displayName", "ServicePrincipal")),
            }
            let mut properties = ServicePrincipal::properties_in(tx, id)?;
            merge(&mut properties, changes);
            ServicePrincipal::save_properties(tx, &sp.id, &properties)?;
            Ok::<_, GraphError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1.0/servicePrincipals/{id}` (the application stays).
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { remove(&g, &id).await }).await
}

async fn remove(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    g.state
        .db
        .transact(|tx| {
            let sp = ServicePrincipal::find_by_id_in(tx, id)?
                .filter(|sp| g.in_tenant(&sp.tenant_id))
                .ok_or_else(|| GraphError::not_found(id))?;
            refuse_managed_identity(&sp, "delete")?;
            sp.remove(tx);
            Ok::<_, GraphError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1.0/servicePrincipals/{id}/addPassword`: a new secret, shown once.
pub async fn add_password(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        let (credential, secret) = super::new_password(&g)?;
        let stored = credential.clone();
        g.state
            .db
            .transact(|tx| {
                let mut sp = ServicePrincipal::find_by_id_in(tx, &id)?
                    .filter(|sp| g.in_tenant(&sp.tenant_id))
                    .ok_or_else(|| GraphError::not_found(&id))?;
                refuse_managed_identity(&sp, "give credentials to")?;
                sp.password_credentials.push(stored);
                sp.save(tx)?;
                Ok::<_, GraphError>(())
            })
            .await?;
        g.entity(
            StatusCode::OK,
            password_json(&credential, Some(&secret)),
            "microsoft.graph.passwordCredential",
            "passwordCredential",
        )
    })
    .await
}

/// `POST /v1.0/servicePrincipals/{id}/removePassword` `{"keyId"}`.
pub async fn remove_password(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.state
            .db
            .transact(|tx| {
                let mut sp = ServicePrincipal::find_by_id_in(tx, &id)?
                    .filter(|sp| g.in_tenant(&sp.tenant_id))
                    .ok_or_else(|| GraphError::not_found(&id))?;
                refuse_managed_identity(&sp, "manage the credentials of")?;
                super::remove_password(&g, &mut sp.password_credentials)?;
                sp.save(tx)?;
                Ok::<_, GraphError>(())
            })
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filterable_property_is_probed() {
        let sp = ServicePrincipal {
            id: "oid".into(),
            app_id: "AID".into(),
            display_name: "name".into(),
            tenant_id: "t".into(),
            service_principal_type: "Application".into(),
            service_principal_names: vec!["api://x".into()],
            alternative_names: Vec::new(),
            password_credentials: Vec::new(),
            created_date_time: time::macros::datetime!(2026-01-01 00:00 UTC),
        };
        let props = Map::new();
        for name in [
            "id",
            "appId",
            "displayName",
            "servicePrincipalType",
            "appOwnerOrganizationId",
            "accountEnabled",
            "servicePrincipalNames",
            "alternativeNames",
            "tags",
        ] {
            let witness = filterable(name).unwrap();
            let actual = probe(Some((&sp, &props)), name).unwrap();
            assert_eq!(std::mem::discriminant(&witness), std::mem::discriminant(&actual), "{name}");
        }
        assert_eq!(names(&sp), vec!["AID".to_owned(), "api://x".to_owned()]);
        let json = to_json(&sp, &props, None);
        assert_eq!(json["accountEnabled"], true);
        assert_eq!(json["appOwnerOrganizationId"], "t");
        assert_eq!(json["tags"], json!([]));
        assert_eq!(json["servicePrincipalNames"], json!(["AID", "api://x"]));
    }
}
