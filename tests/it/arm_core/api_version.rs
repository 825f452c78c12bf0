//! api-version rules and what ARM answers for paths, namespaces, types and methods it does
//! not serve.

use armlet::Settings;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_missing_api_version_is_missing_api_version_parameter() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    for uri in [
        format!("/subscriptions/{sub}/resourcegroups"),
        format!("/subscriptions/{sub}/resourcegroups?api-version="),
        format!("/subscriptions/{sub}/resourcegroups?$top=5"),
        format!("/subscriptions/{sub}"),
    ] {
        let (status, body) = app.get(&uri, &token).await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "MissingApiVersionParameter");
        assert_eq!(message, "The api-version query parameter (?api-version=) is required for all requests.", "{uri}");
    }
    // A write without api-version creates nothing.
    let (status, _, body) = app
        .send(
            Method::PUT,
            &format!("/subscriptions/{sub}/resourcegroups/noversion"),
            Some(&token),
            Some(json!({ "location": "westus2" })),
        )
        .await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "MissingApiVersionParameter");
    assert!(app.stored(&group_id("noversion")).is_none());
}

#[tokio::test]
async fn an_unknown_api_version_lists_the_supported_ones() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let supported = armlet::fixtures::providers()
        .iter()
        .find(|p| p.namespace == "Microsoft.Resources")
        .and_then(|p| p.resource_types.iter().find(|t| t.resource_type == "resourceGroups"))
        .expect("Microsoft.Resources/resourceGroups fixture")
        .api_versions
        .join(",");
    for version in ["2099-01-01", "latest", "2024-11-01-foo"] {
        let (status, body) =
            app.get(&format!("/subscriptions/{}/resourcegroups?api-version={version}", sub_id()), &token).await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidApiVersionParameter");
        assert_eq!(
            message,
            format!("The api-version '{version}' is invalid. The supported versions are '{supported}'.")
        );
        assert!(message.contains(RG_API), "{message}");
    }
    // api-version values compare case-insensitively (`-PREVIEW`).
    let (status, body) =
        app.get(&format!("/subscriptions/{}/resourcegroups?api-version=2014-04-01-PREVIEW", sub_id()), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn skip_api_version_check_accepts_anything() {
    let app = TestApp::with_settings(Settings { skip_api_version_check: true, ..Settings::default() }).await;
    let token = app.token().await;
    for uri in [
        format!("/subscriptions/{}/resourcegroups", sub_id()),
        format!("/subscriptions/{}/resourcegroups?api-version=1999-01-01", sub_id()),
    ] {
        let (status, body) = app.get(&uri, &token).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["value"], json!([]));
    }
}

#[tokio::test]
async fn an_unknown_namespace_is_invalid_resource_namespace() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "rg", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sub = sub_id();

    // The namespace alone (Providers_Get).
    let (status, body) =
        app.get(&format!("/subscriptions/{sub}/providers/Microsoft.Nope?api-version={RG_API}"), &token).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "InvalidResourceNamespace");
    assert_eq!(message, "The resource namespace 'Microsoft.Nope' is invalid.");

    // A resource in a namespace no provider has: ARM names the namespace, not the type
    // ("The resource namespace 'Microsoft.Container' is invalid." for a mistyped
    // Microsoft.ContainerInstance/containerGroups).
    for uri in [
        format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Nope/widgets/w1?api-version=2024-01-01"),
        format!("/subscriptions/{sub}/providers/Microsoft.Nope/widgets?api-version=2024-01-01"),
    ] {
        let (status, body) = app.get(&uri, &token).await;
        let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "InvalidResourceNamespace");
        assert_eq!(message, "The resource namespace 'Microsoft.Nope' is invalid.", "{uri}");
    }
}

#[tokio::test]
async fn an_unknown_type_in_a_known_namespace_is_invalid_resource_type() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "rg", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .get(
            &format!(
                "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.ContainerService/widgets/w1?api-version=2026-08-01",
                sub_id()
            ),
            &token,
        )
        .await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidResourceType");
    assert!(
        message.starts_with(
            "The resource type 'widgets' could not be found in the namespace 'Microsoft.ContainerService'"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_path_outside_arm_is_not_found() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.get("/nothing/here?api-version=2024-11-01", &token).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(message, "The requested path '/nothing/here' is not an ARM resource path.");
}

#[tokio::test]
async fn a_wrong_method_is_method_not_allowed() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    for (method, uri) in [
        (Method::POST, format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}")),
        (Method::DELETE, format!("/subscriptions/{sub}?api-version={SUB_API}")),
        (Method::PUT, format!("/subscriptions/{sub}/locations?api-version={SUB_API}")),
        (Method::POST, format!("/subscriptions/{sub}/resourcegroups/rg?api-version={RG_API}")),
    ] {
        let (status, _, body) = app.send(method.clone(), &uri, Some(&token), Some(json!({}))).await;
        let message = assert_arm_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
        assert_eq!(message, format!("The requested resource does not support http method '{method}'."), "{uri}");
    }
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    // The route table's own rule ("HEAD is answered by the GET handler unless a route says
    // otherwise"), and HTTP's: HEAD is GET without the body.
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    for uri in [
        format!("/subscriptions/{sub}?api-version={SUB_API}"),
        format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}"),
        format!("/subscriptions/{sub}/providers/Microsoft.Resources?api-version={RG_API}"),
    ] {
        let (get_status, _, get_body) = app.send(Method::GET, &uri, Some(&token), None).await;
        assert_eq!(get_status, StatusCode::OK, "GET {uri}: {get_body}");
        let (status, headers, body) = app.send(Method::HEAD, &uri, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "HEAD {uri}");
        assert_eq!(body, serde_json::Value::Null, "HEAD {uri} has no body");
        assert!(header_str(&headers, "x-ms-request-id").is_some(), "HEAD {uri}");
    }
    // A HEAD of something missing is the GET's 404, without the body.
    let (status, _, body) = app
        .send(
            Method::HEAD,
            &format!("/subscriptions/00000000-0000-4000-8000-00000000dead?api-version={SUB_API}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, serde_json::Value::Null);
}
