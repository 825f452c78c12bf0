//! The `/_armlet` control API: info, health and the simulated clock.

use std::time::Duration as StdDuration;

use armlet::Settings;
use armlet::admin::CLOCK_KEY;
use armlet::clock::{Clock, ClockMode, ClockState, parse_rfc3339, rfc3339};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::common::*;

async fn advance(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = app.send(Method::POST, "/_armlet/clock/advance", None, Some(body)).await;
    (status, body)
}

async fn post(app: &TestApp, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = app.send(Method::POST, uri, None, None).await;
    (status, body)
}

fn now_of(clock: &Value) -> OffsetDateTime {
    parse_rfc3339(clock["now"].as_str().unwrap_or_else(|| panic!("no now in {clock}"))).expect("now is RFC 3339")
}

#[tokio::test]
async fn info_describes_the_instance() {
    let app = TestApp::new().await;
    let (status, info) = app.get_public("/_armlet/info").await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let settings = Settings::default();
    for (field, want) in [
        ("name", json!("armlet")),
        ("version", json!(env!("CARGO_PKG_VERSION"))),
        ("httpsUrl", json!(settings.https_url)),
        ("httpUrl", json!(settings.http_url)),
        ("metadataUrl", json!(format!("{}/metadata/endpoints?api-version=2019-05-01", settings.http_url))),
        ("tenantId", json!(tenant_id())),
        ("subscriptionId", json!(sub_id())),
        ("clientId", json!(client_id())),
        ("clientSecret", json!(client_secret())),
        ("dataDir", Value::Null),
        ("caCertificate", json!("")),
    ] {
        assert_eq!(info.get(field), Some(&want), "{field} in {info}");
    }
}

#[tokio::test]
async fn health_is_ready() {
    let app = TestApp::new().await;
    let (status, health) = app.get_public("/_armlet/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ready", "{health}");
    assert_eq!(health["store"], "open", "{health}");
    assert_eq!(health["pendingOperations"], 0, "{health}");
    assert_eq!(health["time"], rfc3339(FROZEN_AT), "{health}");
}

