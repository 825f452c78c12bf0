//! Subscriptions and tenants (Microsoft.Resources subscriptions API, 2022-12-01).

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::arm::paging::page;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::state::AppState;

/// A directory tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_id: String,
    pub display_name: String,
    pub default_domain: String,
    pub country_code: String,
}

impl Tenant {
    pub fn key(id: &str) -> String {
        format!("tenant/{}", id.to_lowercase())
    }

    fn to_arm(&self) -> Value {
        json!({
            "id": format!("/tenants/{}", self.tenant_id),
            "tenantId": self.tenant_id,
            "countryCode": self.country_code,
            "displayName": self.display_name,
            "domains": [self.default_domain],
            "tenantCategory": "Home",
            "defaultDomain": self.default_domain,
            "tenantType": "AAD",
        })
    }
}

/// A subscription and the provider registrations it has turned off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    pub display_name: String,
    pub tenant_id: String,
    pub state: String,
    /// Namespaces unregistered with `POST .../providers/{ns}/unregister` (all others count as registered).
    #[serde(default)]
    pub unregistered_providers: Vec<String>,
}

impl Subscription {
    pub fn key(id: &str) -> String {
        format!("sub/{}", id.to_lowercase())
    }

    pub fn to_arm(&self) -> Value {
        json!({
            "id": format!("/subscriptions/{}", self.subscription_id),
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": self.subscription_id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "state": self.state,
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        })
    }
}

/// `Subscriptions_List`: the subscriptions of the caller's tenant.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items: Vec<Value> = state
        .db
        .scan::<Subscription>("sub/")?
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.tenant_id.eq_ignore_ascii_case(&req.caller.tenant_id))
        .filter(|s| crate::providers::authorization::has_any_access(&state, &req.caller.object_id, &s.subscription_id))
        .map(|s| s.to_arm())
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `Subscriptions_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let id = req.param("subscriptionId");
    let sub =
        state.db.get::<Subscription>(&Subscription::key(id))?.ok_or_else(|| ArmError::subscription_not_found(id))?;
    crate::arm::json(StatusCode::OK, sub.to_arm())
}

/// `Tenants_List`: the tenants the caller belongs to.
pub async fn list_tenants(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items: Vec<Value> = state
        .db
        .scan::<Tenant>("tenant/")?
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.tenant_id.eq_ignore_ascii_case(&req.caller.tenant_id))
        .map(|t| t.to_arm())
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}
