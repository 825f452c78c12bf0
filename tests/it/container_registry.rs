//! Microsoft.ContainerRegistry registries.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

fn registry_uri(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerRegistry/registries/{name}?api-version=2026-09-01-preview",
        sub_id()
    )
}

#[tokio::test]
async fn registries_crud_with_global_names() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "acr", "westus2").await;
    let body =
        json!({ "location": "westus2", "sku": { "name": "Basic" }, "properties": { "adminUserEnabled": false } });
    let (status, _, registry) =
        app.send(Method::PUT, &registry_uri("acr", "MyRegistry1"), Some(&token), Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{registry}");
    assert_eq!(registry["properties"]["loginServer"], "myregistry1.azurecr.io");
    assert_eq!(registry["properties"]["provisioningState"], "Succeeded");
    assert_eq!(registry["sku"], json!({ "name": "Basic", "tier": "Basic" }));
    // Names are global: another group cannot take it.
    app.put_group(&token, "acr2", "westus2").await;
    let (status, _, err) =
        app.send(Method::PUT, &registry_uri("acr2", "myregistry1"), Some(&token), Some(body.clone())).await;
    assert_arm_error(status, &err, StatusCode::CONFLICT, "Conflict");
    let (status, _, err) =
        app.send(Method::PUT, &registry_uri("acr", "my-reg"), Some(&token), Some(body.clone())).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "InvalidResourceName");
    let (status, _, err) = app
        .send(
            Method::PUT,
            &registry_uri("acr", "other1"),
            Some(&token),
            Some(json!({ "location": "westus2", "sku": { "name": "Gold" } })),
        )
        .await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "InvalidParameter");
    let (status, _, patched) = app
        .send(
            Method::PATCH,
            &registry_uri("acr", "myregistry1"),
            Some(&token),
            Some(json!({ "properties": { "adminUserEnabled": true } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["properties"]["adminUserEnabled"], true);
    let (_, list) = app
        .get(
            &format!(
                "/subscriptions/{}/providers/Microsoft.ContainerRegistry/registries?api-version=2026-09-01-preview",
                sub_id()
            ),
            &token,
        )
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (status, _, _) = app.send(Method::DELETE, &registry_uri("acr", "myregistry1"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&registry_uri("acr", "myregistry1"), &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceNotFound");
}
