//! ARM's error envelope and response headers on everything, and how request bodies are
//! refused (size, JSON, types, and the resource group rules).

use armlet::Settings;
use armlet::arm::headers::http_date;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// The headers ARM puts on every response.
fn assert_arm_headers(headers: &HeaderMap, what: &str) -> (String, String) {
    let request_id =
        header_str(headers, "x-ms-request-id").unwrap_or_else(|| panic!("{what}: no x-ms-request-id")).to_owned();
    uuid::Uuid::parse_str(&request_id)
        .unwrap_or_else(|_| panic!("{what}: x-ms-request-id '{request_id}' is not a GUID"));
    let correlation = header_str(headers, "x-ms-correlation-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-ms-correlation-request-id"))
        .to_owned();
    assert!(!correlation.is_empty(), "{what}: empty correlation id");
    assert_eq!(
        header_str(headers, "date"),
        Some(http_date(FROZEN_AT).as_str()),
        "{what}: Date comes from the simulated clock"
    );
    (request_id, correlation)
}

#[tokio::test]
async fn every_error_is_the_arm_envelope_with_arm_headers() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    let (status, body) = app.put_group(&token, "exists", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    /// Method, URI, token, body, and the status and code ARM answers.
    type Case<'a> = (Method, String, Option<&'a str>, Option<Value>, StatusCode, &'static str);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}"),
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
        ),
        (
            Method::GET,
            format!("/subscriptions/{sub}/resourcegroups"),
            Some(&token),
            None,
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
        ),
        (Method::GET, group_uri("missing"), Some(&token), None, StatusCode::NOT_FOUND, "ResourceGroupNotFound"),
        (
            Method::PUT,
            group_uri("exists"),
            Some(&token),
            Some(json!({ "location": "eastus" })),
            StatusCode::CONFLICT,
            "InvalidResourceGroupLocation",
        ),
        (
            Method::PATCH,
            format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}"),
            Some(&token),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        (
            Method::GET,
            format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}&$filter=bogus"),
            Some(&token),
            None,
            StatusCode::BAD_REQUEST,
            "InvalidFilterInQueryString",
        ),
        (
            Method::POST,
            "/_armlet/clock/advance".to_owned(),
            None,
            Some(json!({ "by": "nonsense" })),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
    ];
    let mut request_ids = std::collections::HashSet::new();
    for (method, uri, token, body, want, code) in cases {
        let what = format!("{method} {uri}");
        let (status, headers, body) = app.send(method, &uri, token, body).await;
        assert_arm_error(status, &body, want, code);
        assert_eq!(header_str(&headers, "content-type"), Some("application/json"), "{what}");
        let (request_id, correlation) = assert_arm_headers(&headers, &what);
        assert_eq!(correlation, request_id, "{what}: without a correlation id, the request id stands in");
        assert!(request_ids.insert(request_id), "{what}: request ids repeat");
    }
}

#[tokio::test]
async fn successes_carry_arm_headers_too() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    for (method, uri, auth) in [
        (Method::GET, format!("/subscriptions/{sub}?api-version={SUB_API}"), true),
        (Method::GET, format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}"), true),
        (Method::GET, "/metadata/endpoints?api-version=2019-05-01".to_owned(), false),
        (Method::GET, "/_armlet/health".to_owned(), false),
        (Method::GET, format!("/{}/v2.0/.well-known/openid-configuration", tenant_id()), false),
    ] {
        let what = format!("{method} {uri}");
        let (status, headers, body) = app.send(method, &uri, auth.then_some(token.as_str()), None).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert_arm_headers(&headers, &what);
    }
}

#[tokio::test]
async fn the_correlation_id_is_echoed_and_the_client_request_id_returned_on_request() {
    let app = TestApp::new().await;
    let token = app.token().await;
    for uri in [format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id()), group_uri("missing")] {
        let (status, headers, body) = app
            .send_raw(
                Method::GET,
                &uri,
                Some(&token),
                &[
                    ("x-ms-correlation-request-id", "corr-1234"),
                    ("x-ms-client-request-id", "client-5678"),
                    ("x-ms-return-client-request-id", "true"),
                ],
                Vec::new(),
            )
            .await;
        assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND, "{uri}: {status} {body}");
        let (request_id, correlation) = assert_arm_headers(&headers, &uri);
        assert_eq!(correlation, "corr-1234", "{uri}");
        assert_ne!(request_id, "corr-1234");
        assert_eq!(header_str(&headers, "x-ms-client-request-id"), Some("client-5678"), "{uri}");
        assert_eq!(header_str(&headers, "x-ms-ratelimit-remaining-subscription-reads"), Some("11999"), "{uri}");
    }
    // Without x-ms-return-client-request-id the client id is not echoed.
    let (_, headers, _) = app
        .send_raw(
            Method::GET,
            &group_uri("missing"),
            Some(&token),
            &[("x-ms-client-request-id", "client-5678")],
            Vec::new(),
        )
        .await;
    assert_eq!(header_str(&headers, "x-ms-client-request-id"), None);
}

