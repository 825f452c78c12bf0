//! The security suite: refused tokens write nothing, a principal of one subscription reaches
//! nothing in another, resource ids cannot be bent to name something else, no request makes a
//! 5xx, and the real server cuts off slow and greedy clients while serving everyone else.
//!
//! Covered elsewhere and not repeated here: the bearer check's refusals on reads (another key,
//! `alg: none`/HS256, tampered claims, expired, not yet valid, wrong audience, wrong tenant) in
//! `auth.rs` (`malformed_and_forged_tokens_are_invalid_authentication_token`,
//! `token_lifetimes_are_checked_with_five_minutes_of_leeway`,
//! `a_token_for_another_audience_is_refused`, `a_token_from_another_tenant_is_refused_for_the_subscription`)
//! and `src/auth/jwt.rs`; subscription isolation of resource groups in `admin.rs`
//! (`created_subscriptions_are_isolated_under_rbac_and_tenants`); the control token's check in
//! `admin.rs` (`the_control_api_needs_its_token_when_one_is_set`) and when armlet makes one
//! in `src/server.rs`; 413 for ARM bodies and resource group names in `arm_core/errors.rs`
//! (`a_body_over_the_limit_is_413_and_creates_nothing`, `bad_group_names_are_invalid_resource_group`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration as StdDuration, Instant};

use armlet::Settings;
use armlet::auth::jwt::Claims;
use armlet::clock::Clock;
use armlet::state::RbacMode;
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey as RsaSigner;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::server::Server;
use crate::common::*;

const MI_API: &str = "2024-11-30";
const NET_API: &str = "2024-05-01";
const RA_API: &str = "2022-04-01";

fn identity_uri(sub: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version={MI_API}"
    )
}

/// Everything armlet stores, as the control API exports it.
async fn snapshot(app: &TestApp) -> Value {
    let (status, state) = app.get_public("/_armlet/state").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    state["entries"].clone()
}

/// A JWT with any header and payload JSON, signed RS256 by `key`.
fn sign_raw(header: &Value, payload: &Value, key: &armlet::auth::keys::SigningKey) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
    let signature = RsaSigner::<Sha256>::new(key.private().clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn claims_json(claims: &Claims) -> Value {
    serde_json::to_value(claims).expect("claims serialise")
}

// ---- tokens ----

#[tokio::test]
async fn refused_tokens_write_and_delete_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "kept", "westus2").await;
    let before = snapshot(&app).await;
    let now = Clock::wall_now().unix_timestamp();

    let mut expired = valid_claims();
    (expired.iat, expired.nbf, expired.exp) = (now - 7200, now - 7200, now - 3600);
    let mut early = valid_claims();
    (early.nbf, early.exp) = (now + 3600, now + 7200);
    let mut audience = valid_claims();
    audience.aud = "https://graph.microsoft.com".into();
    let mut tenant = valid_claims();
    tenant.tid = "0bad0000-0000-4000-8000-00000000beef".into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid_claims()).expect("claims"));
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));

    for (what, bad, code) in [
        ("another key", mint(&valid_claims(), other_key()), "InvalidAuthenticationToken"),
        ("alg none", none, "InvalidAuthenticationToken"),
        ("expired", mint(&expired, &key()), "ExpiredAuthenticationToken"),
        ("not yet valid", mint(&early, &key()), "InvalidAuthenticationToken"),
        ("wrong audience", mint(&audience, &key()), "InvalidAuthenticationTokenAudience"),
        ("wrong tenant", mint(&tenant, &key()), "InvalidAuthenticationTokenTenant"),
    ] {
        let writes = [
            (Method::PUT, group_uri("forged"), Some(json!({ "location": "westus2" }))),
            (Method::PATCH, group_uri("kept"), Some(json!({ "tags": { "owned": "yes" } }))),
            (Method::DELETE, group_uri("kept"), None),
            (Method::PUT, identity_uri(sub_id(), "kept", "forged-id"), Some(json!({ "location": "westus2" }))),
            (
                Method::PUT,
                format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={RA_API}",
                    sub_id(),
                    uuid::Uuid::new_v4()
                ),
                Some(json!({ "properties": {
                    "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635", sub_id()),
                    "principalId": object_id(),
                    "principalType": "ServicePrincipal",
                }})),
            ),
        ];
        for (method, uri, body) in writes {
            let (status, headers, response) = app.send(method.clone(), &uri, Some(&bad), body).await;
            assert_arm_error(status, &response, StatusCode::UNAUTHORIZED, code);
            assert!(header_str(&headers, "www-authenticate").is_some(), "{what}: {method} {uri}: no challenge");
        }
        assert_eq!(snapshot(&app).await, before, "{what}: a refused token changed the store");
    }
}

