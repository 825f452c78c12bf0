//! The RSA key that signs every token. Kept in the data directory so tokens outlive restarts.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A signing key and its public half as JWKS publishes it.
pub struct SigningKey {
    pub kid: String,
    pub private: RsaPrivateKey,
    pub public: RsaPublicKey,
    /// Tokens whose signature this key already verified: clients send the same token on
    /// every request, and an RSA verification costs far more than the rest of a request.
    verified: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How many verified tokens a key remembers (then it starts over).
const VERIFIED_CAPACITY: usize = 4096;

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_private(private: RsaPrivateKey) -> Self {
        let public = RsaPublicKey::from(&private);
        let digest = Sha256::digest(public.n().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..20]);
        Self { kid, private, public, verified: Default::default() }
    }

    /// Whether this key already verified `token`'s signature.
    pub fn already_verified(&self, token: &str) -> bool {
        self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(token)
    }

    /// Remembers that `token`'s signature verified.
    pub fn remember_verified(&self, token: &str) {
        let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_owned());
    }

    /// A fresh 2048-bit key.
    pub fn generate() -> Result<Self, String> {
        let private =
            RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| format!("key generation failed: {e}"))?;
        Ok(Self::from_private(private))
    }

    /// Loads `path`, or generates and saves a key there on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if let Ok(pem) = std::fs::read_to_string(path) {
            let private =
                RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| format!("{} is not a key: {e}", path.display()))?;
            return Ok(Self::from_private(private));
        }
        let key = Self::generate()?;
        let pem = key.private.to_pkcs8_pem(LineEnding::LF).map_err(|e| format!("cannot encode key: {e}"))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(key)
    }

    /// The JWKS entry.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        })
    }
}
