//! Agent pools (`AgentPools_*`): the cluster body's `agentPoolProfiles` seen one pool at a time.
//! Writes are long-running operations on the pool; AKS's defaults (VM size, OS disk, max pods,
//! node image from the catalog) are filled here for pools written either way, and a cluster
//! keeps at least one System pool.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::node_images::{self, Catalog};
use super::{
    AGENT_POOL_TYPE, ClusterInternals, cluster_id, is_busy, load_cluster, nodes, not_found, resolve_version,
    start_operation, upgrades_from, version_tuple,
};
use crate::arm::paging::page;
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::providers::managed_identity::user_assigned_identities as uai;
use crate::providers::resources::subscriptions::Subscription;
use crate::state::AppState;
use crate::store::{StoreError, Tx};

pub const WRITE: &str = "Microsoft.ContainerService/managedClusters/agentPools/write";
pub const DELETE: &str = "Microsoft.ContainerService/managedClusters/agentPools/delete";
pub const UPGRADE_NODE_IMAGE: &str =
    "Microsoft.ContainerService/managedClusters/agentPools/upgradeNodeImageVersion/action";

pub fn pool_not_found(name: &str) -> ArmError {
    arm_error!(AgentPoolNotFound, "Agent pool '{name}' was not found in the managed cluster.")
}

fn must_keep_a_system_pool() -> ArmError {
    arm_error!(
        MustDefineAtLeastOneSystemPool,
        "Must define at least one system pool. A managed cluster needs an agent pool in mode 'System' at all times."
    )
}

/// AKS's rule: 1–12 lowercase letters and digits starting with a letter (6 for Windows).
pub fn validate_pool_name(name: &str, windows: bool) -> ArmResult<()> {
    let max = if windows { 6 } else { 12 };
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= max;
    if ok {
        return Ok(());
    }
    Err(arm_error!(
        InvalidParameter,
        "Agent pool name '{name}' is invalid. It must start with a lowercase letter, contain only lowercase letters and numbers, and be at most {max} characters long."
    )
    .with_target("agentPoolName"))
}

fn text<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    map.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn ensure(map: &mut Map<String, Value>, field: &str, value: Value) {
    if map.get(field).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        map.insert(field.to_owned(), value);
    }
}

/// What filling a pool's defaults depends on.
pub struct PoolContext<'a> {
    /// The control plane's Kubernetes version: (as written, full patch).
    pub control_plane: (&'a str, &'a str),
    pub catalog: &'a Catalog,
    pub location: &'a str,
    pub now: OffsetDateTime,
}

