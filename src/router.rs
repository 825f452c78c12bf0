//! Every route armlet serves is declared here: the fixed surfaces (cloud metadata, Entra ID,
//! the `/_armlet` control API) as axum routes, and the ARM surface as one table of swagger
//! path templates behind a single dispatcher (ARM paths nest and match case-insensitively).

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::arm::dispatch::{RouteTable, authorization_target};
use crate::arm::extract::read_body;
use crate::arm::faults::{self, FaultAction};
use crate::arm::request::Scheme;
use crate::arm::resource_id::segments;
use crate::arm::{ArmError, ArmRequest, ArmResult, headers};
use crate::auth::{bearer, entra, imds};
use crate::providers::authorization::{self as authz, role_assignments as ra, role_definitions as rd};
use crate::providers::container_registry::registries;
use crate::providers::container_service::{
    agent_pools as ap, credentials as aks_credentials, kubernetes_versions, managed_clusters as mc, nodes as aks_nodes,
    operations as aks_operations,
};
use crate::providers::managed_identity::{
    federated_identity_credentials as fic, system_assigned_identities as sai, user_assigned_identities as uai,
};
use crate::providers::network::{subnets, virtual_networks as vnets};
use crate::providers::resources::{
    self as rp, generic_resources, locations, operations, providers as rps, resource_groups, subscriptions,
};
use crate::state::AppState;
use crate::{admin, cloud_metadata, graph};

/// Wraps an async handler `fn(AppState, ArmRequest)` as a table entry.
macro_rules! h {
    ($f:path) => {
        |state, req| Box::pin($f(state, req))
    };
}

