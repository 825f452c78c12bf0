//! `ManagedClusters_*`: AKS clusters. A PUT validates and answers at once (201/200 with
//! `Creating`/`Updating`, `Azure-AsyncOperation`, `Location`, `Retry-After: 1`) after making
//! what must be visible while provisioning (the system-assigned identity, the node resource
//! group with the kubelet and add-on identities, the default role assignments); the operation
//! then completes on the simulated clock and brings the nodes up. GETs return the complete,
//! stable body `az aks update` echoes back.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use super::agent_pools::{self, PoolContext};
use super::cluster_identities::{self as identities, ControlPlane, Ctx};
use super::credentials::new_cluster_ca;
use super::node_images::Catalog;
use super::{
    CLUSTER_TYPE, CLUSTER_TYPE_AS_SHOWN, ClusterInternals, cluster_id, is_busy, load_cluster, nodes, not_found,
    operation_in_progress, resolve_version, start_operation, system_data, upgrades_from, version_tuple,
};
use crate::arm::lro::Operation;
use crate::arm::paging::page;
use crate::arm::resource_id::{key, storage_key, storage_prefix_under};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::auth::rbac::Decision;
use crate::clock::rfc3339;
use crate::directory::ServicePrincipal;
use crate::providers::authorization::{self as authz, role_assignments};
use crate::providers::managed_identity::system_assigned_identities as sai;
use crate::providers::resources::locations::required_location;
use crate::providers::resources::subscriptions::Subscription;
use crate::providers::resources::{generic_resources, resource_groups};
use crate::state::AppState;
use crate::store::{StoreError, Tx};

pub const WRITE: &str = "Microsoft.ContainerService/managedClusters/write";
pub const DELETE: &str = "Microsoft.ContainerService/managedClusters/delete";
pub const STOP: &str = "Microsoft.ContainerService/managedClusters/stop/action";
pub const START: &str = "Microsoft.ContainerService/managedClusters/start/action";
pub const ROTATE_CERTIFICATES: &str = "Microsoft.ContainerService/managedClusters/rotateClusterCertificates/action";
pub const RESET_SERVICE_PRINCIPAL: &str =
    "Microsoft.ContainerService/managedClusters/resetServicePrincipalProfile/action";

/// Simulated time a cluster operation takes (the next settle completes it: az's first poll,
/// one second after the PUT, already sees `Succeeded`).
const OPERATION_DURATION: Duration = Duration::ZERO;

/// AKS's rule: 1–63 letters, digits, '-' and '_', starting and ending with a letter or digit.
fn validate_name(name: &str) -> ArmResult<()> {
    let ok = (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(arm_error!(
        InvalidParameter,
        "The value of parameter 'resourceName' is invalid: '{name}'. A managed cluster name must be 1 to 63 characters, contain only letters, numbers, hyphens and underscores, and start and end with a letter or number."
    )
    .with_target("resourceName"))
}

/// AKS's rule for `dnsPrefix`: 1–54 letters, digits and '-', starting and ending with a letter or digit.
fn validate_dns_prefix(prefix: &str) -> ArmResult<()> {
    let ok = (1..=54).contains(&prefix.len())
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && prefix.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && prefix.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(arm_error!(
        InvalidParameter,
        "The value '{prefix}' of 'properties.dnsPrefix' is invalid. It must be 1 to 54 characters, contain only letters, numbers and hyphens, and start and end with a letter or number."
    )
    .with_target("properties.dnsPrefix"))
}

fn property_change(name: &str) -> ArmError {
    arm_error!(PropertyChangeNotAllowed, "Changing property '{name}' is not allowed.").with_target(name)
}

fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v[field].as_str().filter(|s| !s.is_empty())
}

/// The node resource group AKS makes (80 characters at most, as Azure truncates it).
fn default_node_group(group: &str, name: &str, location: &str) -> String {
    let mut n = format!("MC_{group}_{name}_{location}");
    n.truncate(80);
    n
}

/// `networkProfile` with AKS's defaults (Azure CNI overlay, standard load balancer).
fn network_profile(
    requested: &Value,
    previous: Option<&Value>,
    node_group_id: &str,
    in_own_subnet: bool,
) -> ArmResult<Value> {
    if let Some(prev) = previous.filter(|p| p.is_object()) {
        // Creation-time settings stay; the writable ones (load balancer profile) may change.
        let mut merged = prev.clone();
        if let Some(lb) = requested.get("loadBalancerProfile").filter(|v| v.is_object()) {
            merged["loadBalancerProfile"] = lb.clone();
        }
        for field in ["networkPlugin", "outboundType"] {
            if let (Some(a), Some(b)) = (str_field(requested, field), str_field(prev, field))
                && !a.eq_ignore_ascii_case(b)
            {
                return Err(property_change(&format!("networkProfile.{field}")));
            }
        }
        return Ok(merged);
    }
    let mut p = match requested {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(ArmError::invalid_request_content("The property 'networkProfile' must be an object.")),
    };
    let plugin = p.get("networkPlugin").and_then(Value::as_str).unwrap_or("azure").to_owned();
    // Azure CNI defaults to overlay, unless the nodes sit in the caller's own subnet (the
    // traditional Azure CNI of the documented custom-VNet setups).
    let overlay = plugin == "azure"
        && match p.get("networkPluginMode").and_then(Value::as_str) {
            Some(mode) => mode.eq_ignore_ascii_case("overlay"),
            None => !in_own_subnet,
        };
    let set = |p: &mut Map<String, Value>, k: &str, v: Value| {
        if p.get(k).is_none_or(|x| x.is_null() || x.as_str() == Some("")) {
            p.insert(k.to_owned(), v);
        }
    };
    set(&mut p, "networkPlugin", json!(plugin));
    if overlay {
        set(&mut p, "networkPluginMode", json!("overlay"));
    }
    if plugin == "kubenet" || overlay {
        set(&mut p, "podCidr", json!("10.244.0.0/16"));
        let pod = p["podCidr"].clone();
        set(&mut p, "podCidrs", json!([pod]));
    }
    set(&mut p, "networkPolicy", json!("none"));
    if plugin == "azure" {
        set(&mut p, "networkDataplane", json!("azure"));
    }
    set(&mut p, "serviceCidr", json!("10.0.0.0/16"));
    set(&mut p, "dnsServiceIP", json!("10.0.0.10"));
    let service = p["serviceCidr"].clone();
    set(&mut p, "serviceCidrs", json!([service]));
    set(&mut p, "outboundType", json!("loadBalancer"));
    set(&mut p, "loadBalancerSku", json!("standard"));
    set(&mut p, "ipFamilies", json!(["IPv4"]));
    if p["outboundType"] == "loadBalancer"
        && p["loadBalancerSku"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("standard"))
    {
        set(
            &mut p,
            "loadBalancerProfile",
            json!({
                "managedOutboundIPs": { "count": 1 },
                "effectiveOutboundIPs": [{
                    "id": format!("{node_group_id}/providers/Microsoft.Network/publicIPAddresses/{}", crate::ids::uuid()),
                }],
                "backendPoolType": "nodeIPConfiguration",
            }),
        );
    }
    Ok(Value::Object(p))
}

