//! Role assignments, enforcement and explanations through `app(state)`, on a frozen clock.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

fn role_id(guid: &str) -> String {
    format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{guid}", sub_id())
}

async fn new_identity(app: &TestApp, token: &str, group: &str, name: &str) -> (String, String) {
    app.put_group(token, group, "westus2").await;
    let uri = format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30",
        sub_id()
    );
    let (status, _, body) = app.send(Method::PUT, &uri, Some(token), Some(json!({"location": "westus2"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (body["properties"]["principalId"].as_str().unwrap().to_owned(), body["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn explain_names_the_granting_assignment_or_what_is_missing() {
    let app = TestApp::new().await;
    let scope = format!("/subscriptions/{}", sub_id());
    let uri = format!(
        "/_armlet/explain?principal={}&action=Microsoft.ManagedIdentity/userAssignedIdentities/write&scope={scope}/resourceGroups/rg",
        object_id()
    );
    let (status, body) = app.get_public(&uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);
    assert_eq!(body["grantedBy"]["roleName"], "Owner");
    assert_eq!(body["grantedBy"]["scope"], scope);

    let stranger = uuid::Uuid::new_v4();
    let (_, denied) = app
        .get_public(&format!(
            "/_armlet/explain?principal={stranger}&action=Microsoft.ManagedIdentity/userAssignedIdentities/write&scope={scope}"
        ))
        .await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["missingAction"], "Microsoft.ManagedIdentity/userAssignedIdentities/write");
    let roles: Vec<&str> =
        denied["rolesThatWouldAllow"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(roles.first(), Some(&"Managed Identity Contributor"), "narrowest role first: {roles:?}");
    assert!(roles.contains(&"Contributor") && roles.last() == Some(&"Owner"), "{roles:?}");
}

#[tokio::test]
async fn a_new_grant_is_pending_until_the_propagation_delay_passes() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (principal, _) = new_identity(&app, &token, "rbac-pending", "workload").await;
    let scope = group_id("rbac-pending");
    let name = uuid::Uuid::new_v4();
    let uri = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01");
    let body = json!({"properties": {"roleDefinitionId": role_id(CONTRIBUTOR), "principalId": principal}});

    // A principal created this instant is not yet known without principalType.
    let (status, _, err) = app.send(Method::PUT, &uri, Some(&token), Some(body.clone())).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "PrincipalNotFound");
    let mut typed = body.clone();
    typed["properties"]["principalType"] = json!("ServicePrincipal");
    let (status, _, created) = app.send(Method::PUT, &uri, Some(&token), Some(typed)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let explain = format!(
        "/_armlet/explain?principal={principal}&action=Microsoft.ManagedIdentity/userAssignedIdentities/write&scope={scope}"
    );
    let (_, pending) = app.get_public(&explain).await;
    assert_eq!(pending["allowed"], false);
    assert_eq!(pending["pending"][0]["roleName"], "Contributor");
    let delay = app.state.settings.propagation_delay;
    assert_eq!(pending["pending"][0]["effectiveAt"], armlet::clock::rfc3339(FROZEN_AT + delay));

    app.state.clock.advance_by(delay).unwrap();
    let (_, allowed) = app.get_public(&explain).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");

    // The same grant under another name is a conflict, and the permissions API shows the grant.
    let other = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        uuid::Uuid::new_v4()
    );
    let mut again = body.clone();
    again["properties"]["principalType"] = json!("ServicePrincipal");
    let (status, _, err) = app.send(Method::PUT, &other, Some(&token), Some(again)).await;
    assert_arm_error(status, &err, StatusCode::CONFLICT, "RoleAssignmentExists");

    let (status, perms) =
        app.get(&format!("{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"), &token).await;
    assert_eq!(status, StatusCode::OK, "{perms}");
    assert_eq!(perms["value"][0]["actions"], json!(["*"]), "the default principal is Owner: {perms}");
}

#[tokio::test]
async fn enforcement_refuses_a_caller_without_a_grant() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "guarded", "westus2").await;
    let mut claims = valid_claims();
    claims.oid = uuid::Uuid::new_v4().to_string();
    let stranger = mint(&claims, &key());
    let (status, _, err) =
        app.send(Method::PUT, &group_uri("other"), Some(&stranger), Some(json!({"location": "westus2"}))).await;
    let message = assert_arm_error(status, &err, StatusCode::FORBIDDEN, "AuthorizationFailed");
    assert!(message.contains("Microsoft.Resources/subscriptions/resourceGroups/write"), "{message}");
    assert!(message.contains(&claims.oid), "{message}");
    // A subscription the caller has no role in is not listed.
    let (status, subs) = app.get(&format!("/subscriptions?api-version={SUB_API}"), &stranger).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(subs["value"], json!([]));
}

#[tokio::test]
async fn a_list_shows_a_group_scoped_reader_only_what_it_may_read() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (principal, _) = new_identity(&app, &token, "visible", "reader").await;
    app.put_group(&token, "hidden", "westus2").await;
    let name = uuid::Uuid::new_v4();
    let uri = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01",
        group_id("visible")
    );
    let reader = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
        sub_id()
    );
    let body = json!({"properties": {"roleDefinitionId": reader, "principalId": principal, "principalType": "ServicePrincipal"}});
    let (status, _, created) = app.send(Method::PUT, &uri, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    app.state.clock.advance_by(app.state.settings.propagation_delay).unwrap();

    let mut claims = valid_claims();
    claims.oid = principal.clone();
    let as_reader = mint(&claims, &key());
    let (status, groups) =
        app.get(&format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id()), &as_reader).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let names: Vec<&str> = groups["value"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["visible"], "only the group it may read");
    let (status, subs) = app.get(&format!("/subscriptions?api-version={SUB_API}"), &as_reader).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(subs["value"].as_array().unwrap().len(), 1, "a role anywhere in the subscription lists it");
    let (status, err) = app.get(&format!("{}?api-version={RG_API}", group_id("hidden")), &as_reader).await;
    assert_arm_error(status, &err, StatusCode::FORBIDDEN, "AuthorizationFailed");
}
