//! The nodes of a cluster's agent pools: one per scale set instance
//! (`aks-{pool}-{8 digits}-vmss{index}`), each with the node image it booted and the
//! credential its kubelet uses. Nodes change only when an operation completes: a scale adds or
//! removes them, a stop deallocates them, an upgrade or a kubelet identity change reimages
//! them. Exposed as `Machines_*` and at `GET /_armlet/clusters/{cluster id}/nodes`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{AGENT_POOL_TYPE, ClusterInternals, cluster_id, load_cluster, not_found};
use crate::arm::paging::page;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::state::AppState;

/// The credential a node's kubelet authenticates with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletCredential {
    /// `ManagedIdentity` or `ServicePrincipal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub pool: String,
    pub index: u32,
    pub node_image_version: String,
    pub kubernetes_version: String,
    pub kubelet: KubeletCredential,
    /// False while the cluster or pool is stopped.
    pub ready: bool,
    /// Derived by [`Node::view`] from `downtime` and the clock.
    #[serde(default)]
    pub cordoned: bool,
    /// When the node was (or will be) cordoned, drained and reimaged, and why.
    #[serde(default)]
    pub downtime: Vec<Downtime>,
    /// A reimage planned by a running operation, applied once its time has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Reimage>,
}

/// An interval in which a node was unschedulable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub reason: String,
}

/// What a reimage puts on a node, and when the node is back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reimage {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub node_image_version: String,
    pub kubernetes_version: String,
    /// The kubelet credential after the reimage (unchanged when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletCredential>,
}

impl Node {
    /// Applies a planned reimage whose time has come.
    pub fn settle(&mut self, now: OffsetDateTime) {
        if let Some(reimage) = self.pending.take_if(|r| r.at <= now) {
            self.node_image_version = reimage.node_image_version;
            self.kubernetes_version = reimage.kubernetes_version;
            if let Some(kubelet) = reimage.kubelet {
                self.kubelet = kubelet;
            }
        }
    }

    /// The node as it is at `now`: cordoned (and not ready) inside a downtime interval.
    pub fn view(&self, now: OffsetDateTime) -> Value {
        let mut node = self.clone();
        node.settle(now);
        node.cordoned = node.downtime.iter().any(|d| d.from <= now && now < d.to);
        let ready = node.ready && !node.cordoned;
        let mut value = serde_json::to_value(&node).unwrap_or(Value::Null);
        value["ready"] = json!(ready);
        value
    }
}

/// How many nodes a pool reimages at once: `maxSurge` as a count or a percentage, at least 1.
pub fn batch_size(max_surge: &str, count: usize) -> usize {
    let surge = max_surge.trim();
    let n = match surge.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<usize>().map(|p| (count * p).div_ceil(100)).unwrap_or(1),
        None => surge.parse::<usize>().unwrap_or(1),
    };
    n.max(1)
}

/// What a rolling reimage puts on the nodes.
pub struct ReimageTarget<'a> {
    pub image: &'a str,
    pub kubernetes_version: &'a str,
    pub kubelet: Option<KubeletCredential>,
    pub reason: &'a str,
}

/// Plans a rolling reimage of a pool's nodes from `start`: `batch` at a time, each batch
/// cordoned, drained and reimaged for `step`. Returns when the last node is back.
pub fn plan_reimage(
    internals: &mut ClusterInternals,
    pool: &str,
    batch: usize,
    start: OffsetDateTime,
    step: time::Duration,
    target: &ReimageTarget<'_>,
) -> OffsetDateTime {
    let mut mine: Vec<&mut Node> = internals.nodes.iter_mut().filter(|n| n.pool == pool).collect();
    mine.sort_by_key(|n| n.index);
    let mut end = start;
    for (i, node) in mine.into_iter().enumerate() {
        let from = start + step * (i / batch.max(1)) as i32;
        let to = from + step;
        node.downtime.push(Downtime { from, to, reason: target.reason.to_owned() });
        node.pending = Some(Reimage {
            at: to,
            node_image_version: target.image.to_owned(),
            kubernetes_version: target.kubernetes_version.to_owned(),
            kubelet: target.kubelet.clone(),
        });
        end = end.max(to);
    }
    end
}

