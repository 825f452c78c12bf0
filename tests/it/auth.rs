//! The bearer check on ARM requests (each refusal with ARM's code and `WWW-Authenticate`),
//! and Entra ID's token, discovery and key endpoints.

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::Sha256;

use armlet::clock::Clock;

use crate::common::*;

fn groups_uri() -> String {
    format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id())
}

/// Sends a GET with a raw `Authorization` value (or none).
async fn with_authorization(app: &TestApp, authorization: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let headers: Vec<(&str, &str)> = authorization.map(|a| vec![("authorization", a)]).unwrap_or_default();
    app.send_raw(Method::GET, &groups_uri(), None, &headers, Vec::new()).await
}

/// Asserts an ARM 401 with `code` and a bearer challenge; returns the message.
fn assert_unauthorized(status: StatusCode, headers: &HeaderMap, body: &Value, code: &str) -> String {
    let message = assert_arm_error(status, body, StatusCode::UNAUTHORIZED, code);
    let challenge =
        header_str(headers, "www-authenticate").unwrap_or_else(|| panic!("{code}: no WWW-Authenticate header"));
    assert!(challenge.starts_with(&format!("Bearer authorization_uri=\"{AUDIENCE}/{}\"", tenant_id())), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("error_description=\""), "{challenge}");
    message
}

#[tokio::test]
async fn a_token_from_the_token_endpoint_is_accepted() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, body) = app.get(&groups_uri(), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], serde_json::json!([]));
    // The scheme name is case-insensitive.
    let (status, _, body) = with_authorization(&app, Some(&format!("bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_missing_or_non_bearer_authorization_is_authentication_failed() {
    let app = TestApp::new().await;
    let (status, headers, body) = with_authorization(&app, None).await;
    let message = assert_unauthorized(status, &headers, &body, "AuthenticationFailed");
    assert_eq!(message, "Authentication failed. The 'Authorization' header is missing.");
    for value in ["Basic xyz", "Bearer", "Bearer   ", "token-without-scheme"] {
        let (status, headers, body) = with_authorization(&app, Some(value)).await;
        let message = assert_unauthorized(status, &headers, &body, "AuthenticationFailed");
        assert_eq!(
            message, "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            "{value}"
        );
    }
}

#[tokio::test]
async fn malformed_and_forged_tokens_are_invalid_authentication_token() {
    let app = TestApp::new().await;
    let claims = valid_claims();
    let good = mint(&claims, &key());
    let payload = good.split('.').nth(1).expect("payload").to_owned();

    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let hs_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let mut tampered_claims = claims.clone();
    tampered_claims.oid = "someone-else".into();
    let tampered_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).expect("claims"));
    let signature = good.rsplit('.').next().expect("signature").to_owned();
    let header = good.split('.').next().expect("header").to_owned();

    for (what, token, message) in [
        ("garbage", "garbage".to_owned(), "The access token is invalid."),
        ("two segments", format!("{header}.{payload}"), "The access token is invalid."),
        ("another key", mint(&claims, other_key()), "The access token signature is invalid."),
        (
            "alg none",
            format!("{none_header}.{payload}."),
            "The access token is invalid: signing algorithm 'none' is not accepted.",
        ),
        (
            "alg HS256",
            format!("{hs_header}.{payload}.{signature}"),
            "The access token is invalid: signing algorithm 'HS256' is not accepted.",
        ),
        (
            "tampered claims",
            format!("{header}.{tampered_payload}.{signature}"),
            "The access token signature is invalid.",
        ),
    ] {
        let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {token}"))).await;
        let got = assert_unauthorized(status, &headers, &body, "InvalidAuthenticationToken");
        assert_eq!(got, message, "{what}");
    }
}