/// One pool as AKS stores it: the request with AKS's defaults filled and read-only fields
/// recomputed. `previous` is the stored pool when this is an update.
pub fn complete_profile(
    requested: &Map<String, Value>,
    previous: Option<&Value>,
    ctx: &PoolContext<'_>,
) -> ArmResult<Value> {
    let (control_plane, now) = (ctx.control_plane, ctx.now);
    let mut pool = requested.clone();
    let name = text(&pool, "name").unwrap_or_default().to_owned();
    let previous_field = |field: &str| previous.map(|p| p[field].clone()).filter(|v| !v.is_null());
    let os_type = text(&pool, "osType")
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p["osType"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| "Linux".into());
    if !os_type.eq_ignore_ascii_case("Linux") && !os_type.eq_ignore_ascii_case("Windows") {
        return Err(arm_error!(
            InvalidParameter,
            "The value '{os_type}' of 'osType' is invalid. Allowed values are 'Linux' and 'Windows'."
        ));
    }
    let windows = os_type.eq_ignore_ascii_case("Windows");
    validate_pool_name(&name, windows)?;
    let mode = text(&pool, "mode")
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p["mode"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| "User".into());
    let mode = match mode.to_ascii_lowercase().as_str() {
        "system" => "System",
        "user" => "User",
        "gateway" => "Gateway",
        _ => {
            return Err(arm_error!(
                InvalidParameter,
                "The value '{mode}' of 'mode' is invalid. Allowed values are 'System', 'User' and 'Gateway'."
            ));
        }
    };
    if mode == "System" && windows {
        return Err(arm_error!(InvalidParameter, "System agent pools must be Linux; agent pool '{name}' is Windows."));
    }
    let count = match pool.get("count") {
        None | Some(Value::Null) => previous_field("count").and_then(|c| c.as_i64()).unwrap_or(1),
        Some(v) => v.as_i64().ok_or_else(|| {
            ArmError::invalid_request_content(&format!(
                "The property 'count' of agent pool '{name}' must be an integer."
            ))
        })?,
    };
    let min = if mode == "System" { 1 } else { 0 };
    if !(min..=1000).contains(&count) {
        return Err(arm_error!(
            InvalidParameter,
            "The value {count} of 'count' for agent pool '{name}' is invalid. It must be between {min} and 1000 for a {mode} pool."
        )
        .with_target("properties.count"));
    }
    // Kubernetes version: an unchanged request keeps the running patch.
    let requested_version = text(&pool, "orchestratorVersion").map(str::to_owned);
    let previous_version = previous.and_then(|p| p["orchestratorVersion"].as_str().map(str::to_owned));
    let (version, current) = match (&requested_version, &previous_version) {
        (r, Some(prev)) if r.as_ref().is_none_or(|r| r == prev) => (
            prev.clone(),
            previous.and_then(|p| p["currentOrchestratorVersion"].as_str()).unwrap_or(control_plane.1).to_owned(),
        ),
        (Some(r), _) => resolve_version(r)?,
        (None, _) => (control_plane.0.to_owned(), control_plane.1.to_owned()),
    };
    if version_tuple(&current) > version_tuple(control_plane.1) {
        return Err(arm_error!(
            InvalidParameter,
            "Node pool version {current} and control plane version {} are incompatible. Node pool version cannot be newer than control plane version.",
            control_plane.1
        ));
    }
    if let Some(before) = previous.and_then(|p| p["currentOrchestratorVersion"].as_str())
        && version_tuple(&current) < version_tuple(before)
    {
        return Err(arm_error!(
            InvalidParameter,
            "Downgrading agent pool '{name}' from Kubernetes version {before} to {current} is not allowed."
        ));
    }
    let os_sku = text(&pool, "osSKU")
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p["osSKU"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| if windows { "Windows2022".into() } else { "Ubuntu".into() });
    // The node image only changes through an upgrade (or a rollback to a recent version).
    let previous_image = previous
        .filter(|p| p["osSKU"].as_str().is_none_or(|s| s.eq_ignore_ascii_case(&os_sku)))
        .and_then(|p| p["nodeImageVersion"].as_str().map(str::to_owned));
    let image = match (text(&pool, "nodeImageVersion"), previous_image) {
        (Some(wanted), Some(prev)) if wanted != prev => {
            if !ctx.catalog.recent(&os_sku, ctx.location, now).iter().any(|v| v == wanted) {
                return Err(arm_error!(
                    InvalidParameter,
                    "The node image version '{wanted}' is not allowed for agent pool '{name}': only recently released versions may be set."
                ));
            }
            wanted.to_owned()
        }
        (_, Some(prev)) => prev,
        (_, None) => ctx.catalog.latest(&os_sku, ctx.location, now),
    };
    pool.insert("count".into(), json!(count));
    pool.insert("mode".into(), json!(mode));
    pool.insert("osType".into(), json!(if windows { "Windows" } else { "Linux" }));
    pool.insert("osSKU".into(), json!(os_sku));
    pool.insert("orchestratorVersion".into(), json!(version));
    pool.insert("currentOrchestratorVersion".into(), json!(current));
    pool.insert("nodeImageVersion".into(), json!(image));
    let default_size = if windows { "Standard_D2s_v3" } else { "Standard_DS2_v2" };
    ensure(&mut pool, "vmSize", previous_field("vmSize").unwrap_or(json!(default_size)));
    if pool.get("osDiskSizeGB").and_then(Value::as_i64).unwrap_or(0) == 0 {
        pool.insert("osDiskSizeGB".into(), previous_field("osDiskSizeGB").unwrap_or(json!(128)));
    }
    if pool.get("maxPods").and_then(Value::as_i64).unwrap_or(0) == 0 {
        pool.insert("maxPods".into(), previous_field("maxPods").unwrap_or(json!(250)));
    }
    ensure(&mut pool, "osDiskType", json!("Managed"));
    ensure(&mut pool, "kubeletDiskType", json!("OS"));
    ensure(&mut pool, "type", json!("VirtualMachineScaleSets"));
    ensure(&mut pool, "enableAutoScaling", json!(false));
    ensure(&mut pool, "enableNodePublicIP", json!(false));
    ensure(&mut pool, "scaleSetPriority", json!("Regular"));
    ensure(&mut pool, "enableEncryptionAtHost", json!(false));
    ensure(&mut pool, "enableUltraSSD", json!(false));
    ensure(&mut pool, "enableFIPS", json!(false));
    ensure(
        &mut pool,
        "securityProfile",
        json!({ "enableSecureBoot": false, "enableVTPM": false, "sshAccess": "LocalUser" }),
    );
    let mut upgrade = pool.get("upgradeSettings").and_then(Value::as_object).cloned().unwrap_or_default();
    ensure(&mut upgrade, "maxSurge", json!("10%"));
    ensure(&mut upgrade, "maxUnavailable", json!("0"));
    pool.insert("upgradeSettings".into(), Value::Object(upgrade));
    let power = pool
        .get("powerState")
        .and_then(|p| p["code"].as_str())
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p["powerState"]["code"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| "Running".into());
    if power != "Running" && power != "Stopped" {
        return Err(arm_error!(
            InvalidParameter,
            "The value '{power}' of 'powerState.code' is invalid. Allowed values are 'Running' and 'Stopped'."
        ));
    }
    pool.insert("powerState".into(), json!({ "code": power }));
    pool.insert("eTag".into(), json!(crate::ids::uuid().to_string()));
    Ok(Value::Object(pool))
}