/// What new (or reimaged) nodes' kubelets use: the kubelet identity on managed-identity
/// clusters; the service principal otherwise, including on a migrated cluster whose nodes
/// have not been reimaged yet.
pub fn kubelet_of(cluster: &Value, legacy_service_principal: Option<&str>) -> KubeletCredential {
    let kubelet = &cluster["properties"]["identityProfile"]["kubeletidentity"];
    match kubelet["clientId"].as_str() {
        Some(client_id) => KubeletCredential {
            kind: "ManagedIdentity".into(),
            client_id: client_id.to_owned(),
            object_id: kubelet["objectId"].as_str().map(str::to_owned),
            resource_id: kubelet["resourceId"].as_str().map(str::to_owned),
        },
        None => KubeletCredential {
            kind: "ServicePrincipal".into(),
            client_id: legacy_service_principal
                .or_else(|| cluster["properties"]["servicePrincipalProfile"]["clientId"].as_str())
                .unwrap_or_default()
                .to_owned(),
            object_id: None,
            resource_id: None,
        },
    }
}

/// Scale set instance names use six base-36 digits.
fn instance_suffix(mut index: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = digits[(index % 36) as usize];
        index /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn scale_set_name(pool: &str, suffix: &str) -> String {
    format!("aks-{pool}-{suffix}-vmss")
}

/// Brings the nodes in line with the cluster body once an operation completes: planned
/// reimages land and pools scale. A node whose image or Kubernetes version differs from its
/// pool's is reimaged, its kubelet taking the cluster's current credential then, and only
/// then: a migrated cluster's nodes keep the service principal until they are reimaged.
pub fn reconcile(cluster: &Value, internals: &mut ClusterInternals, now: OffsetDateTime) {
    let kubelet = kubelet_of(cluster, internals.legacy_service_principal.as_deref());
    let reimage_all = std::mem::take(&mut internals.reimage);
    let cluster_running = cluster["properties"]["powerState"]["code"].as_str() != Some("Stopped");
    let pools: Vec<&Value> =
        cluster["properties"]["agentPoolProfiles"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    internals.nodes.retain(|n| pools.iter().any(|p| p["name"].as_str() == Some(n.pool.as_str())));
    let mut used: Vec<KubeletCredential> = internals.nodes.iter().map(|n| n.kubelet.clone()).collect();
    for node in &mut internals.nodes {
        node.settle(now);
    }
    for pool in pools {
        let name = pool["name"].as_str().unwrap_or_default().to_owned();
        let image = pool["nodeImageVersion"].as_str().unwrap_or_default().to_owned();
        let version = pool["currentOrchestratorVersion"].as_str().unwrap_or_default().to_owned();
        let running = cluster_running && pool["powerState"]["code"].as_str() != Some("Stopped");
        let wanted = pool["count"].as_u64().unwrap_or(0) as usize;
        let (mut mine, rest): (Vec<Node>, Vec<Node>) = internals.nodes.drain(..).partition(|n| n.pool == name);
        mine.sort_by_key(|n| n.index);
        mine.truncate(wanted);
        for node in &mut mine {
            if node.node_image_version != image || node.kubernetes_version != version || reimage_all {
                node.node_image_version = image.clone();
                node.kubernetes_version = version.clone();
                node.kubelet = kubelet.clone();
            }
        }
        // New instances boot from the scale set's model, which a kubelet change reaches only
        // through a reimage: they use what the pool's nodes use.
        let model_kubelet = mine.first().map(|n| n.kubelet.clone()).unwrap_or_else(|| kubelet.clone());
        while mine.len() < wanted {
            let index = internals.next_index.entry(name.clone()).or_insert(0);
            mine.push(Node {
                name: format!("{}{}", scale_set_name(&name, &internals.scale_set_suffix), instance_suffix(*index)),
                pool: name.clone(),
                index: *index,
                node_image_version: image.clone(),
                kubernetes_version: version.clone(),
                kubelet: model_kubelet.clone(),
                ready: true,
                cordoned: false,
                downtime: Vec::new(),
                pending: None,
            });
            *index += 1;
        }
        for node in &mut mine {
            node.ready = running;
        }
        internals.nodes = rest;
        internals.nodes.extend(mine);
    }
    used.retain(|k| !internals.nodes.iter().any(|n| &n.kubelet == k));
    for credential in used {
        if !internals.former_kubelets.contains(&credential) {
            internals.former_kubelets.push(credential);
        }
    }
    if internals.nodes.iter().all(|n| n.kubelet.kind != "ServicePrincipal")
        && cluster["properties"]["identityProfile"]["kubeletidentity"].is_object()
    {
        internals.legacy_service_principal = None;
    }
}

fn machine(cluster: &Value, node: &Node, suffix: &str) -> Value {
    let cluster_id = cluster["id"].as_str().unwrap_or_default();
    let node_group = cluster["properties"]["nodeResourceGroup"].as_str().unwrap_or_default();
    let subscription = cluster_id.split('/').nth(2).unwrap_or_default();
    json!({
        "id": format!("{cluster_id}/agentPools/{}/machines/{}", node.pool, node.name),
        "name": node.name,
        "type": format!("{AGENT_POOL_TYPE}/machines"),
        "properties": {
            "network": { "ipAddresses": [{ "family": "IPv4", "ip": format!("10.224.0.{}", 4 + node.index) }] },
            "resourceId": format!(
                "/subscriptions/{subscription}/resourceGroups/{node_group}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
                scale_set_name(&node.pool, suffix),
                node.index
            ),
            "nodeImageVersion": node.node_image_version,
            "status": { "provisioningState": "Succeeded", "ready": node.ready },
        },
    })
}

fn cluster_and_internals(state: &AppState, req: &ArmRequest) -> ArmResult<(Value, ClusterInternals)> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let tx = state.db.reader();
    let cluster = load_cluster(&tx, &id)?.ok_or_else(|| not_found(name, group))?;
    let internals = ClusterInternals::load(&tx, &id)?.ok_or_else(|| not_found(name, group))?;
    Ok((cluster, internals))
}

fn pool_exists(cluster: &Value, pool: &str) -> bool {
    cluster["properties"]["agentPoolProfiles"]
        .as_array()
        .is_some_and(|pools| pools.iter().any(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(pool))))
}

