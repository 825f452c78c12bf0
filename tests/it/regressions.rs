//! Regression tests for what fuzzing armlet against its OpenAPI document found
//! (tests/e2e/test_fuzz.py): each one pins the fix of one finding.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// An api-version whose tenth byte falls inside a character made the shape check slice the
/// string there and panic (a 500). It is just an invalid api-version.
#[tokio::test]
async fn a_non_ascii_api_version_is_invalid_not_a_panic() {
    let app = TestApp::new().await;
    let token = app.token().await;
    // "2024-11-0" is nine bytes; 'é' is the tenth and eleventh.
    for version in ["2024-11-0%C3%A9", "%C3%B9%C2%8A%F2%A0%89%B8w", "2024-11-01%C3%A9preview", "%F0%9F%98%80"] {
        let uri = format!("/subscriptions/{}/resourcegroups?api-version={version}", sub_id());
        let (status, body) = app.get(&uri, &token).await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidApiVersionParameter");
    }
    assert!(!armlet::arm::api_version::is_well_formed("2024-11-0é"));
    assert!(armlet::arm::api_version::is_well_formed("2024-11-01-preview"));
}

/// The control API's query strings were parsed by axum's `Query`, whose rejections are
/// plain-text 400s; they are ARM's error envelope like every other armlet error.
#[tokio::test]
async fn bad_control_api_query_strings_get_arms_error_envelope() {
    let app = TestApp::new().await;
    for (method, uri) in [
        (Method::GET, "/_armlet/events?limit=-1"),
        (Method::GET, "/_armlet/requests?limit=many"),
        (Method::GET, "/_armlet/explain?principal=p&scope=s"),
        (Method::GET, "/_armlet/node-images?location=westus2&location=eastus"),
        (Method::PUT, "/_armlet/state?dryRun=maybe"),
    ] {
        let (status, headers, body) = app.send(method.clone(), uri, None, Some(json!({}))).await;
        assert_eq!(header_str(&headers, "content-type"), Some("application/json"), "{method} {uri}: {body}");
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
        assert!(message.starts_with("The query string is invalid"), "{method} {uri}: {message}");
    }
}

/// `GET /_armlet/state` exported the AKS internals (`aks/`), published node images
/// (`nodeimage/`) and operation timing (`config/`), and `PUT /_armlet/state` refused that very
/// document as having unknown keys: a state with a cluster could not be restored.
#[tokio::test]
async fn an_exported_state_with_a_cluster_node_images_and_timing_imports_again() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "rg", "westus2").await;
    let cluster = format!(
        "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks?api-version=2026-06-01",
        sub_id()
    );
    let body = json!({
        "location": "westus2",
        "identity": { "type": "SystemAssigned" },
        "properties": { "dnsPrefix": "aks", "agentPoolProfiles": [{ "name": "pool", "count": 1, "mode": "System" }] },
    });
    let (status, _, created) = app.send(Method::PUT, &cluster, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _, published) = app.send(Method::POST, "/_armlet/node-images", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let timing = json!({ "operationTiming": [{ "kind": "Microsoft.ContainerService/*", "polls": 2 }] });
    let (status, _, config) = app.send(Method::PATCH, "/_armlet/config", None, Some(timing)).await;
    assert_eq!(status, StatusCode::OK, "{config}");

    let (status, exported) = app.get_public("/_armlet/state").await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&String> = exported["entries"].as_object().expect("entries").keys().collect();
    for space in ["aks/", "nodeimage/", "config/"] {
        assert!(keys.iter().any(|k| k.starts_with(space)), "no {space} key exported: {keys:?}");
    }

    let (status, _, _) = app.send(Method::POST, "/_armlet/reset", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, imported) = app.send(Method::PUT, "/_armlet/state", None, Some(exported.clone())).await;
    assert_eq!(status, StatusCode::OK, "{imported}");
    let (_, again) = app.get_public("/_armlet/state").await;
    assert_eq!(again["entries"], exported["entries"], "export → reset → import → export is identical");
    let (status, shown) = app.get(&cluster, &token).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body) from a kept-alive
/// connection; `None` when the server closed the connection instead.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, Vec<(String, String)>, Value)> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => raw.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// A request armlet answered before reading its body (here: no api-version) left the body
/// unread, and hyper then closed the connection behind the answer without saying
/// `Connection: close`. Clients that reuse connections (requests: az, the Python SDKs) had
/// their next request on it fail. The body is read first now, so the connection stays usable.
#[tokio::test]
async fn an_early_answer_keeps_the_connection_usable() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(axum::serve(listener, armlet::app(app.state.clone())).into_future());

    let mut stream = TcpStream::connect(address).await.expect("connect");
    let body = format!(r#"{{"location":"westus2","tags":{{"pad":"{}"}}}}"#, "x".repeat(256 * 1024));
    let first = format!(
        "PUT /subscriptions/{}/resourcegroups/rg HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        sub_id(),
        body.len()
    );
    stream.write_all(first.as_bytes()).await.expect("send the first request");
    let (status, headers, error) = read_response(&mut stream).await.expect("the first answer");
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "MissingApiVersionParameter", "{error}");
    assert!(
        !headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
        "the answer closes the connection although the body was small: {headers:?}"
    );

    let second = format!("GET /_armlet/health HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    stream.write_all(second.as_bytes()).await.expect("send the second request on the same connection");
    let (status, _, health) = read_response(&mut stream).await.expect("the connection was closed behind the 400");
    assert_eq!(status, 200, "{health}");
    server.abort();
}

