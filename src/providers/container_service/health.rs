//! A cluster's health as armlet sees it (`GET /_armlet/clusters/{id}/health`, `armlet cluster
//! health`): which identity the control plane, each pool's kubelets and each add-on use now;
//! whether each has what it needs (the node resource group, the subnets, image pulls from the
//! subscription's registries, a valid service principal secret) and, if not, the missing
//! action and scope; and what is pending on the clock that will change that.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::cluster_identities::service_principal_secret;
use super::node_images::Catalog;
use super::nodes::KubeletCredential;
use super::{ClusterInternals, load_cluster, nodes};
use crate::arm::{ArmError, ArmResult};
use crate::arm_error;
use crate::auth::rbac::Decision;
use crate::clock::rfc3339;
use crate::directory::{SecretState, ServicePrincipal};
use crate::providers::authorization as authz;
use crate::providers::container_registry::registries;
use crate::providers::managed_identity::credentials::MiCredential;
use crate::providers::resources::resource_groups;
use crate::state::AppState;

/// One permission check: may `principal` do `action` at `scope` now, and if not, why.
fn check(state: &AppState, what: &str, principal: &str, action: &str, scope: &str) -> Result<Value, ArmError> {
    let mut out = json!({ "what": what, "action": action, "scope": scope });
    match authz::decide(state, principal, action, scope)? {
        Decision::Allowed(grant) => {
            out["ok"] = json!(true);
            out["grantedBy"] = json!({ "roleName": grant.role_name, "scope": grant.scope });
        }
        Decision::Denied { pending } => {
            out["ok"] = json!(false);
            match pending.iter().min_by_key(|(_, at)| *at) {
                Some((grant, at)) => {
                    out["reason"] = json!(format!(
                        "{} at {} is still propagating; it takes effect at {}",
                        grant.role_name,
                        grant.scope,
                        rfc3339(*at)
                    ));
                    out["effectiveAt"] = json!(rfc3339(*at));
                }
                None => out["reason"] = json!(format!("no role assignment grants '{action}' at or above '{scope}'")),
            }
        }
    }
    Ok(out)
}

/// The object id behind a kubelet credential (the service principal's for an appId).
fn principal_of(state: &AppState, credential: &KubeletCredential) -> Result<Option<String>, ArmError> {
    if let Some(object) = &credential.object_id {
        return Ok(Some(object.clone()));
    }
    Ok(ServicePrincipal::find_by_app_id(&state.db, &credential.client_id)?.map(|p| p.id))
}

/// The state of the secret a service principal cluster was given.
fn secret_report(
    state: &AppState,
    client_id: &str,
    sha256: Option<&str>,
    now: OffsetDateTime,
) -> Result<Value, ArmError> {
    let reader = state.db.reader();
    let Some(principal) = ServicePrincipal::find_by_app_id(&state.db, client_id)? else {
        return Ok(json!({ "clientId": client_id, "ok": false, "reason": "the service principal no longer exists" }));
    };
    let Some(sha256) = sha256 else {
        return Ok(json!({ "clientId": client_id, "ok": true, "reason": "no secret recorded" }));
    };
    Ok(match service_principal_secret(&reader, &principal, sha256, now)? {
        SecretState::Valid(end) => json!({ "clientId": client_id, "ok": true, "expires": end.map(rfc3339) }),
        SecretState::Expired(end) => json!({
            "clientId": client_id, "ok": false, "expired": rfc3339(end),
            "reason": "the secret the cluster uses has expired (AADSTS7000222): reset it with az ad sp credential reset and az aks update-credentials --reset-service-principal",
        }),
        SecretState::Unknown => json!({
            "clientId": client_id, "ok": false,
            "reason": "the secret the cluster uses is no longer one of the service principal's (it was replaced or removed): run az aks update-credentials --reset-service-principal with a current secret",
        }),
    })
}

