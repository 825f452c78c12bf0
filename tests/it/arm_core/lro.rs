//! Long-running operations: a group deletion answers 202 with `Location` and `Retry-After`,
//! shows `Deleting` until settled, and takes everything inside the group with it.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn fake_resource(group: &str, ty: &str, name: &str) -> (String, Value) {
    let id = format!("{}/providers/Microsoft.Fake/{ty}/{name}", group_id(group));
    let value = json!({
        "id": id,
        "name": name,
        "type": format!("Microsoft.Fake/{ty}"),
        "location": "westus2",
    });
    (id, value)
}

#[tokio::test]
async fn deleting_a_group_is_a_long_running_operation() {
    let app = TestApp::new().await;
    let token = app.token().await;
    for name in ["doomed", "doomed2", "keeper"] {
        let (status, body) = app.put_group(&token, name, "westus2").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (inside, inside_json) = fake_resource("doomed", "widgets", "w1");
    let child_id = format!("{inside}/parts/p1");
    let (outside, outside_json) = fake_resource("keeper", "widgets", "w1");
    // "doomed2" shares a prefix with "doomed" but is another group.
    let (neighbour, neighbour_json) = fake_resource("doomed2", "widgets", "w1");
    app.put_raw_resource(&inside, &inside_json).await;
    app.put_raw_resource(&child_id, &json!({ "id": child_id, "name": "p1" })).await;
    app.put_raw_resource(&outside, &outside_json).await;
    app.put_raw_resource(&neighbour, &neighbour_json).await;

    let (status, headers, body) = app.send(Method::DELETE, &group_uri("Doomed"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, Value::Null, "202 has no body");
    assert_eq!(header_str(&headers, "retry-after"), Some("1"));
    assert_eq!(header_str(&headers, "x-ms-ratelimit-remaining-subscription-deletes"), Some("14999"));
    let location = header_str(&headers, "location").expect("a Location header").to_owned();
    let prefix = format!("https://{HOST}/subscriptions/{}/operationresults/", sub_id());
    assert!(location.starts_with(&prefix), "{location}");
    assert_eq!(query_pairs(&location), vec![("api-version".to_owned(), RG_API.to_owned())], "{location}");
    let operation_id = path_of(&location)
        .trim_start_matches(&format!("/subscriptions/{}/operationresults/", sub_id()))
        .split('?')
        .next()
        .expect("operation id")
        .to_owned();
    uuid::Uuid::parse_str(&operation_id).expect("the operation id is a GUID");

    // Nothing has settled it yet (no ticker in-process): the group shows Deleting and
    // refuses writes.
    let (status, group) = app.get(&group_uri("doomed"), &token).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["properties"]["provisioningState"], "Deleting");
    assert_eq!(group["name"], "doomed");
    let (status, body) = app.put_group(&token, "doomed", "westus2").await;
    assert_arm_error(status, &body, StatusCode::CONFLICT, "ResourceGroupBeingDeleted");
    let (_, health) = app.get("/_armlet/health", &token).await;
    assert_eq!(health["pendingOperations"], 1);

    // The clock is frozen and the deletion takes no simulated time: the first poll of the
    // Location settles it.
    let (status, headers, body) = app.send(Method::GET, &path_of(&location), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "settled: {body}");
    assert_eq!(body, Value::Null);
    assert!(header_str(&headers, "x-ms-request-id").is_some());

    let (status, body) = app.get(&group_uri("doomed"), &token).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    assert_eq!(message, "Resource group 'doomed' could not be found.");
    let (status, _, body) = app.send(Method::HEAD, &group_uri("doomed"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, Value::Null);

    assert!(app.stored(&group_id("doomed")).is_none());
    assert!(app.stored(&inside).is_none(), "the resource inside went");
    assert!(app.stored(&child_id).is_none(), "its child went");
    assert!(app.stored(&outside).is_some(), "other groups keep theirs");
    assert!(app.stored(&neighbour).is_some(), "a group whose name starts the same keeps its resources");
    let (status, body) = app.get(&group_uri("doomed2"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Polling again answers the same; nothing is pending.
    let (status, _, body) = app.send(Method::GET, &path_of(&location), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, health) = app.get("/_armlet/health", &token).await;
    assert_eq!(health["pendingOperations"], 0);

    // The name is free again.
    let (status, body) = app.put_group(&token, "doomed", "eastus").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["location"], "eastus");
    assert!(body.get("tags").is_none());
}

#[tokio::test]
async fn deleting_a_missing_group_and_polling_a_missing_operation_are_404() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, _, body) = app.send(Method::DELETE, &group_uri("ghost"), Some(&token), None).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    assert_eq!(message, "Resource group 'ghost' could not be found.");
    let (_, health) = app.get("/_armlet/health", &token).await;
    assert_eq!(health["pendingOperations"], 0, "no operation was started");

    let unknown = "6f1f0c8e-0000-4000-8000-000000000000";
    let (status, body) =
        app.get(&format!("/subscriptions/{}/operationresults/{unknown}?api-version={RG_API}", sub_id()), &token).await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_FOUND, "OperationNotFound");
    assert_eq!(message, format!("The operation '{unknown}' could not be found."));
}

#[tokio::test]
async fn a_group_being_deleted_refuses_every_write() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "going", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, _) = app.send(Method::DELETE, &group_uri("going"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // PUT already refuses; PATCH must too, instead of answering 200 for a group that is
    // about to vanish.
    let (status, body) = app.put_group(&token, "going", "westus2").await;
    let message = assert_arm_error(status, &body, StatusCode::CONFLICT, "ResourceGroupBeingDeleted");
    assert_eq!(message, "The resource group 'going' is in deprovisioning state and cannot perform this operation.");
    let (status, _, body) =
        app.send(Method::PATCH, &group_uri("going"), Some(&token), Some(json!({ "tags": { "late": "write" } }))).await;
    let message = assert_arm_error(status, &body, StatusCode::CONFLICT, "ResourceGroupBeingDeleted");
    assert_eq!(message, "The resource group 'going' is in deprovisioning state and cannot perform this operation.");
    let stored = app.stored(&group_id("going")).expect("still there until settled");
    assert!(stored.get("tags").is_none(), "the refused PATCH wrote: {stored}");
}