/// Fills a missing or empty object property with `default`.
fn default_object(props: &mut Map<String, Value>, field: &str, default: Value) {
    if props.get(field).is_none_or(|v| v.is_null() || v.as_object().is_some_and(|o| o.is_empty())) {
        props.insert(field.to_owned(), default);
    }
}

/// What a cluster PUT decided, to be stored and answered.
struct Written {
    created: bool,
    cluster: Value,
    op: Operation,
}

/// `ManagedClusters_CreateOrUpdate`.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let subscription = req.param("subscriptionId").to_owned();
    let group = req.param("resourceGroupName").to_owned();
    let name = req.param("resourceName").to_owned();
    validate_name(&name)?;
    let body: Option<Value> = req.json()?;
    let body = body
        .filter(Value::is_object)
        .ok_or_else(|| ArmError::invalid_request_content("The request content must be a JSON object."))?;
    if !body["properties"].is_null() && !body["properties"].is_object() {
        return Err(ArmError::invalid_request_content("The property 'properties' must be an object."));
    }
    let location = required_location(body["location"].as_str(), CLUSTER_TYPE)?;
    let sub: Subscription = state
        .db
        .get(&Subscription::key(&subscription))?
        .ok_or_else(|| ArmError::subscription_not_found(&subscription))?;
    resource_groups::load(&state, &subscription, &group)?.ok_or_else(|| ArmError::resource_group_not_found(&group))?;
    let id = cluster_id(&subscription, &group, &name);
    let now = state.clock.now();
    let written = state
        .db
        .transact(|tx| {
            // Again inside the write: the group may have been deleted since the check above.
            resource_groups::require_in(tx, &subscription, &group)?;
            write_cluster(&state, &req, tx, &body, &sub, (&subscription, &group, &name, &id, &location), now)
        })
        .await?;
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(written.op.accepted(&req, status, Some(written.cluster)))
}

