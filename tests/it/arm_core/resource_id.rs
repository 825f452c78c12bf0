//! ARM matches paths and names case-insensitively but answers with the caller's latest
//! casing; it resolves the subscription and the containing resource group before a handler.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn ids_match_case_insensitively_and_keep_the_callers_casing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();

    let (status, _, created) = app
        .send(
            Method::PUT,
            &format!("/subscriptions/{sub}/resourcegroups/MyRG?api-version={RG_API}"),
            Some(&token),
            Some(json!({ "location": "westus2" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "MyRG");
    assert_eq!(created["id"], format!("/subscriptions/{sub}/resourceGroups/MyRG"));
    assert_eq!(created["type"], "Microsoft.Resources/resourceGroups");
    assert_eq!(created["location"], "westus2");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");

    // Every literal segment, the name and the query parameter name in another casing.
    let (status, got) =
        app.get(&format!("/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/myrg?API-VERSION={RG_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["name"], "MyRG");
    assert_eq!(got["id"], format!("/subscriptions/{sub}/resourceGroups/MyRG"));
    assert_eq!(got, created, "GET answers what PUT stored");

    // A PUT with another casing updates the same group, and its casing wins.
    let (status, updated) = app.put_group(&token, "MYRG", "westus2").await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "MYRG");
    assert_eq!(updated["id"], group_id("MYRG"));
    let (status, got) = app.get(&group_uri("myRg"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "MYRG");

    // Still one group, not two.
    let (status, list) = app.get(&format!("/subscriptions/{sub}/resourceGroups?api-version={RG_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> =
        list["value"].as_array().expect("value array").iter().map(|g| g["name"].as_str().expect("name")).collect();
    assert_eq!(names, vec!["MYRG"]);
}

#[tokio::test]
async fn names_are_percent_decoded_and_locations_normalised() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, _, body) = app
        .send(Method::PUT, &group_uri("my%28rg%29.v1"), Some(&token), Some(json!({ "location": "West US 2" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "my(rg).v1");
    assert_eq!(body["id"], group_id("my(rg).v1"));
    assert_eq!(body["location"], "westus2", "display names normalise");
    let (status, got) = app.get(&group_uri("MY(RG).V1"), &token).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["name"], "my(rg).v1");
}

#[tokio::test]
async fn an_unknown_subscription_is_subscription_not_found() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let unknown = "00000000-0000-4000-8000-00000000dead";

    for (method, uri, body) in [
        (Method::GET, format!("/subscriptions/{unknown}?api-version={SUB_API}"), None),
        (Method::GET, format!("/subscriptions/{unknown}/resourcegroups?api-version={RG_API}"), None),
        (
            Method::PUT,
            format!("/subscriptions/{unknown}/resourcegroups/rg1?api-version={RG_API}"),
            Some(json!({ "location": "westus2" })),
        ),
        (Method::GET, format!("/subscriptions/{unknown}/resources?api-version={RG_API}"), None),
    ] {
        let (status, _, body) = app.send(method.clone(), &uri, Some(&token), body).await;
        let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "SubscriptionNotFound");
        assert_eq!(message, format!("The subscription '{unknown}' could not be found."), "{method} {uri}");
    }
    assert!(
        app.stored(&format!("/subscriptions/{unknown}/resourceGroups/rg1")).is_none(),
        "nothing was created under an unknown subscription"
    );
}

#[tokio::test]
async fn a_missing_containing_group_is_resource_group_not_found() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app
        .get(&format!("/subscriptions/{}/resourcegroups/nope/resources?api-version={RG_API}", sub_id()), &token)
        .await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    assert_eq!(message, "Resource group 'nope' could not be found.");

    // The group's own GET says the same.
    let (status, body) = app.get(&group_uri("nope"), &token).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    assert_eq!(message, "Resource group 'nope' could not be found.");
}