#[tokio::test]
async fn tokens_with_missing_or_absurd_claims_are_refused_or_accepted_never_crash() {
    let app = TestApp::new().await;
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": key().kid() });
    let good = claims_json(&valid_claims());
    let uri = format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id());
    let send = |token: String| {
        let app = &app;
        let uri = uri.clone();
        async move {
            let (status, _, body) = app.send(Method::GET, &uri, Some(&token), None).await;
            (status, body)
        }
    };

    // Signed by armlet's own key, but without a lifetime or with one of the wrong type: an
    // unbounded token is no token.
    for field in ["exp", "nbf"] {
        let mut payload = good.clone();
        payload.as_object_mut().expect("object").remove(field);
        let (status, body) = send(sign_raw(&header, &payload, &key())).await;
        assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
        payload[field] = json!("never");
        let (status, body) = send(sign_raw(&header, &payload, &key())).await;
        assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
    }
    // An audience list, or a payload that is not JSON at all.
    let mut listed = good.clone();
    listed["aud"] = json!([AUDIENCE]);
    let (status, body) = send(sign_raw(&header, &listed, &key())).await;
    assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
    let (status, body) = send(sign_raw(&header, &json!("just a string"), &key())).await;
    assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");

    // Lifetimes at the ends of the number line are judged, not overflowed.
    for (what, field, value, want) in [
        ("exp at i64::MAX", "exp", i64::MAX, None),
        ("nbf at i64::MIN", "nbf", i64::MIN, None),
        ("exp at i64::MIN", "exp", i64::MIN, Some("ExpiredAuthenticationToken")),
        ("nbf at i64::MAX", "nbf", i64::MAX, Some("InvalidAuthenticationToken")),
    ] {
        let mut payload = good.clone();
        payload[field] = json!(value);
        let (status, body) = send(sign_raw(&header, &payload, &key())).await;
        match want {
            None => assert_eq!(status, StatusCode::OK, "{what}: {body}"),
            Some(code) => {
                assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, code);
            }
        }
    }

    // Other spellings of "no signature" and other algorithms.
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    for alg in [json!("None"), json!("NONE"), json!(""), json!(null), json!("RS512"), json!("PS256"), json!("ES256")] {
        let header = URL_SAFE_NO_PAD.encode(json!({ "typ": "JWT", "alg": alg }).to_string());
        for signature in ["", "AAAA"] {
            let (status, body) = send(format!("{header}.{payload}.{signature}")).await;
            let message = assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
            assert!(message.contains("is not accepted"), "alg {alg}: {message}");
        }
    }
    // RS256 with the signature cut off.
    let real = sign_raw(&header, &good, &key());
    let unsigned = &real[..real.rfind('.').expect("a signed JWT") + 1];
    let (status, body) = send(unsigned.to_owned()).await;
    assert_arm_error(status, &body, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken");
}

// ---- subscriptions under RBAC ----

