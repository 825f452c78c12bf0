//! `/v1.0/applications`: app registrations (`az ad app`, `az ad sp create-for-rbac`). An
//! application's password credentials sign in its service principal; deleting the
//! application deletes its service principal too.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::filter::Field;
use super::service_principals::hide_key;
use super::{GraphError, GraphRequest, GraphResult, Kind, check_properties, graph_time, merge, password_json, serve};
use crate::directory::{Application, ServicePrincipal};
use crate::fixtures;
use crate::providers::resources::subscriptions::Tenant;
use crate::state::AppState;
use crate::store::Tx;

const TYPE_NAME: &str = "application";

const SIGN_IN_AUDIENCES: [&str; 4] =
    ["AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"];

/// Properties a client may set on POST or PATCH. `displayName`, `signInAudience` and
/// `identifierUris` are fields of the application; the rest are kept as sent.
const WRITABLE: &[(&str, Kind)] = &[
    ("displayName", Kind::Text),
    ("signInAudience", Kind::Text),
    ("identifierUris", Kind::TextList),
    ("api", Kind::Object),
    ("appRoles", Kind::ObjectList),
    ("defaultRedirectUri", Kind::Text),
    ("description", Kind::Text),
    ("groupMembershipClaims", Kind::Text),
    ("info", Kind::Object),
    ("isDeviceOnlyAuthSupported", Kind::Bool),
    ("isFallbackPublicClient", Kind::Bool),
    ("keyCredentials", Kind::ObjectList),
    ("notes", Kind::Text),
    ("optionalClaims", Kind::Object),
    ("parentalControlSettings", Kind::Object),
    ("publicClient", Kind::Object),
    ("requestSignatureVerification", Kind::Object),
    ("requiredResourceAccess", Kind::ObjectList),
    ("samlMetadataUrl", Kind::Text),
    ("serviceManagementReference", Kind::Text),
    ("spa", Kind::Object),
    ("tags", Kind::TextList),
    ("tokenEncryptionKeyId", Kind::Text),
    ("web", Kind::Object),
];

const READ_ONLY: &[&str] = &[
    "id",
    "appId",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
    "passwordCredentials",
    "applicationTemplateId",
    "disabledByMicrosoftStatus",
    "certification",
    "verifiedPublisher",
];

fn property_defaults() -> Value {
    json!({
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": null,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "defaultRedirectUri": null,
        "description": null,
        "groupMembershipClaims": null,
        "info": {
            "logoUrl": null,
            "marketingUrl": null,
            "privacyStatementUrl": null,
            "supportUrl": null,
            "termsOfServiceUrl": null,
        },
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "keyCredentials": [],
        "notes": null,
        "optionalClaims": null,
        "parentalControlSettings": { "countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow" },
        "publicClient": { "redirectUris": [] },
        "requestSignatureVerification": null,
        "requiredResourceAccess": [],
        "samlMetadataUrl": null,
        "serviceManagementReference": null,
        "spa": { "redirectUris": [] },
        "tags": [],
        "tokenEncryptionKeyId": null,
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "implicitGrantSettings": { "enableAccessTokenIssuance": false, "enableIdTokenIssuance": false },
            "redirectUriSettings": [],
        },
    })
}

/// The application as Graph shows it (`publisher_domain`: the tenant's default domain).
pub fn to_json(app: &Application, publisher_domain: &str) -> Value {
    let mut out = super::with_defaults(property_defaults(), &app.properties);
    let keys: Vec<Value> = out
        .get("keyCredentials")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().map(hide_key).collect())
        .unwrap_or_default();
    let fixed = json!({
        "id": app.id,
        "deletedDateTime": null,
        "appId": app.app_id,
        "applicationTemplateId": null,
        "disabledByMicrosoftStatus": null,
        "createdDateTime": graph_time(app.created_date_time),
        "displayName": app.display_name,
        "identifierUris": app.identifier_uris,
        "nativeAuthenticationApisEnabled": null,
        "publisherDomain": publisher_domain,
        "signInAudience": app.sign_in_audience.as_deref().unwrap_or("AzureADMyOrg"),
        "addIns": [],
        "certification": null,
        "keyCredentials": keys,
        "passwordCredentials": app.password_credentials.iter().map(|c| password_json(c, None)).collect::<Vec<_>>(),
        "verifiedPublisher": { "displayName": null, "verifiedPublisherId": null, "addedDateTime": null },
    });
    if let Value::Object(fixed) = fixed {
        out.extend(fixed);
    }
    Value::Object(out)
}

