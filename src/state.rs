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

/// Default delay before a role assignment takes effect. Azure documents "up to 10 minutes"
/// (longer for cached tokens); a short default keeps scripts quick while still making a
/// missing retry visible.
pub const DEFAULT_PROPAGATION_DELAY: time::Duration = time::Duration::seconds(10);
/// Default time a brand-new principal is unknown to role assignments without principalType.
pub const DEFAULT_REPLICATION_LAG: time::Duration = time::Duration::seconds(5);

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
    /// How role assignments are enforced.
    pub rbac: RbacMode,
    /// How long a role assignment takes to take (or stop taking) effect, in simulated time.
    pub propagation_delay: time::Duration,
    /// How long a new principal stays unknown to role assignments that give no principalType.
    pub replication_lag: time::Duration,
    /// With a frozen clock, each ARM request moves it forward this much (`--clock-step`), so
    /// operations progress as clients poll and runs are reproducible.
    pub clock_step: time::Duration,
    /// The token the control API (`/_armlet/…`, except health) requires, when set.
    pub control_token: Option<String>,
}

/// `--rbac`: what a request without an effective grant gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RbacMode {
    /// 403 AuthorizationFailed, as ARM answers.
    #[default]
    Enforce,
    /// Proceeds; the denial is logged.
    Soft,
    /// No checks.
    Off,
}

impl std::str::FromStr for RbacMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "enforce" => Ok(Self::Enforce),
            "soft" => Ok(Self::Soft),
            "off" => Ok(Self::Off),
            other => Err(format!("unknown RBAC mode '{other}' (enforce, soft, off)")),
        }
    }
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
            rbac: RbacMode::Enforce,
            propagation_delay: DEFAULT_PROPAGATION_DELAY,
            replication_lag: DEFAULT_REPLICATION_LAG,
            clock_step: time::Duration::ZERO,
            control_token: None,
        }
    }
}

impl Settings {
    /// `host:port` of the HTTPS listener.
    pub fn https_authority(&self) -> &str {
        self.https_url.trim_start_matches("https://")
    }
}

/// The most recent entries of a log, oldest first: the requests armlet answered
/// (`GET /_armlet/requests`) and the events that fired (`GET /_armlet/events`).
#[derive(Default)]
pub struct RecentLog {
    entries: std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>,
}

impl RecentLog {
    /// How many requests are kept.
    pub const CAPACITY: usize = 1000;

    pub fn record(&self, entry: serde_json::Value) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() == Self::CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest `limit` entries, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<serde_json::Value> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().skip(entries.len().saturating_sub(limit)).cloned().collect()
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
    pub requests: Arc<RecentLog>,
    pub events: Arc<RecentLog>,
    pub faults: Arc<crate::arm::faults::Faults>,
    /// Held while due long-running operations are settled (the ticker, status polls and
    /// clock changes all settle): see `providers::settle_operations`.
    pub settling: Arc<tokio::sync::Mutex<()>>,
    pub grant_cache: Arc<crate::providers::authorization::GrantCache>,
}

impl AppState {
    pub fn new(db: Db, clock: Clock, key: Arc<SigningKey>, settings: Settings) -> Self {
        let mut registry = Registry::default();
        for provider in fixtures::providers() {
            for rt in &provider.resource_types {
                registry.add(&provider.namespace, &rt.resource_type, &rt.api_versions, provider.arm_owned);
            }
        }
        let grant_cache = Arc::new(crate::providers::authorization::GrantCache::new(&db));
        Self {
            db: Arc::new(db),
            clock: Arc::new(clock),
            key,
            settings: Arc::new(settings),
            api_versions: Arc::new(registry),
            routes: Arc::new(crate::router::arm_routes()),
            requests: Arc::new(RecentLog::default()),
            events: Arc::new(RecentLog::default()),
            faults: Arc::new(crate::arm::faults::Faults::default()),
            settling: Arc::new(tokio::sync::Mutex::new(())),
            grant_cache,
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
                    // Made "a day ago", like its Owner assignment: it has long replicated.
                    created_date_time: now - time::Duration::days(1),
                }
                .save(tx)?;
                let owner = crate::providers::authorization::bootstrap_owner_assignment(
                    &sub.subscription_id,
                    &sp.object_id,
                    now,
                    "a1e70000-0000-4000-8000-0000000000a1",
                );
                tx.put(crate::arm::resource_id::storage_key(owner["id"].as_str().unwrap_or_default()), &owner)
            })
            .await
    }
}
