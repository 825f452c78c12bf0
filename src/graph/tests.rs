//! Graph driven through the whole router (no socket): authentication, the flows az runs,
//! filters, paging and errors.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use time::Duration;
use tower::ServiceExt;

use crate::auth::jwt::{self, Claims};
use crate::auth::keys::SigningKey;
use crate::clock::Clock;
use crate::directory::ServicePrincipal;
use crate::state::{AppState, Settings};
use crate::store::Db;
use crate::{fixtures, router};

fn key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(SigningKey::generate().expect("test key"))).clone()
}

fn tenant() -> &'static str {
    &fixtures::defaults().tenant.tenant_id
}

/// A token for the default service principal with audience `aud`.
fn token(aud: &str) -> String {
    let sp = &fixtures::defaults().service_principal;
    let now = Clock::wall_now().unix_timestamp();
    let claims = Claims {
        aud: aud.into(),
        iss: format!("https://127.0.0.1:8443/{}/", tenant()),
        iat: now,
        nbf: now,
        exp: now + 3600,
        tid: tenant().into(),
        oid: sp.object_id.clone(),
        sub: sp.object_id.clone(),
        appid: Some(sp.app_id.clone()),
        ..Default::default()
    };
    jwt::sign(&claims, &key())
}

struct Graph {
    state: AppState,
    token: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Graph {
    async fn new() -> Self {
        let state = AppState::new(Db::memory(), Clock::real(), key(), Settings::default());
        state.bootstrap().await.unwrap();
        Self { state, token: Some(token("https://127.0.0.1:8443/")) }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri).header(header::HOST, "127.0.0.1:8443");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let response = router::router(self.state.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Answer { status, headers, body }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(body)).await
    }

    /// `POST /v1.0/applications` + `POST /v1.0/servicePrincipals`, as create-for-rbac does.
    async fn app_with_principal(&self, name: &str) -> (Value, Value) {
        let app = self.post("/v1.0/applications", json!({"displayName": name, "keyCredentials": []})).await;
        assert_eq!(app.status, StatusCode::CREATED, "{}", app.body);
        let sp =
            self.post("/v1.0/servicePrincipals", json!({"appId": app.body["appId"], "accountEnabled": true})).await;
        assert_eq!(sp.status, StatusCode::CREATED, "{}", sp.body);
        (app.body, sp.body)
    }

    /// The token endpoint's answer for `client_id` / `secret`.
    async fn sign_in(&self, client_id: &str, secret: &str) -> Answer {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", "https://127.0.0.1:8443//.default")
            .finish();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/{}/oauth2/v2.0/token", tenant()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let response = router::router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, headers: HeaderMap::new(), body: serde_json::from_slice(&bytes).unwrap() }
    }
}

fn filter_uri(collection: &str, filter: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("/v1.0/{collection}?$filter={encoded}")
}

fn assert_graph_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    assert!(answer.body["error"]["message"].is_string(), "{}", answer.body);
    let inner = &answer.body["error"]["innerError"];
    assert!(
        inner["request-id"].is_string() && inner["client-request-id"].is_string() && inner["date"].is_string(),
        "{}",
        answer.body
    );
    assert!(answer.headers.contains_key("request-id"));
}