/// A pool's `vnetSubnetID` must name an existing subnet.
pub fn check_subnet(state: &AppState, pool: &Value) -> ArmResult<()> {
    let Some(subnet) = pool["vnetSubnetID"].as_str().filter(|s| !s.is_empty()) else { return Ok(()) };
    if crate::providers::network::subnets::find(state, subnet)?.is_none() {
        return Err(arm_error!(
            InvalidParameter,
            "The subnet '{subnet}' of agent pool '{}' does not exist. Create it first (az network vnet subnet create).",
            pool["name"].as_str().unwrap_or_default()
        )
        .with_target("properties.agentPoolProfiles.vnetSubnetID"));
    }
    Ok(())
}

/// The cluster's pools after a cluster PUT: the request's list (with defaults) or, if the
/// request has none, the stored one.
pub fn apply_profiles(
    requested: &Value,
    previous: &[Value],
    ctx: &PoolContext<'_>,
    state_label: &str,
) -> ArmResult<Vec<Value>> {
    let requested = match requested {
        Value::Null if !previous.is_empty() => return Ok(previous.to_vec()),
        Value::Null => &Vec::new(),
        Value::Array(a) => a,
        _ => return Err(ArmError::invalid_request_content("The property 'agentPoolProfiles' must be an array.")),
    };
    let mut pools: Vec<Value> = Vec::new();
    for item in requested {
        let map = item
            .as_object()
            .ok_or_else(|| ArmError::invalid_request_content("Each agent pool profile must be an object."))?;
        let name = text(map, "name").unwrap_or_default();
        if pools.iter().any(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))) {
            return Err(arm_error!(InvalidParameter, "Agent pool name '{name}' is used more than once."));
        }
        let before = previous.iter().find(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
        let mut pool = complete_profile(map, before, ctx)?;
        pool["provisioningState"] = json!(if before.is_some() { state_label } else { "Creating" });
        pools.push(pool);
    }
    if !pools.iter().any(|p| p["mode"] == "System") {
        return Err(must_keep_a_system_pool());
    }
    Ok(pools)
}

