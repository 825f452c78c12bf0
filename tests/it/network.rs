//! Microsoft.Network virtual networks and subnets, and clusters placed in a subnet: the control
//! plane needs `subnets/join/action` there (Network Contributor), and the create waits for a
//! grant still propagating.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

const NETWORK_CONTRIBUTOR: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";

fn vnet_uri(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/{name}?api-version=2025-07-01",
        sub_id()
    )
}

/// What `az network vnet create … --subnet-name S1 --subnet-prefix 192.168.1.0/24` sends.
async fn create_vnet(app: &TestApp, token: &str, group: &str) -> Value {
    app.put_group(token, group, "westus2").await;
    let body = json!({
        "location": "westus2",
        "properties": {
            "addressSpace": { "addressPrefixes": ["192.168.0.0/16"] },
            "enableDdosProtection": false, "enableVmProtection": false,
            "subnets": [{ "name": "S1", "properties": { "addressPrefix": "192.168.1.0/24" } }],
        },
    });
    let (status, _, vnet) = app.send(Method::PUT, &vnet_uri(group, "VNET"), Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{vnet}");
    vnet
}

#[tokio::test]
async fn networks_and_subnets() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let vnet = create_vnet(&app, &token, "net").await;
    assert_eq!(vnet["properties"]["provisioningState"], "Succeeded");
    let subnet = &vnet["properties"]["subnets"][0];
    assert_eq!(subnet["id"], format!("{}/subnets/S1", vnet["id"].as_str().unwrap()));
    assert_eq!(subnet["type"], "Microsoft.Network/virtualNetworks/subnets");

    let subnet_uri = |name: &str| {
        format!(
            "/subscriptions/{}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/VNET/subnets/{name}?api-version=2024-07-01",
            sub_id()
        )
    };
    let body = |prefix: &str| json!({ "name": "x", "properties": { "addressPrefix": prefix } });
    let (status, _, s2) = app.send(Method::PUT, &subnet_uri("S2"), Some(&token), Some(body("192.168.2.0/24"))).await;
    assert_eq!(status, StatusCode::CREATED, "{s2}");
    assert_eq!(s2["name"], "S2");
    let (status, _, err) = app.send(Method::PUT, &subnet_uri("S3"), Some(&token), Some(body("10.0.0.0/24"))).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "NetcfgSubnetRangeOutsideVnet");
    let (status, _, err) = app.send(Method::PUT, &subnet_uri("S3"), Some(&token), Some(body("192.168.1.128/25"))).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "NetcfgSubnetRangesOverlap");
    let (status, _, err) = app.send(Method::PUT, &subnet_uri("S3"), Some(&token), Some(body("192.168.300.0/24"))).await;
    assert_arm_error(status, &err, StatusCode::BAD_REQUEST, "InvalidAddressPrefixFormat");
    let (_, list) = app
        .get(
            &format!(
                "/subscriptions/{}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/VNET/subnets?api-version=2024-07-01",
                sub_id()
            ),
            &token,
        )
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    let (status, _, _) = app.send(Method::DELETE, &subnet_uri("S2"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&subnet_uri("S2"), &token).await;
    assert_arm_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
}

fn cluster_uri(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version=2026-06-01",
        sub_id()
    )
}

fn subnet_cluster(subnet: &str, identity: Value) -> Value {
    json!({
        "location": "westus2",
        "identity": identity,
        "properties": {
            "kubernetesVersion": "",
            "dnsPrefix": "vnetcluster",
            "agentPoolProfiles": [{ "name": "nodepool1", "count": 1, "mode": "System", "vmSize": "", "vnetSubnetID": subnet }],
            "networkProfile": { "networkPlugin": "azure", "serviceCidr": "10.2.0.0/24", "dnsServiceIP": "10.2.0.10" },
        },
    })
}

async fn op_status(app: &TestApp, token: &str, headers: &axum::http::HeaderMap) -> Value {
    let url = header_str(headers, "azure-asyncoperation").unwrap();
    app.get(&path_of(url), token).await.1
}

