//! What every handler shares.

use std::path::PathBuf;
use std::sync::Arc;

use crate::arm::api_version::Registry;
use crate::arm::dispatch::RouteTable;
use crate::auth::keys::SigningKey;
use crate::clock::Clock;
use crate::directory::{PasswordCredential, ServicePrincipal};
use crate::fixtures;
use crate::providers::resources::subscriptions::{Subscription, Tenant};
use crate::store::{Db, StoreError};

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where ARM, Entra and Graph are served, e.g. `https://127.0.0.1:8443`.
    pub https_url: String,
    /// The plain-HTTP listener (metadata, IMDS, control API), e.g. `http://127.0.0.1:8080`.
    pub http_url: String,
    pub data_dir: Option<PathBuf>,
    pub skip_api_version_check: bool,
    pub max_body_bytes: usize,
    /// The CA certificate clients should trust.
    pub ca_pem: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            https_url: "https://127.0.0.1:8443".into(),
            http_url: "http://127.0.0.1:8080".into(),
            data_dir: None,
            skip_api_version_check: false,
            max_body_bytes: 4 * 1024 * 1024,
            ca_pem: String::new(),
        }
    }
}

impl Settings {
    /// `host:port` of the HTTPS listener.
    pub fn https_authority(&self) -> &str {
        self.https_url.trim_start_matches("https://")
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Db>,
    pub clock: Arc<Clock>,
    pub key: Arc<SigningKey>,
    pub settings: Arc<Settings>,
    pub api_versions: Arc<Registry>,
    pub routes: Arc<RouteTable<AppState>>,
}

impl AppState {
    pub fn new(db: Db, clock: Clock, key: Arc<SigningKey>, settings: Settings) -> Self {
        let mut registry = Registry::default();
        for provider in fixtures::providers() {
            for rt in &provider.resource_types {
                registry.add(
                    &provider.namespace,
                    &rt.resource_type,
                    &rt.api_versions,
                    provider.arm_owned,
                );
            }
        }
        Self {
            db: Arc::new(db),
            clock: Arc::new(clock),
            key,
            settings: Arc::new(settings),
            api_versions: Arc::new(registry),
            routes: Arc::new(crate::router::arm_routes()),
        }
    }

    /// Creates the default tenant, subscription and service principal on first start.
    pub async fn bootstrap(&self) -> Result<(), StoreError> {
        let defaults = fixtures::defaults();
        let now = self.clock.now();
        self.db
            .transact(|tx| {
                let tenant_id = &defaults.tenant.tenant_id;
                if tx.get::<Tenant>(&Tenant::key(tenant_id))?.is_some() {
                    return Ok(());
                }
                tx.put(
                    Tenant::key(tenant_id),
                    &Tenant {
                        tenant_id: tenant_id.clone(),
                        display_name: defaults.tenant.display_name.clone(),
                        default_domain: defaults.tenant.default_domain.clone(),
                        country_code: defaults.tenant.country_code.clone(),
                    },
                )?;
                let sub = &defaults.subscription;
                tx.put(
                    Subscription::key(&sub.subscription_id),
                    &Subscription {
                        subscription_id: sub.subscription_id.clone(),
                        display_name: sub.display_name.clone(),
                        tenant_id: tenant_id.clone(),
                        state: "Enabled".into(),
                        unregistered_providers: Vec::new(),
                    },
                )?;
                let sp = &defaults.service_principal;
                ServicePrincipal {
                    id: sp.object_id.clone(),
                    app_id: sp.app_id.clone(),
                    display_name: sp.display_name.clone(),
                    tenant_id: tenant_id.clone(),
                    service_principal_type: "Application".into(),
                    service_principal_names: vec![sp.app_id.clone()],
                    alternative_names: Vec::new(),
                    password_credentials: vec![PasswordCredential::new(
                        "a1e70000-0000-4000-8000-0000000000c5".into(),
                        &sp.secret,
                        now,
                        None,
                    )],
                    created_date_time: now,
                }
                .save(tx)
            })
            .await
    }
}