#[tokio::test]
async fn the_clock_moves_forward_only() {
    let app = TestApp::new().await;
    let (status, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(status, StatusCode::OK, "{clock}");
    assert_eq!(now_of(&clock), FROZEN_AT);
    assert_eq!(clock["mode"], "frozen");

    let (status, moved) = advance(&app, json!({ "by": "46d" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let later = FROZEN_AT + Duration::days(46);
    assert_eq!(now_of(&moved), later);
    // Nothing exists yet, so only the node image schedule fires (a release every 14 days).
    let kinds: Vec<&str> = moved["fired"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Microsoft.ContainerService/nodeImageRelease"; 3], "{moved}");
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(now_of(&clock), later);
    // The move is persisted, so a restart keeps it.
    let saved: ClockState = app.state.db.get(CLOCK_KEY).expect("read the store").expect("the clock is saved");
    assert_eq!(saved.mode, ClockMode::Frozen);
    assert_eq!(saved.frozen_at, Some(later));
    // Responses are dated by the simulated clock.
    let (_, headers, _) = app.send(Method::GET, "/_armlet/clock", None, None).await;
    assert_eq!(header_str(&headers, "date"), Some(armlet::arm::headers::http_date(later).as_str()));

    // Backwards is refused and changes nothing.
    let (status, body) = advance(&app, json!({ "to": rfc3339(FROZEN_AT) })).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(message.contains("never moves backwards"), "{message}");
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(now_of(&clock), later);

    for bad in [
        json!({ "by": "nonsense" }),
        json!({ "by": "-3d" }),
        json!({ "by": "3y" }),
        json!({ "to": "tomorrow" }),
        json!({ "by": "1d", "to": rfc3339(later + Duration::days(1)) }),
        json!({}),
    ] {
        let (status, body) = advance(&app, bad.clone()).await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
        let (_, clock) = app.get_public("/_armlet/clock").await;
        assert_eq!(now_of(&clock), later, "{bad} moved the clock");
    }
    for (bad, raw) in [("unknown field", br#"{"by":"1d","extra":1}"#.to_vec()), ("malformed", b"{\"by\":".to_vec())] {
        let (status, _, body) = app
            .send_raw(Method::POST, "/_armlet/clock/advance", None, &[("content-type", "application/json")], raw)
            .await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");
        let (_, clock) = app.get_public("/_armlet/clock").await;
        assert_eq!(now_of(&clock), later, "{bad} moved the clock");
    }

    // To an absolute instant.
    let target = parse_rfc3339("2027-01-01T00:00:00Z").expect("time");
    let (status, body) = advance(&app, json!({ "to": "2027-01-01T00:00:00Z" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(now_of(&body), target);
    let (status, body) = advance(&app, json!({ "by": "1h30m" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(now_of(&body), target + Duration::minutes(90));
}

#[tokio::test]
async fn freeze_and_resume() {
    let app = TestApp::with(Clock::real(), Settings::default()).await;
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(clock["mode"], "real");
    let drift = now_of(&clock) - Clock::wall_now();
    assert!(drift.abs() < Duration::seconds(5), "{clock}");

    let (status, frozen) = post(&app, "/_armlet/clock/freeze").await;
    assert_eq!(status, StatusCode::OK, "{frozen}");
    assert_eq!(frozen["mode"], "frozen");
    let at = now_of(&frozen);
    tokio::time::sleep(StdDuration::from_millis(30)).await;
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(now_of(&clock), at, "frozen time stands still");

    // Advancing a frozen clock moves it exactly.
    let (status, body) = advance(&app, json!({ "by": "2d" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(now_of(&body), at + Duration::days(2));

    let (status, resumed) = post(&app, "/_armlet/clock/resume").await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["mode"], "real");
    let resumed_at = now_of(&resumed);
    assert!(resumed_at >= at + Duration::days(2));
    assert!(resumed["offsetNs"].as_i64().expect("offsetNs") > 0);
    tokio::time::sleep(StdDuration::from_millis(30)).await;
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert!(now_of(&clock) > resumed_at, "time runs again: {clock}");
    let ahead = now_of(&clock) - Clock::wall_now();
    assert!(
        ahead > Duration::days(2) - Duration::minutes(1) && ahead < Duration::days(2) + Duration::minutes(1),
        "resumed two days ahead of wall time: {ahead}"
    );
    let saved: ClockState = app.state.db.get(CLOCK_KEY).expect("read the store").expect("the clock is saved");
    assert_eq!(saved.mode, ClockMode::Real);
}

#[tokio::test]
async fn an_advance_settles_a_pending_group_deletion() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.put_group(&token, "expiring", "westus2").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = post(&app, "/_armlet/clock/freeze").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = app.send(Method::DELETE, &group_uri("expiring"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, group) = app.get(&group_uri("expiring"), &token).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["properties"]["provisioningState"], "Deleting");
    let (_, health) = app.get_public("/_armlet/health").await;
    assert_eq!(health["pendingOperations"], 1);

    let (status, moved) = advance(&app, json!({ "by": "1s" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let fired = moved["fired"].as_array().expect("fired");
    assert_eq!(fired.len(), 1, "{moved}");
    assert_eq!(fired[0]["kind"], "Microsoft.Resources/resourceGroups/delete");
    assert_eq!(fired[0]["subject"], group_id("expiring"));
    assert_eq!(fired[0]["status"], "Succeeded");
    assert_eq!(fired[0]["due"], rfc3339(FROZEN_AT));

    let (status, body) = app.get(&group_uri("expiring"), &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceGroupNotFound");
    let (_, health) = app.get_public("/_armlet/health").await;
    assert_eq!(health["pendingOperations"], 0);

    // Nothing fires twice.
    let (status, moved) = advance(&app, json!({ "by": "1d" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["fired"], json!([]));
}

#[tokio::test]
async fn absurd_clock_advances_are_refused_not_crashed() {
    let app = TestApp::new().await;
    for by in ["99999999999999d", "999999999999999999999d", "9999999w"] {
        let (status, _, body) = app.send(Method::POST, "/_armlet/clock/advance", None, Some(json!({ "by": by }))).await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    }
    let (status, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clock["now"], armlet::clock::rfc3339(FROZEN_AT), "time did not move");
}

#[tokio::test]
async fn export_reset_import_export_round_trips_and_bad_documents_change_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "kept", "westus2").await;
    let (status, exported) = app.get_public("/_armlet/state").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(exported["armletState"], 1);
    assert!(exported["entries"].as_object().unwrap().keys().any(|k| k.ends_with("/resourcegroups/kept")), "{exported}");

    let (status, _, _) = app.send(Method::POST, "/_armlet/reset", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = app.get(&group_uri("kept"), &token).await;
    assert_arm_error(status, &gone, StatusCode::NOT_FOUND, "ResourceGroupNotFound");

    // Broken documents: nothing changes.
    for broken in
        [json!({"entries": {}}), json!({"armletState": 1, "entries": {"evil/key": 1}}), json!({"armletState": 1})]
    {
        let (status, _, body) = app.send(Method::PUT, "/_armlet/state", None, Some(broken)).await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");
    }
    let (status, _, dry) = app.send(Method::PUT, "/_armlet/state?dryRun=true", None, Some(exported.clone())).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dryRun"], true);
    let (status, still_gone) = app.get(&group_uri("kept"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a dry run changes nothing: {still_gone}");

    let (status, _, imported) = app.send(Method::PUT, "/_armlet/state", None, Some(exported.clone())).await;
    assert_eq!(status, StatusCode::OK, "{imported}");
    let (status, _) = app.get(&group_uri("kept"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = app.get_public("/_armlet/state").await;
    assert_eq!(again["entries"], exported["entries"], "export → reset → import → export is identical");
}

async fn token_for(app: &TestApp, tenant: &str, client: &str, secret: &str) -> String {
    let (status, body) = app
        .post_form(
            &format!("/{tenant}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", secret),
                ("scope", "https://127.0.0.1:8443/.default"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn created_subscriptions_are_isolated_under_rbac_and_tenants() {
    let app = TestApp::new().await;
    let admin = app.token().await;
    app.put_group(&admin, "default-only", "westus2").await;

    // Same tenant: its owner sees its own subscription and nothing of the default one.
    let (status, _, same) =
        app.send(Method::POST, "/_armlet/subscriptions", None, Some(json!({"displayName": "team-a"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{same}");
    let a_sub = same["subscriptionId"].as_str().unwrap();
    let a =
        token_for(&app, tenant_id(), same["clientId"].as_str().unwrap(), same["clientSecret"].as_str().unwrap()).await;
    let (_, subs) = app.get(&format!("/subscriptions?api-version={SUB_API}"), &a).await;
    let ids: Vec<&str> =
        subs["value"].as_array().unwrap().iter().map(|s| s["subscriptionId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a_sub]);
    let (status, _, body) = app
        .send(
            Method::PUT,
            &format!("/subscriptions/{a_sub}/resourcegroups/mine?api-version={RG_API}"),
            Some(&a),
            Some(json!({"location": "westus2"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.get(&group_uri("default-only"), &a).await;
    assert_arm_error(status, &body, StatusCode::FORBIDDEN, "AuthorizationFailed");

    // Another tenant: its token is refused on the default subscription, and the default
    // principal cannot use the new one.
    let (status, _, other) =
        app.send(Method::POST, "/_armlet/subscriptions", None, Some(json!({"newTenant": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let b_tenant = other["tenantId"].as_str().unwrap();
    assert_ne!(b_tenant, tenant_id());
    let b =
        token_for(&app, b_tenant, other["clientId"].as_str().unwrap(), other["clientSecret"].as_str().unwrap()).await;
    let (status, body) = app.get(&group_uri("default-only"), &b).await;
    assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationTokenTenant");
    let b_sub = other["subscriptionId"].as_str().unwrap();
    let (status, body) = app.get(&format!("/subscriptions/{b_sub}/resourcegroups?api-version={RG_API}"), &admin).await;
    assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationTokenTenant");
    let (status, body) = app.get(&format!("/subscriptions/{b_sub}/resourcegroups?api-version={RG_API}"), &b).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, bad) =
        app.send(Method::POST, "/_armlet/subscriptions", None, Some(json!({"tenantId": "nope"}))).await;
    assert_arm_error(status, &bad, StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn the_request_log_shows_what_clients_sent() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "logged", "westus2").await;
    let (status, _) = app.get(&format!("{}?api-version=2099-01-01", group_id("logged")), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, log) = app.get_public("/_armlet/requests?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let entries = log["value"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    assert_eq!(entries[0]["method"], "PUT");
    assert_eq!(entries[0]["status"], 201);
    assert!(entries[0]["path"].as_str().unwrap().ends_with("/resourcegroups/logged"));
    assert_eq!(entries[1]["method"], "GET");
    assert_eq!(entries[1]["status"], 400);
    assert_eq!(entries[1]["query"], "api-version=2099-01-01");
    assert_eq!(entries[1]["time"], armlet::clock::rfc3339(FROZEN_AT), "times come from the simulated clock");
    assert_eq!(entries[1]["apiVersion"], "2099-01-01");
    assert_eq!(entries[1]["caller"], object_id(), "the caller's principal");
    assert_eq!(entries[1]["correlationId"], entries[1]["requestId"]);
}

#[tokio::test]
async fn events_list_what_is_due_and_what_fired() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "evented", "westus2").await;
    let identity = format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/clocked?api-version=2024-11-30",
        group_id("evented")
    );
    let (status, _, created) =
        app.send(Method::PUT, &identity, Some(&token), Some(json!({"location": "westus2"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, events) = app.get_public("/_armlet/events").await;
    assert_eq!(status, StatusCode::OK);
    let rotation = events["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "Microsoft.ManagedIdentity/credentialRotation")
        .unwrap_or_else(|| panic!("no rotation pending: {events}"));
    assert_eq!(rotation["due"], armlet::clock::rfc3339(FROZEN_AT + Duration::days(46)));

    // Deleting the group is an operation due now; advancing settles it and it moves to fired.
    let (status, _, _) = app.send(Method::DELETE, &group_uri("evented"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, before) = app.get_public("/_armlet/events").await;
    assert!(
        before["pending"].as_array().unwrap().iter().any(|e| e["kind"] == "Microsoft.Resources/resourceGroups/delete"),
        "{before}"
    );
    let (status, _, _) = app.send(Method::POST, "/_armlet/clock/advance", None, Some(json!({"by": "1s"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = app.get_public("/_armlet/events").await;
    assert!(
        !after["pending"].as_array().unwrap().iter().any(|e| e["kind"] == "Microsoft.Resources/resourceGroups/delete")
    );
    assert!(
        after["fired"].as_array().unwrap().iter().any(|e| e["kind"] == "Microsoft.Resources/resourceGroups/delete"),
        "{after}"
    );
}

fn group_put(name: &str) -> String {
    group_uri(name)
}

#[tokio::test]
async fn fault_rules_throttle_fail_and_never_write() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let rule = json!({
        "method": "PUT",
        "resourceType": "Microsoft.Resources/resourceGroups",
        "count": 1,
        "action": { "kind": "throttle", "retryAfter": 2 },
    });
    let (status, _, added) = app.send(Method::POST, "/_armlet/faults", None, Some(rule)).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let (status, headers, body) =
        app.send(Method::PUT, &group_put("faulty"), Some(&token), Some(json!({ "location": "westus2" }))).await;
    assert_arm_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    assert_eq!(header_str(&headers, "retry-after"), Some("2"));
    assert!(app.stored(&group_id("faulty")).is_none(), "a fault writes nothing");
    // count: 1 — the retry goes through.
    let (status, _) = app.put_group(&token, "faulty", "westus2").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = app.get_public("/_armlet/faults").await;
    assert_eq!(list["value"][0]["fired"], 1);

    // A server error and a custom ARM error.
    let (_, _, _) = app.send(Method::DELETE, "/_armlet/faults", None, None).await;
    let (_, _, _) = app
        .send(
            Method::POST,
            "/_armlet/faults",
            None,
            Some(json!({ "operationId": "ResourceGroups_Get", "action": { "kind": "serverError", "status": 503 } })),
        )
        .await;
    let (status, body) = app.get(&group_put("faulty"), &token).await;
    assert_arm_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    let (status, _, bad) = app
        .send(
            Method::POST,
            "/_armlet/faults",
            None,
            Some(json!({ "action": { "kind": "serverError", "status": 404 } })),
        )
        .await;
    assert_arm_error(status, &bad, StatusCode::BAD_REQUEST, "BadRequest");
    let (_, _, _) = app.send(Method::DELETE, "/_armlet/faults", None, None).await;

    // An operation that fails part way: accepted, then Failed with the given error.
    let (_, _, _) = app
        .send(
            Method::POST,
            "/_armlet/faults",
            None,
            Some(json!({ "operationId": "ResourceGroups_Delete", "action": { "kind": "failOperation", "code": "InternalOperationError", "message": "Deleting failed part way." } })),
        )
        .await;
    let (status, headers, _) = app.send(Method::DELETE, &group_put("faulty"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = header_str(&headers, "location").unwrap();
    let (status, body) = app.get(&path_of(location), &token).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InternalOperationError");
}

#[tokio::test]
async fn operation_timing_holds_operations_for_a_duration_or_polls() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, _, config) = app
        .send(
            Method::PATCH,
            "/_armlet/config",
            None,
            Some(json!({ "operationTiming": [{ "kind": "Microsoft.Resources/resourceGroups/delete", "polls": 2 }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    app.put_group(&token, "slow", "westus2").await;
    let (_, headers, _) = app.send(Method::DELETE, &group_put("slow"), Some(&token), None).await;
    let location = path_of(header_str(&headers, "location").unwrap());
    assert_eq!(app.get(&location, &token).await.0, StatusCode::ACCEPTED, "first poll");
    assert_eq!(app.get(&location, &token).await.0, StatusCode::ACCEPTED, "second poll");
    assert_eq!(app.get(&location, &token).await.0, StatusCode::OK, "done after two polls");

    let (_, _, _) = app
        .send(
            Method::PATCH,
            "/_armlet/config",
            None,
            Some(json!({ "operationTiming": [{ "kind": "Microsoft.Resources/*", "duration": "30s" }, { "kind": "Microsoft.Resources/resourceGroups/delete", "remove": true }] })),
        )
        .await;
    let (_, shown) = app.get_public("/_armlet/config").await;
    assert_eq!(
        shown["operationTiming"],
        json!([{ "kind": "Microsoft.Resources/*", "duration": "30000ms", "polls": 0 }])
    );
    app.put_group(&token, "slow2", "westus2").await;
    let (_, headers, _) = app.send(Method::DELETE, &group_put("slow2"), Some(&token), None).await;
    let location = path_of(header_str(&headers, "location").unwrap());
    assert_eq!(app.get(&location, &token).await.0, StatusCode::ACCEPTED);
    advance(&app, json!({ "by": "30s" })).await;
    assert_eq!(app.get(&location, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_control_api_needs_its_token_when_one_is_set() {
    let app = TestApp::with_settings(Settings { control_token: Some("s3cret".into()), ..Settings::default() }).await;
    let (status, body) = app.get_public("/_armlet/info").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(app.get_public("/_armlet/health").await.0, StatusCode::OK, "health stays open");
    let (status, _, body) = app.send_raw(Method::GET, "/_armlet/info", Some("s3cret"), &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = app
        .send_raw(
            Method::POST,
            "/_armlet/clock/advance",
            Some("wrong"),
            &[("content-type", "application/json")],
            b"{\"by\":\"1d\"}".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stepping_clock_moves_with_requests() {
    let app = TestApp::with_settings(Settings { clock_step: Duration::seconds(1), ..Settings::default() }).await;
    let token = app.token().await;
    for _ in 0..3 {
        app.get(&format!("/subscriptions/{}?api-version={SUB_API}", sub_id()), &token).await;
    }
    let (_, clock) = app.get_public("/_armlet/clock").await;
    assert_eq!(now_of(&clock), FROZEN_AT + Duration::seconds(3));
}

#[tokio::test]
async fn a_hundred_days_in_one_advance_fire_every_rotation_once_in_order() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "rot", "westus2").await;
    let mut created = Vec::new();
    for (name, after) in [("early", "0s"), ("later", "10d"), ("latest", "20d")] {
        advance(&app, json!({ "by": after })).await;
        let uri = format!(
            "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30",
            group_id("rot")
        );
        let (status, _, body) = app.send(Method::PUT, &uri, Some(&token), Some(json!({ "location": "westus2" }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, clock) = app.get_public("/_armlet/clock").await;
        created.push((body["id"].as_str().unwrap().to_owned(), now_of(&clock)));
    }
    let (status, moved) = advance(&app, json!({ "by": "100d" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let rotations: Vec<&Value> = moved["fired"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "Microsoft.ManagedIdentity/credentialRotation")
        .collect();
    // Each identity renews 46 and 92 days after it was created: six rotations in 100 days.
    let mut expected: Vec<(String, String)> =
        created.iter().flat_map(|(id, at)| [46, 92].map(|d| (rfc3339(*at + Duration::days(d)), id.clone()))).collect();
    expected.sort();
    let got: Vec<(String, String)> = rotations
        .iter()
        .map(|e| (e["due"].as_str().unwrap().to_owned(), e["subject"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, expected, "every rotation exactly once, in time order");
    // The clock also crossed node image releases, listed in the same order.
    let dues: Vec<&str> = moved["fired"].as_array().unwrap().iter().map(|e| e["due"].as_str().unwrap()).collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");
    assert!(
        moved["fired"].as_array().unwrap().iter().any(|e| e["kind"] == "Microsoft.ContainerService/nodeImageRelease")
    );
}