async fn advance(app: &TestApp, by: &str) {
    let (status, _, body) = app.send(Method::POST, "/_armlet/clock/advance", None, Some(json!({ "by": by }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_cluster_in_a_subnet_waits_for_the_control_planes_network_grant() {
    let app = TestApp::new().await;
    let token = app.token().await;
    let vnet = create_vnet(&app, &token, "vnetrg").await;
    let subnet = vnet["properties"]["subnets"][0]["id"].as_str().unwrap().to_owned();

    // Traditional Azure CNI (nodes in the caller's subnet): no overlay, no pod CIDR.
    let (status, headers, body) = app
        .send(
            Method::PUT,
            &cluster_uri("vnetrg", "sys"),
            Some(&token),
            Some(subnet_cluster(&subnet, json!({ "type": "SystemAssigned" }))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["properties"]["networkProfile"].get("networkPluginMode").is_none());
    assert_eq!(body["properties"]["networkProfile"]["serviceCidr"], "10.2.0.0/24");
    // What az does right after the PUT: read the new principal and grant it Network Contributor.
    let principal = body["identity"]["principalId"].as_str().unwrap();
    assert_eq!(op_status(&app, &token, &headers).await["status"], "InProgress");
    let assignment = format!(
        "{subnet}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        uuid::Uuid::new_v4()
    );
    let grant = json!({ "properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{NETWORK_CONTRIBUTOR}", sub_id()),
        "principalId": principal, "principalType": "ServicePrincipal",
    }});
    let (status, _, body) = app.send(Method::PUT, &assignment, Some(&token), Some(grant)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    advance(&app, "5s").await;
    assert_eq!(op_status(&app, &token, &headers).await["status"], "InProgress", "the grant is still propagating");
    advance(&app, "6s").await;
    assert_eq!(op_status(&app, &token, &headers).await["status"], "Succeeded");

    // With no grant at all the create fails once the wait runs out, as AKS reports it.
    let (status, headers, body) = app
        .send(
            Method::PUT,
            &cluster_uri("vnetrg", "nogrant"),
            Some(&token),
            Some(subnet_cluster(&subnet, json!({ "type": "SystemAssigned" }))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    advance(&app, "31s").await;
    let failed = op_status(&app, &token, &headers).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert_eq!(failed["error"]["code"], "LinkedAuthorizationFailed");
    assert!(
        failed["error"]["message"].as_str().unwrap().contains("Microsoft.Network/virtualNetworks/subnets/join/action")
    );
    let (_, cluster) = app.get(&cluster_uri("vnetrg", "nogrant"), &token).await;
    assert_eq!(cluster["properties"]["provisioningState"], "Failed");

    // A subnet that does not exist is refused at once.
    let missing = format!("{}/subnets/nope", vnet["id"].as_str().unwrap());
    let (status, _, body) = app
        .send(
            Method::PUT,
            &cluster_uri("vnetrg", "missing"),
            Some(&token),
            Some(subnet_cluster(&missing, json!({ "type": "SystemAssigned" }))),
        )
        .await;
    assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "InvalidParameter");
}

/// Microsoft.Network's naming rule holds for virtual networks, subnets and the subnets a
/// network's body names, and a refused name creates nothing.
#[tokio::test]
async fn network_and_subnet_names_follow_the_naming_rule() {
    let app = TestApp::new().await;
    let token = app.token().await;
    app.put_group(&token, "net-names", "westus2").await;
    let vnet = |name: &str| {
        format!(
            "/subscriptions/{}/resourceGroups/net-names/providers/Microsoft.Network/virtualNetworks/{name}?api-version=2025-07-01",
            sub_id()
        )
    };
    let body =
        json!({ "location": "westus2", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } });
    for bad in ["v", "-vnet", "vnet.", &"v".repeat(65)] {
        let (status, _, raw) = app.send(Method::PUT, &vnet(bad), Some(&token), Some(body.clone())).await;
        assert_arm_error(status, &raw, StatusCode::BAD_REQUEST, "InvalidResourceName");
        let (status, _) = app.get(&vnet(bad), &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad} was not created");
    }
    let mut with_bad_subnet = body.clone();
    with_bad_subnet["properties"]["subnets"] =
        json!([{ "name": "bad.", "properties": { "addressPrefix": "10.0.1.0/24" } }]);
    let (status, _, raw) = app.send(Method::PUT, &vnet("vnet-ok"), Some(&token), Some(with_bad_subnet)).await;
    assert_arm_error(status, &raw, StatusCode::BAD_REQUEST, "InvalidResourceName");
    let (status, _, _) = app.send(Method::PUT, &vnet("vnet-ok"), Some(&token), Some(body)).await;
    assert!(status.is_success());
    let subnet = |name: &str| {
        format!(
            "/subscriptions/{}/resourceGroups/net-names/providers/Microsoft.Network/virtualNetworks/vnet-ok/subnets/{name}?api-version=2024-07-01",
            sub_id()
        )
    };
    let subnet_body = json!({ "properties": { "addressPrefix": "10.0.2.0/24" } });
    let (status, _, raw) =
        app.send(Method::PUT, &subnet(&"s".repeat(81)), Some(&token), Some(subnet_body.clone())).await;
    assert_arm_error(status, &raw, StatusCode::BAD_REQUEST, "InvalidResourceName");
    let (status, _, _) = app.send(Method::PUT, &subnet(&"s".repeat(80)), Some(&token), Some(subnet_body)).await;
    assert!(status.is_success(), "80 characters is the limit, not beyond it");
}