/// The health report of the cluster `id`.
pub fn report(state: &AppState, id: &str) -> ArmResult<Value> {
    let now = state.clock.now();
    let reader = state.db.reader();
    let cluster = load_cluster(&reader, id)?
        .ok_or_else(|| arm_error!(ResourceNotFound, "The managed cluster '{id}' was not found."))?;
    let internals = ClusterInternals::load(&reader, id)?
        .ok_or_else(|| arm_error!(ResourceNotFound, "The managed cluster '{id}' was not found."))?;
    let stored_id = cluster["id"].as_str().unwrap_or(id);
    let subscription = stored_id.split('/').nth(2).unwrap_or_default();
    let props = &cluster["properties"];
    let node_group = props["nodeResourceGroup"].as_str().unwrap_or_default();
    let node_group_id = resource_groups::group_id(subscription, node_group);
    let mut problems: Vec<String> = Vec::new();
    let mut pending: Vec<Value> = Vec::new();
    let note = |checked: &Value, problems: &mut Vec<String>, pending: &mut Vec<Value>| {
        if checked["ok"] == false {
            problems.push(format!(
                "{}: {}",
                checked["what"].as_str().unwrap_or_default(),
                checked["reason"].as_str().unwrap_or_default()
            ));
        }
        if let Some(at) = checked["effectiveAt"].as_str() {
            pending.push(json!({ "due": at, "kind": "Microsoft.Authorization/roleAssignmentPropagation", "subject": checked["scope"] }));
        }
    };

    // The control plane.
    let identity = &cluster["identity"];
    let (kind, principal, client) = match identity["type"].as_str() {
        Some("SystemAssigned") => ("SystemAssigned", identity["principalId"].as_str().map(str::to_owned), None),
        Some("UserAssigned") => {
            let ua = identity["userAssignedIdentities"]
                .as_object()
                .and_then(|m| m.values().next())
                .cloned()
                .unwrap_or_default();
            ("UserAssigned", ua["principalId"].as_str().map(str::to_owned), ua["clientId"].as_str().map(str::to_owned))
        }
        _ => {
            let app = props["servicePrincipalProfile"]["clientId"].as_str().unwrap_or_default().to_owned();
            let object = ServicePrincipal::find_by_app_id(&state.db, &app)?.map(|p| p.id);
            ("ServicePrincipal", object, Some(app))
        }
    };
    let mut control_plane = json!({ "type": kind, "principalId": principal, "clientId": client, "checks": [] });
    if let Some(principal) = &principal {
        let c = check(
            state,
            "control plane manages the node resource group",
            principal,
            "Microsoft.Compute/virtualMachineScaleSets/write",
            &node_group_id,
        )?;
        note(&c, &mut problems, &mut pending);
        control_plane["checks"] = json!([c]);
    }
    if kind == "ServicePrincipal" {
        let s = secret_report(
            state,
            client.as_deref().unwrap_or_default(),
            internals.service_principal_secret.as_deref(),
            now,
        )?;
        if s["ok"] == false {
            problems.push(format!("control plane service principal: {}", s["reason"].as_str().unwrap_or_default()));
        }
        if let Some(expires) = s["expires"].as_str() {
            pending.push(json!({ "due": expires, "kind": "Microsoft.Graph/secretExpiry", "subject": client }));
        }
        control_plane["secret"] = s;
    }

    // The pools: what their nodes' kubelets use, and their subnets.
    let registries = registries::in_subscription(state, subscription)?;
    let catalog = Catalog::load(&reader)?;
    let location = cluster["location"].as_str().unwrap_or_default();
    let mut pools_out = Vec::new();
    let mut registries_out: Vec<Value> = registries
        .iter()
        .map(|r| json!({ "id": r["id"], "loginServer": r["properties"]["loginServer"], "pulls": [] }))
        .collect();
    for pool in props["agentPoolProfiles"].as_array().into_iter().flatten() {
        let name = pool["name"].as_str().unwrap_or_default();
        // The nodes as they are now (planned reimages whose time has come applied).
        let mine: Vec<nodes::Node> = internals
            .nodes
            .iter()
            .filter(|n| n.pool == name)
            .map(|n| {
                let mut n = n.clone();
                n.settle(now);
                n
            })
            .collect();
        let mut credentials: Vec<KubeletCredential> = Vec::new();
        for node in &mine {
            if !credentials.contains(&node.kubelet) {
                credentials.push(node.kubelet.clone());
            }
        }
        let mut kubelets = Vec::new();
        for credential in &credentials {
            let count = mine.iter().filter(|n| &n.kubelet == credential).count();
            let principal = principal_of(state, credential)?;
            let mut entry = json!({ "credential": credential, "nodes": count, "principalId": principal });
            if credential.kind == "ServicePrincipal" {
                let secret = if kind == "ServicePrincipal" || internals.legacy_service_principal.is_some() {
                    internals.service_principal_secret.as_deref()
                } else {
                    None
                };
                let s = secret_report(state, &credential.client_id, secret, now)?;
                if s["ok"] == false {
                    problems.push(format!(
                        "pool {name} kubelet service principal: {}",
                        s["reason"].as_str().unwrap_or_default()
                    ));
                }
                entry["secret"] = s;
            }
            if let Some(principal) = &principal {
                for (i, registry) in registries.iter().enumerate() {
                    let registry_id = registry["id"].as_str().unwrap_or_default();
                    let c = check(
                        state,
                        &format!(
                            "pool {name} pulls from {}",
                            registry["properties"]["loginServer"].as_str().unwrap_or_default()
                        ),
                        principal,
                        registries::PULL_ACTION,
                        registry_id,
                    )?;
                    if let Some(at) = c["effectiveAt"].as_str() {
                        pending.push(json!({ "due": at, "kind": "Microsoft.Authorization/roleAssignmentPropagation", "subject": registry_id }));
                    }
                    if let Some(pulls) = registries_out[i]["pulls"].as_array_mut() {
                        pulls.push(json!({
                            "pool": name,
                            "credential": credential.kind,
                            "clientId": credential.client_id,
                            "ok": c["ok"],
                            "reason": c.get("reason").cloned().unwrap_or(Value::Null),
                            "grantedBy": c.get("grantedBy").cloned().unwrap_or(Value::Null),
                        }));
                    }
                }
            }
            kubelets.push(entry);
        }
        let mut pool_out = json!({
            "name": name,
            "nodes": mine.len(),
            "nodeImageVersion": pool["nodeImageVersion"],
            "latestNodeImageVersion": catalog.latest(pool["osSKU"].as_str().unwrap_or("Ubuntu"), location, now),
            "kubelets": kubelets,
        });
        if let (Some(subnet), Some(principal)) = (pool["vnetSubnetID"].as_str().filter(|s| !s.is_empty()), &principal) {
            let c = check(
                state,
                &format!("control plane joins pool {name}'s nodes to their subnet"),
                principal,
                "Microsoft.Network/virtualNetworks/subnets/join/action",
                subnet,
            )?;
            note(&c, &mut problems, &mut pending);
            pool_out["subnet"] = c;
        }
        pools_out.push(pool_out);
    }

    // Add-ons with identities, and their credentials' rotation.
    let mut addons = Vec::new();
    for (addon, profile) in props["addonProfiles"].as_object().into_iter().flatten() {
        if profile["enabled"] != true {
            continue;
        }
        let identity = profile["identity"].clone();
        addons.push(json!({ "name": addon, "identity": if identity.is_null() { Value::Null } else { identity } }));
    }
    for object in [principal.clone()]
        .into_iter()
        .flatten()
        .chain(props["identityProfile"]["kubeletidentity"]["objectId"].as_str().map(str::to_owned))
    {
        if let Some(sp) = ServicePrincipal::find_by_id(&state.db, &object)?
            && let Some(resource) = sp.managed_identity_resource_id()
        {
            let next = MiCredential::current(&sp, now).renew_after;
            pending.push(json!({ "due": rfc3339(next), "kind": "Microsoft.ManagedIdentity/credentialRotation", "subject": resource }));
        }
    }
    let cadence = time::Duration::days(crate::fixtures::node_images().cadence_days.max(1));
    for release in catalog.releases_around(now, cadence, cadence) {
        if let Some(at) = release.available_at(location).filter(|at| *at > now) {
            pending.push(json!({ "due": rfc3339(at), "kind": "Microsoft.ContainerService/nodeImageRelease", "subject": format!("{} reaches {location}", release.version) }));
        }
    }
    // A registry is attached to the cluster when any credential the cluster has used for its
    // kubelets holds (or is about to hold) a pull grant on it; then every pool must pull.
    let mut kubelet_principals: Vec<String> = Vec::new();
    for pool in &pools_out {
        for k in pool["kubelets"].as_array().into_iter().flatten() {
            kubelet_principals.extend(k["principalId"].as_str().map(str::to_owned));
        }
    }
    kubelet_principals.extend(props["identityProfile"]["kubeletidentity"]["objectId"].as_str().map(str::to_owned));
    if let Some(sp) = &internals.legacy_service_principal {
        kubelet_principals.extend(ServicePrincipal::find_by_app_id(&state.db, sp)?.map(|p| p.id));
    }
    for former in &internals.former_kubelets {
        kubelet_principals.extend(principal_of(state, former)?);
    }
    for registry in &mut registries_out {
        let registry_id = registry["id"].as_str().unwrap_or_default().to_owned();
        let mut attached = false;
        for p in &kubelet_principals {
            attached |= match authz::decide(state, p, registries::PULL_ACTION, &registry_id)? {
                Decision::Allowed(_) => true,
                Decision::Denied { pending } => !pending.is_empty(),
            };
        }
        registry["attached"] = json!(attached);
        if attached {
            for pull in registry["pulls"].as_array().into_iter().flatten().filter(|p| p["ok"] == false) {
                problems.push(format!(
                    "pool {} ({} {}) cannot pull from {}: {}",
                    pull["pool"].as_str().unwrap_or_default(),
                    pull["credential"].as_str().unwrap_or_default(),
                    pull["clientId"].as_str().unwrap_or_default(),
                    registry["loginServer"].as_str().unwrap_or_default(),
                    pull["reason"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    pending.sort_by(|a, b| a["due"].as_str().cmp(&b["due"].as_str()));
    pending.dedup();
    let pulls_broken = registries_out
        .iter()
        .filter(|r| r["attached"] == true)
        .flat_map(|r| r["pulls"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["ok"] == false)
        .count();
    Ok(json!({
        "time": rfc3339(now),
        "cluster": stored_id,
        "healthy": problems.is_empty(),
        "problems": problems,
        "controlPlane": control_plane,
        "pools": pools_out,
        "addons": addons,
        "registries": registries_out,
        "registryPullsDenied": pulls_broken,
        "migration": internals.legacy_service_principal.as_ref().map(|sp| json!({
            "from": "ServicePrincipal",
            "servicePrincipal": sp,
            "note": "the control plane uses the managed identity; nodes keep the service principal until their pool is reimaged onto a newer node image (az aks nodepool upgrade --node-image-only)",
        })),
        "pending": pending,
    }))
}
