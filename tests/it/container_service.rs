//! AKS managed clusters and agent pools through `app(state)`, on a frozen clock: operations
//! complete when the test polls their status (which settles what is due) or advances the clock.

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use serde_json::{Value, json};

use crate::common::*;

const API: &str = "2026-06-01";
const MIO: &str = "f1a07417-d97a-45cb-824c-7a7467783830";

fn cluster_uri(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version={API}",
        sub_id()
    )
}

fn cluster_path(group: &str, name: &str, tail: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}{tail}?api-version={API}",
        sub_id()
    )
}

/// The body `az aks create -g G -n N --enable-managed-identity` sends.
fn az_create_body() -> Value {
    json!({
        "location": "westus2",
        "identity": { "type": "SystemAssigned" },
        "sku": { "name": "Base", "tier": "Free" },
        "properties": {
            "kubernetesVersion": "",
            "dnsPrefix": "myManagedC-myResourceGroup-a1e700",
            "agentPoolProfiles": [{
                "name": "nodepool1", "orchestratorVersion": "", "vmSize": "", "osType": "Linux", "count": 3,
                "enableNodePublicIP": false, "enableAutoScaling": false, "scaleSetPriority": "Regular",
                "nodeTaints": [], "upgradeSettings": {}, "type": "VirtualMachineScaleSets",
                "enableEncryptionAtHost": false, "enableUltraSSD": false, "enableFIPS": false, "mode": "System",
            }],
            "disableLocalAccounts": false, "enableRBAC": true,
            "networkProfile": { "loadBalancerSku": "standard", "outboundType": "loadBalancer" },
            "addonProfiles": {}, "storageProfile": {}, "bootstrapProfile": { "artifactSource": "Direct" },
        },
    })
}