#[tokio::test]
async fn token_lifetimes_are_checked_with_five_minutes_of_leeway() {
    let app = TestApp::new().await;
    let now = Clock::wall_now().unix_timestamp();

    let mut expired = valid_claims();
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    expired.exp = now - 3600;
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&expired, &key())))).await;
    let message = assert_unauthorized(status, &headers, &body, "ExpiredAuthenticationToken");
    assert!(
        message.starts_with("The access token expiry UTC time '")
            && message.contains("' is earlier than current UTC time '"),
        "{message}"
    );

    let mut far_past = valid_claims();
    far_past.iat = 0;
    far_past.nbf = 0;
    far_past.exp = 1;
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&far_past, &key())))).await;
    let message = assert_unauthorized(status, &headers, &body, "ExpiredAuthenticationToken");
    assert!(message.contains("'1/1/1970 12:00:01 AM'"), "{message}");

    // Just expired, within the leeway: still accepted.
    let mut recent = valid_claims();
    recent.exp = now - 60;
    let (status, _, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&recent, &key())))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut future = valid_claims();
    future.nbf = now + 3600;
    future.exp = now + 7200;
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&future, &key())))).await;
    let message = assert_unauthorized(status, &headers, &body, "InvalidAuthenticationToken");
    assert_eq!(message, "The access token is not yet valid.");
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = TestApp::new().await;
    let mut claims = valid_claims();
    claims.aud = "https://graph.microsoft.com".into();
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&claims, &key())))).await;
    let message = assert_unauthorized(status, &headers, &body, "InvalidAuthenticationTokenAudience");
    assert!(
        message.starts_with(
            "The access token has been obtained for wrong audience or resource 'https://graph.microsoft.com'."
        ),
        "{message}"
    );
    assert!(message.contains(&format!("'{AUDIENCE}/'")), "{message}");

    // armlet's own URL under its other names, with or without the slash, and the public
    // cloud's audiences are all fine.
    for aud in [
        "https://127.0.0.1:8443/",
        "https://localhost:8443",
        "https://management.azure.com/",
        "https://management.core.windows.net/",
    ] {
        let mut claims = valid_claims();
        claims.aud = aud.into();
        let (status, _, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&claims, &key())))).await;
        assert_eq!(status, StatusCode::OK, "{aud}: {body}");
    }
    // Another port is another service.
    let mut claims = valid_claims();
    claims.aud = "https://127.0.0.1:9443".into();
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {}", mint(&claims, &key())))).await;
    assert_unauthorized(status, &headers, &body, "InvalidAuthenticationTokenAudience");
}