#[tokio::test]
async fn the_fixed_routes_refuse_wrong_methods_with_the_arm_envelope() {
    let app = TestApp::new().await;
    for (method, uri) in [
        (Method::GET, "/_armlet/clock/advance".to_owned()),
        (Method::POST, "/_armlet/info".to_owned()),
        (Method::DELETE, "/_armlet/clock".to_owned()),
    ] {
        let what = format!("{method} {uri}");
        let (status, headers, body) = app.send(method, &uri, None, None).await;
        assert_arm_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
        assert_arm_headers(&headers, &what);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_creates_nothing() {
    let app = TestApp::with_settings(Settings { max_body_bytes: 1024, ..Settings::default() }).await;
    let token = app.token().await;

    let big = json!({ "location": "westus2", "tags": { "pad": "x".repeat(2000) } });
    let (status, headers, body) = app.send(Method::PUT, &group_uri("big"), Some(&token), Some(big)).await;
    let message = assert_arm_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge");
    assert_eq!(message, "The request content size exceeds the maximum allowed size of 1024 bytes.");
    assert_arm_headers(&headers, "413");
    assert!(app.stored(&group_id("big")).is_none());
    let (status, body) = app.get(&group_uri("big"), &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");

    // Just under the limit is fine.
    let small = json!({ "location": "westus2", "tags": { "pad": "x".repeat(900) } });
    assert!(serde_json::to_vec(&small).expect("json").len() <= 1024);
    let (status, _, body) = app.send(Method::PUT, &group_uri("small"), Some(&token), Some(small)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tags"]["pad"].as_str().map(str::len), Some(900));
}

#[tokio::test]
async fn bad_bodies_are_invalid_request_content_and_create_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cases: [(&str, &[u8]); 6] = [
        ("malformed", b"{\"location\": \"westus2\""),
        ("notjson", b"location=westus2"),
        ("locationnumber", br#"{"location": 5}"#),
        ("tagnumber", br#"{"location":"westus2","tags":{"a":1}}"#),
        ("tagsarray", br#"{"location":"westus2","tags":["a"]}"#),
        ("empty", b""),
    ];
    for (name, raw) in cases {
        let (status, headers, body) = app
            .send_raw(
                Method::PUT,
                &group_uri(name),
                Some(&token),
                &[("content-type", "application/json")],
                raw.to_vec(),
            )
            .await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");
        assert!(
            message.starts_with("The request content was invalid and could not be deserialized"),
            "{name}: {message}"
        );
        assert_arm_headers(&headers, name);
        assert!(app.stored(&group_id(name)).is_none(), "{name} was created");
        let (status, body) = app.get(&group_uri(name), &token).await;
        assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    }
}

#[tokio::test]
async fn a_group_needs_a_known_location() {
    let app = TestApp::new().await;
    let token = app.token().await;
    for (name, body) in [
        ("nolocation", json!({})),
        ("emptylocation", json!({ "location": "" })),
        ("blanklocation", json!({ "location": "  ", "tags": {} })),
        ("nulllocation", json!({ "location": null })),
    ] {
        let (status, _, resp) = app.send(Method::PUT, &group_uri(name), Some(&token), Some(body)).await;
        let message = assert_arm_error(status, &resp, StatusCode::BAD_REQUEST, "LocationRequired");
        assert_eq!(message, "The location property is required for this definition.");
        assert!(app.stored(&group_id(name)).is_none());
    }

    let (status, body) = app.put_group(&token, "mars", "marsnorth").await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "LocationNotAvailableForResourceGroup");
    assert!(
        message.starts_with(
            "The provided location 'marsnorth' is not available for resource group. List of available regions is '"
        ),
        "{message}"
    );
    assert!(message.contains("westus2"), "{message}");
    assert!(app.stored(&group_id("mars")).is_none());
}

#[tokio::test]
async fn bad_group_names_are_invalid_resource_group() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let long = "x".repeat(91);
    for (segment, decoded, reason) in [
        ("bad%20name", "bad name", "has these invalid characters: ' '"),
        ("ends.", "ends.", "cannot end with a period"),
        ("a%2Ab", "a*b", "has these invalid characters: '*'"),
        (long.as_str(), long.as_str(), "is too long"),
    ] {
        let (status, body) = app.put_group(&token, segment, "westus2").await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidResourceGroup");
        assert!(message.starts_with(&format!("The provided resource group name '{decoded}' ")), "{message}");
        assert!(message.contains(reason), "{segment}: {message}");
        assert!(app.stored(&group_id(decoded)).is_none());
    }
    // 90 characters is the longest allowed name.
    let longest = "y".repeat(90);
    let (status, body) = app.put_group(&token, &longest, "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], longest);
}

#[tokio::test]
async fn a_group_cannot_move() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "pinned", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.put_group(&token, "pinned", "eastus").await;
    let message = assert_arm_error(status, &body, StatusCode::CONFLICT, "InvalidResourceGroupLocation");
    assert_eq!(
        message,
        "Invalid resource group location 'eastus'. The Resource group already exists in location 'westus2'."
    );
    let (status, body) = app.get(&group_uri("pinned"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["location"], "westus2");
    // The same location, spelt as a display name, is an update.
    let (status, body) = app.put_group(&token, "pinned", "West US 2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
