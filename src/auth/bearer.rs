//! The bearer check ARM makes on every request, with ARM's 401 codes and `WWW-Authenticate`.
//! Token lifetimes are checked against wall time, because clients cache tokens by their own
//! clock; everything simulated uses the clock.

use axum::http::{HeaderMap, header};
use time::OffsetDateTime;

use super::jwt::{self, TokenError};
use crate::arm::{ArmError, ArmResult, Caller, ErrorCode};
use crate::clock::Clock;
use crate::fixtures;
use crate::state::{AppState, Settings};

/// The audiences ARM tokens may carry: armlet's own HTTPS URL (under every host name it
/// answers to) and the public cloud's, for tools that hard-code those.
pub fn allowed_audiences(settings: &Settings) -> Vec<String> {
    let port = settings.https_authority().rsplit(':').next().unwrap_or("8443");
    let mut audiences = vec![settings.https_url.clone()];
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}");
        if !audiences.contains(&url) {
            audiences.push(url);
        }
    }
    audiences.push("https://management.azure.com".into());
    audiences.push("https://management.core.windows.net".into());
    audiences
}

fn audience_allowed(aud: &str, allowed: &[String]) -> bool {
    let aud = aud.trim_end_matches('/');
    allowed.iter().any(|a| a.eq_ignore_ascii_case(aud))
}

/// ARM's way of writing an instant in token messages: `11/29/2026 3:04:05 AM`.
fn arm_time(t: OffsetDateTime) -> String {
    let hour = t.hour();
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{}/{}/{} {}:{:02}:{:02} {ampm}", t.month() as u8, t.day(), t.year(), h12, t.minute(), t.second())
}

fn unauthorized(state: &AppState, code: ErrorCode, message: String, description: &str) -> ArmError {
    let challenge = format!(
        "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
        state.settings.https_url,
        fixtures::defaults().tenant.tenant_id
    );
    ArmError::new(code, message).with_header(header::WWW_AUTHENTICATE, &challenge)
}

/// Authenticates an ARM request from its `Authorization` header.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> ArmResult<Caller> {
    authenticate_for(state, headers, &allowed_audiences(&state.settings))
}

/// Authenticates a request whose token must carry one of `audiences` (compared without a
/// trailing slash, case-insensitively): Microsoft Graph accepts other audiences than ARM.
pub fn authenticate_for(state: &AppState, headers: &HeaderMap, audiences: &[String]) -> ArmResult<Caller> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            state,
            ErrorCode::AuthenticationFailed,
            "Authentication failed. The 'Authorization' header is missing.".into(),
            "The authentication failed because of missing 'Authorization' header.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return Err(unauthorized(
            state,
            ErrorCode::AuthenticationFailed,
            "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
            "The authentication failed because of invalid 'Authorization' header.",
        ));
    };
    let now = Clock::wall_now();
    let claims = jwt::verify(token, &state.key, now.unix_timestamp()).map_err(|e| {
        let invalid = |message: &str| {
            unauthorized(
                state,
                ErrorCode::InvalidAuthenticationToken,
                message.to_owned(),
                "The access token is invalid.",
            )
        };
        match e {
            TokenError::Malformed => invalid("The access token is invalid."),
            TokenError::UnsupportedAlgorithm(alg) => {
                invalid(&format!("The access token is invalid: signing algorithm '{alg}' is not accepted."))
            }
            TokenError::BadSignature => invalid("The access token signature is invalid."),
            TokenError::NotYetValid { .. } => invalid("The access token is not yet valid."),
            TokenError::Expired { exp } => {
                let expiry = OffsetDateTime::from_unix_timestamp(exp).unwrap_or(now);
                unauthorized(
                    state,
                    ErrorCode::ExpiredAuthenticationToken,
                    format!(
                        "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                        arm_time(expiry),
                        arm_time(now)
                    ),
                    "The access token has expired.",
                )
            }
        }
    })?;
    if !audience_allowed(&claims.aud, audiences) {
        let allowed: Vec<String> = audiences.iter().map(|a| format!("{a}/")).collect();
        return Err(unauthorized(
            state,
            ErrorCode::InvalidAuthenticationTokenAudience,
            format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                claims.aud,
                allowed.join("','")
            ),
            "The access token has been obtained for wrong audience.",
        ));
    }
    Ok(Caller { object_id: claims.oid.clone(), app_id: claims.app_id().to_owned(), tenant_id: claims.tid })
}

/// ARM's answer when a token's tenant is not the subscription's.
pub fn wrong_tenant(state: &AppState, caller: &Caller, subscription_tenant: &str) -> ArmError {
    unauthorized(
        state,
        ErrorCode::InvalidAuthenticationTokenTenant,
        format!(
            "The access token is from the wrong issuer '{}/{}/'. It must match the tenant '{}/{subscription_tenant}/' associated with this subscription. Please use the authority (URL) '{}/{subscription_tenant}' to get the token.",
            state.settings.https_url, caller.tenant_id, state.settings.https_url, state.settings.https_url
        ),
        "The access token is from the wrong issuer.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn arm_times() {
        assert_eq!(arm_time(datetime!(2026-11-29 03:04:05 UTC)), "11/29/2026 3:04:05 AM");
        assert_eq!(arm_time(datetime!(2026-11-29 15:00:00 UTC)), "11/29/2026 3:00:00 PM");
        assert_eq!(arm_time(datetime!(2026-11-29 00:30:00 UTC)), "11/29/2026 12:30:00 AM");
    }
}
