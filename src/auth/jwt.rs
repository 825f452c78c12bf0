//! RS256 JWTs as Entra ID issues them, and their verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, SigningKey as RsaSigner, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use super::keys::SigningKey;

/// The claims armlet puts in (and reads from) access tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uti: Option<String>,
    /// The managed identity's resource id, on managed-identity tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xms_mirid: Option<String>,
    /// The thumbprint of the managed-identity credential behind the token (armlet's own
    /// claim, so a test can watch the 46-day rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cred_thumbprint: Option<String>,
}

impl Claims {
    /// The application the token was issued to (`appid` in v1 tokens, `azp` in v2).
    pub fn app_id(&self) -> &str {
        self.appid.as_deref().or(self.azp.as_deref()).unwrap_or("")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnsupportedAlgorithm(String),
    BadSignature,
    Expired { exp: i64 },
    NotYetValid { nbf: i64 },
}

pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": key.kid(), "x5t": key.kid() });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
    );
    let signer = RsaSigner::<Sha256>::new(key.private().clone());
    let signature = signer.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Verifies signature and lifetime (`now` in unix seconds, with 5 minutes of leeway as Entra
/// allows). Audience and tenant are the caller's business.
pub fn verify(token: &str, key: &SigningKey, now: i64) -> Result<Claims, TokenError> {
    // Clients send the same token on every request: its signature and claims are checked
    // once, its lifetime every time.
    if let Some(claims) = key.verified_claims(token) {
        return within_lifetime(claims, now);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed)?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if alg != "RS256" {
        return Err(TokenError::UnsupportedAlgorithm(alg.to_owned()));
    }
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let signature = Signature::try_from(signature_bytes.as_slice()).map_err(|_| TokenError::BadSignature)?;
    let signing_input = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    VerifyingKey::<Sha256>::new(key.public().clone())
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(TokenError::Malformed)?;
    key.remember_verified(token, &claims);
    within_lifetime(claims, now)
}

/// `claims` if the token is valid at `now`.
fn within_lifetime(claims: Claims, now: i64) -> Result<Claims, TokenError> {
    const LEEWAY: i64 = 300;
    // Saturating: a lifetime at the end of the number line is judged, not overflowed.
    if claims.exp.saturating_add(LEEWAY) < now {
        return Err(TokenError::Expired { exp: claims.exp });
    }
    if claims.nbf.saturating_sub(LEEWAY) > now {
        return Err(TokenError::NotYetValid { nbf: claims.nbf });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> &'static SigningKey {
        static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap())
    }

    #[test]
    fn round_trip_and_refusals() {
        let claims = Claims { aud: "a".into(), tid: "t".into(), iat: 1000, nbf: 1000, exp: 5000, ..Default::default() };
        let token = sign(&claims, key());
        assert_eq!(verify(&token, key(), 2000).unwrap(), claims);
        assert_eq!(verify(&token, key(), 9000), Err(TokenError::Expired { exp: 5000 }));
        assert_eq!(verify(&token, key(), 0), Err(TokenError::NotYetValid { nbf: 1000 }));
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert_eq!(verify(&tampered, key(), 2000), Err(TokenError::BadSignature));
        // A verified token is remembered, but only byte for byte: a new payload under the
        // old signature is checked (and refused).
        let forged_claims = Claims { aud: "forged".into(), ..claims.clone() };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&forged, key(), 2000), Err(TokenError::BadSignature));
        assert_eq!(verify(&token, key(), 2000).unwrap(), claims, "the remembered token still verifies");
        assert_eq!(verify("abc", key(), 2000), Err(TokenError::Malformed));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), token.split('.').nth(1).unwrap());
        assert_eq!(verify(&none, key(), 2000), Err(TokenError::UnsupportedAlgorithm("none".into())));
        let other = SigningKey::generate().unwrap();
        assert_eq!(verify(&sign(&claims, &other), key(), 2000), Err(TokenError::BadSignature));
    }
}