#[tokio::test]
async fn tokens_are_checked_with_graph_errors() {
    let mut g = Graph::new().await;
    g.token = None;
    let answer = g.get("/v1.0/servicePrincipals").await;
    assert_graph_error(&answer, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
    assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
    // Paths armlet does not know still answer Graph's JSON 401 before anything else.
    assert_graph_error(&g.get("/v1.0/groups").await, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");

    g.token = Some(token("https://management.azure.com/"));
    let answer = g.get("/v1.0/servicePrincipals").await;
    assert_graph_error(&answer, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
    assert!(answer.body["error"]["message"].as_str().unwrap().contains("audience"));

    for aud in
        ["https://graph.microsoft.com", "https://graph.microsoft.com/", "https://localhost:8443/", super::GRAPH_APP_ID]
    {
        g.token = Some(token(aud));
        assert_eq!(g.get("/v1.0/servicePrincipals").await.status, StatusCode::OK, "{aud}");
    }
}

#[tokio::test]
async fn the_default_principal_is_listed_and_found_like_graph() {
    let g = Graph::new().await;
    let defaults = &fixtures::defaults().service_principal;
    let all = g.get("/v1.0/servicePrincipals").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["@odata.context"], "https://127.0.0.1:8443/v1.0/$metadata#servicePrincipals");
    let sp = &all.body["value"][0];
    assert_eq!(sp["id"], defaults.object_id.as_str());
    assert_eq!(sp["appId"], defaults.app_id.as_str());
    assert_eq!(sp["servicePrincipalType"], "Application");
    assert_eq!(sp["appOwnerOrganizationId"], tenant());
    assert_eq!(sp["accountEnabled"], true);
    assert_eq!(sp["keyCredentials"], json!([]));
    let password = &sp["passwordCredentials"][0];
    assert_eq!(password["hint"], "arm");
    assert_eq!(password["secretText"], Value::Null);
    assert_eq!(password["endDateTime"], Value::Null, "the well-known secret never expires");

    let by_name = g
        .get(&filter_uri("servicePrincipals", &format!("servicePrincipalNames/any(c:c eq '{}')", defaults.app_id)))
        .await;
    assert_eq!(by_name.body["value"].as_array().unwrap().len(), 1, "{}", by_name.body);
    // Graph does not match an object id against servicePrincipalNames.
    let by_oid = g
        .get(&filter_uri("servicePrincipals", &format!("servicePrincipalNames/any(c:c eq '{}')", defaults.object_id)))
        .await;
    assert_eq!(by_oid.body["value"], json!([]));

    let one = g.get(&format!("/v1.0/servicePrincipals/{}", defaults.object_id)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["@odata.context"], "https://127.0.0.1:8443/v1.0/$metadata#servicePrincipals/$entity");
    let keyed = g.get(&format!("/v1.0/servicePrincipals(appId='{}')", defaults.app_id)).await;
    assert_eq!(keyed.status, StatusCode::OK, "{}", keyed.body);
    assert_eq!(keyed.body["id"], defaults.object_id.as_str());

    let missing = g.get("/v1.0/servicePrincipals/00000000-0000-0000-0000-000000000000").await;
    assert_graph_error(&missing, StatusCode::NOT_FOUND, "Request_ResourceNotFound");

    let selected = g.get(&format!("/v1.0/servicePrincipals/{}?$select=id,appId", defaults.object_id)).await;
    assert_eq!(selected.body.as_object().unwrap().len(), 3, "{}", selected.body);
}

#[tokio::test]
async fn create_for_rbac_flow_signs_in_and_credentials_rotate() {
    let g = Graph::new().await;
    let (app, sp) = g.app_with_principal("rbac-one").await;
    let app_id = app["appId"].as_str().unwrap();
    assert_ne!(app["id"], app["appId"]);
    assert_eq!(sp["appId"], app_id);
    assert_eq!(sp["displayName"], "rbac-one");
    assert_eq!(sp["servicePrincipalNames"], json!([app_id]));
    assert_eq!(app["publisherDomain"], "armlet.onmicrosoft.com");

    // A second principal for the same application is refused; so is an unknown appId.
    let again = g.post("/v1.0/servicePrincipals", json!({"appId": app_id})).await;
    assert_graph_error(&again, StatusCode::CONFLICT, "Request_MultipleObjectsWithSameKeyValue");
    let unknown = g.post("/v1.0/servicePrincipals", json!({"appId": "5f3c0000-0000-4000-8000-000000000001"})).await;
    assert_graph_error(&unknown, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains(" does not reference "));

    // addPassword on the application: a 40-character secret shown once.
    let added = g
        .post(
            &format!("/v1.0/applications/{}/addPassword", app["id"].as_str().unwrap()),
            json!({"passwordCredential": {"displayName": "rbac"}}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let secret = added.body["secretText"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    assert_eq!(&secret[4..6], "Q~");
    assert_eq!(added.body["hint"], &secret[..3]);
    assert_eq!(added.body["displayName"], "rbac");
    let start = super::parse_time(added.body["startDateTime"].as_str().unwrap()).unwrap();
    let end = super::parse_time(added.body["endDateTime"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, Duration::days(365));
    let shown = g.get(&format!("/v1.0/applications/{}", app["id"].as_str().unwrap())).await;
    assert_eq!(shown.body["passwordCredentials"][0]["secretText"], Value::Null);
    assert_eq!(shown.body["passwordCredentials"][0]["keyId"], added.body["keyId"]);

    assert_eq!(g.sign_in(app_id, &secret).await.status, StatusCode::OK);

    // The service principal's own password signs in too; removing the application's
    // password retires it.
    let sp_id = sp["id"].as_str().unwrap();
    let sp_password = g.post(&format!("/v1.0/servicePrincipals/{sp_id}/addPassword"), json!({})).await;
    let sp_secret = sp_password.body["secretText"].as_str().unwrap();
    assert_eq!(g.sign_in(app_id, sp_secret).await.status, StatusCode::OK);
    let removed = g
        .post(
            &format!("/v1.0/applications/{}/removePassword", app["id"].as_str().unwrap()),
            json!({"keyId": added.body["keyId"]}),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let refused = g.sign_in(app_id, &secret).await;
    assert_eq!(refused.body["error_codes"], json!([7000215]), "{}", refused.body);
    let again = g
        .post(
            &format!("/v1.0/applications/{}/removePassword", app["id"].as_str().unwrap()),
            json!({"keyId": added.body["keyId"]}),
        )
        .await;
    assert_graph_error(&again, StatusCode::NOT_FOUND, "Request_ResourceNotFound");

    // Deleting the application deletes its service principal.
    let deleted = g.call(Method::DELETE, &format!("/v1.0/applications/{}", app["id"].as_str().unwrap()), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_graph_error(
        &g.get(&format!("/v1.0/servicePrincipals/{sp_id}")).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    assert_eq!(g.sign_in(app_id, sp_secret).await.body["error_codes"], json!([700016]));
}

#[tokio::test]
async fn client_dates_follow_the_simulated_clock() {
    let g = Graph::new().await;
    let (app, _) = g.app_with_principal("expiring").await;
    let app_id = app["appId"].as_str().unwrap();
    let object = app["id"].as_str().unwrap();
    // az sends dates from its own wall clock.
    let wall = Clock::wall_now();
    let one_year = |from: time::OffsetDateTime| {
        json!({"passwordCredential": {
            "startDateTime": super::graph_time(from).replace("+00:00", "Z"),
            "endDateTime": super::graph_time(from + Duration::days(365)),
        }})
    };
    let added = g.post(&format!("/v1.0/applications/{object}/addPassword"), one_year(wall)).await;
    let old_secret = added.body["secretText"].as_str().unwrap().to_owned();
    assert_eq!(g.sign_in(app_id, &old_secret).await.status, StatusCode::OK);

    g.state.clock.advance_by(Duration::days(400)).unwrap();
    let expired = g.sign_in(app_id, &old_secret).await;
    assert_eq!(expired.body["error_codes"], json!([7000222]), "{}", expired.body);

    // The same request made now lasts a simulated year from the simulated now.
    let renewed = g.post(&format!("/v1.0/applications/{object}/addPassword"), one_year(Clock::wall_now())).await;
    let start = super::parse_time(renewed.body["startDateTime"].as_str().unwrap()).unwrap();
    let end = super::parse_time(renewed.body["endDateTime"].as_str().unwrap()).unwrap();
    assert!((start - g.state.clock.now()).abs() < Duration::seconds(5), "{}", renewed.body);
    assert_eq!(end - start, Duration::days(365));
    assert_eq!(g.sign_in(app_id, renewed.body["secretText"].as_str().unwrap()).await.status, StatusCode::OK);

    let backwards = g
        .post(&format!("/v1.0/applications/{object}/addPassword"), json!({"passwordCredential": {"startDateTime": "2030-01-02T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}}))
        .await;
    assert_graph_error(&backwards, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let garbage = g
        .post(
            &format!("/v1.0/applications/{object}/addPassword"),
            json!({"passwordCredential": {"endDateTime": "next year"}}),
        )
        .await;
    assert_graph_error(&garbage, StatusCode::BAD_REQUEST, "Request_BadRequest");
}

#[tokio::test]
async fn filters_paging_and_unsupported_queries() {
    let g = Graph::new().await;
    for name in ["page-a", "page-b", "page-c"] {
        g.app_with_principal(name).await;
    }
    let first = g.get(&format!("{}&$top=2", filter_uri("servicePrincipals", "startswith(displayName,'PAGE-')"))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 2);
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    let next = next.strip_prefix("https://127.0.0.1:8443").unwrap();
    let second = g.get(next).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 1, "{}", second.body);
    assert!(second.body.get("@odata.nextLink").is_none());

    let exact = g.get(&filter_uri("servicePrincipals", "displayName eq 'page-b'")).await;
    assert_eq!(exact.body["value"].as_array().unwrap().len(), 1);
    let apps = g
        .get(&format!(
            "{}&$count=true&$orderby=displayName%20desc",
            filter_uri("applications", "startswith(displayName,'page')")
        ))
        .await;
    assert_eq!(apps.body["@odata.count"], 3, "{}", apps.body);
    assert_eq!(apps.body["value"][0]["displayName"], "page-c");
    let app_id = apps.body["value"][0]["appId"].as_str().unwrap();
    let by_app_id = g.get(&filter_uri("applications", &format!("appId eq '{app_id}'"))).await;
    assert_eq!(by_app_id.body["value"].as_array().unwrap().len(), 1);
    let keyed = g.get(&format!("/v1.0/applications(appId='{app_id}')")).await;
    assert_eq!(keyed.body["displayName"], "page-c");
    let sp_by_app = g.get(&filter_uri("servicePrincipals", &format!("appId eq '{app_id}'"))).await;
    assert_eq!(sp_by_app.body["value"][0]["displayName"], "page-c");

    for (uri, code) in [
        (filter_uri("servicePrincipals", "displayName ne 'x'"), "Request_UnsupportedQuery"),
        (filter_uri("servicePrincipals", "homepage eq 'x'"), "Request_UnsupportedQuery"),
        (filter_uri("servicePrincipals", "displayName eq 'a' or displayName eq 'b'"), "Request_UnsupportedQuery"),
        (filter_uri("applications", "garbage"), "Request_UnsupportedQuery"),
        (filter_uri("users", "favouriteColour eq 'blue'"), "Request_UnsupportedQuery"),
        ("/v1.0/servicePrincipals?$search=%22displayName:x%22".into(), "Request_UnsupportedQuery"),
        ("/v1.0/servicePrincipals?$top=0".into(), "Request_BadRequest"),
        ("/v1.0/servicePrincipals?$skiptoken=zz".into(), "Request_BadRequest"),
        ("/v1.0/servicePrincipals?$select=nope".into(), "BadRequest"),
    ] {
        assert_graph_error(&g.get(&uri).await, StatusCode::BAD_REQUEST, code);
    }
}

#[tokio::test]
async fn updates_keep_principal_names_and_properties() {
    let g = Graph::new().await;
    let (app, sp) = g.app_with_principal("patched").await;
    let object = app["id"].as_str().unwrap();
    let sp_id = sp["id"].as_str().unwrap();
    let patched = g
        .call(
            Method::PATCH,
            &format!("/v1.0/applications/{object}"),
            Some(json!({"identifierUris": ["api://patched"], "web": {"redirectUris": ["https://x"]}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.body);
    let found = g.get(&filter_uri("servicePrincipals", "servicePrincipalNames/any(c:c eq 'api://patched')")).await;
    assert_eq!(found.body["value"][0]["id"], sp_id, "{}", found.body);
    let apps = g.get(&filter_uri("applications", "identifierUris/any(s:s eq 'api://patched')")).await;
    assert_eq!(apps.body["value"][0]["web"]["redirectUris"], json!(["https://x"]));
    let other =
        g.post("/v1.0/applications", json!({"displayName": "clash", "identifierUris": ["api://patched"]})).await;
    assert_graph_error(&other, StatusCode::BAD_REQUEST, "Request_BadRequest");

    let tagged = g
        .call(
            Method::PATCH,
            &format!("/v1.0/servicePrincipals/{sp_id}"),
            Some(json!({"tags": ["WindowsAzureActiveDirectoryIntegratedApp"], "notes": "n"})),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::NO_CONTENT, "{}", tagged.body);
    let by_tag =
        g.get(&filter_uri("servicePrincipals", "tags/any(t:t eq 'windowsazureactivedirectoryintegratedapp')")).await;
    assert_eq!(by_tag.body["value"][0]["notes"], "n");
    let read_only =
        g.call(Method::PATCH, &format!("/v1.0/servicePrincipals/{sp_id}"), Some(json!({"appId": "x"}))).await;
    assert_graph_error(&read_only, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let request = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/v1.0/servicePrincipals/{sp_id}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", g.token.as_deref().unwrap()))
        .body(Body::from("{not json"))
        .unwrap();
    let response = router::router(g.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn managed_identities_are_read_only_and_directory_objects_resolve() {
    let g = Graph::new().await;
    let now = g.state.clock.now();
    let mi = ServicePrincipal {
        id: "5f3c0000-0000-4000-8000-0000000000aa".into(),
        app_id: "5f3c0000-0000-4000-8000-0000000000ab".into(),
        display_name: "my-identity".into(),
        tenant_id: tenant().into(),
        service_principal_type: "ManagedIdentity".into(),
        service_principal_names: vec!["5f3c0000-0000-4000-8000-0000000000ab".into()],
        alternative_names: vec![
            "isExplicit=True".into(),
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-identity"
                .into(),
        ],
        password_credentials: Vec::new(),
        created_date_time: now,
    };
    g.state.db.transact(|tx| mi.save(tx)).await.unwrap();
    let deleted = g.call(Method::DELETE, &format!("/v1.0/servicePrincipals/{}", mi.id), None).await;
    assert_graph_error(&deleted, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let password = g.post(&format!("/v1.0/servicePrincipals/{}/addPassword", mi.id), json!({})).await;
    assert_graph_error(&password, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let listed = g.get(&filter_uri("servicePrincipals", "servicePrincipalType eq 'ManagedIdentity'")).await;
    assert_eq!(
        listed.body["value"][0]["appOwnerOrganizationId"],
        super::service_principals::MANAGED_IDENTITY_OWNER_TENANT
    );

    let default_sp = &fixtures::defaults().service_principal.object_id;
    let by_ids = g
        .post(
            "/v1.0/directoryObjects/getByIds",
            json!({"ids": [mi.id, "00000000-0000-0000-0000-000000000000", default_sp], "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"]}),
        )
        .await;
    assert_eq!(by_ids.status, StatusCode::OK, "{}", by_ids.body);
    let value = by_ids.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    assert_eq!(value[0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    assert_eq!(value[0]["id"], mi.id.as_str());
    assert_eq!(value[1]["id"], default_sp.as_str());
    let users_only = g.post("/v1.0/directoryObjects/getByIds", json!({"ids": [default_sp], "types": ["user"]})).await;
    assert_eq!(users_only.body["value"], json!([]));
    let bad_type = g.post("/v1.0/directoryObjects/getByIds", json!({"ids": [default_sp], "types": ["robot"]})).await;
    assert_graph_error(&bad_type, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let no_ids = g.post("/v1.0/directoryObjects/getByIds", json!({})).await;
    assert_graph_error(&no_ids, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let one = g.get(&format!("/v1.0/directoryObjects/{default_sp}")).await;
    assert_eq!(one.body["@odata.type"], "#microsoft.graph.servicePrincipal");
}

#[tokio::test]
async fn users_me_and_unknown_paths_answer_graph_json() {
    let g = Graph::new().await;
    let users = g.get(&filter_uri("users", "userPrincipalName eq 'someone@armlet.onmicrosoft.com'")).await;
    assert_eq!(users.status, StatusCode::OK);
    assert_eq!(users.body["value"], json!([]));
    assert_graph_error(
        &g.get("/v1.0/users/someone@armlet.onmicrosoft.com").await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    assert_graph_error(&g.get("/v1.0/me").await, StatusCode::BAD_REQUEST, "BadRequest");
    assert_graph_error(&g.get("/v1.0/me/ownedObjects").await, StatusCode::BAD_REQUEST, "BadRequest");
    assert_graph_error(&g.get("/v1.0/groups").await, StatusCode::BAD_REQUEST, "BadRequest");
    let owners =
        g.get(&format!("/v1.0/servicePrincipals/{}/owners", fixtures::defaults().service_principal.object_id)).await;
    assert_graph_error(&owners, StatusCode::BAD_REQUEST, "BadRequest");
    assert_graph_error(
        &g.call(Method::PUT, "/v1.0/servicePrincipals", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
    );
    assert_graph_error(&g.get("/v1.0/servicePrincipals(displayName='x')").await, StatusCode::BAD_REQUEST, "BadRequest");
    assert_graph_error(
        &g.get("/v1.0/servicePrincipals(appId='nope')").await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    let echoed = {
        let request = Request::builder()
            .uri("/v1.0/users")
            .header(header::AUTHORIZATION, format!("Bearer {}", g.token.as_deref().unwrap()))
            .header("client-request-id", "abc-123")
            .body(Body::empty())
            .unwrap();
        router::router(g.state.clone()).oneshot(request).await.unwrap()
    };
    assert_eq!(echoed.headers()["client-request-id"], "abc-123");
}

#[test]
fn secrets_look_like_azure_ones() {
    let secrets: Vec<String> = (0..50).map(|_| super::new_secret()).collect();
    for s in &secrets {
        assert_eq!(s.len(), 40, "{s}");
        assert!(s[..3].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(s[3..4].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(&s[4..6], "Q~");
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "_.~-".contains(c)));
    }
    let unique: std::collections::HashSet<_> = secrets.iter().collect();
    assert_eq!(unique.len(), secrets.len());
}

#[test]
fn times_parse_in_the_forms_clients_send() {
    for s in [
        "2027-01-02T03:04:05Z",
        "2027-01-02T03:04:05.1234567Z",
        "2027-01-02T03:04:05+00:00",
        "2027-01-02T03:04:05",
        "2027-01-02",
    ] {
        assert!(super::parse_time(s).is_some(), "{s}");
    }
    assert!(super::parse_time("tomorrow").is_none());
    assert_eq!(super::graph_time(super::parse_time("2027-01-02T03:04:05.9Z").unwrap()), "2027-01-02T03:04:05Z");
}

#[test]
fn alternate_keys() {
    assert_eq!(
        super::alternate_key("servicePrincipals(appId='abc')"),
        Some(("servicePrincipals".into(), "abc".into()))
    );
    assert_eq!(super::alternate_key("applications(appid = 'it''s')"), Some(("applications".into(), "it's".into())));
    assert_eq!(super::alternate_key("applications(uniqueName='x')"), None);
    assert_eq!(super::alternate_key("applications"), None);
}