fn write_cluster(
    state: &AppState,
    req: &ArmRequest,
    tx: &mut Tx<'_>,
    body: &Value,
    sub: &Subscription,
    (subscription, group, name, id, location): (&str, &str, &str, &str, &str),
    now: OffsetDateTime,
) -> ArmResult<Written> {
    let existing = load_cluster(tx, id)?;
    crate::arm::etag::check(&req.headers, existing.as_ref().and_then(|e| e["eTag"].as_str()))?;
    let internals = ClusterInternals::load(tx, id)?;
    let old = existing.as_ref().map(|e| e["properties"].clone()).unwrap_or(json!({}));
    if let Some(e) = &existing {
        let provisioning = e["properties"]["provisioningState"].as_str().unwrap_or_default();
        if is_busy(provisioning) {
            return Err(operation_in_progress(provisioning));
        }
        if e["location"].as_str() != Some(location) {
            return Err(property_change("location"));
        }
    }
    let requested = body["properties"].as_object().cloned().unwrap_or_default();

    // Names fixed at creation.
    let dns_prefix = match (str_field(&old, "dnsPrefix"), requested.get("dnsPrefix").and_then(Value::as_str)) {
        (Some(before), Some(asked)) if !asked.is_empty() && asked != before => {
            return Err(property_change("dnsPrefix"));
        }
        (Some(before), _) => before.to_owned(),
        (None, Some(asked)) if !asked.is_empty() => asked.to_owned(),
        (None, _) => {
            let clean = |s: &str, n: usize| {
                s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(n).collect::<String>()
            };
            format!("{}-{}-{}", clean(name, 10), clean(group, 16), clean(subscription, 6)).trim_matches('-').to_owned()
        }
    };
    validate_dns_prefix(&dns_prefix)?;
    let node_group =
        match (str_field(&old, "nodeResourceGroup"), requested.get("nodeResourceGroup").and_then(Value::as_str)) {
            (Some(before), Some(asked)) if !asked.is_empty() && !asked.eq_ignore_ascii_case(before) => {
                return Err(property_change("nodeResourceGroup"));
            }
            (Some(before), _) => before.to_owned(),
            (None, Some(asked)) if !asked.is_empty() => asked.to_owned(),
            (None, _) => default_node_group(group, name, location),
        };
    let node_group_id = resource_groups::group_id(subscription, &node_group);
    if existing.is_none() {
        if node_group.eq_ignore_ascii_case(group) {
            return Err(arm_error!(
                NodeResourceGroupSameAsResourceGroup,
                "The node resource group '{node_group}' must differ from the cluster's resource group."
            ));
        }
        if tx.get::<Value>(&storage_key(&node_group_id))?.is_some() {
            return Err(arm_error!(
                NodeResourceGroupAlreadyExists,
                "The node resource group '{node_group}' already exists. Please use a different name for the node resource group."
            ));
        }
    }

    // Kubernetes version: an echoed value keeps the running patch; never downgrade.
    let asked_version = requested.get("kubernetesVersion").and_then(Value::as_str).unwrap_or_default();
    let (version, current) = match (str_field(&old, "kubernetesVersion"), str_field(&old, "currentKubernetesVersion")) {
        (Some(v), Some(c)) if asked_version.is_empty() || asked_version == v => (v.to_owned(), c.to_owned()),
        _ => resolve_version(asked_version)?,
    };
    if let Some(before) = str_field(&old, "currentKubernetesVersion")
        && version_tuple(&current) < version_tuple(before)
    {
        return Err(arm_error!(
            BadRequest,
            "Downgrading the Kubernetes version of the control plane from {before} to {current} is not allowed."
        ));
    }

    // Resource group for the nodes, owned by the cluster.
    let stored_id = existing.as_ref().and_then(|e| e["id"].as_str()).unwrap_or(id).to_owned();
    if tx.get::<Value>(&storage_key(&node_group_id))?.is_none() {
        let group_body = json!({
            "id": node_group_id,
            "name": node_group,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "managedBy": stored_id,
            "tags": { "aks-managed-cluster-name": name, "aks-managed-cluster-rg": group },
            "properties": { "provisioningState": "Succeeded" },
        });
        tx.put(storage_key(&node_group_id), &group_body)?;
    }

    let ctx = Ctx {
        state,
        req,
        subscription,
        group,
        name,
        id: &stored_id,
        location,
        tenant: &sub.tenant_id,
        node_group: &node_group,
        now,
    };
    let stored_secret = internals.as_ref().and_then(|i| i.service_principal_secret.clone());
    let control_plane = identities::resolve_control_plane(&ctx, tx, body, existing.as_ref(), stored_secret.as_deref())?;
    // A system-assigned control plane replaced by a user-assigned one leaves the directory.
    if !matches!(control_plane, ControlPlane::System { .. })
        && let Some(old_principal) = ServicePrincipal::find_by_resource_id_in(tx, &stored_id)?
    {
        sai::remove(tx, &stored_id)?;
        role_assignments::remove_for_principal(tx, &old_principal.id, now)?;
    }
    identities::grant_control_plane(&ctx, tx, &control_plane)?;
    // A service principal cluster moving to managed identity: the control plane and add-ons
    // switch now, the nodes' kubelets keep the service principal until reimaged.
    let previous_service_principal = existing
        .as_ref()
        .filter(|e| !e["identity"].is_object())
        .and_then(|e| e["properties"]["servicePrincipalProfile"]["clientId"].as_str())
        .map(str::to_owned);
    let legacy = match (&control_plane, &previous_service_principal) {
        (ControlPlane::ServicePrincipal { .. }, _) => None,
        (_, Some(client_id)) => Some(client_id.clone()),
        _ => internals.as_ref().and_then(|i| i.legacy_service_principal.clone()),
    };
    let kubelet = identities::resolve_kubelet(&ctx, tx, body, existing.as_ref(), &control_plane, legacy.is_some())?;
    let addons = identities::reconcile_addons(
        &ctx,
        tx,
        requested.get("addonProfiles").unwrap_or(&old["addonProfiles"]),
        control_plane.is_managed(),
    )?;

    let state_label = if existing.is_some() { "Updating" } else { "Creating" };
    let previous_pools = old["agentPoolProfiles"].as_array().cloned().unwrap_or_default();
    let catalog = Catalog::load(tx)?;
    let pool_ctx = PoolContext { control_plane: (&version, &current), catalog: &catalog, location, now };
    let pools = agent_pools::apply_profiles(
        requested.get("agentPoolProfiles").unwrap_or(&Value::Null),
        &previous_pools,
        &pool_ctx,
        state_label,
    )?;
    for pool in &pools {
        agent_pools::check_subnet(state, pool)?;
        if version_tuple(pool["currentOrchestratorVersion"].as_str().unwrap_or_default()) > version_tuple(&current) {
            return Err(arm_error!(
                InvalidParameter,
                "Node pool version {} and control plane version {current} are incompatible. Node pool version cannot be newer than control plane version.",
                pool["currentOrchestratorVersion"].as_str().unwrap_or_default()
            ));
        }
    }

    let mut props = requested.clone();
    let fqdn_label = match str_field(&old, "fqdn") {
        Some(f) => f.split('.').next().unwrap_or_default().to_owned(),
        None => format!("{dns_prefix}-{}", crate::ids::hex(8)),
    };
    let in_own_subnet = pools.iter().any(|p| p["vnetSubnetID"].as_str().is_some_and(|s| !s.is_empty()));
    let network = network_profile(
        requested.get("networkProfile").unwrap_or(&Value::Null),
        old.get("networkProfile"),
        &node_group_id,
        in_own_subnet,
    )?;
    props.insert("provisioningState".into(), json!(state_label));
    props.insert(
        "powerState".into(),
        old.get("powerState").filter(|p| p.is_object()).cloned().unwrap_or(json!({ "code": "Running" })),
    );
    props.insert("maxAgentPools".into(), json!(100));
    props.insert("kubernetesVersion".into(), json!(version));
    props.insert("currentKubernetesVersion".into(), json!(current));
    props.insert("dnsPrefix".into(), json!(dns_prefix));
    props.insert("fqdn".into(), json!(format!("{fqdn_label}.hcp.{location}.azmk8s.io")));
    props.insert("azurePortalFQDN".into(), json!(format!("{fqdn_label}.portal.hcp.{location}.azmk8s.io")));
    props.insert("agentPoolProfiles".into(), json!(pools));
    props.insert("servicePrincipalProfile".into(), control_plane.service_principal_profile());
    if kubelet.identity.is_null() {
        props.remove("identityProfile");
    } else {
        props.insert("identityProfile".into(), json!({ "kubeletidentity": kubelet.identity }));
    }
    props.insert("addonProfiles".into(), addons);
    props.insert("nodeResourceGroup".into(), json!(node_group));
    props.insert("networkProfile".into(), network);
    props.insert(
        "resourceUID".into(),
        old.get("resourceUID").filter(|v| v.is_string()).cloned().unwrap_or_else(|| json!(crate::ids::hex(24))),
    );
    for (field, default) in [("enableRBAC", json!(true)), ("disableLocalAccounts", json!(false))] {
        if !props.get(field).is_some_and(Value::is_boolean) {
            props.insert(field.into(), old.get(field).filter(|v| v.is_boolean()).cloned().unwrap_or(default));
        }
    }
    if props.get("supportPlan").and_then(Value::as_str).is_none_or(str::is_empty) {
        props.insert(
            "supportPlan".into(),
            old.get("supportPlan").cloned().filter(|v| v.is_string()).unwrap_or(json!("KubernetesOfficial")),
        );
    }
    let oidc_enabled = requested
        .get("oidcIssuerProfile")
        .and_then(|o| o["enabled"].as_bool())
        .or_else(|| old["oidcIssuerProfile"]["enabled"].as_bool())
        .unwrap_or(false);
    if !oidc_enabled && old["oidcIssuerProfile"]["enabled"].as_bool() == Some(true) {
        return Err(arm_error!(OIDCIssuerCannotBeDisabled, "The OIDC issuer cannot be disabled once it is enabled."));
    }
    let mut oidc = json!({ "enabled": oidc_enabled });
    if oidc_enabled {
        let issuer = old["oidcIssuerProfile"]["issuerUrl"].as_str().map(str::to_owned).unwrap_or_else(|| {
            format!("https://{location}.oic.prod-aks.azure.com/{}/{}/", sub.tenant_id, crate::ids::uuid())
        });
        oidc["issuerUrl"] = json!(issuer);
    }
    props.insert("oidcIssuerProfile".into(), oidc);
    default_object(
        &mut props,
        "storageProfile",
        json!({
            "diskCSIDriver": { "enabled": true },
            "fileCSIDriver": { "enabled": true },
            "snapshotController": { "enabled": true },
        }),
    );
    default_object(
        &mut props,
        "autoUpgradeProfile",
        json!({ "upgradeChannel": "none", "nodeOSUpgradeChannel": "NodeImage" }),
    );
    default_object(&mut props, "securityProfile", json!({}));
    default_object(&mut props, "bootstrapProfile", json!({ "artifactSource": "Direct" }));
    if let Some(windows) = props.get_mut("windowsProfile").and_then(Value::as_object_mut) {
        windows.remove("adminPassword");
    }
    props.remove("privateFQDN");
    props.remove("status");

    let created_at = existing
        .as_ref()
        .and_then(|e| e["systemData"]["createdAt"].as_str().map(str::to_owned))
        .unwrap_or_else(|| rfc3339(now));
    let mut cluster = json!({
        "id": stored_id,
        "location": location,
        "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(name),
        "type": CLUSTER_TYPE_AS_SHOWN,
        "tags": body.get("tags").cloned().unwrap_or(Value::Null),
        "kind": "Base",
        "sku": body.get("sku").filter(|s| s.is_object()).cloned()
            .or_else(|| existing.as_ref().map(|e| e["sku"].clone()))
            .unwrap_or(json!({ "name": "Base", "tier": "Free" })),
        "eTag": crate::ids::uuid().to_string(),
        "properties": props,
        "systemData": system_data(req, &created_at, now),
    });
    let identity = control_plane.identity_json();
    if !identity.is_null() {
        cluster["identity"] = identity;
    }
    if let Some(extended) = body.get("extendedLocation").filter(|v| v.is_object()) {
        cluster["extendedLocation"] = extended.clone();
    }

    let mut internals = match internals {
        Some(i) => i,
        None => {
            let (ca_cert_pem, ca_key_pem) = new_cluster_ca(now)?;
            ClusterInternals {
                ca_cert_pem,
                ca_key_pem,
                scale_set_suffix: format!("{:08}", crate::ids::uuid().as_u128() % 100_000_000),
                nodes: Vec::new(),
                next_index: BTreeMap::new(),
                kubelet_check: None,
                reimage: false,
                legacy_service_principal: None,
                service_principal_secret: None,
                former_kubelets: Vec::new(),
            }
        }
    };
    internals.legacy_service_principal = legacy;
    if let ControlPlane::ServicePrincipal { secret_sha256, .. } = &control_plane {
        internals.service_principal_secret = secret_sha256.clone();
    }
    let mut due = now + OPERATION_DURATION;
    if let Some((check, effective)) = kubelet.check {
        internals.kubelet_check = Some(check);
        due = due.max(effective);
    }
    // Nodes roll (batches of maxSurge) onto a new kubelet identity or a new version, once the
    // grant the operation waits for is in place.
    let start = due;
    let new_kubelet = kubelet.changed.then(|| nodes::kubelet_of(&cluster, None));
    for pool in cluster["properties"]["agentPoolProfiles"].as_array().cloned().unwrap_or_default() {
        let before = previous_pools.iter().find(|p| p["name"] == pool["name"]);
        let upgraded = before.is_some_and(|b| {
            b["currentOrchestratorVersion"] != pool["currentOrchestratorVersion"]
                || b["nodeImageVersion"] != pool["nodeImageVersion"]
        });
        if new_kubelet.is_some() || upgraded {
            let reason = if new_kubelet.is_some() { "kubelet identity change" } else { "Kubernetes version upgrade" };
            let end = agent_pools::roll_pool(&mut internals, &pool, start, new_kubelet.clone(), reason);
            due = due.max(end);
        }
    }
    internals.reimage |= kubelet.changed;
    internals.save(tx, &stored_id)?;
    tx.put(storage_key(&stored_id), &cluster)?;
    let op = start_operation(tx, req, location, WRITE, &stored_id, due, now)?;
    Ok(Written { created: existing.is_none(), cluster, op })
}