/// Polls the `Azure-AsyncOperation` URL once and returns its status body.
async fn poll(app: &TestApp, token: &str, headers: &HeaderMap) -> Value {
    let url = header_str(headers, "azure-asyncoperation").expect("Azure-AsyncOperation header");
    let (status, body) = app.get(&path_of(url), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn create(app: &TestApp, token: &str, group: &str, name: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
    app.put_group(token, group, "westus2").await;
    app.send(Method::PUT, &cluster_uri(group, name), Some(token), Some(body)).await
}

async fn create_and_wait(app: &TestApp, token: &str, group: &str, name: &str, body: Value) -> Value {
    let (status, headers, created) = create(app, token, group, name, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(poll(app, token, &headers).await["status"], "Succeeded");
    let (status, cluster) = app.get(&cluster_uri(group, name), token).await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    cluster
}

async fn new_identity(app: &TestApp, token: &str, group: &str, name: &str) -> Value {
    app.put_group(token, group, "westus2").await;
    let uri = format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30",
        sub_id()
    );
    let (status, _, body) = app.send(Method::PUT, &uri, Some(token), Some(json!({ "location": "westus2" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn grant(app: &TestApp, token: &str, scope: &str, role: &str, principal: &str) {
    let uri = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        uuid::Uuid::new_v4()
    );
    let body = json!({ "properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", sub_id()),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }});
    let (status, _, body) = app.send(Method::PUT, &uri, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn advance(app: &TestApp, by: &str) {
    let (status, _, body) = app.send(Method::POST, "/_armlet/clock/advance", None, Some(json!({ "by": by }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn user_assigned(identity_id: &str, kubelet: Option<&str>) -> Value {
    let mut body = az_create_body();
    body["identity"] = json!({ "type": "UserAssigned", "userAssignedIdentities": { identity_id: {} } });
    if let Some(kubelet) = kubelet {
        body["properties"]["identityProfile"] = json!({ "kubeletidentity": { "resourceId": kubelet } });
    }
    body
}

#[tokio::test]
async fn create_answers_with_an_lro_and_fills_aks_defaults() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (status, headers, body) = create(&app, &token, "myResourceGroup", "myManagedCluster", az_create_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(header_str(&headers, "retry-after"), Some("1"));
    let async_url = header_str(&headers, "azure-asyncoperation").unwrap();
    assert!(
        path_of(async_url).starts_with(&format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/westus2/operations/",
            sub_id()
        )),
        "{async_url}"
    );
    assert!(header_str(&headers, "location").unwrap().contains("/operationresults/"));
    assert_eq!(body["properties"]["provisioningState"], "Creating");
    // The control plane identity exists before the operation completes.
    let principal = body["identity"]["principalId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(principal).is_ok());
    assert_eq!(body["identity"]["tenantId"], tenant_id());

    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, cluster) = app.get(&cluster_uri("myResourceGroup", "myManagedCluster"), &token).await;
    let p = &cluster["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["powerState"]["code"], "Running");
    assert_eq!(p["servicePrincipalProfile"], json!({ "clientId": "msi" }));
    let default = &armlet::fixtures::kubernetes_versions().default;
    assert_eq!(&p["kubernetesVersion"], default.as_str());
    assert!(p["currentKubernetesVersion"].as_str().unwrap().starts_with(&format!("{default}.")));
    assert_eq!(p["nodeResourceGroup"], "MC_myResourceGroup_myManagedCluster_westus2");
    let fqdn = p["fqdn"].as_str().unwrap();
    assert!(
        fqdn.starts_with("myManagedC-myResourceGroup-a1e700-") && fqdn.ends_with(".hcp.westus2.azmk8s.io"),
        "{fqdn}"
    );
    let pool = &p["agentPoolProfiles"][0];
    assert_eq!(pool["vmSize"], "Standard_DS2_v2");
    assert_eq!(pool["orchestratorVersion"], p["kubernetesVersion"]);
    assert_eq!(pool["currentOrchestratorVersion"], p["currentKubernetesVersion"]);
    assert_eq!(pool["provisioningState"], "Succeeded");
    let expected_image =
        armlet::providers::container_service::node_images::Catalog::default().latest("Ubuntu", "westus2", FROZEN_AT);
    assert_eq!(pool["nodeImageVersion"], expected_image.as_str());
    // The kubelet identity is a real identity in the node group, owned by the cluster.
    let kubelet = &p["identityProfile"]["kubeletidentity"];
    let kubelet_id = kubelet["resourceId"].as_str().unwrap();
    assert!(kubelet_id.ends_with("/MC_myResourceGroup_myManagedCluster_westus2/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myManagedCluster-agentpool"));
    let (status, identity) = app.get(&format!("{kubelet_id}?api-version=2024-11-30"), &token).await;
    assert_eq!(status, StatusCode::OK, "{identity}");
    assert_eq!(identity["properties"]["clientId"], kubelet["clientId"]);
    assert_eq!(identity["properties"]["principalId"], kubelet["objectId"]);
    let (_, node_group) = app.get(&group_uri("MC_myResourceGroup_myManagedCluster_westus2"), &token).await;
    assert_eq!(
        node_group["managedBy"].as_str().unwrap().to_lowercase(),
        cluster["id"].as_str().unwrap().to_lowercase()
    );
    // The control plane is Contributor on the node group.
    let (_, assignments) = app
        .get(
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=assignedTo('{principal}')",
                group_id("MC_myResourceGroup_myManagedCluster_westus2")
            ),
            &token,
        )
        .await;
    assert!(
        assignments["value"].as_array().unwrap().iter().any(|a| a["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with("b24988ac-6180-42a0-ab88-20f7382dd24c")),
        "{assignments}"
    );
}

#[tokio::test]
async fn an_echoed_get_body_changes_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "echo", "c1", az_create_body()).await;
    advance(&app, "60d").await;
    let mut echo = cluster.clone();
    echo["tags"] = json!({ "team": "a" });
    let (status, headers, updated) = app.send(Method::PUT, &cluster_uri("echo", "c1"), Some(&token), Some(echo)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["properties"]["provisioningState"], "Updating");
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, after) = app.get(&cluster_uri("echo", "c1"), &token).await;
    for field in ["currentKubernetesVersion", "fqdn", "nodeResourceGroup", "identityProfile", "resourceUID"] {
        assert_eq!(after["properties"][field], cluster["properties"][field], "{field}");
    }
    assert_eq!(after["identity"], cluster["identity"]);
    // Sixty days later newer node images exist, but an update does not consume them.
    assert_eq!(
        after["properties"]["agentPoolProfiles"][0]["nodeImageVersion"],
        cluster["properties"]["agentPoolProfiles"][0]["nodeImageVersion"]
    );
    assert_eq!(after["tags"]["team"], "a");
}

#[tokio::test]
async fn nodes_follow_the_pools_and_the_kubelet_identity() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "nodes", "c1", az_create_body()).await;
    let id = cluster["id"].as_str().unwrap();
    let (status, nodes) = app.get_public(&format!("/_armlet/clusters{id}/nodes")).await;
    assert_eq!(status, StatusCode::OK, "{nodes}");
    let nodes = nodes["value"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let kubelet = &cluster["properties"]["identityProfile"]["kubeletidentity"];
    for node in nodes {
        assert!(node["name"].as_str().unwrap().starts_with("aks-nodepool1-"), "{node}");
        assert_eq!(node["kubelet"]["type"], "ManagedIdentity");
        assert_eq!(node["kubelet"]["clientId"], kubelet["clientId"]);
        assert_eq!(node["ready"], true);
    }
    let (status, machines) = app.get(&cluster_path("nodes", "c1", "/agentPools/nodepool1/machines"), &token).await;
    assert_eq!(status, StatusCode::OK, "{machines}");
    assert_eq!(machines["value"].as_array().unwrap().len(), 3);
    assert_eq!(machines["value"][0]["name"], nodes[0]["name"]);
}

#[tokio::test]
async fn agent_pools_are_long_running_and_a_system_pool_must_remain() {
    let app = TestApp::new().await;
    let token = app.token().await;
    create_and_wait(&app, &token, "pools", "c1", az_create_body()).await;
    let pool_uri = cluster_path("pools", "c1", "/agentPools/userpool");
    let (status, headers, body) = app
        .send(Method::PUT, &pool_uri, Some(&token), Some(json!({ "properties": { "count": 2, "mode": "User" } })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["type"], "Microsoft.ContainerService/managedClusters/agentPools");
    assert_eq!(body["properties"]["provisioningState"], "Creating");
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, list) = app.get(&cluster_path("pools", "c1", "/agentPools"), &token).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    // Scale down.
    let (status, headers, body) = app
        .send(Method::PUT, &pool_uri, Some(&token), Some(json!({ "properties": { "count": 1, "mode": "User" } })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["properties"]["provisioningState"], "Scaling");
    poll(&app, &token, &headers).await;
    let (_, cluster) = app.get(&cluster_uri("pools", "c1"), &token).await;
    let (_, nodes) = app.get_public(&format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap())).await;
    assert_eq!(nodes["value"].as_array().unwrap().iter().filter(|n| n["pool"] == "userpool").count(), 1);
    // The only System pool cannot go; an invalid name is refused.
    let (status, _, body) =
        app.send(Method::DELETE, &cluster_path("pools", "c1", "/agentPools/nodepool1"), Some(&token), None).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "MustDefineAtLeastOneSystemPool");
    let (status, _, body) = app
        .send(
            Method::PUT,
            &cluster_path("pools", "c1", "/agentPools/Bad_Pool"),
            Some(&token),
            Some(json!({ "properties": {} })),
        )
        .await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidParameter");
    let (status, headers, _) = app.send(Method::DELETE, &pool_uri, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    poll(&app, &token, &headers).await;
    let (status, body) = app.get(&pool_uri, &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "AgentPoolNotFound");
}

#[tokio::test]
async fn a_custom_kubelet_identity_needs_an_effective_managed_identity_operator_grant() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let control = new_identity(&app, &token, "byo", "myIdentity").await;
    let kubelet = new_identity(&app, &token, "byo", "myKubeletIdentity").await;
    let (control_id, kubelet_id) = (control["id"].as_str().unwrap(), kubelet["id"].as_str().unwrap());
    let control_principal = control["properties"]["principalId"].as_str().unwrap();

    // No grant at all: refused at once, nothing written.
    let (status, _, body) = app
        .send(Method::PUT, &cluster_uri("byo", "c1"), Some(&token), Some(user_assigned(control_id, Some(kubelet_id))))
        .await;
    let message =
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "CustomKubeletIdentityMissingPermissionError");
    assert!(message.contains("Managed Identity Operator") && message.contains(control_principal), "{message}");
    let (status, _) = app.get(&cluster_uri("byo", "c1"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        app.get(&group_uri("MC_byo_c1_westus2"), &token).await.0 == StatusCode::NOT_FOUND,
        "no half-written node group"
    );

    // A grant made a moment ago: accepted, and the operation waits until it takes effect.
    grant(&app, &token, kubelet_id, MIO, control_principal).await;
    let (status, headers, body) = app
        .send(Method::PUT, &cluster_uri("byo", "c1"), Some(&token), Some(user_assigned(control_id, Some(kubelet_id))))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["identity"]["type"], "UserAssigned");
    assert!(body["identity"]["principalId"].is_null());
    assert_eq!(body["identity"]["userAssignedIdentities"][control_id]["principalId"], control_principal);
    let status_url = path_of(header_str(&headers, "azure-asyncoperation").unwrap());
    let (_, status_headers, status_body) = app.send(Method::GET, &status_url, Some(&token), None).await;
    assert_eq!(status_body["status"], "InProgress");
    assert_eq!(header_str(&status_headers, "retry-after"), Some("1"), "or az waits 30 s between polls");
    advance(&app, "11s").await;
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, cluster) = app.get(&cluster_uri("byo", "c1"), &token).await;
    let k = &cluster["properties"]["identityProfile"]["kubeletidentity"];
    assert_eq!(k["resourceId"], kubelet_id);
    assert_eq!(k["clientId"], kubelet["properties"]["clientId"]);
    assert_eq!(k["objectId"], kubelet["properties"]["principalId"]);
    // No AKS-made kubelet identity when the cluster brings its own.
    let (status, _) = app
        .get(
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/c1-agentpool?api-version=2024-11-30",
                group_id("MC_byo_c1_westus2")
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn identity_rules_answer_aks_errors() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let control = new_identity(&app, &token, "rules", "cp1").await;
    let kubelet = new_identity(&app, &token, "rules", "kl1").await;
    let (control_id, kubelet_id) = (control["id"].as_str().unwrap(), kubelet["id"].as_str().unwrap());

    let mut system_with_kubelet = az_create_body();
    system_with_kubelet["properties"]["identityProfile"] = json!({ "kubeletidentity": { "resourceId": kubelet_id } });
    let (status, _, body) =
        app.send(Method::PUT, &cluster_uri("rules", "a"), Some(&token), Some(system_with_kubelet)).await;
    assert_arm_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster",
    );

    for region in ["usdodeast", "usdodcentral", "usgoviowa"] {
        let mut body = user_assigned(control_id, None);
        body["location"] = json!(region);
        let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "b"), Some(&token), Some(body)).await;
        let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "RegionNotSupported");
        assert!(message.contains("control plane"), "{message}");
    }
    let mut china = user_assigned(control_id, Some(kubelet_id));
    china["location"] = json!("chinanorth");
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "b"), Some(&token), Some(china)).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "RegionNotSupported");
    assert!(message.contains("kubelet"), "{message}");

    let mut two = az_create_body();
    two["identity"] = json!({ "type": "UserAssigned", "userAssignedIdentities": { control_id: {}, kubelet_id: {} } });
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "b"), Some(&token), Some(two)).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(message.contains("Only one user assigned identity"), "{message}");

    let missing = format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope", group_id("rules"));
    let (status, _, body) =
        app.send(Method::PUT, &cluster_uri("rules", "b"), Some(&token), Some(user_assigned(&missing, None))).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "GetUserAssignedIdentityResourceError");

    // On an existing system-assigned cluster: a foreign principalId, and going back to a
    // service principal.
    let cluster = create_and_wait(&app, &token, "rules", "c", az_create_body()).await;
    let mut foreign = cluster.clone();
    foreign["identity"]["principalId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "c"), Some(&token), Some(foreign)).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(message.contains("must be empty or match the existing principalId"), "{message}");
    let mut back = cluster.clone();
    back["identity"] = json!({ "type": "None" });
    back["properties"]["servicePrincipalProfile"] = json!({ "clientId": client_id(), "secret": client_secret() });
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "c"), Some(&token), Some(back)).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");

    let mut old = az_create_body();
    old["properties"]["kubernetesVersion"] = json!("1.10");
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("rules", "d"), Some(&token), Some(old)).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "K8sVersionNotSupported");
    let (status, _, body) =
        app.send(Method::PUT, &cluster_uri("rules", "-bad"), Some(&token), Some(az_create_body())).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidParameter");
}

