//! `ManagedClusters_ListKubernetesVersions` (`az aks get-versions`): the supported versions
//! from `fixtures/kubernetes_versions.json`, under the key `values` as AKS answers.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::upgrades_from;
use crate::arm::{ArmRequest, ArmResult};
use crate::fixtures;
use crate::providers::resources::locations::normalize_location;
use crate::state::AppState;

/// `ManagedClusters_ListKubernetesVersions`.
pub async fn list_kubernetes_versions(_state: AppState, req: ArmRequest) -> ArmResult<Response> {
    normalize_location(req.param("location"), super::CLUSTER_TYPE)?;
    let catalog = fixtures::kubernetes_versions();
    let values: Vec<Value> = catalog
        .versions
        .iter()
        .map(|minor| {
            let patches: Map<String, Value> = minor
                .patches
                .iter()
                .map(|p| {
                    let upgrades: Vec<String> = upgrades_from(p).into_iter().map(|(v, _)| v).collect();
                    (p.clone(), json!({ "upgrades": upgrades }))
                })
                .collect();
            let mut item = json!({
                "version": minor.version,
                "capabilities": { "supportPlan": minor.support_plans },
                "patchVersions": patches,
            });
            if minor.version == catalog.default {
                item["isDefault"] = json!(true);
            }
            if minor.is_preview {
                item["isPreview"] = json!(true);
            }
            item
        })
        .collect();
    crate::arm::json(StatusCode::OK, json!({ "values": values }))
}