/// A pool as the `agentPools` sub-resource shows it.
pub fn pool_resource(cluster: &Value, pool: &Value) -> Value {
    let mut props = pool.clone();
    let name = props.as_object_mut().and_then(|p| p.remove("name")).unwrap_or(Value::Null);
    let name = name.as_str().unwrap_or_default();
    json!({
        "id": format!("{}/agentPools/{name}", cluster["id"].as_str().unwrap_or_default()),
        "name": name,
        "type": AGENT_POOL_TYPE,
        "properties": props,
    })
}

fn pools(cluster: &Value) -> Vec<Value> {
    cluster["properties"]["agentPoolProfiles"].as_array().cloned().unwrap_or_default()
}

fn position(cluster: &Value, pool: &str) -> Option<usize> {
    pools(cluster).iter().position(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(pool)))
}

fn load(state: &AppState, req: &ArmRequest) -> ArmResult<(String, Value)> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let cluster = load_cluster(&state.db.reader(), &id)?.ok_or_else(|| not_found(name, group))?;
    Ok((id, cluster))
}

/// `AgentPools_List`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (_, cluster) = load(&state, &req)?;
    let items: Vec<Value> = pools(&cluster).iter().map(|p| pool_resource(&cluster, p)).collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `AgentPools_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (_, cluster) = load(&state, &req)?;
    let name = req.param("agentPoolName");
    let i = position(&cluster, name).ok_or_else(|| pool_not_found(name))?;
    crate::arm::json(StatusCode::OK, pool_resource(&cluster, &pools(&cluster)[i]))
}

fn cluster_version(cluster: &Value) -> (String, String) {
    let p = &cluster["properties"];
    (
        p["kubernetesVersion"].as_str().unwrap_or_default().to_owned(),
        p["currentKubernetesVersion"].as_str().unwrap_or_default().to_owned(),
    )
}

fn check_cluster_idle(cluster: &Value) -> ArmResult<()> {
    let state = cluster["properties"]["provisioningState"].as_str().unwrap_or_default();
    if is_busy(state) {
        return Err(super::operation_in_progress(state));
    }
    Ok(())
}

/// Plans a rolling reimage of `pool`'s nodes onto its profile (batches of `maxSurge`, one
/// [`super::NODE_REIMAGE_STEP`] each) and returns when the last node is back.
pub fn roll_pool(
    internals: &mut ClusterInternals,
    pool: &Value,
    now: OffsetDateTime,
    kubelet: Option<nodes::KubeletCredential>,
    reason: &str,
) -> OffsetDateTime {
    let name = pool["name"].as_str().unwrap_or_default();
    let count = internals.nodes.iter().filter(|n| n.pool == name).count();
    let batch = nodes::batch_size(pool["upgradeSettings"]["maxSurge"].as_str().unwrap_or("10%"), count);
    let target = nodes::ReimageTarget {
        image: pool["nodeImageVersion"].as_str().unwrap_or_default(),
        kubernetes_version: pool["currentOrchestratorVersion"].as_str().unwrap_or_default(),
        kubelet,
        reason,
    };
    nodes::plan_reimage(internals, name, batch, now, super::NODE_REIMAGE_STEP, &target)
}

/// `AgentPools_CreateOrUpdate`: 201 (new pool, `Creating`) or 200 (`Updating`, `Scaling`,
/// `Upgrading`), completed by the operation; a version change reimages node by node.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("agentPoolName").to_owned();
    let body: Option<Value> = req.json()?;
    let body = body.ok_or_else(|| ArmError::invalid_request_content("The request content is empty."))?;
    let mut props = match &body["properties"] {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(ArmError::invalid_request_content("The property 'properties' must be an object.")),
    };
    props.insert("name".into(), json!(name));
    let now = state.clock.now();
    let (group, cluster_name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = cluster_id(req.param("subscriptionId"), &group, &cluster_name);
    let (created, op, resource) = state
        .db
        .transact(|tx| -> ArmResult<(bool, _, Value)> {
            let mut cluster = load_cluster(tx, &id)?.ok_or_else(|| not_found(&cluster_name, &group))?;
            check_cluster_idle(&cluster)?;
            let mut all = pools(&cluster);
            let at = position(&cluster, &name);
            let previous = at.map(|i| all[i].clone());
            crate::arm::etag::check(&req.headers, previous.as_ref().and_then(|p| p["eTag"].as_str()))?;
            if let Some(prev) = &previous
                && is_busy(prev["provisioningState"].as_str().unwrap_or_default())
            {
                return Err(super::operation_in_progress(prev["provisioningState"].as_str().unwrap_or_default()));
            }
            let (version, current) = cluster_version(&cluster);
            let location = cluster["location"].as_str().unwrap_or_default().to_owned();
            let catalog = Catalog::load(tx)?;
            let ctx = PoolContext { control_plane: (&version, &current), catalog: &catalog, location: &location, now };
            let mut pool = complete_profile(&props, previous.as_ref(), &ctx)?;
            check_subnet(&state, &pool)?;
            // New or changed nodes on a service principal cluster need its secret to be valid.
            if !cluster["identity"].is_object()
                && let Some(client_id) = cluster["properties"]["servicePrincipalProfile"]["clientId"].as_str()
            {
                let stored = ClusterInternals::load(tx, cluster["id"].as_str().unwrap_or(&id))?
                    .and_then(|i| i.service_principal_secret);
                let tenant = tx
                    .get::<Subscription>(&Subscription::key(req.param("subscriptionId")))?
                    .map(|s| s.tenant_id)
                    .unwrap_or_default();
                super::cluster_identities::check_service_principal_at(
                    &state,
                    tx,
                    &tenant,
                    now,
                    client_id,
                    stored.as_deref(),
                )?;
            }
            let upgrading = previous.as_ref().is_some_and(|prev| {
                prev["currentOrchestratorVersion"] != pool["currentOrchestratorVersion"]
                    || prev["nodeImageVersion"] != pool["nodeImageVersion"]
            });
            let label = match &previous {
                None => "Creating",
                Some(_) if upgrading => "Upgrading",
                Some(prev) if prev["count"] != pool["count"] => "Scaling",
                Some(_) => "Updating",
            };
            pool["provisioningState"] = json!(label);
            match at {
                Some(i) => all[i] = pool.clone(),
                None => all.push(pool.clone()),
            }
            if !all.iter().any(|p| p["mode"] == "System") {
                return Err(must_keep_a_system_pool());
            }
            cluster["properties"]["agentPoolProfiles"] = json!(all);
            tx.put(storage_key(&id), &cluster)?;
            let stored_id = cluster["id"].as_str().unwrap_or(&id).to_owned();
            // A new Kubernetes version (or a rollback of the node image) rolls through the nodes.
            let mut due = now;
            if upgrading && let Some(mut internals) = ClusterInternals::load(tx, &stored_id)? {
                due = roll_pool(&mut internals, &pool, now, None, "Kubernetes version upgrade");
                internals.save(tx, &stored_id)?;
            }
            let pool_id = format!("{stored_id}/agentPools/{name}");
            let op = start_operation(tx, &req, &location, WRITE, &pool_id, due, now)?;
            Ok((previous.is_none(), op, pool_resource(&cluster, &pool)))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(op.accepted(&req, status, Some(resource)))
}

/// `AgentPools_Delete`: 202 and `Deleting`; 204 if there is no such pool. The last System
/// pool cannot go.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("agentPoolName").to_owned();
    let now = state.clock.now();
    let (group, cluster_name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = cluster_id(req.param("subscriptionId"), &group, &cluster_name);
    let op = state
        .db
        .transact(|tx| -> ArmResult<Option<_>> {
            let mut cluster = load_cluster(tx, &id)?.ok_or_else(|| not_found(&cluster_name, &group))?;
            let Some(i) = position(&cluster, &name) else { return Ok(None) };
            crate::arm::etag::check(&req.headers, pools(&cluster)[i]["eTag"].as_str())?;
            check_cluster_idle(&cluster)?;
            let mut all = pools(&cluster);
            if !all.iter().enumerate().any(|(j, p)| j != i && p["mode"] == "System") {
                return Err(must_keep_a_system_pool());
            }
            all[i]["provisioningState"] = json!("Deleting");
            cluster["properties"]["agentPoolProfiles"] = json!(all);
            tx.put(storage_key(&id), &cluster)?;
            let location = cluster["location"].as_str().unwrap_or_default().to_owned();
            let pool_id = format!("{}/agentPools/{name}", cluster["id"].as_str().unwrap_or(&id));
            Ok(Some(start_operation(tx, &req, &location, DELETE, &pool_id, now, now)?))
        })
        .await?;
    Ok(match op {
        Some(op) => op.accepted(&req, StatusCode::ACCEPTED, None),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `AgentPools_UpgradeNodeImageVersion`: moves the pool to the newest released node image.
/// Nothing to consume (the pool already runs the latest VHD) answers 200 with no body and
/// changes nothing, as AKS does.
pub async fn upgrade_node_image_version(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let name = req.param("agentPoolName").to_owned();
    let now = state.clock.now();
    let (group, cluster_name) = (req.param("resourceGroupName").to_owned(), req.param("resourceName").to_owned());
    let id = cluster_id(req.param("subscriptionId"), &group, &cluster_name);
    let started = state
        .db
        .transact(|tx| -> ArmResult<Option<(_, Value)>> {
            let mut cluster = load_cluster(tx, &id)?.ok_or_else(|| not_found(&cluster_name, &group))?;
            let i = position(&cluster, &name).ok_or_else(|| pool_not_found(&name))?;
            check_cluster_idle(&cluster)?;
            let mut all = pools(&cluster);
            let pool = &mut all[i];
            if is_busy(pool["provisioningState"].as_str().unwrap_or_default()) {
                return Err(super::operation_in_progress(pool["provisioningState"].as_str().unwrap_or_default()));
            }
            if pool["type"].as_str().is_some_and(|t| t != "VirtualMachineScaleSets") {
                return Err(arm_error!(
                    OperationNotAllowed,
                    "Node image upgrade only operation can only be applied on VirtualMachineScaleSets cluster."
                ));
            }
            let location = cluster["location"].as_str().unwrap_or_default().to_owned();
            let latest = Catalog::load(tx)?.latest(pool["osSKU"].as_str().unwrap_or("Ubuntu"), &location, now);
            if node_images::version_key(node_images::version_of(pool["nodeImageVersion"].as_str().unwrap_or_default()))
                >= node_images::version_key(node_images::version_of(&latest))
            {
                // No newer VHD has reached this region: nothing to consume, no node goes down.
                return Ok(None);
            }
            pool["provisioningState"] = json!("UpgradingNodeImageVersion");
            let mut target = pool.clone();
            target["nodeImageVersion"] = json!(latest);
            let stored_id = cluster["id"].as_str().unwrap_or(&id).to_owned();
            let mut internals = ClusterInternals::load(tx, &stored_id)?
                .ok_or_else(|| ArmError::internal("the cluster has no internal state"))?;
            // A cluster that moved from a service principal gets its kubelet identity now: the
            // reimaged nodes are the first to use it.
            if internals.legacy_service_principal.is_some()
                && cluster["identity"].is_object()
                && !cluster["properties"]["identityProfile"]["kubeletidentity"].is_object()
            {
                let subscription = req.param("subscriptionId");
                let tenant =
                    tx.get::<Subscription>(&Subscription::key(subscription))?.map(|s| s.tenant_id).unwrap_or_default();
                let identity = uai::create_for_provider(
                    tx,
                    subscription,
                    cluster["properties"]["nodeResourceGroup"].as_str().unwrap_or_default(),
                    &format!("{}-agentpool", cluster["name"].as_str().unwrap_or(&cluster_name)),
                    &location,
                    &tenant,
                    "AKS",
                    now,
                )?;
                cluster["properties"]["identityProfile"] = json!({ "kubeletidentity": {
                    "resourceId": identity["id"],
                    "clientId": identity["properties"]["clientId"],
                    "objectId": identity["properties"]["principalId"],
                }});
            }
            let kubelet = nodes::kubelet_of(&cluster, None);
            let kubelet = (kubelet.kind == "ManagedIdentity").then_some(kubelet);
            let pool = pool.clone();
            cluster["properties"]["agentPoolProfiles"] = json!(all);
            let due = roll_pool(&mut internals, &target, now, kubelet, "node image upgrade");
            internals.save(tx, &stored_id)?;
            tx.put(storage_key(&stored_id), &cluster)?;
            let pool_id = format!("{stored_id}/agentPools/{name}");
            let op = start_operation(tx, &req, &location, UPGRADE_NODE_IMAGE, &pool_id, due, now)?;
            Ok(Some((op, pool_resource(&cluster, &pool))))
        })
        .await?;
    Ok(match started {
        Some((op, body)) => op.accepted(&req, StatusCode::ACCEPTED, Some(body)),
        None => StatusCode::OK.into_response(),
    })
}

/// `AgentPools_GetUpgradeProfile`: the versions the pool may move to and the newest node image.
pub async fn get_upgrade_profile(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (_, cluster) = load(&state, &req)?;
    let name = req.param("agentPoolName");
    let i = position(&cluster, name).ok_or_else(|| pool_not_found(name))?;
    let pool = &pools(&cluster)[i];
    let current = pool["currentOrchestratorVersion"].as_str().unwrap_or_default();
    let control_plane = cluster["properties"]["currentKubernetesVersion"].as_str().unwrap_or_default();
    let upgrades: Vec<Value> = upgrades_from(current)
        .into_iter()
        .filter(|(v, _)| version_tuple(v) <= version_tuple(control_plane))
        .map(|(v, preview)| {
            if preview {
                json!({ "kubernetesVersion": v, "isPreview": true })
            } else {
                json!({ "kubernetesVersion": v })
            }
        })
        .collect();
    let os_sku = pool["osSKU"].as_str().unwrap_or("Ubuntu");
    let now = state.clock.now();
    let location = cluster["location"].as_str().unwrap_or_default();
    let catalog = Catalog::load(&state.db.reader())?;
    crate::arm::json(
        StatusCode::OK,
        json!({
            "id": format!("{}/agentPools/{}/upgradeProfiles/default", cluster["id"].as_str().unwrap_or_default(), pool["name"].as_str().unwrap_or_default()),
            "name": "default",
            "type": format!("{AGENT_POOL_TYPE}/upgradeProfiles"),
            "properties": {
                "kubernetesVersion": current,
                "osType": pool["osType"],
                "upgrades": upgrades,
                "latestNodeImageVersion": catalog.latest(os_sku, location, now),
                "recentlyUsedVersions": catalog.recent(os_sku, location, now).into_iter().rev().take(5).map(|v| json!({ "nodeImageVersion": v, "osSku": os_sku, "osType": pool["osType"] })).collect::<Vec<_>>(),
            },
        }),
    )
}

/// Completes a pool operation; the inner error fails the operation.
pub fn complete_in(
    tx: &mut Tx<'_>,
    kind: &str,
    pool_id: &str,
    now: OffsetDateTime,
) -> Result<Result<Option<Value>, ArmError>, StoreError> {
    let Some((cluster_part, pool_name)) = pool_id.rsplit_once("/agentPools/") else {
        return Ok(Err(ArmError::internal("malformed agent pool id")));
    };
    let Some(mut cluster) = load_cluster(tx, cluster_part)? else {
        return Ok(Err(arm_error!(ResourceNotFound, "The managed cluster '{cluster_part}' no longer exists.")));
    };
    let Some(mut internals) = ClusterInternals::load(tx, cluster_part)? else {
        return Ok(Err(ArmError::internal("the cluster has no internal state")));
    };
    let mut all = pools(&cluster);
    let Some(i) = all.iter().position(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(pool_name))) else {
        return Ok(Err(pool_not_found(pool_name)));
    };
    let result = match kind {
        DELETE => {
            all.remove(i);
            None
        }
        _ => {
            if kind == UPGRADE_NODE_IMAGE {
                // The image the rolling reimage put on the nodes (the newest when it started).
                let planned = internals
                    .nodes
                    .iter()
                    .filter(|n| n.pool.eq_ignore_ascii_case(pool_name))
                    .find_map(|n| n.pending.as_ref().map(|p| p.node_image_version.clone()));
                let image = match planned {
                    Some(image) => image,
                    None => Catalog::load(tx)?.latest(
                        all[i]["osSKU"].as_str().unwrap_or("Ubuntu"),
                        cluster["location"].as_str().unwrap_or_default(),
                        now,
                    ),
                };
                all[i]["nodeImageVersion"] = json!(image);
            }
            all[i]["provisioningState"] = json!("Succeeded");
            all[i]["eTag"] = json!(crate::ids::uuid().to_string());
            Some(all[i].clone())
        }
    };
    cluster["properties"]["agentPoolProfiles"] = json!(all);
    nodes::reconcile(&cluster, &mut internals, now);
    tx.put(storage_key(cluster_part), &cluster)?;
    internals.save(tx, cluster_part)?;
    Ok(Ok(result.map(|pool| pool_resource(&cluster, &pool))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-03-01 12:00 UTC);

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn ctx<'a>(catalog: &'a Catalog, version: &'a str, patch: &'a str, now: OffsetDateTime) -> PoolContext<'a> {
        PoolContext { control_plane: (version, patch), catalog, location: "westus2", now }
    }

    #[test]
    fn empty_strings_get_aks_defaults() {
        let pool = complete_profile(
            &req(json!({ "name": "nodepool1", "orchestratorVersion": "", "vmSize": "", "count": 3, "mode": "System" })),
            None,
            &ctx(&Catalog::default(), "1.35", "1.35.7", NOW),
        )
        .unwrap();
        assert_eq!(pool["vmSize"], "Standard_DS2_v2");
        assert_eq!(pool["orchestratorVersion"], "1.35");
        assert_eq!(pool["currentOrchestratorVersion"], "1.35.7");
        assert_eq!(pool["osDiskSizeGB"], 128);
        assert_eq!(pool["osSKU"], "Ubuntu");
        assert!(pool["nodeImageVersion"].as_str().unwrap().starts_with("AKSUbuntu-"));
        assert_eq!(pool["powerState"]["code"], "Running");
    }

    #[test]
    fn an_echoed_pool_keeps_its_image_and_patch() {
        let first = complete_profile(
            &req(json!({ "name": "p1", "mode": "System", "count": 1 })),
            None,
            &ctx(&Catalog::default(), "1.34", "1.34.4", NOW),
        )
        .unwrap();
        let later = NOW + time::Duration::days(60);
        let echoed = complete_profile(
            first.as_object().unwrap(),
            Some(&first),
            &ctx(&Catalog::default(), "1.34", "1.34.4", later),
        )
        .unwrap();
        assert_eq!(echoed["nodeImageVersion"], first["nodeImageVersion"]);
        assert_eq!(echoed["currentOrchestratorVersion"], "1.34.4");
    }

    #[test]
    fn pool_rules() {
        let bad =
            |v: Value| complete_profile(&req(v), None, &ctx(&Catalog::default(), "1.35", "1.35.7", NOW)).unwrap_err();
        assert_eq!(bad(json!({ "name": "Pool1" })).code.as_str(), "InvalidParameter");
        assert_eq!(bad(json!({ "name": "abcdefghijklm" })).code.as_str(), "InvalidParameter");
        assert_eq!(bad(json!({ "name": "p", "mode": "System", "count": 0 })).code.as_str(), "InvalidParameter");
        assert_eq!(bad(json!({ "name": "p", "orchestratorVersion": "1.36" })).code.as_str(), "InvalidParameter");
        let err = apply_profiles(
            &json!([{ "name": "user1", "mode": "User" }]),
            &[],
            &ctx(&Catalog::default(), "1.35", "1.35.7", NOW),
            "Creating",
        )
        .unwrap_err();
        assert_eq!(err.code.as_str(), "MustDefineAtLeastOneSystemPool");
    }
}