/// `Machines_List`: the pool's nodes as scale set machines.
pub async fn list_machines(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (cluster, internals) = cluster_and_internals(&state, &req)?;
    let pool = req.param("agentPoolName");
    if !pool_exists(&cluster, pool) {
        return Err(super::agent_pools::pool_not_found(pool));
    }
    let items: Vec<Value> = internals
        .nodes
        .iter()
        .filter(|n| n.pool.eq_ignore_ascii_case(pool))
        .map(|n| machine(&cluster, n, &internals.scale_set_suffix))
        .collect();
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `Machines_Get`.
pub async fn get_machine(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (cluster, internals) = cluster_and_internals(&state, &req)?;
    let (pool, name) = (req.param("agentPoolName"), req.param("machineName"));
    let node = internals
        .nodes
        .iter()
        .find(|n| n.pool.eq_ignore_ascii_case(pool) && n.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| crate::arm_error!(NotFound, "Machine '{name}' was not found in agent pool '{pool}'."))?;
    crate::arm::json(StatusCode::OK, machine(&cluster, node, &internals.scale_set_suffix))
}

/// The control API's view of a cluster's nodes (`GET /_armlet/clusters/{id}/nodes`).
pub fn admin_list(state: &AppState, id: &str) -> Result<Value, ArmError> {
    // A cluster's internals exist exactly as long as the cluster does.
    let internals = ClusterInternals::load(&state.db.reader(), id)?
        .ok_or_else(|| crate::arm_error!(ResourceNotFound, "The managed cluster '{id}' was not found."))?;
    let now = state.clock.now();
    let nodes: Vec<Value> = internals.nodes.iter().map(|n| n.view(now)).collect();
    Ok(json!({ "time": crate::clock::rfc3339(now), "value": nodes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(count: u64, image: &str) -> Value {
        json!({
            "id": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
            "properties": {
                "powerState": { "code": "Running" },
                "servicePrincipalProfile": { "clientId": "msi" },
                "identityProfile": { "kubeletidentity": { "clientId": "kc", "objectId": "ko", "resourceId": "kr" } },
                "agentPoolProfiles": [{
                    "name": "nodepool1", "count": count, "nodeImageVersion": image,
                    "currentOrchestratorVersion": "1.35.7", "powerState": { "code": "Running" },
                }],
            },
        })
    }

    fn internals() -> ClusterInternals {
        ClusterInternals {
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            scale_set_suffix: "12345678".into(),
            nodes: Vec::new(),
            next_index: Default::default(),
            kubelet_check: None,
            reimage: false,
            legacy_service_principal: None,
            service_principal_secret: None,
            former_kubelets: Vec::new(),
        }
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-03-01 12:00 UTC);

    #[test]
    fn scale_up_and_down_keeps_names_and_never_reuses_indices() {
        let mut i = internals();
        reconcile(&cluster(3, "img-1"), &mut i, NOW);
        let names: Vec<&str> = i.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "aks-nodepool1-12345678-vmss000000",
                "aks-nodepool1-12345678-vmss000001",
                "aks-nodepool1-12345678-vmss000002"
            ]
        );
        assert_eq!(i.nodes[0].kubelet.kind, "ManagedIdentity");
        reconcile(&cluster(1, "img-1"), &mut i, NOW);
        assert_eq!(i.nodes.len(), 1);
        reconcile(&cluster(2, "img-1"), &mut i, NOW);
        assert_eq!(i.nodes[1].name, "aks-nodepool1-12345678-vmss000003");
    }

    #[test]
    fn kubelet_changes_only_with_a_reimage() {
        let mut i = internals();
        let mut sp = cluster(2, "img-1");
        sp["properties"]["identityProfile"] = Value::Null;
        sp["properties"]["servicePrincipalProfile"]["clientId"] = json!("app");
        reconcile(&sp, &mut i, NOW);
        assert_eq!(i.nodes[0].kubelet.kind, "ServicePrincipal");
        // Migrated to a managed identity: the kubelet keeps the service principal...
        i.legacy_service_principal = Some("app".into());
        reconcile(&cluster(2, "img-1"), &mut i, NOW);
        assert_eq!(i.nodes[0].kubelet.kind, "ServicePrincipal");
        // Scaling up adds nodes from the same (unchanged) model.
        reconcile(&cluster(3, "img-1"), &mut i, NOW);
        assert_eq!(i.nodes[2].kubelet.kind, "ServicePrincipal");
        // ...until a node image upgrade reimages the nodes.
        reconcile(&cluster(3, "img-2"), &mut i, NOW);
        assert!(i.nodes.iter().all(|n| n.kubelet.kind == "ManagedIdentity" && n.node_image_version == "img-2"));
        assert_eq!(i.legacy_service_principal, None, "no node uses the service principal any more");
    }

    #[test]
    fn a_rolling_reimage_takes_batches_of_max_surge() {
        let mut i = internals();
        reconcile(&cluster(3, "img-1"), &mut i, NOW);
        assert_eq!(batch_size("10%", 3), 1);
        assert_eq!(batch_size("50%", 3), 2);
        assert_eq!(batch_size("2", 3), 2);
        let step = time::Duration::seconds(10);
        let target = ReimageTarget { image: "img-2", kubernetes_version: "1.35.7", kubelet: None, reason: "upgrade" };
        let end = plan_reimage(&mut i, "nodepool1", 1, NOW, step, &target);
        assert_eq!(end, NOW + step * 3);
        let view = |n: usize, at| i.nodes[n].view(at);
        assert_eq!(view(0, NOW)["cordoned"], true);
        assert_eq!(view(0, NOW)["ready"], false);
        assert_eq!(view(1, NOW)["cordoned"], false);
        assert_eq!(view(0, NOW + step)["nodeImageVersion"], "img-2");
        assert_eq!(view(1, NOW + step)["cordoned"], true);
        assert_eq!(view(2, NOW + step)["nodeImageVersion"], "img-1");
        assert_eq!(i.nodes[2].downtime[0].from, NOW + step * 2);
    }

    #[test]
    fn instance_suffixes_are_base36() {
        assert_eq!(instance_suffix(0), "000000");
        assert_eq!(instance_suffix(10), "00000a");
        assert_eq!(instance_suffix(36), "000010");
    }
}