/// A second subscription in armlet's tenant, with its owner's token.
async fn second_subscription(app: &TestApp) -> (String, String) {
    let (status, _, created) =
        app.send(Method::POST, "/_armlet/subscriptions", None, Some(json!({ "displayName": "team-b" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = app
        .post_form(
            &format!("/{}/oauth2/v2.0/token", tenant_id()),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", created["clientId"].as_str().expect("clientId")),
                ("client_secret", created["clientSecret"].as_str().expect("clientSecret")),
                ("scope", &format!("{AUDIENCE}/.default")),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        created["subscriptionId"].as_str().expect("subscriptionId").to_owned(),
        body["access_token"].as_str().expect("access_token").to_owned(),
    )
}

#[tokio::test]
async fn a_principal_of_one_subscription_reaches_nothing_in_another() {
    let app = TestApp::with_settings(Settings { rbac: RbacMode::Enforce, ..Settings::default() }).await;
    let admin = app.token().await;
    let home = sub_id();
    app.put_group(&admin, "secret", "westus2").await;
    let (status, _, identity) = app
        .send(
            Method::PUT,
            &identity_uri(home, "secret", "vault-id"),
            Some(&admin),
            Some(json!({"location": "westus2"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    let identity_id = identity["id"].as_str().expect("id").to_owned();
    let (other_sub, other) = second_subscription(&app).await;
    let (status, _, mine) = app
        .send(
            Method::PUT,
            &format!("/subscriptions/{other_sub}/resourcegroups/mine?api-version={RG_API}"),
            Some(&other),
            Some(json!({"location": "westus2"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let before = snapshot(&app).await;

    let secret = format!("/subscriptions/{home}/resourceGroups/secret");
    let owner_role = format!(
        "/subscriptions/{home}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    );
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{identity_id}?api-version={MI_API}"), None),
        (
            Method::GET,
            format!(
                "/subscriptions/{home}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MI_API}"
            ),
            None,
        ),
        (
            Method::GET,
            format!("{secret}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MI_API}"),
            None,
        ),
        (Method::GET, format!("/subscriptions/{home}/resources?api-version={RG_API}"), None),
        (Method::GET, format!("{secret}/resources?api-version={RG_API}"), None),
        (Method::GET, format!("/subscriptions/{home}/resourcegroups?api-version={RG_API}"), None),
        (
            Method::GET,
            format!("/subscriptions/{home}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}"),
            None,
        ),
        (
            Method::GET,
            format!("{identity_id}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}"),
            None,
        ),
        (
            Method::GET,
            format!("{identity_id}/providers/Microsoft.ManagedIdentity/identities/default?api-version={MI_API}"),
            None,
        ),
        (Method::GET, format!("{identity_id}/federatedIdentityCredentials?api-version={MI_API}"), None),
        (Method::PATCH, format!("{identity_id}?api-version={MI_API}"), Some(json!({"tags": {"taken": "yes"}}))),
        (Method::DELETE, format!("{identity_id}?api-version={MI_API}"), None),
        (Method::PUT, identity_uri(home, "secret", "planted"), Some(json!({"location": "westus2"}))),
        (Method::DELETE, format!("{secret}?api-version={RG_API}"), None),
        (Method::PATCH, format!("{secret}?api-version={RG_API}"), Some(json!({"tags": {"taken": "yes"}}))),
        (
            Method::PUT,
            format!(
                "/subscriptions/{home}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={RA_API}",
                uuid::Uuid::new_v4()
            ),
            Some(
                json!({"properties": {"roleDefinitionId": owner_role, "principalId": object_id(), "principalType": "ServicePrincipal"}}),
            ),
        ),
        (
            Method::POST,
            format!(
                "{secret}/providers/Microsoft.ContainerService/managedClusters/aks/listClusterAdminCredential?api-version=2025-10-01"
            ),
            None,
        ),
    ];
    for (method, uri, body) in requests {
        let (status, _, response) = app.send(method.clone(), &uri, Some(&other), body).await;
        let message = assert_arm_error(status, &response, StatusCode::FORBIDDEN, "AuthorizationFailed");
        assert!(message.contains("does not have authorization to perform action"), "{method} {uri}: {message}");
        assert!(!response.to_string().contains("principalId\":\""), "{method} {uri} leaked a body: {response}");
    }
    // The subscription itself answers nothing useful either.
    let (status, body) = app.get(&format!("/subscriptions/{home}?api-version={SUB_API}"), &other).await;
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(body.get("displayName").is_none(), "{body}");

    // Nor does bending an id of its own subscription into the other one.
    for uri in [
        format!(
            "/subscriptions/{other_sub}/resourceGroups/mine%2F..%2F..%2F..%2Fsubscriptions%2F{home}%2FresourceGroups%2Fsecret?api-version={RG_API}"
        ),
        format!(
            "/subscriptions/{other_sub}/resourceGroups/mine/../../../subscriptions/{home}/resourceGroups/secret?api-version={RG_API}"
        ),
        format!(
            "/subscriptions/{other_sub}/providers/x/y/../../../subscriptions/{home}/resourceGroups/secret/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}"
        ),
        format!(
            "/subscriptions/{other_sub}/resourceGroups/mine/providers/Microsoft.ManagedIdentity/userAssignedIdentities/..%2F..%2F..%2F..%2F..%2F..%2F{home}%2FresourceGroups%2Fsecret%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fvault-id?api-version={MI_API}"
        ),
    ] {
        let (status, body) = app.get(&uri, &other).await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidResourceId");
    }

    // Its own lists show only its own subscription's resources.
    let (status, list) = app.get(&format!("/subscriptions/{other_sub}/resources?api-version={RG_API}"), &other).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(!list.to_string().contains(home), "{list}");
    let (status, list) =
        app.get(&format!("/subscriptions/{other_sub}/resourcegroups?api-version={RG_API}"), &other).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["value"].as_array().expect("value").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, ["mine"]);

    assert_eq!(snapshot(&app).await, before, "a refused request changed the store");
    let (status, kept) = app.get(&format!("{identity_id}?api-version={MI_API}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept, identity, "the other subscription's owner changed the identity");
}

#[tokio::test]
async fn a_principal_of_another_tenant_reaches_nothing_of_this_directory() {
    let app = TestApp::new().await;
    let (status, _, other) =
        app.send(Method::POST, "/_armlet/subscriptions", None, Some(json!({ "newTenant": true }))).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let stranger_tenant = other["tenantId"].as_str().expect("tenantId");
    let (status, body) = app
        .post_form(
            &format!("/{stranger_tenant}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", other["clientId"].as_str().expect("clientId")),
                ("client_secret", other["clientSecret"].as_str().expect("clientSecret")),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stranger = body["access_token"].as_str().expect("access_token").to_owned();
    let before = snapshot(&app).await;

    // Not listed, not readable, and above all no new password on this tenant's principal.
    let (status, _, list) = app.send(Method::GET, "/v1.0/servicePrincipals", Some(&stranger), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(!list.to_string().contains(object_id()) && !list.to_string().contains(client_id()), "{list}");
    for (method, uri, body) in [
        (Method::GET, format!("/v1.0/servicePrincipals/{}", object_id()), None),
        (Method::GET, format!("/v1.0/servicePrincipals(appId='{}')", client_id()), None),
        (
            Method::POST,
            format!("/v1.0/servicePrincipals/{}/addPassword", object_id()),
            Some(json!({ "passwordCredential": { "displayName": "stolen" } })),
        ),
        (Method::PATCH, format!("/v1.0/servicePrincipals/{}", object_id()), Some(json!({ "displayName": "mine" }))),
        (Method::DELETE, format!("/v1.0/servicePrincipals/{}", object_id()), None),
        (Method::GET, format!("/v1.0/directoryObjects/{}", object_id()), None),
    ] {
        let (status, _, response) = app.send(method.clone(), &uri, Some(&stranger), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {response}");
        assert!(response.get("secretText").is_none(), "{method} {uri}: {response}");
    }
    assert_eq!(snapshot(&app).await, before, "another tenant's principal changed this directory");
}

// ---- resource ids ----

#[tokio::test]
async fn resource_ids_cannot_be_bent_to_name_another_resource() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    for group in ["a", "b"] {
        app.put_group(&token, group, "westus2").await;
    }
    let (status, _, id1) =
        app.send(Method::PUT, &identity_uri(sub, "b", "id1"), Some(&token), Some(json!({"location": "westus2"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{id1}");
    let (status, _, vnet) = app
        .send(
            Method::PUT,
            &format!("/subscriptions/{sub}/resourceGroups/b/providers/Microsoft.Network/virtualNetworks/v1?api-version={NET_API}"),
            Some(&token),
            Some(json!({"location": "westus2", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vnet}");
    let before = snapshot(&app).await;

    let smuggled = "b%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid1";
    let group = |name: &str| format!("/subscriptions/{sub}/resourcegroups/{name}?api-version={RG_API}");
    let in_b = |tail: &str| format!("/subscriptions/{sub}/resourceGroups/b/providers/{tail}");
    let location = Some(json!({"location": "westus2"}));
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        // An encoded '/' turning a group name into the identity's id (before the fix, a GET
        // answered the identity and a DELETE deleted it as if it were a group).
        (Method::GET, group(smuggled), None),
        (Method::HEAD, group(smuggled), None),
        (Method::DELETE, group(smuggled), None),
        (Method::PATCH, group(smuggled), Some(json!({"tags": {"x": "y"}}))),
        (Method::PUT, group("a%2F..%2Fb"), location.clone()),
        (Method::PUT, identity_uri(sub, smuggled, "child"), location.clone()),
        (Method::GET, identity_uri(sub, "a%2F..%2Fb", "id1"), None),
        (Method::PUT, identity_uri(sub, "b", "x%2F..%2Fid1"), location.clone()),
        (Method::PUT, identity_uri(sub, "b", "x%5C..%5Cid1"), location.clone()),
        (Method::GET, identity_uri(sub, "b", "id1\\..\\id2"), None),
        (
            Method::PUT,
            in_b(&format!("Microsoft.Network/virtualNetworks/v1%2Fsubnets%2Fs1?api-version={NET_API}")),
            Some(json!({"location": "westus2", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}})),
        ),
        (
            Method::PUT,
            in_b(&format!("Microsoft.Network/virtualNetworks/v1/subnets/s%2Fx?api-version={NET_API}")),
            Some(json!({"properties": {"addressPrefix": "10.0.1.0/24"}})),
        ),
        // Dot segments, raw or encoded, anywhere: refused rather than resolved.
        (
            Method::GET,
            format!(
                "/subscriptions/{sub}/resourceGroups/a/../b/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version={MI_API}"
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/subscriptions/{sub}/resourceGroups/a/%2E%2E/b/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version={MI_API}"
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/subscriptions/{sub}/resourceGroups/b/./providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version={MI_API}"
            ),
            None,
        ),
        (Method::GET, identity_uri(sub, "..", "id1"), None),
        (Method::GET, identity_uri(sub, "b", "%2e%2E"), None),
        (Method::DELETE, identity_uri(sub, "b", "."), None),
        (
            Method::GET,
            format!(
                "/subscriptions/{sub}/resourceGroups/a/providers/x/y/../../../b/providers/Microsoft.Authorization/roleAssignments?api-version={RA_API}"
            ),
            None,
        ),
        // NUL, control characters, bytes that are not UTF-8 (which would all decode to U+FFFD
        // and so collide).
        (Method::GET, identity_uri(sub, "b", "id1%00"), None),
        (Method::PUT, group("nul%00"), location.clone()),
        (Method::PUT, group("line%0Afeed"), location.clone()),
        (Method::PUT, group("tab%09"), location.clone()),
        (Method::PUT, group("del%7F"), location.clone()),
        (Method::PUT, group("bytes%FF%FE"), location.clone()),
        (Method::GET, format!("/subscriptions/{sub}%00/resourcegroups?api-version={RG_API}"), None),
    ];
    for (method, uri, body) in cases {
        let (status, _, response) = app.send(method.clone(), &uri, Some(&token), body).await;
        if method == Method::HEAD {
            assert_eq!(status, StatusCode::BAD_REQUEST, "HEAD {uri}");
            assert_eq!(response, Value::Null, "HEAD {uri} has no body");
            continue;
        }
        let message = assert_arm_error(status, &response, StatusCode::BAD_REQUEST, "InvalidResourceId");
        assert!(message.starts_with("The resource id is invalid at the segment '"), "{method} {uri}: {message}");
        // Authentication still comes first.
        let (status, _, response) = app.send(method.clone(), &uri, None, None).await;
        assert_arm_error(status, &response, StatusCode::UNAUTHORIZED, "AuthenticationFailed");
    }
    assert_eq!(snapshot(&app).await, before, "a refused id changed the store");

    // What collapses is only repeated and trailing slashes (az asks for `//subscriptions/...`):
    // the same path, checked by RBAC as the same path, answering the same resource.
    for uri in [
        format!(
            "//subscriptions/{sub}//resourceGroups/b//providers/Microsoft.ManagedIdentity/userAssignedIdentities//id1?api-version={MI_API}"
        ),
        format!(
            "/subscriptions/{sub}/resourceGroups/b/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/?api-version={MI_API}"
        ),
    ] {
        let (status, body) = app.get(&uri, &token).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body, id1, "{uri}");
    }
    // Percent-encoding ordinary characters changes nothing either.
    let (status, body) = app.get(&identity_uri(sub, "%62", "%69%64%31"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, id1);
}

#[tokio::test]
async fn over_long_and_odd_names_are_clean_400s_and_create_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    app.put_group(&token, "names", "westus2").await;
    let before = snapshot(&app).await;
    let in_group = |tail: String| format!("/subscriptions/{sub}/resourceGroups/names/providers/{tail}");
    let location = json!({"location": "westus2"});
    let cases: Vec<(String, Value, &str)> = vec![
        // Managed identities: 3-128 letters, digits, '-', '_'.
        (identity_uri(sub, "names", "ab"), location.clone(), "InvalidResourceName"),
        (identity_uri(sub, "names", &"i".repeat(129)), location.clone(), "InvalidResourceName"),
        (identity_uri(sub, "names", "-leading"), location.clone(), "InvalidResourceName"),
        (identity_uri(sub, "names", "sp%20ace"), location.clone(), "InvalidResourceName"),
        (identity_uri(sub, "names", "%C3%A9t%C3%A9"), location.clone(), "InvalidResourceName"),
        (identity_uri(sub, "names", &"j".repeat(20_000)), location.clone(), "InvalidResourceName"),
        // Federated credentials: 3-120.
        (
            in_group(format!(
                "Microsoft.ManagedIdentity/userAssignedIdentities/holder/federatedIdentityCredentials/{}?api-version={MI_API}",
                "f".repeat(121)
            )),
            json!({"properties": {"issuer": "https://issuer.example", "subject": "s", "audiences": ["api://AzureADTokenExchange"]}}),
            "InvalidResourceName",
        ),
        // AKS clusters: 1-63, starting and ending with a letter or digit.
        (
            in_group(format!("Microsoft.ContainerService/managedClusters/{}?api-version=2025-10-01", "c".repeat(64))),
            location.clone(),
            "InvalidParameter",
        ),
        (
            in_group("Microsoft.ContainerService/managedClusters/ends-?api-version=2025-10-01".to_owned()),
            location.clone(),
            "InvalidParameter",
        ),
        // Container registries: 5-50 letters and digits.
        (
            in_group(format!("Microsoft.ContainerRegistry/registries/{}?api-version=2023-07-01", "r".repeat(51))),
            json!({"location": "westus2", "sku": {"name": "Basic"}}),
            "InvalidResourceName",
        ),
    ];
    for (uri, body, code) in cases {
        let (status, _, response) = app.send(Method::PUT, &uri, Some(&token), Some(body)).await;
        assert_arm_error(status, &response, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(snapshot(&app).await, before, "a refused name changed the store");

    // The longest names allowed are fine, and reads of absurd names are plain 404s.
    let longest = "k".repeat(128);
    let (status, _, body) =
        app.send(Method::PUT, &identity_uri(sub, "names", &longest), Some(&token), Some(location.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], longest);
    for uri in [identity_uri(sub, "names", &"z".repeat(20_000)), group_uri(&"g".repeat(20_000))] {
        let (status, body) = app.get(&uri, &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
}

// ---- nothing makes a 5xx ----

#[tokio::test]
async fn no_path_query_or_body_makes_a_server_error() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let sub = sub_id();
    let tenant = tenant_id();
    app.put_group(&token, "fuzz", "westus2").await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let paths = [
        "/".to_owned(),
        "/%00".to_owned(),
        "/..".to_owned(),
        "/%2E%2E/%2E%2E/etc/passwd".to_owned(),
        format!("/subscriptions/{sub}/resourcegroups/fuzz?api-version={RG_API}&api-version=2099-01-01"),
        format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}&$top=99999999999999999999"),
        format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}&$top=-1&$skiptoken=%FF%00"),
        format!("/subscriptions/{sub}/resources?api-version={RG_API}&$filter=%27%27%27%20eq%20(((("),
        format!("/subscriptions/{sub}/resourcegroups?api-version={RG_API}&{}", "x=y&".repeat(2000)),
        format!("/subscriptions/{sub}/providers/%2E%2E?api-version={RG_API}"),
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/%00?api-version={RA_API}"),
        format!(
            "/subscriptions/{sub}/resourceGroups/fuzz/providers/Microsoft.ContainerService/managedClusters/c/agentPools/%2E%2E?api-version=2025-10-01"
        ),
        "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=assignedTo('%00')"
            .to_owned(),
        format!("/{tenant}/oauth2/v2.0/token"),
        "/%00/oauth2/v2.0/token".to_owned(),
        "/../oauth2/token".to_owned(),
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%00&client_id=%FF".to_owned(),
        "/msi/token?api-version=2019-08-01&resource=..%2F..".to_owned(),
        "/msi/credentials?tid=%00&oid=..&aid=%2F".to_owned(),
        "/v1.0/servicePrincipals/%2E%2E".to_owned(),
        "/v1.0/servicePrincipals/a%2Fb/addPassword".to_owned(),
        "/v1.0/applications(appId='%00')".to_owned(),
        "/v1.0/servicePrincipals?$filter=appId%20eq%20'%27".to_owned(),
        "/_armlet/clusters/..%2F..%2F/nodes".to_owned(),
        "/_armlet/explain?principal=%00&action=..&scope=%2F..%2F".to_owned(),
        "/_armlet/faults/%2E%2E".to_owned(),
    ];
    let bodies: [(&str, Vec<u8>); 4] = [
        ("none", Vec::new()),
        ("deep", deep.into_bytes()),
        ("binary", vec![0xff, 0x00, 0xfe, 0x7b]),
        ("huge number", br#"{"location":"westus2","tags":{"a":1e999999}}"#.to_vec()),
    ];
    for path in &paths {
        for method in [Method::GET, Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
            for (what, body) in &bodies {
                for content_type in ["application/json", "application/x-www-form-urlencoded"] {
                    let (status, _, response) = app
                        .send_raw(
                            method.clone(),
                            path,
                            Some(&token),
                            &[("content-type", content_type), ("metadata", "true")],
                            body.clone(),
                        )
                        .await;
                    assert!(
                        !status.is_server_error(),
                        "{method} {path} ({what} body, {content_type}) answered {status}: {response}"
                    );
                }
            }
        }
    }
    let (status, group) = app.get(&group_uri("fuzz"), &token).await;
    assert_eq!(status, StatusCode::OK, "{group}");
}

#[tokio::test]
async fn oversized_bodies_are_413_on_every_surface_and_write_nothing() {
    let app = TestApp::with_settings(Settings { max_body_bytes: 4096, ..Settings::default() }).await;
    let token = app.token().await;
    let before = snapshot(&app).await;
    let pad = "x".repeat(5 * 1024 * 1024);
    // ARM (the limit is --max-body-bytes), Microsoft Graph and the control API.
    for (method, uri, body) in [
        (Method::PUT, identity_uri(sub_id(), "nowhere", "big"), json!({"location": "westus2", "tags": {"pad": pad}})),
        (Method::POST, "/v1.0/applications".to_owned(), json!({"displayName": pad})),
        (Method::POST, "/_armlet/subscriptions".to_owned(), json!({"displayName": pad})),
        (Method::PUT, "/_armlet/state".to_owned(), json!({"armletState": 1, "entries": {"pad": pad}})),
    ] {
        let (status, _, response) = app.send(method.clone(), &uri, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{method} {uri}: {response}");
        if !uri.starts_with("/v1.0") {
            assert_arm_error(status, &response, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge");
        }
    }
    // Entra's token endpoint.
    let form = format!("grant_type=client_credentials&client_id={}&pad={pad}", client_id());
    let (status, _, response) = app
        .send_raw(
            Method::POST,
            &format!("/{}/oauth2/v2.0/token", tenant_id()),
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            form.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{response}");
    assert!(response.get("access_token").is_none());
    assert_eq!(snapshot(&app).await, before, "an oversized body changed the store");
}

// ---- the real server: slow, greedy and idle clients ----

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// A response read off a raw connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response (head, then a `content-length` body) within `limit`.
fn read_answer(stream: &mut TcpStream, limit: StdDuration) -> Answer {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("reading a response: {e}"));
        assert!(n > 0, "the connection closed before a response: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect(&head);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).expect("reading a response body");
        assert!(n > 0, "the connection closed inside a response body");
        body.extend_from_slice(&buf[..n]);
    }
    Answer { status, headers, body }
}

/// One request on a fresh connection.
fn roundtrip(addr: &str, request: &str) -> Answer {
    let mut stream = connect(addr);
    stream.write_all(request.as_bytes()).expect("send a request");
    read_answer(&mut stream, StdDuration::from_secs(30))
}

fn get(addr: &str, path: &str, extra: &str) -> Answer {
    roundtrip(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"))
}

/// Whether the server closes `stream` within `limit` while `tick` runs every 100 ms (a slow
/// client's next byte); returns how long it took and what the server sent first.
fn closed_within(
    stream: &mut TcpStream,
    limit: StdDuration,
    mut tick: impl FnMut(&mut TcpStream),
) -> Option<(StdDuration, Vec<u8>)> {
    let started = Instant::now();
    stream.set_read_timeout(Some(StdDuration::from_millis(100))).expect("read timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), received)),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => tick(stream),
            Err(_) => return Some((started.elapsed(), received)),
        }
    }
    None
}

/// The header read timeout and request timeout the server below runs with.
const HEADER_TIMEOUT: StdDuration = StdDuration::from_secs(1);
const BODY_TIMEOUT: StdDuration = StdDuration::from_secs(2);
/// How long a cut-off may take, generously: ten times the timeout.
const GENEROUS: u32 = 10;

fn assert_cut_off(what: &str, result: Option<(StdDuration, Vec<u8>)>, timeout: StdDuration) -> Vec<u8> {
    let (after, received) = result.unwrap_or_else(|| panic!("{what}: still connected after {:?}", timeout * GENEROUS));
    assert!(
        after + StdDuration::from_millis(150) >= timeout,
        "{what}: cut off after {after:?}, before the {timeout:?} timeout"
    );
    received
}

#[test]
fn slow_greedy_and_idle_clients_are_cut_off_while_others_are_served() {
    let server =
        Server::in_memory(&["--header-read-timeout", "1s", "--request-timeout", "2s", "--max-header-bytes", "16384"]);
    let http = server.http_addr();
    let https = server.https_addr();

    // A token for the trickled PUT below.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        client_id(),
        client_secret(),
        form_urlencoded::byte_serialize(format!("{}/.default", server.https).as_bytes()).collect::<String>()
    );
    let answer = roundtrip(
        &http,
        &format!(
            "POST /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            tenant_id(),
            form.len()
        ),
    );
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let token = answer.json()["access_token"].as_str().expect("access_token").to_owned();

    // (d) Many idle connections, on both listeners, some mid request line.
    let mut idle: Vec<TcpStream> = (0..200).map(|_| connect(&http)).collect();
    for stream in idle.iter_mut().step_by(2) {
        stream.write_all(b"GET /_armlet/he").expect("half a request line");
    }
    idle.extend((0..50).map(|_| connect(&https)));

    let mut slow = Vec::new();
    // (a) Headers that never finish, one more line every 100 ms.
    slow.push(std::thread::spawn({
        let http = http.clone();
        move || {
            let mut stream = connect(&http);
            stream.write_all(format!("GET /_armlet/health HTTP/1.1\r\nHost: {http}\r\n").as_bytes()).expect("send");
            let result = closed_within(&mut stream, HEADER_TIMEOUT * GENEROUS, |s| {
                let _ = s.write_all(b"X-Slow: still-coming\r\n");
            });
            assert_cut_off("headers sent slowly", result, HEADER_TIMEOUT);
        }
    }));
    // (a) A connection that sends nothing, on each listener (no TLS handshake on HTTPS).
    for addr in [http.clone(), https.clone()] {
        slow.push(std::thread::spawn(move || {
            let mut stream = connect(&addr);
            let result = closed_within(&mut stream, HEADER_TIMEOUT * GENEROUS, |_| {});
            assert_cut_off(&format!("a silent connection to {addr}"), result, HEADER_TIMEOUT);
        }));
    }
    // (a) A keep-alive connection left idle after its response.
    slow.push(std::thread::spawn({
        let http = http.clone();
        move || {
            let mut stream = connect(&http);
            stream.write_all(format!("GET /_armlet/health HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes()).expect("send");
            let answer = read_answer(&mut stream, StdDuration::from_secs(30));
            assert_eq!(answer.status, 200);
            let result = closed_within(&mut stream, HEADER_TIMEOUT * GENEROUS, |_| {});
            let extra = assert_cut_off("an idle keep-alive connection", result, HEADER_TIMEOUT);
            assert!(extra.is_empty(), "{}", String::from_utf8_lossy(&extra));
        }
    }));
    // (b) Headers in time, then a body trickled a byte every 100 ms.
    slow.push(std::thread::spawn({
        let http = http.clone();
        let token = token.clone();
        move || {
            let body = br#"{"location": "westus2", "tags": {"slow": "yes"}}"#;
            let mut padded = body.to_vec();
            padded.resize(400, b' ');
            let mut stream = connect(&http);
            stream
                .write_all(
                    format!(
                        "PUT /subscriptions/{}/resourcegroups/trickled?api-version={RG_API} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        sub_id(),
                        padded.len()
                    )
                    .as_bytes(),
                )
                .expect("send headers");
            let mut next = 0;
            let result = closed_within(&mut stream, BODY_TIMEOUT * GENEROUS, |s| {
                if next < padded.len() {
                    let _ = s.write_all(&padded[next..next + 1]);
                    next += 1;
                }
            });
            let received = assert_cut_off("a trickled body", result, BODY_TIMEOUT);
            let text = String::from_utf8_lossy(&received).into_owned();
            assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
            assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
            let json: Value = serde_json::from_str(&text[text.find("\r\n\r\n").expect("a head") + 4..]).expect("a JSON body");
            assert_eq!(json["error"]["code"], "RequestTimeout", "{json}");
            assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
            assert!(next < padded.len(), "the whole body went through");
        }
    }));

    // (d) Meanwhile a fresh client is served at once, on both listeners' routes.
    let fresh = Instant::now();
    let answer = get(&http, "/_armlet/health", "");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["status"], "ready");
    assert!(fresh.elapsed() < HEADER_TIMEOUT * GENEROUS, "a fresh client waited {:?}", fresh.elapsed());

    // (c) Headers beyond the limit: 431, and the server stays healthy.
    let pad = "p".repeat(20_000);
    let answer = get(&http, "/_armlet/health", &format!("X-Pad: {pad}\r\n"));
    assert_eq!(answer.status, 431, "{}", String::from_utf8_lossy(&answer.body));
    let many: String = (0..150).map(|i| format!("X-Many-{i}: m\r\n")).collect();
    let answer = get(&http, "/_armlet/health", &many);
    assert_eq!(answer.status, 431, "{}", String::from_utf8_lossy(&answer.body));
    // Headers that never end and never fit are refused too, without waiting for the timeout.
    let mut stream = connect(&http);
    stream.write_all(format!("GET /_armlet/health HTTP/1.1\r\nHost: {http}\r\nX-Endless: ").as_bytes()).expect("send");
    let _ = stream.write_all(&vec![b'e'; 64 * 1024]);
    let answer = read_answer(&mut stream, HEADER_TIMEOUT * GENEROUS);
    assert_eq!(answer.status, 431);
    // Just under the limit is fine.
    let answer = get(&http, "/_armlet/health", &format!("X-Pad: {}\r\n", "q".repeat(12_000)));
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));

    for thread in slow {
        thread.join().expect("a slow client's check");
    }
    // Every idle connection was closed too.
    for (i, stream) in idle.iter_mut().enumerate() {
        let result = closed_within(stream, HEADER_TIMEOUT * GENEROUS, |_| {});
        assert!(result.is_some(), "idle connection {i} is still open");
    }
    for stream in &idle {
        let _ = stream.shutdown(Shutdown::Both);
    }

    // Nothing of the trickled group was written, and the server is still healthy.
    let answer = get(
        &http,
        &format!("/subscriptions/{}/resourcegroups/trickled?api-version={RG_API}", sub_id()),
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(answer.status, 404, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["error"]["code"], "ResourceGroupNotFound");
    assert_eq!(get(&http, "/_armlet/health", "").status, 200, "stderr:\n{}", server.stderr_text());
}

/// The control token a server printed at start.
fn printed_control_token(server: &Server) -> String {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        let stderr = server.stderr_text();
        if let Some(token) = stderr.split("control API token").nth(1).and_then(|rest| rest.split_whitespace().next()) {
            return token.to_owned();
        }
        assert!(Instant::now() < deadline, "armlet printed no control token:\n{stderr}");
        std::thread::sleep(StdDuration::from_millis(50));
    }
}

#[test]
fn the_control_api_wants_the_token_armlet_prints_when_listening_beyond_loopback() {
    // `--seed` makes ids reproducible, not the control token: two such servers differ.
    const ARGS: [&str; 4] = ["--bind", "0.0.0.0", "--seed", "42"];
    let twin = std::thread::spawn(|| Server::in_memory(&ARGS));
    let server = Server::in_memory(&ARGS);
    let twin = twin.join().expect("the second server");
    let token = printed_control_token(&server);
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()), "a weak control token: {token}");
    assert_ne!(printed_control_token(&twin), token, "the control token follows the seed");
    drop(twin);
    let http = server.http_addr();

    for (what, path, extra) in [
        ("no token", "/_armlet/info", String::new()),
        ("a wrong token", "/_armlet/info", "Authorization: Bearer wrong\r\n".to_owned()),
        ("a token prefix", "/_armlet/info", format!("Authorization: Bearer {}\r\n", &token[..token.len() - 1])),
        ("the token under another scheme", "/_armlet/info", format!("Authorization: Basic {token}\r\n")),
        ("a doubled slash", "//_armlet/info", String::new()),
        ("a dot segment", "/_armlet/./info", String::new()),
        ("past health", "/_armlet/health/../info", String::new()),
        ("the state", "/_armlet/state", String::new()),
        ("the events", "/_armlet/events", String::new()),
    ] {
        let answer = get(&http, path, &extra);
        assert!(
            answer.status == 401,
            "{what}: {path} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let body = answer.json();
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{what}: {body}");
        assert!(!String::from_utf8_lossy(&answer.body).contains(client_secret()), "{what} leaked the secret");
    }
    // Writes are refused and change nothing.
    for path in ["/_armlet/clock/advance", "/_armlet/reset", "/_armlet/seed"] {
        let body = r#"{"by":"30d","seed":1}"#;
        let answer = roundtrip(
            &http,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(answer.status, 401, "{path}");
    }
    let with_token = format!("Authorization: Bearer {token}\r\n");
    let answer = get(&http, "/_armlet/clock", &with_token);
    assert_eq!(answer.status, 200);
    let now = armlet::clock::parse_rfc3339(answer.json()["now"].as_str().expect("now")).expect("RFC 3339");
    assert!(now - Clock::wall_now() < time::Duration::days(1), "the clock moved without the token");

    // With the token (either header), and health without one.
    let answer = get(&http, "/_armlet/info", &with_token);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["clientSecret"], client_secret());
    let answer = get(&http, "/_armlet/info", &format!("X-Armlet-Token: {token}\r\n"));
    assert_eq!(answer.status, 200);
    let answer = get(&http, "/_armlet/health", "");
    assert_eq!(answer.status, 200);
    assert!(answer.header("content-type").is_some_and(|c| c.starts_with("application/json")));
}