fn filterable(name: &str) -> Option<Field> {
    probe(None, name)
}

fn probe(app: Option<&Application>, name: &str) -> Option<Field> {
    let text = |f: fn(&Application) -> String| Some(Field::Str(app.map(f).unwrap_or_default()));
    let list = |f: fn(&Application) -> Vec<String>| Some(Field::List(app.map(f).unwrap_or_default()));
    match name.to_lowercase().as_str() {
        "id" => text(|a| a.id.clone()),
        "appid" => text(|a| a.app_id.clone()),
        "displayname" => text(|a| a.display_name.clone()),
        "signinaudience" => text(|a| a.sign_in_audience.clone().unwrap_or_else(|| "AzureADMyOrg".into())),
        "identifieruris" => list(|a| a.identifier_uris.clone()),
        "tags" => list(|a| {
            a.properties
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        }),
        _ => None,
    }
}

/// `publisherDomain`: the tenant's default domain.
pub fn publisher_domain(g: &GraphRequest, tenant_id: &str) -> GraphResult<String> {
    Ok(g.state
        .db
        .get::<Tenant>(&Tenant::key(tenant_id))?
        .map_or_else(|| fixtures::defaults().tenant.default_domain.clone(), |t| t.default_domain))
}

fn find(g: &GraphRequest, id: &str) -> GraphResult<Application> {
    Application::find_by_id(&g.state.db, id)?
        .filter(|a| g.in_tenant(&a.tenant_id))
        .ok_or_else(|| GraphError::not_found(id))
}

fn find_in(g: &GraphRequest, tx: &Tx<'_>, id: &str) -> GraphResult<Application> {
    Application::find_by_id_in(tx, id)?.filter(|a| g.in_tenant(&a.tenant_id)).ok_or_else(|| GraphError::not_found(id))
}

/// `GET /v1.0/applications`.
pub async fn list(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.check_options(&["filter", "top", "skiptoken", "count", "select", "orderby"])?;
        let filter = g.filter()?;
        if let Some(f) = &filter {
            f.validate("Application", filterable)?;
        }
        let domain = publisher_domain(&g, &g.caller.tenant_id)?;
        let items = Application::list(&g.state.db)?
            .into_iter()
            .filter(|a| g.in_tenant(&a.tenant_id))
            .filter(|a| filter.as_ref().is_none_or(|f| f.matches(|name| probe(Some(a), name))))
            .map(|a| to_json(&a, &domain))
            .collect();
        g.collection(items, "applications", TYPE_NAME)
    })
    .await
}

/// `GET /v1.0/applications/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { show(&g, &id) }).await
}

fn show(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    g.check_options(&["select"])?;
    let app = find(g, id)?;
    g.entity(StatusCode::OK, to_json(&app, &publisher_domain(g, &app.tenant_id)?), "applications/$entity", TYPE_NAME)
}

/// `GET|PATCH|DELETE /v1.0/applications(appId='…')`.
pub async fn by_app_id(g: &GraphRequest, app_id: &str) -> GraphResult<Response> {
    let app = Application::find_by_app_id(&g.state.db, app_id)?
        .filter(|a| g.in_tenant(&a.tenant_id))
        .ok_or_else(|| GraphError::not_found(app_id))?;
    match g.method.as_str() {
        "GET" => show(g, &app.id),
        "PATCH" => patch(g, &app.id).await,
        "DELETE" => remove(g, &app.id).await,
        _ => Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "The HTTP method is not allowed.",
        )),
    }
}

