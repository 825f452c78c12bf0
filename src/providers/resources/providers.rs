//! Resource providers (`Providers_*`): what namespaces exist, their types and api-versions
//! (from `fixtures/providers.json`), and per-subscription registration.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::subscriptions::Subscription;
use crate::arm::paging::page;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::fixtures::{self, ProviderFixture};
use crate::state::AppState;

fn provider_json(provider: &ProviderFixture, subscription: Option<&Subscription>) -> Value {
    let all_regions: Vec<&str> = fixtures::regions().iter().map(|r| r.display_name.as_str()).collect();
    let types: Vec<Value> = provider
        .resource_types
        .iter()
        .map(|t| {
            let locations: Vec<&str> = if t.locations.iter().any(|l| l == "*") {
                all_regions.clone()
            } else {
                t.locations.iter().map(String::as_str).collect()
            };
            json!({ "resourceType": t.resource_type, "locations": locations, "apiVersions": t.api_versions, "capabilities": "None" })
        })
        .collect();
    match subscription {
        Some(sub) => {
            let registered = provider.arm_owned
                || !sub.unregistered_providers.iter().any(|n| n.eq_ignore_ascii_case(&provider.namespace));
            json!({
                "id": format!("/subscriptions/{}/providers/{}", sub.subscription_id, provider.namespace),
                "namespace": provider.namespace,
                "registrationState": if registered { "Registered" } else { "NotRegistered" },
                "registrationPolicy": if provider.arm_owned { "RegistrationFree" } else { "RegistrationRequired" },
                "resourceTypes": types,
            })
        }
        None => json!({
            "id": format!("/providers/{}", provider.namespace),
            "namespace": provider.namespace,
            "resourceTypes": types,
        }),
    }
}

fn find(namespace: &str) -> ArmResult<&'static ProviderFixture> {
    fixtures::providers()
        .iter()
        .find(|p| p.namespace.eq_ignore_ascii_case(namespace))
        .ok_or_else(|| crate::arm_error!(InvalidResourceNamespace, "The resource namespace '{namespace}' is invalid."))
}

fn subscription(state: &AppState, req: &ArmRequest) -> ArmResult<Subscription> {
    let id = req.param("subscriptionId");
    state.db.get::<Subscription>(&Subscription::key(id))?.ok_or_else(|| ArmError::subscription_not_found(id))
}

/// `Providers_List`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let sub = subscription(&state, &req)?;
    let items = fixtures::providers().iter().map(|p| provider_json(p, Some(&sub))).collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `Providers_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let sub = subscription(&state, &req)?;
    crate::arm::json(StatusCode::OK, provider_json(find(req.param("resourceProviderNamespace"))?, Some(&sub)))
}

async fn set_registration(state: AppState, req: ArmRequest, registered: bool) -> ArmResult<Response> {
    let provider = find(req.param("resourceProviderNamespace"))?;
    let id = req.param("subscriptionId").to_owned();
    let sub = state
        .db
        .transact(|tx| -> ArmResult<Subscription> {
            let mut sub = tx
                .get::<Subscription>(&Subscription::key(&id))?
                .ok_or_else(|| ArmError::subscription_not_found(&id))?;
            sub.unregistered_providers.retain(|n| !n.eq_ignore_ascii_case(&provider.namespace));
            if !registered && !provider.arm_owned {
                sub.unregistered_providers.push(provider.namespace.clone());
            }
            tx.put(Subscription::key(&id), &sub)?;
            Ok(sub)
        })
        .await?;
    crate::arm::json(StatusCode::OK, provider_json(provider, Some(&sub)))
}

/// `Providers_Register`: registration completes at once.
pub async fn register(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    set_registration(state, req, true).await
}

/// `Providers_Unregister`.
pub async fn unregister(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    set_registration(state, req, false).await
}

/// `Providers_ListAtTenantScope`.
pub async fn list_at_tenant_scope(_state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = fixtures::providers().iter().map(|p| provider_json(p, None)).collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `Providers_GetAtTenantScope`.
pub async fn get_at_tenant_scope(_state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::arm::json(StatusCode::OK, provider_json(find(req.param("resourceProviderNamespace"))?, None))
}