/// The ARM route table. Earlier entries win; `{scope}` templates go last.
pub fn arm_routes() -> RouteTable<AppState> {
    const RES: &str = "Microsoft.Resources/resourceGroups";
    const SUBS: &str = "Microsoft.Resources/subscriptions";
    const PROV: &str = "Microsoft.Resources/providers";
    let mut t = RouteTable::default();
    // ---- Microsoft.Resources: subscriptions and tenants ----
    t.add(Method::GET, "/subscriptions", SUBS, "Subscriptions_List", h!(subscriptions::list));
    t.add(Method::GET, "/subscriptions/{subscriptionId}", SUBS, "Subscriptions_Get", h!(subscriptions::get));
    t.add(Method::GET, "/tenants", "Microsoft.Resources/tenants", "Tenants_List", h!(subscriptions::list_tenants));
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/locations",
        "Microsoft.Resources/subscriptions/locations",
        "Subscriptions_ListLocations",
        h!(locations::list_locations),
    );
    // ---- Microsoft.Resources: providers ----
    t.add(Method::GET, "/providers", PROV, "Providers_ListAtTenantScope", h!(rps::list_at_tenant_scope));
    t.add(
        Method::GET,
        "/providers/{resourceProviderNamespace}",
        PROV,
        "Providers_GetAtTenantScope",
        h!(rps::get_at_tenant_scope),
    );
    t.add(Method::GET, "/subscriptions/{subscriptionId}/providers", PROV, "Providers_List", h!(rps::list));
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}",
        PROV,
        "Providers_Get",
        h!(rps::get),
    );
    t.add(
        Method::POST,
        "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}/register",
        PROV,
        "Providers_Register",
        h!(rps::register),
    );
    t.add(
        Method::POST,
        "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}/unregister",
        PROV,
        "Providers_Unregister",
        h!(rps::unregister),
    );
    // ---- Microsoft.Resources: resource groups ----
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourcegroups",
        RES,
        "ResourceGroups_List",
        h!(resource_groups::list),
    );
    let group = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}";
    t.add(Method::PUT, group, RES, "ResourceGroups_CreateOrUpdate", h!(resource_groups::create_or_update));
    t.add(Method::GET, group, RES, "ResourceGroups_Get", h!(resource_groups::get));
    t.add(Method::HEAD, group, RES, "ResourceGroups_CheckExistence", h!(resource_groups::check_existence));
    t.add(Method::PATCH, group, RES, "ResourceGroups_Update", h!(resource_groups::update));
    t.add(Method::DELETE, group, RES, "ResourceGroups_Delete", h!(resource_groups::delete));
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/operationresults/{operationId}",
        "Microsoft.Resources/subscriptions/operationresults",
        "ResourceGroups_Delete (operation result)",
        h!(operations::get_operation_result),
    );
    // ---- Microsoft.Resources: generic resources ----
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resources",
        "Microsoft.Resources/resources",
        "Resources_List",
        h!(generic_resources::list),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/resources",
        "Microsoft.Resources/resources",
        "Resources_ListByResourceGroup",
        h!(generic_resources::list_by_resource_group),
    );
    // ---- Microsoft.ManagedIdentity ----
    const UAI: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";
    const FIC: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
        UAI,
        "UserAssignedIdentities_ListBySubscription",
        h!(uai::list_by_subscription),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
        UAI,
        "UserAssignedIdentities_ListByResourceGroup",
        h!(uai::list_by_resource_group),
    );
    let identity = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}";
    t.add(Method::PUT, identity, UAI, "UserAssignedIdentities_CreateOrUpdate", h!(uai::create_or_update));
    t.add(Method::GET, identity, UAI, "UserAssignedIdentities_Get", h!(uai::get));
    t.add(Method::PATCH, identity, UAI, "UserAssignedIdentities_Update", h!(uai::update));
    t.add(Method::DELETE, identity, UAI, "UserAssignedIdentities_Delete", h!(uai::delete));
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}/federatedIdentityCredentials",
        FIC,
        "FederatedIdentityCredentials_List",
        h!(fic::list),
    );
    let credential = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}/federatedIdentityCredentials/{federatedIdentityCredentialResourceName}";
    t.add(Method::PUT, credential, FIC, "FederatedIdentityCredentials_CreateOrUpdate", h!(fic::create_or_update));
    t.add(Method::GET, credential, FIC, "FederatedIdentityCredentials_Get", h!(fic::get));
    t.add(Method::DELETE, credential, FIC, "FederatedIdentityCredentials_Delete", h!(fic::delete));
    // ---- Microsoft.ContainerService ----
    const MC: &str = "Microsoft.ContainerService/managedClusters";
    const AP: &str = "Microsoft.ContainerService/managedClusters/agentPools";
    macro_rules! aks_location {
        ($tail:literal) => {
            concat!("/subscriptions/{subscriptionId}/providers/Microsoft.ContainerService/locations/{location}", $tail)
        };
    }
    macro_rules! cluster {
        ($tail:literal) => {
            concat!(
                "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerService/managedClusters/{resourceName}",
                $tail
            )
        };
    }
    t.add(
        Method::GET,
        aks_location!("/kubernetesVersions"),
        "Microsoft.ContainerService/locations/kubernetesVersions",
        "ManagedClusters_ListKubernetesVersions",
        h!(kubernetes_versions::list_kubernetes_versions),
    );
    t.add(
        Method::GET,
        aks_location!("/operations/{operationId}"),
        "Microsoft.ContainerService/locations/operations",
        "OperationStatusResult_Get",
        h!(aks_operations::get_operation_status),
    );
    t.add(
        Method::GET,
        aks_location!("/operationresults/{operationId}"),
        "Microsoft.ContainerService/locations/operationresults",
        "OperationResults_Get",
        h!(aks_operations::get_operation_result),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerService/managedClusters",
        MC,
        "ManagedClusters_List",
        h!(mc::list),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerService/managedClusters",
        MC,
        "ManagedClusters_ListByResourceGroup",
        h!(mc::list_by_resource_group),
    );
    t.add(Method::PUT, cluster!(""), MC, "ManagedClusters_CreateOrUpdate", h!(mc::create_or_update));
    t.add(Method::GET, cluster!(""), MC, "ManagedClusters_Get", h!(mc::get));
    t.add(Method::PATCH, cluster!(""), MC, "ManagedClusters_UpdateTags", h!(mc::update_tags));
    t.add(Method::DELETE, cluster!(""), MC, "ManagedClusters_Delete", h!(mc::delete));
    t.add(
        Method::GET,
        cluster!("/upgradeProfiles/default"),
        MC,
        "ManagedClusters_GetUpgradeProfile",
        h!(mc::get_upgrade_profile),
    );
    t.add(
        Method::POST,
        cluster!("/listClusterUserCredential"),
        MC,
        "ManagedClusters_ListClusterUserCredentials",
        h!(aks_credentials::list_cluster_user_credentials),
    );
    t.add(
        Method::POST,
        cluster!("/listClusterAdminCredential"),
        MC,
        "ManagedClusters_ListClusterAdminCredentials",
        h!(aks_credentials::list_cluster_admin_credentials),
    );
    t.add(
        Method::POST,
        cluster!("/listClusterMonitoringUserCredential"),
        MC,
        "ManagedClusters_ListClusterMonitoringUserCredentials",
        h!(aks_credentials::list_cluster_monitoring_user_credentials),
    );
    t.add(Method::POST, cluster!("/stop"), MC, "ManagedClusters_Stop", h!(mc::stop));
    t.add(Method::POST, cluster!("/start"), MC, "ManagedClusters_Start", h!(mc::start));
    t.add(
        Method::POST,
        cluster!("/rotateClusterCertificates"),
        MC,
        "ManagedClusters_RotateClusterCertificates",
        h!(mc::rotate_cluster_certificates),
    );
    t.add(
        Method::POST,
        cluster!("/resetServicePrincipalProfile"),
        MC,
        "ManagedClusters_ResetServicePrincipalProfile",
        h!(mc::reset_service_principal_profile),
    );
    // Operations armlet does not emulate: a clear error rather than "no such type".
    t.add(Method::POST, cluster!("/runCommand"), MC, "ManagedClusters_RunCommand", h!(mc::not_emulated));
    t.add(
        Method::GET,
        cluster!("/commandResults/{commandId}"),
        MC,
        "ManagedClusters_GetCommandResult",
        h!(mc::not_emulated),
    );
    t.add(Method::POST, cluster!("/abort"), MC, "ManagedClusters_AbortLatestOperation", h!(mc::not_emulated));
    t.add(
        Method::POST,
        cluster!("/rotateServiceAccountSigningKeys"),
        MC,
        "ManagedClusters_RotateServiceAccountSigningKeys",
        h!(mc::not_emulated),
    );
    t.add(Method::POST, cluster!("/resetAADProfile"), MC, "ManagedClusters_ResetAADProfile", h!(mc::not_emulated));
    t.add(Method::GET, cluster!("/agentPools"), AP, "AgentPools_List", h!(ap::list));
    t.add(
        Method::PUT,
        cluster!("/agentPools/{agentPoolName}"),
        AP,
        "AgentPools_CreateOrUpdate",
        h!(ap::create_or_update),
    );
    t.add(Method::GET, cluster!("/agentPools/{agentPoolName}"), AP, "AgentPools_Get", h!(ap::get));
    t.add(Method::DELETE, cluster!("/agentPools/{agentPoolName}"), AP, "AgentPools_Delete", h!(ap::delete));
    t.add(
        Method::GET,
        cluster!("/agentPools/{agentPoolName}/upgradeProfiles/default"),
        AP,
        "AgentPools_GetUpgradeProfile",
        h!(ap::get_upgrade_profile),
    );
    t.add(
        Method::POST,
        cluster!("/agentPools/{agentPoolName}/upgradeNodeImageVersion"),
        AP,
        "AgentPools_UpgradeNodeImageVersion",
        h!(ap::upgrade_node_image_version),
    );
    t.add(
        Method::GET,
        cluster!("/agentPools/{agentPoolName}/machines"),
        AP,
        "Machines_List",
        h!(aks_nodes::list_machines),
    );
    t.add(
        Method::GET,
        cluster!("/agentPools/{agentPoolName}/machines/{machineName}"),
        AP,
        "Machines_Get",
        h!(aks_nodes::get_machine),
    );
    // ---- Microsoft.ContainerRegistry ----
    const ACR: &str = "Microsoft.ContainerRegistry/registries";
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries",
        ACR,
        "Registries_List",
        h!(registries::list),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries",
        ACR,
        "Registries_ListByResourceGroup",
        h!(registries::list_by_resource_group),
    );
    let registry = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}";
    t.add(Method::PUT, registry, ACR, "Registries_Create", h!(registries::create));
    t.add(Method::GET, registry, ACR, "Registries_Get", h!(registries::get));
    t.add(Method::PATCH, registry, ACR, "Registries_Update", h!(registries::update));
    t.add(Method::DELETE, registry, ACR, "Registries_Delete", h!(registries::delete));
    // ---- Microsoft.Network ----
    const VNET: &str = "Microsoft.Network/virtualNetworks";
    const SUBNET: &str = "Microsoft.Network/virtualNetworks/subnets";
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/virtualNetworks",
        VNET,
        "VirtualNetworks_ListAll",
        h!(vnets::list_all),
    );
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks",
        VNET,
        "VirtualNetworks_List",
        h!(vnets::list),
    );
    let vnet = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}";
    t.add(Method::PUT, vnet, VNET, "VirtualNetworks_CreateOrUpdate", h!(vnets::create_or_update));
    t.add(Method::GET, vnet, VNET, "VirtualNetworks_Get", h!(vnets::get));
    t.add(Method::DELETE, vnet, VNET, "VirtualNetworks_Delete", h!(vnets::delete));
    t.add(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}/subnets",
        SUBNET,
        "Subnets_List",
        h!(subnets::list),
    );
    let subnet = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}/subnets/{subnetName}";
    t.add(Method::PUT, subnet, SUBNET, "Subnets_CreateOrUpdate", h!(subnets::create_or_update));
    t.add(Method::GET, subnet, SUBNET, "Subnets_Get", h!(subnets::get));
    t.add(Method::DELETE, subnet, SUBNET, "Subnets_Delete", h!(subnets::delete));
    // ---- extension resources at any scope (last: `{scope}` matches anything) ----
    const RA: &str = "Microsoft.Authorization/roleAssignments";
    const RD: &str = "Microsoft.Authorization/roleDefinitions";
    let assignment = "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}";
    t.add(Method::PUT, assignment, RA, "RoleAssignments_Create", h!(ra::create));
    t.add(Method::GET, assignment, RA, "RoleAssignments_Get", h!(ra::get));
    t.add(Method::DELETE, assignment, RA, "RoleAssignments_Delete", h!(ra::delete));
    t.add(
        Method::GET,
        "/{scope}/providers/Microsoft.Authorization/roleAssignments",
        RA,
        "RoleAssignments_ListForScope",
        h!(ra::list_for_scope),
    );
    let definition = "/{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}";
    t.add(Method::PUT, definition, RD, "RoleDefinitions_CreateOrUpdate", h!(rd::create_or_update));
    t.add(Method::GET, definition, RD, "RoleDefinitions_Get", h!(rd::get));
    t.add(Method::DELETE, definition, RD, "RoleDefinitions_Delete", h!(rd::delete));
    t.add(
        Method::GET,
        "/{scope}/providers/Microsoft.Authorization/roleDefinitions",
        RD,
        "RoleDefinitions_List",
        h!(rd::list),
    );
    t.add(
        Method::GET,
        "/{scope}/providers/Microsoft.Authorization/permissions",
        "Microsoft.Authorization/permissions",
        "Permissions_ListForResource",
        h!(authz::list_permissions),
    );
    t.add(
        Method::GET,
        "/{scope}/providers/Microsoft.ManagedIdentity/identities/default",
        "Microsoft.ManagedIdentity/identities",
        "SystemAssignedIdentities_GetByScope",
        h!(sai::get_by_scope),
    );
    t
}