/// Applies checked properties to `app` (fields first, the rest merged into `properties`).
fn apply(app: &mut Application, mut changes: Map<String, Value>) -> GraphResult<()> {
    match changes.remove("displayName") {
        None => {}
        Some(Value::String(name)) if !name.trim().is_empty() => app.display_name = name,
        Some(_) => return Err(super::invalid_value("displayName", "Application")),
    }
    match changes.remove("signInAudience") {
        None => {}
        Some(Value::String(audience)) => {
            let known = SIGN_IN_AUDIENCES.iter().find(|a| a.eq_ignore_ascii_case(&audience));
            app.sign_in_audience =
                Some(known.ok_or_else(|| super::invalid_value("signInAudience", "Application"))?.to_string());
        }
        Some(_) => return Err(super::invalid_value("signInAudience", "Application")),
    }
    if let Some(uris) = changes.remove("identifierUris") {
        let uris: Vec<String> =
            uris.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        if uris.iter().any(|u| u.trim().is_empty() || u.contains(char::is_whitespace)) {
            return Err(super::invalid_value("identifierUris", "Application"));
        }
        app.identifier_uris = uris;
    }
    merge(&mut app.properties, changes);
    Ok(())
}

/// Refuses identifier URIs another application of the tenant already uses.
fn check_unique_uris(tx: &Tx<'_>, app: &Application) -> GraphResult<()> {
    if app.identifier_uris.is_empty() {
        return Ok(());
    }
    for (_, other) in tx.scan::<Application>("dir/app/")? {
        if other.id.eq_ignore_ascii_case(&app.id) || !other.tenant_id.eq_ignore_ascii_case(&app.tenant_id) {
            continue;
        }
        if other.identifier_uris.iter().any(|u| app.identifier_uris.iter().any(|m| m.eq_ignore_ascii_case(u))) {
            return Err(GraphError::bad_request(
                "Another object with the same value for property identifierUris already exists.",
            ));
        }
    }
    Ok(())
}

/// Keeps the service principal's names in step with the application's identifier URIs.
fn sync_principal(tx: &mut Tx<'_>, app: &Application) -> GraphResult<()> {
    if let Some(mut sp) = ServicePrincipal::find_by_app_id_in(tx, &app.app_id)?.filter(|sp| !sp.is_managed_identity()) {
        let mut names = vec![app.app_id.clone()];
        names.extend(app.identifier_uris.iter().cloned());
        if sp.service_principal_names != names {
            sp.service_principal_names = names;
            sp.save(tx)?;
        }
    }
    Ok(())
}

/// `POST /v1.0/applications`: a new registration with fresh object and application ids.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        let body = g.json_object()?;
        let changes = check_properties(&body, WRITABLE, READ_ONLY, "Application")?;
        if changes.get("displayName").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()) {
            return Err(GraphError::bad_request("The property 'displayName' is required to create an application."));
        }
        let mut app = Application {
            id: crate::ids::uuid().to_string(),
            app_id: crate::ids::uuid().to_string(),
            display_name: String::new(),
            tenant_id: g.caller.tenant_id.clone(),
            sign_in_audience: Some("AzureADMyOrg".into()),
            identifier_uris: Vec::new(),
            password_credentials: Vec::new(),
            created_date_time: g.now(),
            properties: Map::new(),
        };
        apply(&mut app, changes)?;
        g.state
            .db
            .transact(|tx| {
                check_unique_uris(tx, &app)?;
                app.save(tx)?;
                Ok::<_, GraphError>(())
            })
            .await?;
        g.entity(
            StatusCode::CREATED,
            to_json(&app, &publisher_domain(&g, &app.tenant_id)?),
            "applications/$entity",
            TYPE_NAME,
        )
    })
    .await
}

/// `PATCH /v1.0/applications/{id}`.
pub async fn update(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { patch(&g, &id).await }).await
}