#[tokio::test]
async fn a_token_from_another_tenant_is_refused_for_the_subscription() {
    let app = TestApp::new().await;
    let stranger = "0bad0000-0000-4000-8000-00000000beef";
    let mut claims = valid_claims();
    claims.tid = stranger.into();
    claims.iss = format!("{AUDIENCE}/{stranger}/");
    let token = mint(&claims, &key());
    let (status, headers, body) = with_authorization(&app, Some(&format!("Bearer {token}"))).await;
    let message = assert_unauthorized(status, &headers, &body, "InvalidAuthenticationTokenTenant");
    assert!(
        message.starts_with(&format!(
            "The access token is from the wrong issuer '{AUDIENCE}/{stranger}/'. It must match the tenant '{AUDIENCE}/{}/'",
            tenant_id()
        )),
        "{message}"
    );
    let (status, headers, body) = app
        .send(Method::PUT, &group_uri("stolen"), Some(&token), Some(serde_json::json!({ "location": "westus2" })))
        .await;
    assert_unauthorized(status, &headers, &body, "InvalidAuthenticationTokenTenant");
    assert!(app.stored(&group_id("stolen")).is_none());

    // Tenant-level lists show the stranger nothing of armlet's tenant.
    let (status, body) = app.get(&format!("/subscriptions?api-version={SUB_API}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], serde_json::json!([]));
}

// ---- the token endpoint ----

fn token_uri(tenant: &str) -> String {
    format!("/{tenant}/oauth2/v2.0/token")
}

/// Asserts an AAD error response and returns its description.
fn assert_aad_error(status: StatusCode, body: &Value, want: StatusCode, error: &str, code: u64) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap_or_else(|| panic!("no error_description: {body}"));
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    assert!(description.contains("Trace ID: "), "{description}");
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "no {field}: {body}");
    }
    description.to_owned()
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_requests_the_way_entra_does() {
    let app = TestApp::new().await;
    let scope = format!("{AUDIENCE}/.default");
    let tenant = tenant_id();

    let (status, body) = app
        .post_form(
            &token_uri(tenant),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id()),
                ("client_secret", "wrong"),
                ("scope", &scope),
            ],
        )
        .await;
    let description = assert_aad_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
    assert!(description.contains("Invalid client secret provided"), "{description}");
    assert!(body.get("access_token").is_none());

    let (status, body) = app
        .post_form(
            &token_uri(tenant),
            &[("grant_type", "client_credentials"), ("client_id", client_id()), ("scope", &scope)],
        )
        .await;
    assert_aad_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client", 7000218);

    let unknown_client = "11111111-2222-4333-8444-555555555555";
    let (status, body) = app
        .post_form(
            &token_uri(tenant),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", unknown_client),
                ("client_secret", client_secret()),
                ("scope", &scope),
            ],
        )
        .await;
    let description = assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "unauthorized_client", 700016);
    assert!(
        description.contains(&format!("Application with identifier '{unknown_client}' was not found")),
        "{description}"
    );

    let unknown_tenant = "22222222-0000-4000-8000-000000000000";
    let (status, body) = app
        .post_form(
            &token_uri(unknown_tenant),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id()),
                ("client_secret", client_secret()),
                ("scope", &scope),
            ],
        )
        .await;
    let description = assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", 90002);
    assert!(description.contains(&format!("Tenant '{unknown_tenant}' not found")), "{description}");

    let (status, body) = app
        .post_form(
            &token_uri(tenant),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id()),
                ("client_secret", client_secret()),
                ("scope", AUDIENCE),
            ],
        )
        .await;
    assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope", 1002012);

    let (status, body) = app
        .post_form(
            &token_uri(tenant),
            &[
                ("grant_type", "password"),
                ("client_id", client_id()),
                ("client_secret", client_secret()),
                ("scope", &scope),
                ("username", "someone"),
                ("password", "secret"),
            ],
        )
        .await;
    let description = assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003);
    assert!(description.contains("'password'"), "{description}");

    let (status, body) = app.post_form(&token_uri(tenant), &[("client_id", client_id()), ("scope", &scope)]).await;
    let description = assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", 900144);
    assert!(description.contains("'grant_type'"), "{description}");
}

#[tokio::test]
async fn issued_tokens_carry_entra_claims() {
    let app = TestApp::new().await;
    let before = Clock::wall_now().unix_timestamp();
    // The tenant may be named by its domain.
    let (status, body) = app
        .post_form(
            &token_uri("armlet.onmicrosoft.com"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id()),
                ("client_secret", client_secret()),
                ("scope", &format!("{AUDIENCE}/.default")),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let token = body["access_token"].as_str().expect("access_token");

    let header = jwt_segment(token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], key().kid());

    let claims = jwt_segment(token, 1);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], format!("{AUDIENCE}/{}/", tenant_id()));
    assert_eq!(claims["tid"], tenant_id());
    assert_eq!(claims["oid"], object_id());
    assert_eq!(claims["sub"], object_id());
    assert_eq!(claims["appid"], client_id());
    assert_eq!(claims["idtyp"], "app");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > iat, "{claims}");
    assert_eq!(exp - iat, 3599);
    assert!(iat >= before && iat <= Clock::wall_now().unix_timestamp() + 1);
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
}