#[tokio::test]
async fn a_service_principal_cluster_is_checked_against_the_directory() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let mut body = az_create_body();
    body.as_object_mut().unwrap().remove("identity");
    body["properties"]["servicePrincipalProfile"] = json!({ "clientId": client_id(), "secret": "wrong" });
    let (status, _, err) = create(&app, &token, "sp", "c1", body.clone()).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "ServicePrincipalValidationClientError");
    body["properties"]["servicePrincipalProfile"]["clientId"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, _, err) = app.send(Method::PUT, &cluster_uri("sp", "c1"), Some(&token), Some(body.clone())).await;
    let message = assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "ServicePrincipalNotFound");
    assert!(message.contains("not found in Active Directory tenant"), "{message}");

    body["properties"]["servicePrincipalProfile"] = json!({ "clientId": client_id(), "secret": client_secret() });
    let cluster = create_and_wait(&app, &token, "sp", "c1", body).await;
    assert!(cluster.get("identity").is_none_or(Value::is_null), "{cluster}");
    assert_eq!(cluster["properties"]["servicePrincipalProfile"], json!({ "clientId": client_id() }));
    assert!(cluster["properties"].get("identityProfile").is_none());
    let (_, nodes) = app.get_public(&format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap())).await;
    assert!(
        nodes["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["kubelet"]["type"] == "ServicePrincipal" && n["kubelet"]["clientId"] == client_id())
    );
    // Reset works with a real secret only; never on managed identity clusters.
    let reset = cluster_path("sp", "c1", "/resetServicePrincipalProfile");
    let (status, _, err) =
        app.send(Method::POST, &reset, Some(&token), Some(json!({ "clientId": client_id(), "secret": "nope" }))).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "ServicePrincipalValidationClientError");
    let (status, headers, _) = app
        .send(Method::POST, &reset, Some(&token), Some(json!({ "clientId": client_id(), "secret": client_secret() })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    create_and_wait(&app, &token, "sp", "mi", az_create_body()).await;
    let (status, _, err) = app
        .send(
            Method::POST,
            &cluster_path("sp", "mi", "/resetServicePrincipalProfile"),
            Some(&token),
            Some(json!({ "clientId": client_id(), "secret": client_secret() })),
        )
        .await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn add_ons_get_identities_and_default_grants() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let mut body = az_create_body();
    body["properties"]["addonProfiles"] = json!({
        "omsagent": { "enabled": true, "config": { "logAnalyticsWorkspaceResourceID": "/x" } },
        "azureKeyvaultSecretsProvider": { "enabled": true },
        "httpApplicationRouting": { "enabled": true },
        "azurepolicy": { "enabled": true },
    });
    let cluster = create_and_wait(&app, &token, "addons", "c1", body).await;
    let addons = &cluster["properties"]["addonProfiles"];
    assert!(addons["azurepolicy"].get("identity").is_none(), "{addons}");
    let node_group = group_id("MC_addons_c1_westus2");
    for (addon, name) in [
        ("omsagent", "omsagent-c1"),
        ("azureKeyvaultSecretsProvider", "azurekeyvaultsecretsprovider-c1"),
        ("httpApplicationRouting", "httpapplicationrouting-c1"),
    ] {
        let resource_id =
            addons[addon]["identity"]["resourceId"].as_str().unwrap_or_else(|| panic!("{addon}: {addons}"));
        assert!(resource_id.ends_with(&format!("/userAssignedIdentities/{name}")), "{resource_id}");
    }
    let assigned = |principal: &str| {
        let uri = format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20%27{principal}%27",
            sub_id()
        );
        let app = &app;
        let token = token.clone();
        async move {
            let (_, list) = app.get(&uri, &token).await;
            list["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["properties"]["roleDefinitionId"].as_str().unwrap().rsplit('/').next().unwrap().to_owned(),
                        a["properties"]["scope"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let oms = assigned(addons["omsagent"]["identity"]["objectId"].as_str().unwrap()).await;
    assert_eq!(
        oms,
        vec![("3913510d-42f4-4e42-8a64-420c390055eb".to_owned(), cluster["id"].as_str().unwrap().to_owned())]
    );
    let routing = assigned(addons["httpApplicationRouting"]["identity"]["objectId"].as_str().unwrap()).await;
    assert_eq!(routing, vec![("acdd72a7-3385-48ef-bd42-f606fba81ae7".to_owned(), node_group.clone())]);
    assert!(
        assigned(addons["azureKeyvaultSecretsProvider"]["identity"]["objectId"].as_str().unwrap()).await.is_empty()
    );

    // Disabling an add-on removes its identity.
    let mut update = cluster.clone();
    update["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["enabled"] = json!(false);
    let (status, headers, _) = app.send(Method::PUT, &cluster_uri("addons", "c1"), Some(&token), Some(update)).await;
    assert_eq!(status, StatusCode::OK);
    poll(&app, &token, &headers).await;
    let kv = addons["azureKeyvaultSecretsProvider"]["identity"]["resourceId"].as_str().unwrap();
    assert_eq!(app.get(&format!("{kv}?api-version=2024-11-30"), &token).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn credentials_are_kubeconfigs_for_the_cluster() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "creds", "c1", az_create_body()).await;
    let decode = |body: &Value| {
        let value = body["kubeconfigs"][0]["value"].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).unwrap()).unwrap()
    };
    let (status, _, user) =
        app.send(Method::POST, &cluster_path("creds", "c1", "/listClusterUserCredential"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["kubeconfigs"][0]["name"], "clusterUser");
    let config = decode(&user);
    assert!(
        config.contains(&format!("server: https://{}:443", cluster["properties"]["fqdn"].as_str().unwrap())),
        "{config}"
    );
    assert!(config.contains("current-context: c1\n") && config.contains("name: clusterUser_creds_c1"), "{config}");
    assert!(config.contains("client-certificate-data: ") && config.contains("certificate-authority-data: "));
    let (_, _, admin) =
        app.send(Method::POST, &cluster_path("creds", "c1", "/listClusterAdminCredential"), Some(&token), None).await;
    let admin = decode(&admin);
    assert!(admin.contains("current-context: c1\n") && admin.contains("name: clusterAdmin_creds_c1"), "{admin}");

    // Local accounts off: no admin credential.
    let mut update = cluster.clone();
    update["properties"]["disableLocalAccounts"] = json!(true);
    let (_, headers, _) = app.send(Method::PUT, &cluster_uri("creds", "c1"), Some(&token), Some(update)).await;
    poll(&app, &token, &headers).await;
    let (status, _, body) =
        app.send(Method::POST, &cluster_path("creds", "c1", "/listClusterAdminCredential"), Some(&token), None).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(message.contains("disable local accounts"), "{message}");
}

#[tokio::test]
async fn stop_start_and_what_is_not_emulated() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "power", "c1", az_create_body()).await;
    let (status, headers, _) = app.send(Method::POST, &cluster_path("power", "c1", "/stop"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    poll(&app, &token, &headers).await;
    let (_, stopped) = app.get(&cluster_uri("power", "c1"), &token).await;
    assert_eq!(stopped["properties"]["powerState"]["code"], "Stopped");
    let (_, nodes) = app.get_public(&format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap())).await;
    assert!(nodes["value"].as_array().unwrap().iter().all(|n| n["ready"] == false));
    let (status, _, body) = app.send(Method::POST, &cluster_path("power", "c1", "/stop"), Some(&token), None).await;
    let message = assert_arm_error(status, &body, StatusCode::CONFLICT, "OperationNotAllowed");
    assert!(message.contains("stopping cannot be performed"), "{message}");
    let (status, headers, _) = app.send(Method::POST, &cluster_path("power", "c1", "/start"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    poll(&app, &token, &headers).await;
    let (_, started) = app.get(&cluster_uri("power", "c1"), &token).await;
    assert_eq!(started["properties"]["powerState"]["code"], "Running");
    let (status, _, body) = app
        .send(
            Method::POST,
            &cluster_path("power", "c1", "/runCommand"),
            Some(&token),
            Some(json!({ "command": "kubectl get pods" })),
        )
        .await;
    let message = assert_arm_error(status, &body, StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    assert!(message.contains("runCommand"), "{message}");
}

#[tokio::test]
async fn node_image_upgrades_only_consume_a_newer_released_image() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "vhd", "c1", az_create_body()).await;
    let before = cluster["properties"]["agentPoolProfiles"][0]["nodeImageVersion"].as_str().unwrap().to_owned();
    let upgrade = cluster_path("vhd", "c1", "/agentPools/nodepool1/upgradeNodeImageVersion");
    let (status, _, body) = app.send(Method::POST, &upgrade, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "already on the latest image: nothing to do ({body})");
    advance(&app, "30d").await;
    let (_, profile) =
        app.get(&cluster_path("vhd", "c1", "/agentPools/nodepool1/upgradeProfiles/default"), &token).await;
    let latest = profile["properties"]["latestNodeImageVersion"].as_str().unwrap().to_owned();
    assert!(latest > before, "{latest} vs {before}");
    let (status, headers, body) = app.send(Method::POST, &upgrade, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["properties"]["provisioningState"], "UpgradingNodeImageVersion");
    // Node by node (maxSurge 10% of 3 = 1), one second each on the simulated clock.
    let nodes_uri = format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap());
    assert_eq!(poll(&app, &token, &headers).await["status"], "InProgress");
    let (_, nodes) = app.get_public(&nodes_uri).await;
    let cordoned: Vec<bool> = nodes["value"].as_array().unwrap().iter().map(|n| n["cordoned"] == true).collect();
    assert_eq!(cordoned, [true, false, false], "{nodes}");
    advance(&app, "1s").await;
    let (_, nodes) = app.get_public(&nodes_uri).await;
    assert_eq!(nodes["value"][0]["nodeImageVersion"], latest.as_str());
    assert_eq!(nodes["value"][1]["cordoned"], true);
    assert_eq!(nodes["value"][2]["nodeImageVersion"], before.as_str());
    advance(&app, "2s").await;
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, nodes) = app.get_public(&nodes_uri).await;
    for node in nodes["value"].as_array().unwrap() {
        assert_eq!(node["nodeImageVersion"], latest.as_str());
        assert_eq!(node["ready"], true);
        assert_eq!(node["downtime"].as_array().unwrap().len(), 1, "each node went down once: {node}");
    }
    let (_, cluster) = app.get(&cluster_uri("vhd", "c1"), &token).await;
    assert_eq!(cluster["properties"]["agentPoolProfiles"][0]["nodeImageVersion"], latest.as_str());
    assert_eq!(cluster["properties"]["agentPoolProfiles"][0]["provisioningState"], "Succeeded");
}

#[tokio::test]
async fn delete_removes_the_node_group_identities_and_grants() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "del", "c1", az_create_body()).await;
    let principal = cluster["identity"]["principalId"].as_str().unwrap().to_owned();
    let kubelet_object =
        cluster["properties"]["identityProfile"]["kubeletidentity"]["objectId"].as_str().unwrap().to_owned();
    let (status, headers, _) = app.send(Method::DELETE, &cluster_uri("del", "c1"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    assert_eq!(app.get(&cluster_uri("del", "c1"), &token).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&group_uri("MC_del_c1_westus2"), &token).await.0, StatusCode::NOT_FOUND);
    for object in [&principal, &kubelet_object] {
        assert!(
            armlet::directory::ServicePrincipal::find_by_id(&app.state.db, object).unwrap().is_none(),
            "{object} is gone"
        );
        let (_, list) = app
            .get(
                &format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20%27{object}%27",
                    sub_id()
                ),
                &token,
            )
            .await;
        assert_eq!(list["value"], json!([]), "{object}");
    }
    let (status, _, _) = app.send(Method::DELETE, &cluster_uri("del", "c1"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Deleting the cluster's resource group does the same.
    let cluster = create_and_wait(&app, &token, "del2", "c2", az_create_body()).await;
    let (status, _, _) = app.send(Method::DELETE, &group_uri("del2"), Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    advance(&app, "1s").await;
    assert_eq!(app.get(&group_uri("MC_del2_c2_westus2"), &token).await.0, StatusCode::NOT_FOUND);
    let principal = cluster["identity"]["principalId"].as_str().unwrap();
    assert!(armlet::directory::ServicePrincipal::find_by_id(&app.state.db, principal).unwrap().is_none());
}

#[tokio::test]
async fn bad_bodies_lose_nothing() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "bad", "westus2").await;
    for raw in [
        &b"{not json"[..],
        b"[]",
        b"{\"location\":\"westus2\",\"properties\":[]}",
        b"{\"location\":\"westus2\",\"properties\":{\"agentPoolProfiles\":{}}}",
    ] {
        let (status, _, body) = app
            .send_raw(
                Method::PUT,
                &cluster_uri("bad", "c1"),
                Some(&token),
                &[("content-type", "application/json")],
                raw.to_vec(),
            )
            .await;
        assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidRequestContent");
    }
    let mut no_pools = az_create_body();
    no_pools["properties"]["agentPoolProfiles"] = json!([]);
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("bad", "c1"), Some(&token), Some(no_pools)).await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "MustDefineAtLeastOneSystemPool");
    assert_eq!(app.get(&group_uri("MC_bad_c1_westus2"), &token).await.0, StatusCode::NOT_FOUND);
    assert!(armlet::providers::managed_identity::user_assigned_identities::TYPE.contains("userAssigned"));
    let (status, body) = app.get(&cluster_uri("bad", "c1"), &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "ResourceNotFound");
}

