//! Built-in data shipped in `fixtures/`, compiled into the binary.

use std::sync::OnceLock;

use serde::Deserialize;

/// One Azure region (`fixtures/locations.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub name: String,
    pub display_name: String,
    pub regional_display_name: String,
    pub region_type: String,
    pub region_category: String,
    pub geography_group: String,
    pub geography: String,
    pub longitude: String,
    pub latitude: String,
    pub physical_location: String,
    #[serde(default)]
    pub paired_region: Vec<String>,
}

/// A resource provider namespace and its types (`fixtures/providers.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderFixture {
    pub namespace: String,
    /// Types ARM itself owns answer bad api-versions with InvalidApiVersionParameter.
    #[serde(default)]
    pub arm_owned: bool,
    pub resource_types: Vec<ResourceTypeFixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTypeFixture {
    pub resource_type: String,
    pub api_versions: Vec<String>,
    /// Region names, or `*` for every region.
    #[serde(default)]
    pub locations: Vec<String>,
}

/// The first-start tenant, subscription and service principal (`fixtures/defaults.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    pub tenant: DefaultTenant,
    pub subscription: DefaultSubscription,
    pub service_principal: DefaultServicePrincipal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultTenant {
    pub tenant_id: String,
    pub display_name: String,
    pub default_domain: String,
    pub country_code: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultSubscription {
    pub subscription_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultServicePrincipal {
    pub app_id: String,
    pub object_id: String,
    pub display_name: String,
    pub secret: String,
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    // The fixtures are compiled in and covered by tests: a parse failure is a build defect.
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixtures/{name} is invalid: {e}"))
}

pub fn regions() -> &'static [Region] {
    static REGIONS: OnceLock<Vec<Region>> = OnceLock::new();
    REGIONS.get_or_init(|| parse("locations.json", include_str!("../fixtures/locations.json")))
}

/// Finds a region by name or display name, the way ARM normalises `"West US 2"` to `westus2`.
pub fn region(name_or_display: &str) -> Option<&'static Region> {
    let wanted: String = name_or_display.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    regions().iter().find(|r| r.name == wanted || r.display_name.replace(' ', "").to_lowercase() == wanted)
}

pub fn providers() -> &'static [ProviderFixture] {
    static PROVIDERS: OnceLock<Vec<ProviderFixture>> = OnceLock::new();
    PROVIDERS.get_or_init(|| parse("providers.json", include_str!("../fixtures/providers.json")))
}

/// A built-in role (`fixtures/role_definitions.json`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinitionFixture {
    /// The role's GUID.
    pub name: String,
    pub role_name: String,
    pub description: String,
    pub role_type: String,
    pub permissions: Vec<crate::auth::rbac::Permission>,
    pub assignable_scopes: Vec<String>,
}

pub fn role_definitions() -> &'static [RoleDefinitionFixture] {
    static ROLES: OnceLock<Vec<RoleDefinitionFixture>> = OnceLock::new();
    ROLES.get_or_init(|| parse("role_definitions.json", include_str!("../fixtures/role_definitions.json")))
}

pub fn defaults() -> &'static Defaults {
    static DEFAULTS: OnceLock<Defaults> = OnceLock::new();
    DEFAULTS.get_or_init(|| parse("defaults.json", include_str!("../fixtures/defaults.json")))
}

/// Supported Kubernetes versions (`fixtures/kubernetes_versions.json`): what
/// `ManagedClusters_ListKubernetesVersions` lists and what an empty `kubernetesVersion` means.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesVersions {
    pub default: String,
    pub versions: Vec<KubernetesMinor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesMinor {
    /// `major.minor`.
    pub version: String,
    /// Full patch versions, oldest first.
    pub patches: Vec<String>,
    #[serde(default)]
    pub is_preview: bool,
    pub support_plans: Vec<String>,
}

pub fn kubernetes_versions() -> &'static KubernetesVersions {
    static VERSIONS: OnceLock<KubernetesVersions> = OnceLock::new();
    VERSIONS.get_or_init(|| parse("kubernetes_versions.json", include_str!("../fixtures/kubernetes_versions.json")))
}

/// The node image (VHD) release schedule (`fixtures/node_images.json`): one image name prefix
/// per OS SKU, a release every `cadenceDays` from `firstRelease`, each rolled out region by
/// region over `rolloutHours` following `rings` (regions in no ring come last).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeImageCatalog {
    pub os_skus: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_release: time::OffsetDateTime,
    pub cadence_days: i64,
    pub rollout_hours: i64,
    pub rings: Vec<Vec<String>>,
}

pub fn node_images() -> &'static NodeImageCatalog {
    static IMAGES: OnceLock<NodeImageCatalog> = OnceLock::new();
    IMAGES.get_or_init(|| parse("node_images.json", include_str!("../fixtures/node_images.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_parse_and_are_consistent() {
        assert!(regions().len() > 50);
        for r in regions() {
            for p in &r.paired_region {
                assert!(region(p).is_some(), "{} pairs with unknown {p}", r.name);
            }
        }
        for name in ["westus2", "usdodcentral", "usdodeast", "usgoviowa", "chinaeast", "chinanorth"] {
            assert!(region(name).is_some(), "{name} missing");
        }
        assert_eq!(region("West US 2").unwrap().name, "westus2");
        assert!(providers().iter().any(|p| p.namespace == "Microsoft.Resources" && p.arm_owned));
        assert_eq!(defaults().tenant.default_domain, "armlet.onmicrosoft.com");
        let k8s = kubernetes_versions();
        assert!(k8s.versions.iter().any(|v| v.version == k8s.default && !v.is_preview));
        assert!(k8s.versions.iter().all(|v| !v.patches.is_empty()));
        let images = node_images();
        assert!(images.os_skus.contains_key("Ubuntu"));
        assert!(images.cadence_days > 0 && images.rollout_hours >= 0);
        assert!(images.rings.iter().flatten().all(|r| region(r).is_some()), "rings name known regions");
        for (name, id) in
            [("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"), ("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d")]
        {
            assert!(role_definitions().iter().any(|r| r.role_name == name && r.name == id), "{name}");
        }
    }
}