async fn patch(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    let body = g.json_object()?;
    let changes = check_properties(&body, WRITABLE, READ_ONLY, "Application")?;
    g.state
        .db
        .transact(|tx| {
            let mut app = find_in(g, tx, id)?;
            apply(&mut app, changes)?;
            check_unique_uris(tx, &app)?;
            app.save(tx)?;
            sync_principal(tx, &app)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1.0/applications/{id}`: the application and its service principal.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move { remove(&g, &id).await }).await
}

async fn remove(g: &GraphRequest, id: &str) -> GraphResult<Response> {
    g.state
        .db
        .transact(|tx| {
            let app = find_in(g, tx, id)?;
            if let Some(sp) =
                ServicePrincipal::find_by_app_id_in(tx, &app.app_id)?.filter(|sp| !sp.is_managed_identity())
            {
                sp.remove(tx);
            }
            app.remove(tx);
            Ok::<_, GraphError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1.0/applications/{id}/addPassword`: a new secret, shown once.
pub async fn add_password(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        let (credential, secret) = super::new_password(&g)?;
        let stored = credential.clone();
        g.state
            .db
            .transact(|tx| {
                let mut app = find_in(&g, tx, &id)?;
                app.password_credentials.push(stored);
                app.save(tx)?;
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

/// `POST /v1.0/applications/{id}/removePassword` `{"keyId"}`.
pub async fn remove_password(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.state
            .db
            .transact(|tx| {
                let mut app = find_in(&g, tx, &id)?;
                super::remove_password(&g, &mut app.password_credentials)?;
                app.save(tx)?;
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

    fn app() -> Application {
        Application {
            id: "oid".into(),
            app_id: "aid".into(),
            display_name: "web".into(),
            tenant_id: "t".into(),
            sign_in_audience: None,
            identifier_uris: Vec::new(),
            password_credentials: Vec::new(),
            created_date_time: time::macros::datetime!(2026-01-01 00:00 UTC),
            properties: Map::new(),
        }
    }

    #[test]
    fn patches_merge_objects_and_replace_lists() {
        let mut a = app();
        let body =
            json!({"web": {"redirectUris": ["https://a"]}, "tags": ["x"], "signInAudience": "azureadmultipleorgs"});
        let changes = check_properties(body.as_object().unwrap(), WRITABLE, READ_ONLY, "Application").unwrap();
        apply(&mut a, changes).unwrap();
        let body = json!({"web": {"homePageUrl": "https://h"}, "tags": ["y"]});
        apply(&mut a, check_properties(body.as_object().unwrap(), WRITABLE, READ_ONLY, "Application").unwrap())
            .unwrap();
        let shown = to_json(&a, "armlet.onmicrosoft.com");
        assert_eq!(shown["web"]["redirectUris"], json!(["https://a"]));
        assert_eq!(shown["web"]["homePageUrl"], "https://h");
        assert_eq!(shown["web"]["implicitGrantSettings"]["enableIdTokenIssuance"], false);
        assert_eq!(shown["tags"], json!(["y"]));
        assert_eq!(shown["signInAudience"], "AzureADMultipleOrgs");
        assert_eq!(shown["publisherDomain"], "armlet.onmicrosoft.com");
        assert_eq!(shown["passwordCredentials"], json!([]));
    }

    #[test]
    fn refuses_read_only_unknown_and_mistyped_properties() {
        for (body, code) in [
            (json!({"appId": "x"}), "Request_BadRequest"),
            (json!({"passwordCredentials": []}), "Request_BadRequest"),
            (json!({"frobnicate": 1}), "BadRequest"),
            (json!({"tags": "x"}), "Request_BadRequest"),
            (json!({"identifierUris": [1]}), "Request_BadRequest"),
        ] {
            let e = check_properties(body.as_object().unwrap(), WRITABLE, READ_ONLY, "Application").unwrap_err();
            assert_eq!(e.code, code, "{body}");
        }
        let mut a = app();
        let bad = json!({"signInAudience": "Everyone"});
        assert!(
            apply(&mut a, check_properties(bad.as_object().unwrap(), WRITABLE, READ_ONLY, "Application").unwrap())
                .is_err()
        );
    }

    #[test]
    fn filters_see_identifier_uris_and_tags() {
        let mut a = app();
        a.identifier_uris = vec!["api://web".into()];
        a.properties.insert("tags".into(), json!(["blue"]));
        for f in [
            "identifierUris/any(s:s eq 'api://WEB')",
            "tags/any(t:t eq 'blue')",
            "startswith(displayName,'W')",
            "appId eq 'AID'",
        ] {
            let filter = super::super::filter::parse(f).unwrap();
            filter.validate("Application", filterable).unwrap();
            assert!(filter.matches(|n| probe(Some(&a), n)), "{f}");
        }
    }
}