/// Operations any authenticated caller may use: they list what exists, not what it holds
/// (`Subscriptions_List` shows only the subscriptions the caller has a role in).
const UNGATED: &[&str] = &[
    "Subscriptions_List",
    "Tenants_List",
    "Providers_ListAtTenantScope",
    "Providers_GetAtTenantScope",
    "Providers_List",
    "Providers_Get",
    "Permissions_ListForResource",
];

/// Runs an ARM request through authentication, routing, api-version and scope checks, then
/// its handler.
async fn dispatch(state: &AppState, request: Request) -> ArmResult<Response> {
    let (parts, body) = request.into_parts();
    if state.settings.clock_step > time::Duration::ZERO && state.clock.mode() == crate::clock::ClockMode::Frozen {
        // A stepping clock: time moves with the client's requests, reproducibly.
        let _ = state.clock.advance_by(state.settings.clock_step);
    }
    let caller = bearer::authenticate(state, &parts.headers)?;
    let path = segments(parts.uri.path());
    let resolved = state.routes.resolve(&parts.method, &path, &|ns| state.api_versions.knows_namespace(ns))?;
    let query: Vec<(String, String)> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let fault = state.faults.check(
        parts.method.as_str(),
        parts.uri.path(),
        resolved.route.resource_type,
        resolved.route.operation_id,
    );
    if let Some(fault) = &fault {
        if let Some(response) = faults::respond(fault, parts.method.as_str()) {
            return Ok(response);
        }
        if let FaultAction::Latency { ms } = fault {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
        }
    }
    let requested = query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.as_str());
    let api_version = if state.settings.skip_api_version_check {
        requested.unwrap_or_default().to_owned()
    } else {
        state.api_versions.check(resolved.route.resource_type, requested, None)?
    };
    let body = read_body(body, state.settings.max_body_bytes).await?;
    let req = ArmRequest {
        scheme: parts.extensions.get::<Scheme>().copied().unwrap_or(Scheme::Https),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        params: resolved.params,
        query,
        api_version,
        body,
        caller,
    };
    let group_is_target = resolved.route.pattern.template().ends_with("{resourceGroupName}");
    rp::require_scope(state, &req, group_is_target)?;
    if !UNGATED.contains(&resolved.route.operation_id) {
        let (action, scope) = authorization_target(&req.method, &path);
        if let Err(denied) = authz::authorize(state, &req.caller, &action, &scope) {
            let is_list = req.method == Method::GET && scope != format!("/{}", path.join("/"));
            if !is_list {
                return Err(denied);
            }
            // A list the caller cannot read as a whole still shows the items it can read.
            let caller = req.caller.clone();
            let response = (resolved.route.handler)(state.clone(), req).await?;
            return authz::keep_readable(state, &caller, &action, response, denied).await;
        }
    }
    let response = (resolved.route.handler)(state.clone(), req).await?;
    if let Some(FaultAction::FailOperation { code, message }) = fault
        && let Some(id) = started_operation(&response)
    {
        fail_operation(state, id, code, message).await?;
    }
    Ok(response)
}