/// `ManagedClusters_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let cluster = load_cluster(&state.db.reader(), &id)?.ok_or_else(|| not_found(name, group))?;
    crate::arm::json(StatusCode::OK, cluster)
}

/// `ManagedClusters_ListByResourceGroup`.
pub async fn list_by_resource_group(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (subscription, group) = (req.param("subscriptionId"), req.param("resourceGroupName"));
    let items = generic_resources::of_type_in_group(&state.db, subscription, group, CLUSTER_TYPE)?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `ManagedClusters_List` (the subscription).
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = generic_resources::of_type_in_subscription(&state.db, req.param("subscriptionId"), CLUSTER_TYPE)?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `ManagedClusters_UpdateTags` (PATCH `{tags}`): synchronous 200.
pub async fn update_tags(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let body: Option<Value> = req.json()?;
    let tags = body.map(|b| b["tags"].clone()).unwrap_or(Value::Null);
    if !tags.is_null() && !tags.as_object().is_some_and(|t| t.values().all(Value::is_string)) {
        return Err(ArmError::invalid_request_content("The property 'tags' must be an object of strings."));
    }
    let (group, name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = cluster_id(req.param("subscriptionId"), &group, &name);
    let now = state.clock.now();
    let cluster = state
        .db
        .transact(|tx| -> ArmResult<Value> {
            let mut cluster = load_cluster(tx, &id)?.ok_or_else(|| not_found(&name, &group))?;
            crate::arm::etag::check(&req.headers, cluster["eTag"].as_str())?;
            cluster["tags"] = tags.clone();
            cluster["eTag"] = json!(crate::ids::uuid().to_string());
            cluster["systemData"]["lastModifiedAt"] = json!(rfc3339(now));
            cluster["systemData"]["lastModifiedBy"] = json!(req.caller.app_id);
            tx.put(storage_key(&id), &cluster)?;
            Ok(cluster)
        })
        .await?;
    crate::arm::json(StatusCode::OK, cluster)
}

/// `ManagedClusters_Delete`: 202 and `Deleting`, or 204 if there is no such cluster. The
/// operation removes the node resource group with everything in it, the cluster's
/// system-assigned identity and the role assignments made for it.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (group, name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = cluster_id(req.param("subscriptionId"), &group, &name);
    let now = state.clock.now();
    let op = state
        .db
        .transact(|tx| -> ArmResult<Option<Operation>> {
            let Some(mut cluster) = load_cluster(tx, &id)? else { return Ok(None) };
            crate::arm::etag::check(&req.headers, cluster["eTag"].as_str())?;
            let provisioning = cluster["properties"]["provisioningState"].as_str().unwrap_or_default();
            if provisioning == "Deleting" {
                return Err(operation_in_progress(provisioning));
            }
            cluster["properties"]["provisioningState"] = json!("Deleting");
            let stored_id = cluster["id"].as_str().unwrap_or(&id).to_owned();
            tx.put(storage_key(&stored_id), &cluster)?;
            let location = cluster["location"].as_str().unwrap_or_default().to_owned();
            Ok(Some(start_operation(tx, &req, &location, DELETE, &stored_id, now + OPERATION_DURATION, now)?))
        })
        .await?;
    Ok(match op {
        Some(op) => op.accepted(&req, StatusCode::ACCEPTED, None),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Removes a cluster and everything AKS made for it (also used when its resource group goes).
pub fn teardown(tx: &mut Tx<'_>, cluster: &Value, now: OffsetDateTime) -> Result<(), StoreError> {
    let id = cluster["id"].as_str().unwrap_or_default().to_owned();
    let subscription = id.split('/').nth(2).unwrap_or_default();
    if let Some(node_group) = cluster["properties"]["nodeResourceGroup"].as_str() {
        let node_group_id = resource_groups::group_id(subscription, node_group);
        let owned = tx
            .get::<Value>(&storage_key(&node_group_id))?
            .is_some_and(|g| g["managedBy"].as_str().is_some_and(|m| key(m) == key(&id)));
        if owned {
            for (k, resource) in tx.scan::<Value>(&storage_prefix_under(&node_group_id))? {
                if let Some(rid) = resource["id"].as_str()
                    && let Some(principal) = ServicePrincipal::find_by_resource_id_in(tx, rid)?
                {
                    principal.remove(tx);
                    role_assignments::remove_for_principal(tx, &principal.id, now)?;
                }
                tx.delete(k);
            }
            tx.delete(storage_key(&node_group_id));
        }
    }
    if let Some(principal) = ServicePrincipal::find_by_resource_id_in(tx, &id)? {
        principal.remove(tx);
        role_assignments::remove_for_principal(tx, &principal.id, now)?;
    }
    for (k, _) in tx.scan::<Value>(&storage_prefix_under(&id))? {
        tx.delete(k);
    }
    ClusterInternals::remove(tx, &id);
    tx.delete(storage_key(&id));
    Ok(())
}

fn load_for_action(tx: &Tx<'_>, req: &ArmRequest) -> ArmResult<(String, Value)> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let cluster = load_cluster(tx, &id)?.ok_or_else(|| not_found(name, group))?;
    let provisioning = cluster["properties"]["provisioningState"].as_str().unwrap_or_default();
    if is_busy(provisioning) {
        return Err(operation_in_progress(provisioning));
    }
    let stored_id = cluster["id"].as_str().unwrap_or(&id).to_owned();
    Ok((stored_id, cluster))
}

/// Starts an action on the cluster: sets the in-progress state, then 202 with the headers.
async fn start_action(
    state: &AppState,
    req: &ArmRequest,
    kind: &'static str,
    in_progress: &'static str,
    check: impl FnOnce(&mut Tx<'_>, &mut Value) -> ArmResult<()>,
) -> ArmResult<Response> {
    let now = state.clock.now();
    let op = state
        .db
        .transact(|tx| -> ArmResult<Operation> {
            let (id, mut cluster) = load_for_action(tx, req)?;
            check(tx, &mut cluster)?;
            cluster["properties"]["provisioningState"] = json!(in_progress);
            tx.put(storage_key(&id), &cluster)?;
            let location = cluster["location"].as_str().unwrap_or_default().to_owned();
            Ok(start_operation(tx, req, &location, kind, &id, now + OPERATION_DURATION, now)?)
        })
        .await?;
    Ok(op.accepted(req, StatusCode::ACCEPTED, None))
}

fn power(cluster: &Value) -> &str {
    cluster["properties"]["powerState"]["code"].as_str().unwrap_or("Running")
}

/// `ManagedClusters_Stop`: deallocates the nodes; a stopped cluster cannot stop again.
pub async fn stop(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    start_action(&state, &req, STOP, "Stopping", |_, cluster| {
        if power(cluster) == "Stopped" {
            return Err(arm_error!(
                OperationNotAllowed,
                "managed cluster is in Provisioning State({}) and Power State(Stopped), stopping cannot be performed",
                cluster["properties"]["provisioningState"].as_str().unwrap_or("Succeeded")
            ));
        }
        Ok(())
    })
    .await
}

/// `ManagedClusters_Start`: brings a stopped cluster's nodes back.
pub async fn start(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    start_action(&state, &req, START, "Starting", |_, cluster| {
        if power(cluster) == "Running" {
            return Err(arm_error!(
                OperationNotAllowed,
                "managed cluster is in Provisioning State({}) and Power State(Running), starting cannot be performed",
                cluster["properties"]["provisioningState"].as_str().unwrap_or("Succeeded")
            ));
        }
        Ok(())
    })
    .await
}

/// `ManagedClusters_RotateClusterCertificates`: a new cluster CA; older kubeconfigs stop
/// matching it.
pub async fn rotate_cluster_certificates(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    start_action(&state, &req, ROTATE_CERTIFICATES, "Updating", |_, cluster| {
        if power(cluster) == "Stopped" {
            return Err(arm_error!(
                OperationNotAllowed,
                "Rotating certificates is not allowed while the cluster is stopped."
            ));
        }
        Ok(())
    })
    .await
}

/// `ManagedClusters_ResetServicePrincipalProfile` (`az aks update-credentials
/// --reset-service-principal`): service principal clusters only; the new secret must be one
/// the directory knows.
pub async fn reset_service_principal_profile(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let body: Option<Value> = req.json()?;
    let body = body.ok_or_else(|| ArmError::invalid_request_content("The request content is empty."))?;
    let client_id = str_field(&body, "clientId")
        .ok_or_else(|| arm_error!(InvalidParameter, "The property 'clientId' is required.").with_target("clientId"))?
        .to_owned();
    let secret = str_field(&body, "secret")
        .ok_or_else(|| arm_error!(InvalidParameter, "The property 'secret' is required.").with_target("secret"))?
        .to_owned();
    let now = state.clock.now();
    let subscription = req.param("subscriptionId").to_owned();
    let tenant =
        state.db.get::<Subscription>(&Subscription::key(&subscription))?.map(|s| s.tenant_id).unwrap_or_default();
    start_action(&state, &req, RESET_SERVICE_PRINCIPAL, "Updating", |tx, cluster| {
        if cluster["identity"].is_object() {
            return Err(arm_error!(
                BadRequest,
                "Resetting the service principal profile is not allowed: the cluster uses a managed identity, not a service principal."
            ));
        }
        let id = cluster["id"].as_str().unwrap_or_default().to_owned();
        let name = cluster["name"].as_str().unwrap_or_default().to_owned();
        let location = cluster["location"].as_str().unwrap_or_default().to_owned();
        let node_group = cluster["properties"]["nodeResourceGroup"].as_str().unwrap_or_default().to_owned();
        let ctx = Ctx {
            state: &state,
            req: &req,
            subscription: &subscription,
            group: "",
            name: &name,
            id: &id,
            location: &location,
            tenant: &tenant,
            node_group: &node_group,
            now,
        };
        let secret_sha256 = crate::directory::hash_secret(&secret);
        identities::check_service_principal(&ctx, tx, &client_id, Some(&secret_sha256))?;
        cluster["properties"]["servicePrincipalProfile"] = json!({ "clientId": client_id });
        if let Some(mut internals) = ClusterInternals::load(tx, &id)? {
            internals.service_principal_secret = Some(secret_sha256);
            internals.save(tx, &id)?;
        }
        Ok(())
    })
    .await
}

/// `ManagedClusters_GetUpgradeProfile` (`az aks get-upgrades`).
pub async fn get_upgrade_profile(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let cluster = load_cluster(&state.db.reader(), &id)?.ok_or_else(|| not_found(name, group))?;
    let upgrades = |current: &str| -> Vec<Value> {
        upgrades_from(current)
            .into_iter()
            .map(|(v, preview)| {
                if preview {
                    json!({ "kubernetesVersion": v, "isPreview": true })
                } else {
                    json!({ "kubernetesVersion": v })
                }
            })
            .collect()
    };
    let current = cluster["properties"]["currentKubernetesVersion"].as_str().unwrap_or_default();
    let pools: Vec<Value> = cluster["properties"]["agentPoolProfiles"]
        .as_array()
        .map(|pools| {
            pools
                .iter()
                .map(|p| {
                    let v = p["currentOrchestratorVersion"].as_str().unwrap_or_default();
                    json!({ "name": p["name"], "kubernetesVersion": v, "osType": p["osType"], "upgrades": upgrades(v) })
                })
                .collect()
        })
        .unwrap_or_default();
    crate::arm::json(
        StatusCode::OK,
        json!({
            "id": format!("{}/upgradeprofiles/default", cluster["id"].as_str().unwrap_or_default()),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
            "properties": {
                "controlPlaneProfile": { "name": null, "kubernetesVersion": current, "osType": "Linux", "upgrades": upgrades(current) },
                "agentPoolProfiles": pools,
            },
        }),
    )
}

/// Operations on clusters armlet does not emulate: a clear error naming what is missing.
pub async fn not_emulated(_state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let path = req.uri.path();
    let what = path.rsplit('/').next().unwrap_or(path);
    Err(arm_error!(
        NotImplemented,
        "armlet does not emulate '{} {what}' on managed clusters (it has no Kubernetes API server or nodes to run it on). See COMPATIBILITY.md for what is emulated.",
        req.method
    ))
}

/// The action a cluster identity needs on a subnet its nodes join.
const SUBNET_JOIN_ACTION: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";

/// How long (simulated) a cluster write waits for a subnet grant that does not exist yet: az
/// grants a system-assigned control plane Network Contributor only after the PUT answers.
const SUBNET_GRANT_WAIT: Duration = Duration::seconds(30);

/// Whether a due write may complete now.
enum Gate {
    Go,
    Wait(OffsetDateTime),
    Fail(ArmError),
}

/// The control plane's principal: the system-assigned identity, the user-assigned one, or the
/// service principal's object.
fn control_plane_principal(state: &AppState, cluster: &Value) -> Result<Option<String>, StoreError> {
    let identity = &cluster["identity"];
    if let Some(p) = identity["principalId"].as_str() {
        return Ok(Some(p.to_owned()));
    }
    if let Some(p) = identity["userAssignedIdentities"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["principalId"].as_str())
    {
        return Ok(Some(p.to_owned()));
    }
    match cluster["properties"]["servicePrincipalProfile"]["clientId"].as_str() {
        Some(app) if app != "msi" => Ok(ServicePrincipal::find_by_app_id(&state.db, app)?.map(|p| p.id)),
        _ => Ok(None),
    }
}

/// Checks what a cluster or pool write waits for before its nodes come up: the control plane's
/// Managed Identity Operator grant on a custom kubelet identity, and its right to join the
/// subnets new pools use. Role assignments are not written by completions, so reading them
/// before the completing transaction is safe.
fn preflight(state: &AppState, op: &Operation, now: OffsetDateTime) -> Result<Gate, StoreError> {
    if state.settings.rbac == crate::state::RbacMode::Off {
        return Ok(Gate::Go);
    }
    let (cluster_id, only_pool) = match op.kind.as_str() {
        WRITE => (op.resource_id.as_str(), None),
        agent_pools::WRITE => match op.resource_id.rsplit_once("/agentPools/") {
            Some((cluster, pool)) => (cluster, Some(pool)),
            None => return Ok(Gate::Go),
        },
        _ => return Ok(Gate::Go),
    };
    let reader = state.db.reader();
    let (Some(cluster), Some(internals)) =
        (load_cluster(&reader, cluster_id)?, ClusterInternals::load(&reader, cluster_id)?)
    else {
        return Ok(Gate::Go);
    };
    let mut wait: Option<OffsetDateTime> = None;
    if op.kind == WRITE
        && let Some(check) = &internals.kubelet_check
    {
        match authz::decide(state, &check.control_plane_principal, identities::ASSIGN_ACTION, &check.kubelet_identity)?
        {
            Decision::Allowed(_) => {}
            Decision::Denied { pending } => match pending.iter().map(|(_, at)| *at).min() {
                Some(at) => wait = Some(at),
                None => return Ok(Gate::Fail(identities::missing_kubelet_permission(check))),
            },
        }
    }
    let Some(principal) = control_plane_principal(state, &cluster)? else {
        return Ok(wait.map_or(Gate::Go, Gate::Wait));
    };
    let suffix = &internals.scale_set_suffix;
    for pool in cluster["properties"]["agentPoolProfiles"].as_array().into_iter().flatten() {
        let name = pool["name"].as_str().unwrap_or_default();
        if only_pool.is_some_and(|p| !p.eq_ignore_ascii_case(name)) || pool["provisioningState"] != "Creating" {
            continue;
        }
        let Some(subnet) = pool["vnetSubnetID"].as_str().filter(|s| !s.is_empty()) else { continue };
        match authz::decide(state, &principal, SUBNET_JOIN_ACTION, subnet)? {
            Decision::Allowed(_) => {}
            Decision::Denied { pending } => {
                let retry = match pending.iter().map(|(_, at)| *at).min() {
                    Some(at) => at,
                    None if now < op.start_time + SUBNET_GRANT_WAIT => {
                        (now + Duration::seconds(5)).min(op.start_time + SUBNET_GRANT_WAIT)
                    }
                    None => {
                        let node_group = cluster["properties"]["nodeResourceGroup"].as_str().unwrap_or_default();
                        let subscription = cluster_id.split('/').nth(2).unwrap_or_default();
                        return Ok(Gate::Fail(arm_error!(
                            LinkedAuthorizationFailed,
                            "The client '{principal}' with object id '{principal}' has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' on scope '/subscriptions/{subscription}/resourceGroups/{node_group}/providers/Microsoft.Compute/virtualMachineScaleSets/{}'; however, it does not have permission to perform action '{SUBNET_JOIN_ACTION}' on the linked scope(s) '{subnet}' or the linked scope(s) are invalid.",
                            nodes::scale_set_name(name, suffix)
                        )));
                    }
                };
                wait = Some(wait.map_or(retry, |w| w.max(retry)));
            }
        }
    }
    Ok(wait.map_or(Gate::Go, Gate::Wait))
}

/// Records a failed write on the cluster (or the pool) the way AKS shows it.
pub fn fail_write(tx: &mut Tx<'_>, op: &Operation, code: &str, message: &str) -> Result<(), StoreError> {
    let (cluster_id, pool) = match op.resource_id.rsplit_once("/agentPools/") {
        Some((cluster, pool)) => (cluster.to_owned(), Some(pool.to_owned())),
        None => (op.resource_id.clone(), None),
    };
    let Some(mut cluster) = load_cluster(tx, &cluster_id)? else { return Ok(()) };
    let status = json!({ "provisioningError": { "code": code, "message": message } });
    match pool {
        Some(pool) => {
            if let Some(pools) = cluster["properties"]["agentPoolProfiles"].as_array_mut() {
                for p in pools.iter_mut().filter(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&pool)))
                {
                    p["provisioningState"] = json!("Failed");
                    p["status"] = status.clone();
                }
            }
        }
        None => {
            cluster["properties"]["provisioningState"] = json!("Failed");
            cluster["properties"]["status"] = status;
            if let Some(pools) = cluster["properties"]["agentPoolProfiles"].as_array_mut() {
                for p in pools.iter_mut().filter(|p| is_busy(p["provisioningState"].as_str().unwrap_or_default())) {
                    p["provisioningState"] = json!("Failed");
                }
            }
            if let Some(mut internals) = ClusterInternals::load(tx, &cluster_id)? {
                internals.kubelet_check = None;
                internals.save(tx, &cluster_id)?;
            }
        }
    }
    tx.put(storage_key(&cluster_id), &cluster)
}

/// Completes a ContainerService operation in one transaction, or reschedules it when it
/// waits for a grant to take effect.
pub async fn complete(state: &AppState, op: Operation) -> Result<Operation, StoreError> {
    let now = state.clock.now();
    let gate = preflight(state, &op, now)?;
    state
        .db
        .transact(|tx| {
            let outcome = match gate {
                Gate::Wait(at) => return op.reschedule(tx, at),
                Gate::Fail(error) => {
                    fail_write(tx, &op, error.code.as_str(), &error.message)?;
                    Err(error)
                }
                Gate::Go => match op.kind.as_str() {
                    agent_pools::WRITE | agent_pools::DELETE | agent_pools::UPGRADE_NODE_IMAGE => {
                        agent_pools::complete_in(tx, &op.kind, &op.resource_id, now)?
                    }
                    DELETE => match load_cluster(tx, &op.resource_id)? {
                        Some(cluster) => {
                            teardown(tx, &cluster, now)?;
                            Ok(None)
                        }
                        None => Ok(None),
                    },
                    _ => complete_cluster(tx, &op, now)?,
                },
            };
            op.finish(tx, outcome, now)
        })
        .await
}

fn complete_cluster(
    tx: &mut Tx<'_>,
    op: &Operation,
    now: OffsetDateTime,
) -> Result<Result<Option<Value>, ArmError>, StoreError> {
    let id = &op.resource_id;
    let (Some(mut cluster), Some(mut internals)) = (load_cluster(tx, id)?, ClusterInternals::load(tx, id)?) else {
        return Ok(Err(arm_error!(ResourceNotFound, "The managed cluster '{id}' no longer exists.")));
    };
    internals.kubelet_check = None;
    let props = &mut cluster["properties"];
    match op.kind.as_str() {
        STOP => {
            props["powerState"] = json!({ "code": "Stopped" });
        }
        START => {
            props["powerState"] = json!({ "code": "Running" });
        }
        ROTATE_CERTIFICATES => match new_cluster_ca(now) {
            Ok((cert, key)) => {
                internals.ca_cert_pem = cert;
                internals.ca_key_pem = key;
            }
            Err(e) => return Ok(Err(e)),
        },
        RESET_SERVICE_PRINCIPAL => internals.reimage = true,
        _ => {}
    }
    props["provisioningState"] = json!("Succeeded");
    if let Some(obj) = props.as_object_mut() {
        obj.remove("status");
    }
    if let Some(pools) = props["agentPoolProfiles"].as_array_mut() {
        for pool in pools {
            if is_busy(pool["provisioningState"].as_str().unwrap_or_default()) {
                pool["provisioningState"] = json!("Succeeded");
            }
            match op.kind.as_str() {
                STOP => pool["powerState"] = json!({ "code": "Stopped" }),
                START => pool["powerState"] = json!({ "code": "Running" }),
                _ => {}
            }
        }
    }
    nodes::reconcile(&cluster, &mut internals, now);
    tx.put(storage_key(id), &cluster)?;
    internals.save(tx, id)?;
    Ok(Ok(if op.kind == WRITE { Some(cluster) } else { None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("myManagedCluster").is_ok());
        assert!(validate_name("a").is_ok());
        assert!(validate_name("a_b-c9").is_ok());
        assert!(validate_name("-bad").is_err());
        assert!(validate_name("bad-").is_err());
        assert!(validate_name(&"a".repeat(64)).is_err());
        assert!(validate_dns_prefix("myManagedC-myResourceGroup-a1e700").is_ok());
        assert!(validate_dns_prefix("bad_prefix").is_err());
    }

    #[test]
    fn node_groups_are_named_and_truncated_as_aks_does() {
        assert_eq!(
            default_node_group("myResourceGroup", "myManagedCluster", "westus2"),
            "MC_myResourceGroup_myManagedCluster_westus2"
        );
        assert_eq!(default_node_group(&"g".repeat(90), "c", "westus2").len(), 80);
    }

    #[test]
    fn network_defaults_are_overlay_with_a_standard_load_balancer() {
        let p = network_profile(
            &json!({ "loadBalancerSku": "standard", "outboundType": "loadBalancer" }),
            None,
            "/subscriptions/s/resourceGroups/MC",
            false,
        )
        .unwrap();
        assert_eq!(p["networkPlugin"], "azure");
        assert_eq!(p["networkPluginMode"], "overlay");
        assert_eq!(p["podCidr"], "10.244.0.0/16");
        assert_eq!(p["dnsServiceIP"], "10.0.0.10");
        assert_eq!(p["loadBalancerProfile"]["managedOutboundIPs"]["count"], 1);
        let kubenet = network_profile(&json!({ "networkPlugin": "kubenet" }), None, "/x", false).unwrap();
        let own_subnet = network_profile(&json!({ "networkPlugin": "azure" }), None, "/x", true).unwrap();
        assert!(own_subnet.get("networkPluginMode").is_none() && own_subnet.get("podCidr").is_none());
        assert!(kubenet.get("networkPluginMode").is_none());
        let changed = network_profile(&json!({ "networkPlugin": "kubenet" }), Some(&p), "/x", false).unwrap_err();
        assert_eq!(changed.code.as_str(), "PropertyChangeNotAllowed");
    }
}