/// A body over the limit is not read to its end: the answer (still the handler's 413, and
/// still the 401 of a bad token first) says `Connection: close`, so no client reuses it.
#[tokio::test]
async fn an_oversized_body_is_413_and_closes_the_connection() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let limit = app.state.settings.max_body_bytes.max(armlet::arm::extract::DEFAULT_BODY_LIMIT);
    let pad = "x".repeat(limit + 1);
    let uri = format!("/subscriptions/{}/resourcegroups/big?api-version={RG_API}", sub_id());
    for (bearer, want, code) in [
        (Some(token.as_str()), StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
        (None, StatusCode::UNAUTHORIZED, "AuthenticationFailed"),
    ] {
        let body = json!({ "location": "westus2", "tags": { "pad": pad } });
        let (status, headers, response) = app.send(Method::PUT, &uri, bearer, Some(body)).await;
        assert_arm_error(status, &response, want, code);
        assert_eq!(header_str(&headers, "connection"), Some("close"), "{response}");
    }
    let (status, missing) = app.get(&group_uri("big"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

/// A state with something in every key space armlet stores: a group, a user-assigned identity
/// with a role assignment (and a deleted one, still fading), a custom role, an AKS cluster,
/// a Graph application with its service principal, a published node image and operation
/// timing.
async fn rich_state(app: &TestApp, token: &str) {
    app.put_group(token, "rich", "westus2").await;
    let identity = format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/workload?api-version=2024-11-30",
        group_id("rich")
    );
    let (status, _, created) =
        app.send(Method::PUT, &identity, Some(token), Some(json!({"location": "westus2"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let principal = created["properties"]["principalId"].as_str().expect("principalId").to_owned();

    let role = "3a1f0000-0000-4000-8000-00000000cafe";
    let role_uri = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}?api-version=2022-04-01",
        sub_id()
    );
    let role_body = json!({"properties": {
        "roleName": "Rich Reader",
        "permissions": [{"actions": ["Microsoft.Resources/subscriptions/resourceGroups/read"]}],
        "assignableScopes": [format!("/subscriptions/{}", sub_id())],
    }});
    let (status, _, created) = app.send(Method::PUT, &role_uri, Some(token), Some(role_body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (name, keep) in
        [("5b2e0000-0000-4000-8000-000000000001", true), ("5b2e0000-0000-4000-8000-000000000002", false)]
    {
        let uri = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01",
            group_id("rich")
        );
        let body = json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", sub_id()),
            "principalId": principal,
            "principalType": "ServicePrincipal",
        }});
        let body = if keep {
            body
        } else {
            let mut reader = body;
            reader["properties"]["roleDefinitionId"] = json!(format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
                sub_id()
            ));
            reader
        };
        let (status, _, assigned) = app.send(Method::PUT, &uri, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{assigned}");
        if !keep {
            let (status, _, deleted) = app.send(Method::DELETE, &uri, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{deleted}");
        }
    }

    let cluster =
        format!("{}/providers/Microsoft.ContainerService/managedClusters/aks?api-version=2026-06-01", group_id("rich"));
    let body = json!({
        "location": "westus2",
        "identity": { "type": "SystemAssigned" },
        "properties": { "dnsPrefix": "aks", "agentPoolProfiles": [{ "name": "pool", "count": 1, "mode": "System" }] },
    });
    let (status, _, created) = app.send(Method::PUT, &cluster, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, _, application) =
        app.send(Method::POST, "/v1.0/applications", Some(token), Some(json!({"displayName": "rich-app"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{application}");
    let sp_body = json!({"appId": application["appId"], "accountEnabled": true, "notes": "kept beside the principal"});
    let (status, _, sp) = app.send(Method::POST, "/v1.0/servicePrincipals", Some(token), Some(sp_body)).await;
    assert_eq!(status, StatusCode::CREATED, "{sp}");

    let (status, _, published) = app.send(Method::POST, "/_armlet/node-images", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let timing =
        json!({ "operationTiming": [{ "kind": "Microsoft.ContainerService/*", "duration": "30s", "polls": 2 }] });
    let (status, _, config) = app.send(Method::PATCH, "/_armlet/config", None, Some(timing)).await;
    assert_eq!(status, StatusCode::OK, "{config}");
}

/// The endpoints that read every directory object, operation and role assignment answer.
async fn assert_readers_answer(app: &TestApp, token: &str, after: &str) {
    let identities = format!(
        "/subscriptions/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30",
        sub_id()
    );
    for uri in ["/v1.0/servicePrincipals", "/v1.0/applications", "/_armlet/events", identities.as_str()] {
        let (status, body) = app.get(uri, token).await;
        assert_eq!(status, StatusCode::OK, "GET {uri} after {after}: {body}");
    }
    let (status, body) =
        app.get(&format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id()), token).await;
    assert_eq!(status, StatusCode::OK, "resource groups after {after}: {body}");
}

/// `PUT /_armlet/state` stored entries whatever their values were: `"dir/sp/x": [1]` imported
/// with 200, and then every reader of service principals (Graph, `/_armlet/events`) answered
/// 500. Each entry is now decoded as its key space's readers decode it first: a bad one is a
/// 400 naming the key and changes nothing, while a real export still imports unchanged.
#[tokio::test]
async fn a_state_document_with_a_value_of_the_wrong_shape_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    rich_state(&app, &token).await;

    let (status, exported) = app.get_public("/_armlet/state").await;
    assert_eq!(status, StatusCode::OK);
    let entries = exported["entries"].as_object().expect("entries").clone();
    let first = |prefix: &str| -> String {
        entries.keys().find(|k| k.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} key: {entries:?}")).clone()
    };
    let layouts = [
        "res/",
        "sub/",
        "tenant/",
        "dir/sp/",
        "dir/spprops/",
        "dir/appid/",
        "dir/mires/",
        "dir/app/",
        "dir/appobj/",
        "op/",
        "oppending/",
        "meta/clock",
        "roledef/",
        "ratomb/",
        "aks/",
        "nodeimage/",
        "config/operationTiming",
    ];
    for layout in layouts {
        first(layout);
    }

    // A real export imports unchanged, after a reset and over itself.
    let (status, _, _) = app.send(Method::POST, "/_armlet/reset", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let (status, _, imported) = app.send(Method::PUT, "/_armlet/state", None, Some(exported.clone())).await;
        assert_eq!(status, StatusCode::OK, "{imported}");
        let (_, again) = app.get_public("/_armlet/state").await;
        assert_eq!(again["entries"], exported["entries"], "export → import → export is identical");
    }
    assert_readers_answer(&app, &token, "a faithful import").await;

    let group_key = format!("res{}", group_id("rich").to_lowercase());
    let identity_key = first(&format!("{group_key}/providers/microsoft.managedidentity/"));
    let group = entries[&group_key].clone();
    let mut nameless = group.clone();
    nameless.as_object_mut().expect("a group is an object").remove("name");
    let corruptions: Vec<(String, Value)> = vec![
        ("dir/sp/x".to_owned(), json!([1])),
        (first("dir/sp/"), json!({"id": "x", "appId": 5})),
        (first("dir/spprops/"), json!("notes")),
        (first("dir/appid/"), json!({"objectId": "x"})),
        (first("dir/mires/"), json!(7)),
        (first("dir/app/"), json!({"id": 5})),
        (first("dir/appobj/"), json!(null)),
        ("dir/users/someone".to_owned(), json!("x")),
        (first("sub/"), json!({})),
        (first("tenant/"), json!(null)),
        (first("op/"), json!({"id": "x"})),
        (first("oppending/"), json!("soon")),
        (armlet::admin::CLOCK_KEY.to_owned(), json!({"mode": "sideways"})),
        (first("roledef/"), json!([])),
        (first("ratomb/"), json!({"assignment": 1, "deletedOn": "yesterday"})),
        (first("aks/"), json!({"nodes": "many"})),
        (first("nodeimage/"), json!({"version": "latest", "released": "2026-03-01T00:00:00Z", "rolloutHours": 0})),
        ("config/operationTiming".to_owned(), json!({"rules": [{"kind": "*", "duration": i64::MAX}]})),
        (identity_key, json!([1])),
        (group_key.clone(), nameless),
        (format!("{group_key}-elsewhere"), group),
        ("meta/other".to_owned(), json!({})),
    ];
    let before = app.get_public("/_armlet/state").await.1;
    for (key, value) in corruptions {
        let mut doc = exported.clone();
        doc["entries"][&key] = value.clone();
        for uri in ["/_armlet/state?dryRun=true", "/_armlet/state"] {
            let (status, _, body) = app.send(Method::PUT, uri, None, Some(doc.clone())).await;
            let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");
            assert!(message.contains(&format!("'{key}'")), "PUT {uri} with {key} = {value}: {message}");
        }
        let (_, after) = app.get_public("/_armlet/state").await;
        assert_eq!(after, before, "a refused import of {key} = {value} changed the store");
        assert_readers_answer(&app, &token, &format!("refusing {key} = {value}")).await;
    }
}
