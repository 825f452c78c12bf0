//! Microsoft.Resources: subscriptions, tenants, locations, providers, resource groups and the
//! generic resource lists — the parts of ARM itself that every other provider leans on.

pub mod generic_resources;
pub mod locations;
pub mod operations;
pub mod providers;
pub mod resource_groups;
pub mod subscriptions;

use crate::arm::resource_id::parse_scope;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::auth::bearer;
use crate::state::AppState;
use subscriptions::Subscription;

/// What ARM checks before handing a request to a provider: the subscription exists and
/// belongs to the caller's tenant, and the resource group a resource lives in exists.
/// `group_is_target` is true for the resource group's own operations.
pub fn require_scope(state: &AppState, req: &ArmRequest, group_is_target: bool) -> ArmResult<()> {
    let (subscription, group) = if req.params.iter().any(|(n, _)| *n == "scope") {
        let parts = parse_scope(req.param("scope")).ok_or_else(|| {
            crate::arm_error!(InvalidRequestContent, "The scope '{}' is invalid.", req.param("scope"))
        })?;
        (parts.subscription, parts.resource_group)
    } else {
        let sub = Some(req.param("subscriptionId").to_owned()).filter(|s| !s.is_empty());
        let group = Some(req.param("resourceGroupName").to_owned()).filter(|g| !g.is_empty() && !group_is_target);
        (sub, group)
    };
    if let Some(subscription) = subscription {
        let sub = state
            .db
            .get::<Subscription>(&Subscription::key(&subscription))?
            .ok_or_else(|| ArmError::subscription_not_found(&subscription))?;
        if !sub.tenant_id.eq_ignore_ascii_case(&req.caller.tenant_id) {
            return Err(bearer::wrong_tenant(state, &req.caller, &sub.tenant_id));
        }
        if let Some(group) = group
            && resource_groups::load(state, &subscription, &group)?.is_none()
        {
            return Err(ArmError::resource_group_not_found(&group));
        }
    }
    Ok(())
}
