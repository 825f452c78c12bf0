//! Microsoft.ContainerService: AKS managed clusters and their agent pools, with the identities
//! AKS makes for them (control plane, kubelet, add-ons), their nodes, kubeconfigs and the
//! long-running operations that change them.
//!
//! A cluster is stored twice over: its ARM body (complete, as a GET shows it) under its
//! resource id, and what ARM never shows ([`ClusterInternals`]: the cluster CA, the nodes)
//! under `aks/`. Agent pools live inside the cluster body's `agentPoolProfiles`, which is
//! what the `agentPools` sub-resource reads and writes, so the two views cannot disagree.

pub mod agent_pools;
pub mod cluster_identities;
pub mod credentials;
pub mod health;
pub mod kubernetes_versions;
pub mod managed_clusters;
pub mod node_images;
pub mod nodes;
pub mod operations;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::arm::lro::{Operation, OperationStatus};
use crate::arm::resource_id::{key, storage_key};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::fixtures;
use crate::store::{StoreError, Tx};
use crate::{arm_error, clock};

pub const CLUSTER_TYPE: &str = "Microsoft.ContainerService/managedClusters";
/// How AKS spells its type in responses (capital M, as real `az aks show` output has it).
pub const CLUSTER_TYPE_AS_SHOWN: &str = "Microsoft.ContainerService/ManagedClusters";
pub const AGENT_POOL_TYPE: &str = "Microsoft.ContainerService/managedClusters/agentPools";

/// Simulated time one batch of nodes (`maxSurge` of a pool) spends cordoned, drained and
/// reimaged during a rolling upgrade.
pub const NODE_REIMAGE_STEP: time::Duration = time::Duration::seconds(1);

pub fn cluster_id(subscription: &str, group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourcegroups/{group}/providers/{CLUSTER_TYPE}/{name}")
}

fn internals_key(cluster_id: &str) -> String {
    format!("aks{}", key(cluster_id))
}

/// What a cluster keeps that ARM never shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInternals {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// The eight digits in node and scale set names.
    pub scale_set_suffix: String,
    pub nodes: Vec<nodes::Node>,
    /// Next instance index per pool (indices are never reused, as in a scale set).
    #[serde(default)]
    pub next_index: std::collections::BTreeMap<String, u32>,
    /// A custom kubelet identity whose Managed Identity Operator grant the running operation
    /// waits for.
    #[serde(default)]
    pub kubelet_check: Option<KubeletCheck>,
    /// The running operation reimages every node (the kubelet credential changed).
    #[serde(default)]
    pub reimage: bool,
    /// A service principal cluster moved to managed identity: the service principal its nodes'
    /// kubelets keep using until their pool is reimaged onto a newer node image.
    #[serde(default)]
    pub legacy_service_principal: Option<String>,
    /// Kubelet credentials the nodes used before (a registry granted to one of them counts as
    /// attached to the cluster).
    #[serde(default)]
    pub former_kubelets: Vec<nodes::KubeletCredential>,
    /// The service principal secret the cluster was given, by hash (never the secret).
    #[serde(default)]
    pub service_principal_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletCheck {
    pub control_plane_principal: String,
    pub kubelet_identity: String,
}

impl ClusterInternals {
    pub fn load(tx: &Tx<'_>, cluster_id: &str) -> Result<Option<Self>, StoreError> {
        tx.get(&internals_key(cluster_id))
    }

    pub fn save(&self, tx: &mut Tx<'_>, cluster_id: &str) -> Result<(), StoreError> {
        tx.put(internals_key(cluster_id), self)
    }

    pub fn remove(tx: &mut Tx<'_>, cluster_id: &str) {
        tx.delete(internals_key(cluster_id));
    }
}

/// The stored cluster body.
pub fn load_cluster(tx: &Tx<'_>, id: &str) -> Result<Option<Value>, StoreError> {
    tx.get(&storage_key(id))
}

pub fn not_found(name: &str, group: &str) -> ArmError {
    ArmError::resource_not_found(CLUSTER_TYPE, name, group)
}

/// Provisioning states in which AKS accepts no other operation.
pub fn is_busy(state: &str) -> bool {
    !matches!(state, "Succeeded" | "Failed" | "Canceled" | "")
}

pub fn operation_in_progress(state: &str) -> ArmError {
    arm_error!(
        OperationNotAllowed,
        "Operation is not allowed because there's an in progress {} operation on the managed cluster. Please wait for it to finish before starting a new operation.",
        state.to_lowercase()
    )
}

