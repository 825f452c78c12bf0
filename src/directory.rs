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
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl PasswordCredential {
    pub fn new(key_id: String, secret: &str, start: OffsetDateTime, end: Option<OffsetDateTime>) -> Self {
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

/// Graph properties of a service principal that the directory itself does not need
/// (`accountEnabled`, `tags`, `notes`, ...), kept beside it so the principal's shape (which
/// managed identities build too) stays small.
fn sp_properties_key(object_id: &str) -> String {
    format!("dir/spprops/{}", object_id.to_lowercase())
}

fn app_index_key(app_id: &str) -> String {
    format!("dir/appid/{}", app_id.to_lowercase())
}

/// Managed identities' service principals by the lower-cased resource id they stand for.
fn resource_index_key(resource_id: &str) -> String {
    format!("dir/mires{}", crate::arm::resource_id::key(resource_id))
}

pub fn application_key(object_id: &str) -> String {
    format!("dir/app/{}", object_id.to_lowercase())
}

fn application_index_key(app_id: &str) -> String {
    format!("dir/appobj/{}", app_id.to_lowercase())
}

/// An application registration (`az ad app`, `az ad sp create-for-rbac`). Its password
/// credentials sign in its service principal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The object id.
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub tenant_id: String,
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    #[serde(default)]
    pub identifier_uris: Vec<String>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// The other writable Graph properties (`web`, `api`, `tags`, `keyCredentials`, ...) as
    /// the client last set them; Graph fills in the defaults when it answers.
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

impl Application {
    pub fn save(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        tx.put(application_key(&self.id), self)?;
        tx.put(application_index_key(&self.app_id), &self.id)
    }

    pub fn remove(&self, tx: &mut Tx<'_>) {
        tx.delete(application_key(&self.id));
        tx.delete(application_index_key(&self.app_id));
    }

    pub fn find_by_app_id(db: &Db, app_id: &str) -> Result<Option<Self>, StoreError> {
        match db.get::<String>(&application_index_key(app_id))? {
            Some(object_id) => db.get(&application_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_app_id_in(tx: &Tx<'_>, app_id: &str) -> Result<Option<Self>, StoreError> {
        match tx.get::<String>(&application_index_key(app_id))? {
            Some(object_id) => tx.get(&application_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_id(db: &Db, object_id: &str) -> Result<Option<Self>, StoreError> {
        db.get(&application_key(object_id))
    }

    pub fn find_by_id_in(tx: &Tx<'_>, object_id: &str) -> Result<Option<Self>, StoreError> {
        tx.get(&application_key(object_id))
    }

    /// Every application, in object-id order.
    pub fn list(db: &Db) -> Result<Vec<Self>, StoreError> {
        Ok(db.scan::<Self>("dir/app/")?.into_iter().map(|(_, a)| a).collect())
    }
}

/// How a presented client secret fared.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretCheck {
    Valid,
    Wrong,
    Expired,
}

impl ServicePrincipal {
    /// Writes the principal and its indexes together.
    pub fn save(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        tx.put(sp_key(&self.id), self)?;
        tx.put(app_index_key(&self.app_id), &self.id)?;
        if let Some(resource_id) = self.managed_identity_resource_id() {
            tx.put(resource_index_key(resource_id), &self.id)?;
        }
        Ok(())
    }

    /// Removes the principal, its indexes and its Graph properties.
    pub fn remove(&self, tx: &mut Tx<'_>) {
        tx.delete(sp_key(&self.id));
        tx.delete(sp_properties_key(&self.id));
        tx.delete(app_index_key(&self.app_id));
        if let Some(resource_id) = self.managed_identity_resource_id() {
            tx.delete(resource_index_key(resource_id));
        }
    }

    pub fn is_managed_identity(&self) -> bool {
        self.service_principal_type == "ManagedIdentity"
    }

    /// For a managed identity, the resource id it belongs to (from `alternativeNames`).
    pub fn managed_identity_resource_id(&self) -> Option<&str> {
        if !self.is_managed_identity() {
            return None;
        }
        self.alternative_names.iter().find(|n| n.starts_with('/')).map(String::as_str)
    }

    pub fn find_by_id(db: &Db, object_id: &str) -> Result<Option<Self>, StoreError> {
        db.get(&sp_key(object_id))
    }

    /// The managed identity's principal for a resource id (user-assigned identity, or a
    /// resource with a system-assigned identity).
    pub fn find_by_resource_id(db: &Db, resource_id: &str) -> Result<Option<Self>, StoreError> {
        match db.get::<String>(&resource_index_key(resource_id))? {
            Some(object_id) => db.get(&sp_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_resource_id_in(tx: &Tx<'_>, resource_id: &str) -> Result<Option<Self>, StoreError> {
        match tx.get::<String>(&resource_index_key(resource_id))? {
            Some(object_id) => tx.get(&sp_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_app_id(db: &Db, app_id: &str) -> Result<Option<Self>, StoreError> {
        match db.get::<String>(&app_index_key(app_id))? {
            Some(object_id) => db.get(&sp_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_app_id_in(tx: &Tx<'_>, app_id: &str) -> Result<Option<Self>, StoreError> {
        match tx.get::<String>(&app_index_key(app_id))? {
            Some(object_id) => tx.get(&sp_key(&object_id)),
            None => Ok(None),
        }
    }

    pub fn find_by_id_in(tx: &Tx<'_>, object_id: &str) -> Result<Option<Self>, StoreError> {
        tx.get(&sp_key(object_id))
    }

    /// Every service principal, in object-id order.
    pub fn list(db: &Db) -> Result<Vec<Self>, StoreError> {
        Ok(db.scan::<Self>("dir/sp/")?.into_iter().map(|(_, sp)| sp).collect())
    }

    /// The principal's extra Graph properties (empty if none were ever set).
    pub fn properties(db: &Db, object_id: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        Ok(db.get(&sp_properties_key(object_id))?.unwrap_or_default())
    }

    pub fn properties_in(
        tx: &Tx<'_>,
        object_id: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        Ok(tx.get(&sp_properties_key(object_id))?.unwrap_or_default())
    }

    pub fn save_properties(
        tx: &mut Tx<'_>,
        object_id: &str,
        properties: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        if properties.is_empty() {
            tx.delete(sp_properties_key(object_id));
            Ok(())
        } else {
            tx.put(sp_properties_key(object_id), properties)
        }
    }
}

/// Checks `secret` against `credentials` (the principal's and its application's) at
/// simulated time `now`.
/// What the directory says about the secret with this hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    /// Valid, until the given time (never when `None`).
    Valid(Option<OffsetDateTime>),
    Expired(OffsetDateTime),
    /// No credential has it any more (replaced by `az ad sp credential reset`, or never was).
    Unknown,
}

/// Looks up a secret by its hash among `credentials`.
pub fn secret_state<'a>(
    credentials: impl IntoIterator<Item = &'a PasswordCredential>,
    secret_sha256: &str,
    now: OffsetDateTime,
) -> SecretState {
    let mut state = SecretState::Unknown;
    for credential in credentials.into_iter().filter(|c| c.secret_sha256 == secret_sha256) {
        match credential.end_date_time {
            Some(end) if end <= now => state = SecretState::Expired(end),
            end => return SecretState::Valid(end),
        }
    }
    state
}

pub fn check_secret<'a>(
    credentials: impl IntoIterator<Item = &'a PasswordCredential>,
    secret: &str,
    now: OffsetDateTime,
) -> SecretCheck {
    let hash = hash_secret(secret);
    let mut expired = false;
    for credential in credentials.into_iter().filter(|c| c.secret_sha256 == hash) {
        match credential.end_date_time {
            Some(end) if end <= now => expired = true,
            _ => return SecretCheck::Valid,
        }
    }
    if expired { SecretCheck::Expired } else { SecretCheck::Wrong }
}