/// The operation a response started, named by its `Azure-AsyncOperation` or `Location` URL.
fn started_operation(response: &Response) -> Option<String> {
    let url = ["azure-asyncoperation", "location"]
        .iter()
        .find_map(|h| response.headers().get(*h).and_then(|v| v.to_str().ok()))?;
    url.split('?').next().and_then(|p| p.rsplit('/').next()).map(str::to_owned)
}

/// Marks operation `id` to fail with a fault's error when it completes.
async fn fail_operation(state: &AppState, id: String, code: String, message: String) -> ArmResult<()> {
    state
        .db
        .transact(|tx| {
            if let Some(mut op) = tx.get::<crate::arm::lro::Operation>(&crate::arm::lro::key(&id))? {
                op.injected_failure = Some(crate::arm::lro::OperationError { code, message });
                tx.put(crate::arm::lro::key(&id), &op)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await?;
    Ok(())
}

async fn arm_fallback(State(state): State<AppState>, request: Request) -> Response {
    let head = request.method() == Method::HEAD;
    let response = dispatch(&state, request).await.unwrap_or_else(IntoResponse::into_response);
    if head {
        // HEAD answers carry no body, errors included.
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    response
}

/// The principal a bearer token names (`oid`), for the request log only: the token is not
/// verified here (the ARM and Graph handlers do that).
fn caller_of(headers: &axum::http::HeaderMap) -> Option<String> {
    use base64::Engine;
    let token = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    #[derive(serde::Deserialize)]
    struct Oid {
        oid: Option<String>,
    }
    serde_json::from_slice::<Oid>(&bytes).ok()?.oid
}

/// ARM's response headers on everything, and one log line per request (`ARMLET_LOG=info`).
async fn arm_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let request_headers = request.headers().clone();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    headers::decorate(&method, &request_headers, response.headers_mut(), state.clock.now());
    let request_id = response.headers().get("x-ms-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if uri.path() != "/_armlet/requests" {
        state.requests.record(serde_json::json!({
            "time": crate::clock::rfc3339(state.clock.now()),
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "status": response.status().as_u16(),
            "requestId": request_id,
            "clientRequestId": request_headers.get("x-ms-client-request-id").and_then(|v| v.to_str().ok()),
            "userAgent": request_headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
            "apiVersion": uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
                    .map(|(_, v)| v.into_owned())
            }),
            "caller": caller_of(&request_headers),
            "correlationId": response.headers().get("x-ms-correlation-request-id").and_then(|v| v.to_str().ok()),
            "elapsedMs": started.elapsed().as_millis() as u64,
        }));
    }
    tracing::info!(
        http.method = %method,
        http.path = %uri.path(),
        http.status = response.status().as_u16(),
        request.id = request_id,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{method} {} -> {}",
        uri.path(),
        response.status().as_u16()
    );
    response
}

/// The control API answers only with the control token when one is set (armlet listening
/// beyond loopback); `/_armlet/health` stays open for health checks.
async fn control_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(token) = &state.settings.control_token
        && path.starts_with("/_armlet/")
        && path != "/_armlet/health"
    {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| request.headers().get("x-armlet-token").and_then(|v| v.to_str().ok()));
        // Compared as digests, so how long a wrong guess takes says nothing about the token.
        let digest = |t: &str| <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes());
        if given.map(digest) != Some(digest(token)) {
            let body = serde_json::json!({ "error": {
                "code": "Unauthorized",
                "message": "The armlet control API needs its token (Authorization: Bearer <token>); armlet printed it at start, and the CLI reads ARMLET_CONTROL_TOKEN.",
            }});
            return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
    }
    next.run(request).await
}