/// Starts a ContainerService long-running operation: status at
/// `.../locations/{location}/operations/{id}`, result at `.../operationresults/{id}`.
pub fn start_operation(
    tx: &mut Tx<'_>,
    req: &ArmRequest,
    location: &str,
    kind: &str,
    resource_id: &str,
    due_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Operation, StoreError> {
    let id = crate::ids::uuid().to_string();
    let base = format!(
        "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}",
        req.param("subscriptionId")
    );
    let op = Operation {
        id: id.clone(),
        kind: kind.to_owned(),
        resource_id: resource_id.to_owned(),
        status: OperationStatus::InProgress,
        start_time: now,
        end_time: None,
        due_at: due_at.max(now),
        error: None,
        status_path: Some(format!("{base}/operations/{id}")),
        result_path: format!("{base}/operationresults/{id}"),
        api_version: req.api_version.clone(),
        done_status: 200,
        result: None,
        polls_remaining: 0,
        injected_failure: None,
    };
    Operation::start(tx, &op)?;
    Ok(op)
}

// ---- Kubernetes versions ----

/// `(major, minor, patch)` of `1.35` or `1.35.7` (missing parts are 0).
pub fn version_tuple(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = match parts.next() {
        Some(p) => p.ok()?,
        None => 0,
    };
    parts.next().is_none().then_some((major, minor, patch))
}

fn minor_of(version: &str) -> String {
    version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

/// Resolves a requested Kubernetes version to `(as written, full patch)`: empty means the
/// default minor, `major.minor` its newest patch.
pub fn resolve_version(requested: &str) -> ArmResult<(String, String)> {
    let catalog = fixtures::kubernetes_versions();
    let wanted = if requested.trim().is_empty() { catalog.default.as_str() } else { requested.trim() };
    let minor = minor_of(wanted);
    let found = version_tuple(wanted).and_then(|_| catalog.versions.iter().find(|v| v.version == minor));
    let patch = found.and_then(|v| {
        if wanted.matches('.').count() == 1 {
            v.patches.last().cloned()
        } else {
            v.patches.iter().find(|p| *p == wanted).cloned()
        }
    });
    match patch {
        Some(patch) => Ok((wanted.to_owned(), patch)),
        None => Err(arm_error!(
            K8sVersionNotSupported,
            "Version {wanted} is not supported in this region. Please use [az aks get-versions] command to get the supported version list in this region. For more information, please check https://aka.ms/supported-version-list"
        )),
    }
}

/// The newer patch versions a cluster on `current` may move to (same and next minor).
pub fn upgrades_from(current: &str) -> Vec<(String, bool)> {
    let Some(cur) = version_tuple(current) else { return Vec::new() };
    let mut out = Vec::new();
    for minor in &fixtures::kubernetes_versions().versions {
        for patch in &minor.patches {
            if let Some(p) = version_tuple(patch)
                && p > cur
                && p.0 == cur.0
                && p.1 <= cur.1 + 1
            {
                out.push((patch.clone(), minor.is_preview));
            }
        }
    }
    out
}

/// `systemData` as ARM writes it for a change made by `req`'s caller.
pub fn system_data(req: &ArmRequest, created_at: &str, now: OffsetDateTime) -> Value {
    let now = clock::rfc3339(now);
    serde_json::json!({
        "createdBy": req.caller.app_id,
        "createdByType": "Application",
        "createdAt": created_at,
        "lastModifiedBy": req.caller.app_id,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_resolve_like_aks() {
        let default = &fixtures::kubernetes_versions().default;
        let (written, patch) = resolve_version("").unwrap();
        assert_eq!(&written, default);
        assert!(patch.starts_with(&format!("{default}.")));
        let (_, patch) = resolve_version("1.34").unwrap();
        assert_eq!(patch, "1.34.6");
        assert_eq!(resolve_version("1.34.4").unwrap().1, "1.34.4");
        assert_eq!(resolve_version("1.10").unwrap_err().code.as_str(), "K8sVersionNotSupported");
        assert!(resolve_version("1.34.5").is_err());
        assert!(resolve_version("latest").is_err());
    }

    #[test]
    fn upgrades_go_up_at_most_one_minor() {
        let ups: Vec<String> = upgrades_from("1.34.4").into_iter().map(|(v, _)| v).collect();
        assert!(ups.contains(&"1.34.6".to_owned()));
        assert!(ups.contains(&"1.35.7".to_owned()));
        assert!(!ups.iter().any(|v| v.starts_with("1.36") || v.starts_with("1.33")));
    }
}
