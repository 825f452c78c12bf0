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