#[tokio::test]
async fn the_v1_endpoint_takes_a_resource_and_answers_expires_on() {
    let app = TestApp::new().await;
    let before = Clock::wall_now().unix_timestamp();
    let resource = format!("{AUDIENCE}/");
    let (status, body) = app
        .post_form(
            &format!("/{}/oauth2/token", tenant_id()),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id()),
                ("client_secret", client_secret()),
                ("resource", &resource),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], resource);
    assert_eq!(body["expires_in"], "3599");
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string of seconds")
        .parse()
        .expect("expires_on is a number");
    assert!(expires_on >= before + 3599, "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(jwt_segment(token, 1)["exp"].as_i64(), Some(expires_on));
    assert_eq!(jwt_segment(token, 1)["aud"], resource);
    // az asks for the resource with a trailing slash; ARM takes it.
    let (status, body) = app.get(&groups_uri(), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // v1 needs `resource`.
    let (status, body) = app
        .post_form(
            &format!("/{}/oauth2/token", tenant_id()),
            &[("grant_type", "client_credentials"), ("client_id", client_id()), ("client_secret", client_secret())],
        )
        .await;
    let description = assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", 900144);
    assert!(description.contains("'resource'"), "{description}");
}

fn b64_uint(value: &Value) -> BigUint {
    let bytes = URL_SAFE_NO_PAD.decode(value.as_str().expect("a base64url string")).expect("base64url");
    BigUint::from_bytes_be(&bytes)
}

#[tokio::test]
async fn discovery_points_at_https_and_the_jwks_verifies_tokens() {
    let app = TestApp::new().await;
    let tenant = tenant_id();
    let (status, config) = app.get_public(&format!("/{tenant}/v2.0/.well-known/openid-configuration")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["token_endpoint"], format!("{AUDIENCE}/{tenant}/oauth2/v2.0/token"));
    assert_eq!(config["jwks_uri"], format!("{AUDIENCE}/{tenant}/discovery/v2.0/keys"));
    assert_eq!(config["issuer"], format!("{AUDIENCE}/{tenant}/v2.0"));
    assert_eq!(config["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));

    let (status, v1) = app.get_public(&format!("/{tenant}/.well-known/openid-configuration")).await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["token_endpoint"], format!("{AUDIENCE}/{tenant}/oauth2/token"));
    assert_eq!(v1["jwks_uri"], format!("{AUDIENCE}/{tenant}/discovery/keys"));

    let (status, body) =
        app.get_public("/22222222-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration").await;
    assert_aad_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", 90002);

    // Fetch the keys where discovery says they are and verify a fresh token with them.
    let jwks_uri = config["jwks_uri"].as_str().expect("jwks_uri");
    let (status, jwks) = app.get_public(&path_of(jwks_uri)).await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "RS256");

    let token = app.token().await;
    assert_eq!(jwt_segment(&token, 0)["kid"], jwk["kid"]);
    let public = RsaPublicKey::new(b64_uint(&jwk["n"]), b64_uint(&jwk["e"])).expect("RSA key");
    let (signing_input, signature) = token.rsplit_once('.').expect("a signed JWT");
    let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(signature).expect("base64url signature").as_slice())
        .expect("a PKCS#1 v1.5 signature");
    VerifyingKey::<Sha256>::new(public.clone())
        .verify(signing_input.as_bytes(), &signature)
        .expect("the JWKS key verifies armlet's token");
    // And refuses one signed elsewhere.
    let forged = mint(&valid_claims(), other_key());
    let (forged_input, forged_signature) = forged.rsplit_once('.').expect("a signed JWT");
    let forged_signature = Signature::try_from(URL_SAFE_NO_PAD.decode(forged_signature).expect("base64url").as_slice())
        .expect("signature");
    assert!(VerifyingKey::<Sha256>::new(public).verify(forged_input.as_bytes(), &forged_signature).is_err());

    // The v1 key path serves the same key.
    let (status, v1_keys) = app.get_public(&format!("/{tenant}/discovery/keys")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v1_keys, jwks);
}

#[tokio::test]
async fn client_secret_basic_works_as_discovery_advertises() {
    let app = TestApp::new().await;
    let tenant = tenant_id();
    let (status, config) = app.get_public(&format!("/{tenant}/v2.0/.well-known/openid-configuration")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(
        config["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("auth methods")
            .contains(&serde_json::json!("client_secret_basic")),
        "{config}"
    );

    // RFC 6749 §2.3.1: the client id and secret in an HTTP Basic Authorization header,
    // form-urlencoded first.
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(client_id()),
        encode(client_secret())
    ));
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("grant_type", "client_credentials"), ("scope", &format!("{AUDIENCE}/.default"))])
        .finish();
    let (status, _, body) = app
        .send_raw(
            Method::POST,
            &token_uri(tenant),
            None,
            &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &format!("Basic {basic}"))],
            form.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(jwt_segment(token, 1)["appid"], client_id());
    let (status, body) = app.get(&groups_uri(), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
