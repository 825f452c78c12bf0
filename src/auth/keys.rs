//! The RSA key that signs every token. Kept in the data directory so tokens outlive restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::jwt::Claims;

/// A signing key and its public half as JWKS publishes it.
///
/// A new key is generated on a background thread, because a 2048-bit RSA key takes a few
/// hundred milliseconds and armlet should be listening long before that: whatever needs the
/// key (signing, verifying, JWKS) waits for it, which only a first start ever notices.
pub struct SigningKey {
    material: OnceLock<KeyMaterial>,
    pending: Mutex<Option<JoinHandle<KeyMaterial>>>,
    /// Tokens whose signature this key already verified, with their claims: clients send the
    /// same token on every request, and an RSA verification costs far more than the rest of
    /// a request.
    verified: Mutex<HashMap<String, Claims>>,
}

struct KeyMaterial {
    kid: String,
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl KeyMaterial {
    fn new(private: RsaPrivateKey) -> Self {
        let public = RsaPublicKey::from(&private);
        let digest = Sha256::digest(public.n().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..20]);
        Self { kid, private, public }
    }

    fn generate() -> Self {
        // Generation fails only if the RNG does, which leaves nothing sensible to do.
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).expect("RSA key generation");
        Self::new(private)
    }
}

/// How many verified tokens a key remembers (then it starts over).
const VERIFIED_CAPACITY: usize = 4096;
const KEY_BITS: usize = 2048;

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("ready", &self.material.get().is_some()).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_private(private: RsaPrivateKey) -> Self {
        Self::ready(KeyMaterial::new(private))
    }

    fn ready(material: KeyMaterial) -> Self {
        Self { material: OnceLock::from(material), pending: Mutex::new(None), verified: Default::default() }
    }

    fn in_background(generate: impl FnOnce() -> KeyMaterial + Send + 'static) -> Self {
        Self {
            material: OnceLock::new(),
            pending: Mutex::new(Some(std::thread::spawn(generate))),
            verified: Default::default(),
        }
    }

    fn material(&self) -> &KeyMaterial {
        self.material.get_or_init(|| {
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
            pending.and_then(|thread| thread.join().ok()).unwrap_or_else(KeyMaterial::generate)
        })
    }

    /// The key id (`kid`, also sent as `x5t`).
    pub fn kid(&self) -> &str {
        &self.material().kid
    }

    pub fn private(&self) -> &RsaPrivateKey {
        &self.material().private
    }

    pub fn public(&self) -> &RsaPublicKey {
        &self.material().public
    }

    /// The claims of `token`, if this key already verified its signature.
    pub fn verified_claims(&self, token: &str) -> Option<Claims> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    /// Remembers that `token`'s signature verified, and its claims.
    pub fn remember_verified(&self, token: &str, claims: &Claims) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
    }

    /// A fresh 2048-bit key, generated in the background.
    pub fn generate() -> Result<Self, String> {
        Ok(Self::in_background(KeyMaterial::generate))
    }

    /// Loads `path`, or (first start) generates a key in the background and saves it there.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if let Ok(pem) = std::fs::read_to_string(path) {
            let private =
                RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| format!("{} is not a key: {e}", path.display()))?;
            return Ok(Self::from_private(private));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let path = path.to_owned();
        Ok(Self::in_background(move || {
            let material = KeyMaterial::generate();
            if let Err(e) = save(&material.private, &path) {
                // Tokens stay valid until the process ends; the next start makes a new key.
                tracing::error!("{e}");
            }
            material
        }))
    }

    /// The JWKS entry.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid(),
            "x5t": self.kid(),
            "n": URL_SAFE_NO_PAD.encode(self.public().n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public().e().to_bytes_be()),
        })
    }
}

/// Writes `private` to `path` as PKCS#8 PEM, readable by its owner only, in one rename so a
/// crash never leaves half a key behind.
fn save(private: &RsaPrivateKey, path: &Path) -> Result<(), String> {
    let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| format!("cannot encode key: {e}"))?;
    let temporary = path.with_extension("pem.tmp");
    std::fs::write(&temporary, pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