#[tokio::test]
async fn a_migrated_cluster_keeps_the_service_principal_on_its_nodes_until_a_newer_image() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let mut body = az_create_body();
    body.as_object_mut().unwrap().remove("identity");
    body["properties"]["servicePrincipalProfile"] = json!({ "clientId": client_id(), "secret": client_secret() });
    let cluster = create_and_wait(&app, &token, "mig", "c1", body).await;
    let nodes_uri = format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap());

    // `az aks update --enable-managed-identity`: the GET body echoed with a system identity.
    let mut update = cluster.clone();
    update["identity"] = json!({ "type": "SystemAssigned" });
    let (status, headers, body) = app.send(Method::PUT, &cluster_uri("mig", "c1"), Some(&token), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    poll(&app, &token, &headers).await;
    let (_, migrated) = app.get(&cluster_uri("mig", "c1"), &token).await;
    assert_eq!(migrated["properties"]["servicePrincipalProfile"], json!({ "clientId": "msi" }));
    assert_eq!(migrated["identity"]["type"], "SystemAssigned");
    assert!(migrated["properties"].get("identityProfile").is_none(), "no kubelet identity before a reimage");
    let (_, nodes) = app.get_public(&nodes_uri).await;
    assert!(nodes["value"].as_array().unwrap().iter().all(|n| n["kubelet"]["type"] == "ServicePrincipal"));

    // An echo of the migrated body keeps it that way, and so does an upgrade with no newer image.
    let (_, headers, _) = app.send(Method::PUT, &cluster_uri("mig", "c1"), Some(&token), Some(migrated.clone())).await;
    poll(&app, &token, &headers).await;
    let upgrade = cluster_path("mig", "c1", "/agentPools/nodepool1/upgradeNodeImageVersion");
    let (status, _, _) = app.send(Method::POST, &upgrade, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, nodes) = app.get_public(&nodes_uri).await;
    assert!(
        nodes["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["kubelet"]["type"] == "ServicePrincipal" && n["downtime"] == json!([]))
    );

    // Once a newer image has reached westus2, the upgrade moves every node to {cluster}-agentpool.
    advance(&app, "15d").await;
    let (status, headers, _) = app.send(Method::POST, &upgrade, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    advance(&app, "3s").await;
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, upgraded) = app.get(&cluster_uri("mig", "c1"), &token).await;
    let kubelet = &upgraded["properties"]["identityProfile"]["kubeletidentity"];
    assert!(kubelet["resourceId"].as_str().unwrap().ends_with("/userAssignedIdentities/c1-agentpool"), "{upgraded}");
    let (_, nodes) = app.get_public(&nodes_uri).await;
    for node in nodes["value"].as_array().unwrap() {
        assert_eq!(node["kubelet"]["type"], "ManagedIdentity");
        assert_eq!(node["kubelet"]["clientId"], kubelet["clientId"]);
        assert_eq!(node["downtime"][0]["reason"], "node image upgrade");
    }
}

#[tokio::test]
async fn updating_the_kubelet_identity_reimages_every_node() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let control = new_identity(&app, &token, "kub", "myIdentity").await;
    let kubelet = new_identity(&app, &token, "kub", "myKubeletIdentity").await;
    let control_id = control["id"].as_str().unwrap();
    let cluster = create_and_wait(&app, &token, "kub", "c1", user_assigned(control_id, None)).await;
    grant(&app, &token, kubelet["id"].as_str().unwrap(), MIO, control["properties"]["principalId"].as_str().unwrap())
        .await;
    advance(&app, "11s").await;
    let mut update = cluster.clone();
    update["properties"]["identityProfile"] = json!({ "kubeletidentity": { "resourceId": kubelet["id"] } });
    let (status, headers, body) = app.send(Method::PUT, &cluster_uri("kub", "c1"), Some(&token), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(poll(&app, &token, &headers).await["status"], "InProgress", "nodes are rolling");
    advance(&app, "3s").await;
    assert_eq!(poll(&app, &token, &headers).await["status"], "Succeeded");
    let (_, nodes) = app.get_public(&format!("/_armlet/clusters{}/nodes", cluster["id"].as_str().unwrap())).await;
    for node in nodes["value"].as_array().unwrap() {
        assert_eq!(node["kubelet"]["clientId"], kubelet["properties"]["clientId"]);
        assert_eq!(node["downtime"][0]["reason"], "kubelet identity change");
    }
    // AKS's own kubelet identity is gone.
    let old = cluster["properties"]["identityProfile"]["kubeletidentity"]["resourceId"].as_str().unwrap();
    assert_eq!(app.get(&format!("{old}?api-version=2024-11-30"), &token).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_published_node_image_reaches_only_its_regions() {
    let app = TestApp::new().await;
    let token = app.token().await;
    create_and_wait(&app, &token, "pub", "west", az_create_body()).await;
    let mut east = az_create_body();
    east["location"] = json!("eastus");
    create_and_wait(&app, &token, "pub", "east", east).await;

    let (status, _, release) =
        app.send(Method::POST, "/_armlet/node-images", None, Some(json!({ "locations": ["West US 2"] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    let version = release["version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("202603.01."), "dated by the clock: {version}");
    let (status, _, again) =
        app.send(Method::POST, "/_armlet/node-images", None, Some(json!({ "version": version }))).await;
    assert_arm_error(status, &again, StatusCode::CONFLICT, "Conflict");
    let (status, _, bad) = app.send(Method::POST, "/_armlet/node-images", None, Some(json!({ "version": "v2" }))).await;
    assert_arm_error(status, &bad, StatusCode::BAD_REQUEST, "BadRequest");

    let (_, listed) = app.get_public("/_armlet/node-images?location=eastus").await;
    assert!(!listed["latest"]["Ubuntu"].as_str().unwrap().ends_with(&version), "{listed}");
    let ours = listed["releases"].as_array().unwrap().iter().find(|r| r["version"] == version.as_str()).unwrap();
    assert_eq!(ours["available"], false);
    assert!(ours["availableAt"].is_null());

    let (status, _, _) = app
        .send(
            Method::POST,
            &cluster_path("pub", "east", "/agentPools/nodepool1/upgradeNodeImageVersion"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "eastus has nothing newer");
    let (status, headers, _) = app
        .send(
            Method::POST,
            &cluster_path("pub", "west", "/agentPools/nodepool1/upgradeNodeImageVersion"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    advance(&app, "3s").await;
    poll(&app, &token, &headers).await;
    let (_, west) = app.get(&cluster_uri("pub", "west"), &token).await;
    assert!(west["properties"]["agentPoolProfiles"][0]["nodeImageVersion"].as_str().unwrap().ends_with(&version));

    // A staged release reaches westus2 (ring 3 of 4) later than the canary ring.
    let (status, _, staged) =
        app.send(Method::POST, "/_armlet/node-images", None, Some(json!({ "rolloutHours": 96 }))).await;
    assert_eq!(status, StatusCode::CREATED, "{staged}");
    let (_, listed) = app.get_public("/_armlet/node-images?location=westus2").await;
    let staged_entry =
        listed["releases"].as_array().unwrap().iter().find(|r| r["version"] == staged["version"]).unwrap();
    assert_eq!(staged_entry["available"], false);
    let (_, canary) = app.get_public("/_armlet/node-images?location=westcentralus").await;
    let canary_entry =
        canary["releases"].as_array().unwrap().iter().find(|r| r["version"] == staged["version"]).unwrap();
    assert_eq!(canary_entry["available"], true);
}

/// A service principal (what `az ad sp create-for-rbac` makes) whose secret expires in 30 days.
async fn new_service_principal(app: &TestApp, secret: &str) -> (String, String) {
    use armlet::directory::{PasswordCredential, ServicePrincipal};
    let app_id = uuid::Uuid::new_v4().to_string();
    let object_id = uuid::Uuid::new_v4().to_string();
    let principal = ServicePrincipal {
        id: object_id.clone(),
        app_id: app_id.clone(),
        display_name: "aks-sp".into(),
        tenant_id: tenant_id().into(),
        service_principal_type: "Application".into(),
        service_principal_names: vec![app_id.clone()],
        alternative_names: Vec::new(),
        password_credentials: vec![PasswordCredential::new(
            uuid::Uuid::new_v4().to_string(),
            secret,
            FROZEN_AT - time::Duration::days(1),
            Some(FROZEN_AT + time::Duration::days(30)),
        )],
        created_date_time: FROZEN_AT - time::Duration::days(1),
    };
    app.state.db.transact(|tx| principal.save(tx)).await.unwrap();
    (app_id, object_id)
}

fn sp_cluster(app_id: &str, secret: &str) -> Value {
    let mut body = az_create_body();
    body.as_object_mut().unwrap().remove("identity");
    body["properties"]["servicePrincipalProfile"] = json!({ "clientId": app_id, "secret": secret });
    body
}

async fn health(app: &TestApp, cluster: &Value) -> Value {
    let (status, body) = app.get_public(&format!("/_armlet/clusters{}/health", cluster["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn acr_pulls_break_after_migration_until_the_kubelet_identity_is_granted() {
    const ACR_PULL: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
    let app = TestApp::new().await;
    let token = app.token().await;
    let (app_id, sp_object) = new_service_principal(&app, "s3cret-value").await;
    let cluster = create_and_wait(&app, &token, "acrflow", "c1", sp_cluster(&app_id, "s3cret-value")).await;
    let registry_uri = format!(
        "/subscriptions/{}/resourceGroups/acrflow/providers/Microsoft.ContainerRegistry/registries/myacr1?api-version=2026-09-01-preview",
        sub_id()
    );
    let (status, _, registry) = app
        .send(
            Method::PUT,
            &registry_uri,
            Some(&token),
            Some(json!({ "location": "westus2", "sku": { "name": "Basic" } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registry}");
    let registry_id = registry["id"].as_str().unwrap();
    // --attach-acr on the service principal cluster: AcrPull for the service principal.
    grant(&app, &token, registry_id, ACR_PULL, &sp_object).await;
    let pending = health(&app, &cluster).await;
    assert_eq!(pending["healthy"], false, "the grant is still propagating: {pending}");
    advance(&app, "11s").await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["registries"][0]["attached"], true);
    assert_eq!(report["registries"][0]["pulls"][0]["ok"], true);
    assert_eq!(report["controlPlane"]["type"], "ServicePrincipal");
    assert_eq!(report["controlPlane"]["secret"]["ok"], true);

    // Migrate; the nodes keep the service principal, so pulls still work.
    let mut update = cluster.clone();
    update["identity"] = json!({ "type": "SystemAssigned" });
    let (_, headers, _) = app.send(Method::PUT, &cluster_uri("acrflow", "c1"), Some(&token), Some(update)).await;
    poll(&app, &token, &headers).await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["controlPlane"]["type"], "SystemAssigned");
    assert_eq!(report["pools"][0]["kubelets"][0]["credential"]["type"], "ServicePrincipal");
    assert!(report["migration"].is_object());
    assert_eq!(report["registryPullsDenied"], 0, "{report}");

    // A newer node image moves the nodes to the kubelet identity, which has no AcrPull.
    advance(&app, "15d").await;
    let upgrade = cluster_path("acrflow", "c1", "/agentPools/nodepool1/upgradeNodeImageVersion");
    let (status, headers, _) = app.send(Method::POST, &upgrade, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    advance(&app, "3s").await;
    poll(&app, &token, &headers).await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["healthy"], false, "{report}");
    assert_eq!(report["registryPullsDenied"], 1);
    assert!(report["problems"][0].as_str().unwrap().contains("cannot pull from myacr1.azurecr.io"), "{report}");

    // `az aks update --attach-acr` again: AcrPull for the kubelet identity; works once propagated.
    let (_, current) = app.get(&cluster_uri("acrflow", "c1"), &token).await;
    let kubelet = current["properties"]["identityProfile"]["kubeletidentity"]["objectId"].as_str().unwrap();
    grant(&app, &token, registry_id, ACR_PULL, kubelet).await;
    let report = health(&app, &cluster).await;
    assert!(
        report["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "Microsoft.Authorization/roleAssignmentPropagation")
    );
    advance(&app, "11s").await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["healthy"], true, "{report}");
}

#[tokio::test]
async fn an_expired_service_principal_secret_makes_the_cluster_unhealthy_until_reset() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let (app_id, sp_object) = new_service_principal(&app, "old-secret").await;
    let cluster = create_and_wait(&app, &token, "expiry", "c1", sp_cluster(&app_id, "old-secret")).await;
    let report = health(&app, &cluster).await;
    assert!(
        report["pending"].as_array().unwrap().iter().any(|e| e["kind"] == "Microsoft.Graph/secretExpiry"),
        "{report}"
    );
    advance(&app, "31d").await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["healthy"], false);
    assert_eq!(report["controlPlane"]["secret"]["ok"], false);
    // Operations that need the secret fail as AKS's do.
    let (_, current) = app.get(&cluster_uri("expiry", "c1"), &token).await;
    let (status, _, body) = app.send(Method::PUT, &cluster_uri("expiry", "c1"), Some(&token), Some(current)).await;
    let message = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "ServicePrincipalValidationClientError");
    assert!(message.contains("AADSTS7000222"), "{message}");
    let (status, _, body) = app
        .send(
            Method::PUT,
            &cluster_path("expiry", "c1", "/agentPools/more"),
            Some(&token),
            Some(json!({ "properties": { "count": 1 } })),
        )
        .await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "ServicePrincipalValidationClientError");
    // A new secret (az ad sp credential reset) and az aks update-credentials --reset-service-principal.
    app.state
        .db
        .transact(|tx| {
            let mut sp = armlet::directory::ServicePrincipal::find_by_id_in(tx, &sp_object)?.unwrap();
            let now = FROZEN_AT + time::Duration::days(31);
            sp.password_credentials = vec![armlet::directory::PasswordCredential::new(
                uuid::Uuid::new_v4().to_string(),
                "new-secret",
                now,
                Some(now + time::Duration::days(365)),
            )];
            sp.save(tx)
        })
        .await
        .unwrap();
    let reset = cluster_path("expiry", "c1", "/resetServicePrincipalProfile");
    let (status, headers, body) =
        app.send(Method::POST, &reset, Some(&token), Some(json!({ "clientId": app_id, "secret": "new-secret" }))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    poll(&app, &token, &headers).await;
    let report = health(&app, &cluster).await;
    assert_eq!(report["healthy"], true, "{report}");
}

#[tokio::test]
async fn etags_guard_cluster_and_pool_writes() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let cluster = create_and_wait(&app, &token, "etag", "c1", az_create_body()).await;
    let etag = cluster["eTag"].as_str().unwrap().to_owned();
    let put = |headers: Vec<(&'static str, String)>, body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
            h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            app.send_raw(Method::PUT, &cluster_uri("etag", "c1"), Some(&token), &h, bytes).await
        }
    };
    let (status, _, body) = put(vec![("if-match", "\"not-it\"".into())], cluster.clone()).await;
    assert_arm_error(status, &body, StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    let (status, _, body) = put(vec![("if-none-match", "*".into())], cluster.clone()).await;
    assert_arm_error(status, &body, StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    let (status, headers, body) = put(vec![("if-match", format!("\"{etag}\""))], cluster.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["eTag"], etag.as_str(), "every write gets a new ETag");
    poll(&app, &token, &headers).await;
    // The old ETag no longer matches: a lost update is refused.
    let (status, _, body) = put(vec![("if-match", etag.clone())], cluster.clone()).await;
    assert_arm_error(status, &body, StatusCode::PRECONDITION_FAILED, "PreconditionFailed");

    let pool_uri = cluster_path("etag", "c1", "/agentPools/nodepool1");
    let (status, _, body) = app
        .send_raw(
            Method::PUT,
            &pool_uri,
            Some(&token),
            &[("content-type", "application/json"), ("if-match", "stale")],
            serde_json::to_vec(&json!({ "properties": { "count": 2, "mode": "System" } })).unwrap(),
        )
        .await;
    assert_arm_error(status, &body, StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
}