/// az asks for `//metadata/endpoints` when its ARM URL ends in `/`; collapse repeated slashes.
async fn collapse_slashes(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.contains("//") {
        let mut collapsed = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && collapsed.ends_with('/')) {
                collapsed.push(c);
            }
        }
        let rebuilt = match request.uri().query() {
            Some(q) => format!("{collapsed}?{q}"),
            None => collapsed,
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    next.run(request).await
}

/// A known fixed route with another method: ARM's 405 envelope rather than an empty body.
async fn method_not_allowed(method: Method) -> Response {
    crate::arm_error!(MethodNotAllowed, "The requested resource does not support http method '{method}'.")
        .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ArmError::internal("a handler panicked").into_response()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/metadata/endpoints", get(cloud_metadata::endpoints))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(entra::openid_configuration_v2))
        .route("/{tenant}/.well-known/openid-configuration", get(entra::openid_configuration_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(entra::jwks))
        .route("/{tenant}/discovery/keys", get(entra::jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token_v2))
        .route("/{tenant}/oauth2/token", post(entra::token_v1))
        // ---- managed identity tokens (IMDS) ----
        .route("/metadata/identity/oauth2/token", get(imds::imds_token))
        .route("/msi/token", get(imds::app_service_token))
        .route("/msi/credentials", get(imds::credentials))
        .route("/_armlet/info", get(admin::info))
        .route("/_armlet/health", get(admin::health))
        .route("/_armlet/explain", get(admin::explain))
        .route("/_armlet/state", get(admin::state_export).put(admin::state_import))
        .route("/_armlet/reset", post(admin::reset))
        .route("/_armlet/subscriptions", post(admin::subscriptions_create))
        .route("/_armlet/requests", get(admin::requests))
        .route("/_armlet/events", get(admin::events))
        .route("/_armlet/clusters/{*path}", get(admin::cluster_nodes))
        .route("/_armlet/node-images", get(admin::node_images_list).post(admin::node_images_publish))
        .route("/_armlet/config", get(admin::config_show).patch(admin::config_update))
        .route("/_armlet/seed", post(admin::seed))
        .route("/_armlet/faults", get(admin::faults_list).post(admin::faults_add).delete(admin::faults_clear))
        .route("/_armlet/faults/{id}", axum::routing::delete(admin::faults_remove))
        .route("/_armlet/clock", get(admin::clock_show))
        .route("/_armlet/clock/advance", post(admin::clock_advance))
        .route("/_armlet/clock/freeze", post(admin::clock_freeze))
        .route("/_armlet/clock/resume", post(admin::clock_resume))
        // ---- Microsoft Graph v1.0 ----
        .route(
            "/v1.0/servicePrincipals",
            get(graph::service_principals::list)
                .post(graph::service_principals::create)
                .fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/servicePrincipals/{id}",
            get(graph::service_principals::get)
                .patch(graph::service_principals::update)
                .delete(graph::service_principals::delete)
                .fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/addPassword",
            post(graph::service_principals::add_password).fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/removePassword",
            post(graph::service_principals::remove_password).fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/applications",
            get(graph::applications::list).post(graph::applications::create).fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/applications/{id}",
            get(graph::applications::get)
                .patch(graph::applications::update)
                .delete(graph::applications::delete)
                .fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/applications/{id}/addPassword",
            post(graph::applications::add_password).fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/applications/{id}/removePassword",
            post(graph::applications::remove_password).fallback(graph::method_not_allowed),
        )
        .route(
            "/v1.0/directoryObjects/getByIds",
            post(graph::directory_objects::get_by_ids).fallback(graph::method_not_allowed),
        )
        .route("/v1.0/directoryObjects/{id}", get(graph::directory_objects::get).fallback(graph::method_not_allowed))
        .route("/v1.0/users", get(graph::users::list).fallback(graph::method_not_allowed))
        .route("/v1.0/users/{id}", get(graph::users::get).fallback(graph::method_not_allowed))
        .route("/v1.0/me", any(graph::users::me))
        .route("/v1.0/me/{*rest}", any(graph::users::me))
        // `servicePrincipals(appId='…')`, `applications(appId='…')`; other segments → Graph 400
        .route("/v1.0/{segment}", any(graph::keyed))
        .route("/v1.0/{segment}/{*rest}", any(graph::unknown))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(arm_fallback)
        .layer(middleware::from_fn_with_state(state.clone(), control_token))
        .layer(middleware::from_fn_with_state(state.clone(), arm_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state);
    Router::new().fallback_service(routes).layer(middleware::from_fn(collapse_slashes))
}

#[cfg(test)]
mod tests {
    //! The documents that describe armlet's surface must match what it serves.

    use super::*;
    use crate::auth::keys::SigningKey;
    use crate::clock::Clock;
    use crate::state::Settings;
    use crate::store::Db;
    use serde_json::Value;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn openapi() -> Value {
        serde_json::from_str(include_str!("../openapi/armlet.json")).expect("openapi/armlet.json parses")
    }

    #[test]
    fn every_arm_route_is_described_in_openapi_and_compatibility() {
        let doc = openapi();
        let compatibility = include_str!("../COMPATIBILITY.md");
        for route in arm_routes().routes() {
            let template = route.pattern.template();
            let method = route.method.as_str().to_lowercase();
            let op = &doc["paths"][template][&method];
            assert!(op.is_object(), "{method} {template} is served but not in openapi/armlet.json");
            assert_eq!(op["operationId"], route.operation_id, "{method} {template}: operationId differs");
            assert!(
                compatibility.contains(&format!("`{}`", route.operation_id)),
                "{} is served but not in COMPATIBILITY.md",
                route.operation_id
            );
        }
    }

    #[tokio::test]
    async fn every_described_route_is_served() {
        let key = Arc::new(SigningKey::generate().unwrap());
        let state = AppState::new(Db::memory(), Clock::real(), key, Settings::default());
        state.bootstrap().await.unwrap();
        let table = arm_routes();
        let doc = openapi();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for method in methods.as_object().unwrap().keys() {
                let served_by_table = table
                    .routes()
                    .iter()
                    .any(|r| r.pattern.template() == path && r.method.as_str().eq_ignore_ascii_case(method));
                if served_by_table {
                    continue;
                }
                let concrete = path.replace("{tenant}", crate::fixtures::defaults().tenant.tenant_id.as_str());
                let request = axum::http::Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(concrete.as_str())
                    .body(Body::empty())
                    .unwrap();
                let response = router(state.clone()).oneshot(request).await.unwrap();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let code = body["error"]["code"].as_str().unwrap_or_default();
                let unrouted = code == "NotFound"
                    && body["error"]["message"].as_str().is_some_and(|m| m.contains("is not an ARM resource path"));
                assert!(
                    !unrouted && code != "AuthenticationFailed",
                    "{method} {path} is described in openapi/armlet.json but not served (got {body})"
                );
            }
        }
    }
}
