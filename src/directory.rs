//! The directory (Entra ID's object store): service principals and their password
//! credentials. Graph and managed identities build on it; the token endpoint reads it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::{Db, StoreError, Tx};

/// A client secret, stored as a hash like the real directory (only a hint is readable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    pub display_name: Option<String>,
    pub hint: String,
    pub secret_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start_date_time: OffsetDateTime,
    /// `None` never expires (the default service principal's well-known secret).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub end_date_time: Option<OffsetDateTime>,
}

pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PasswordCredential {
    pub fn new(
        key_id: String,
        secret: &str,
        start: OffsetDateTime,
        end: Option<OffsetDateTime>,
    ) -> Self {
        Self {
            key_id,
            display_name: None,
            hint: secret.chars().take(3).collect(),
            secret_sha256: hash_secret(secret),
            start_date_time: start,
            end_date_time: end,
        }
    }
}

/// A service principal (`servicePrincipalType` Application or ManagedIdentity).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The object id (what role assignments call principalId).
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub tenant_id: String,
    pub service_principal_type: String,
    #[serde(default)]
    pub service_principal_names: Vec<String>,
    #[serde(default)]
    pub alternative_names: Vec<String>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
}

pub fn sp_key(object_id: &str) -> String {
    format!("dir/sp/{}", object_id.to_lowercase())
}

fn app_index_key(app_id: &str) -> String {
    format!("dir/appid/{}", app_id.to_lowercase())
}

/// How a presented client secret fared.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretCheck {
    Valid,
    Wrong,
    Expired,
}

impl ServicePrincipal {
    /// Writes the principal and its appId index together.
    pub fn save(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        tx.put(sp_key(&self.id), self)?;
        tx.put(app_index_key(&self.app_id), &self.id)
    }

    pub fn find_by_app_id(db: &Db, app_id: &str) -> Result<Option<Self>, StoreError> {
        match db.get::<String>(&app_index_key(app_id))? {
            Some(object_id) => db.get(&sp_key(&object_id)),
            None => Ok(None),
        }
    }

    /// Checks `secret` against the principal's credentials at simulated time `now`.
    pub fn check_secret(&self, secret: &str, now: OffsetDateTime) -> SecretCheck {
        let hash = hash_secret(secret);
        let mut expired = false;
        for credential in self
            .password_credentials
            .iter()
            .filter(|c| c.secret_sha256 == hash)
        {
            match credential.end_date_time {
                Some(end) if end <= now => expired = true,
                _ => return SecretCheck::Valid,
            }
        }
        if expired {
            SecretCheck::Expired
        } else {
            SecretCheck::Wrong
        }
    }
}
