//! The identities of a cluster, as AKS makes and checks them:
//! - the control plane: system-assigned (minted with the PUT, visible while provisioning),
//!   one user-assigned identity, or a service principal;
//! - the kubelet: `{cluster}-agentpool` in the node resource group, or the caller's own
//!   (user-assigned control planes only, and only once the control plane holds an effective
//!   Managed Identity Operator grant on it);
//! - add-ons: `{addon}-{cluster}` identities with the default role assignments the AKS
//!   managed identity documentation lists.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::KubeletCheck;
use crate::arm::resource_id::{key, storage_key};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::auth::rbac::Decision;
use crate::directory::{Application, SecretState, ServicePrincipal, hash_secret, secret_state};
use crate::providers::authorization::role_definitions::{CONTRIBUTOR, MONITORING_METRICS_PUBLISHER, READER};
use crate::providers::authorization::{self as authz, role_assignments};
use crate::providers::managed_identity::system_assigned_identities as sai;
use crate::providers::managed_identity::user_assigned_identities as uai;
use crate::state::{AppState, RbacMode};
use crate::store::Tx;

/// The action a Managed Identity Operator grant gives, and ARM's linked check needs.
pub const ASSIGN_ACTION: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";

/// Regions where AKS refuses a custom control plane identity (Azure Government).
const NO_CUSTOM_CONTROL_PLANE: &[&str] = &["usdodcentral", "usdodeast", "usgoviowa"];
/// Regions where AKS refuses a custom kubelet identity (Azure China).
const NO_CUSTOM_KUBELET: &[&str] = &["chinaeast", "chinanorth"];

/// Everything the identity steps need to know about the cluster being written.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub req: &'a ArmRequest,
    pub subscription: &'a str,
    pub group: &'a str,
    pub name: &'a str,
    pub id: &'a str,
    pub location: &'a str,
    pub tenant: &'a str,
    pub node_group: &'a str,
    pub now: OffsetDateTime,
}

impl Ctx<'_> {
    pub fn node_group_id(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}", self.subscription, self.node_group)
    }
}

/// Who the control plane is.
#[derive(Debug, Clone)]
pub enum ControlPlane {
    System {
        principal_id: String,
        tenant_id: String,
    },
    /// `id` keeps the casing the caller wrote it in, as AKS echoes it.
    User {
        id: String,
        principal_id: String,
        client_id: String,
    },
    /// `secret_sha256`: the secret the cluster was given, by hash (the secret is never kept).
    ServicePrincipal {
        client_id: String,
        secret_sha256: Option<String>,
    },
}

impl ControlPlane {
    pub fn principal_id(&self) -> Option<&str> {
        match self {
            ControlPlane::System { principal_id, .. } | ControlPlane::User { principal_id, .. } => Some(principal_id),
            ControlPlane::ServicePrincipal { .. } => None,
        }
    }

    pub fn is_managed(&self) -> bool {
        !matches!(self, ControlPlane::ServicePrincipal { .. })
    }

    /// The `identity` block of the cluster body (absent on service principal clusters).
    pub fn identity_json(&self) -> Value {
        match self {
            ControlPlane::System { principal_id, tenant_id } => {
                json!({ "type": "SystemAssigned", "principalId": principal_id, "tenantId": tenant_id })
            }
            ControlPlane::User { id, principal_id, client_id } => json!({
                "type": "UserAssigned",
                "principalId": null,
                "tenantId": null,
                "userAssignedIdentities": { id.as_str(): { "principalId": principal_id, "clientId": client_id } },
            }),
            ControlPlane::ServicePrincipal { .. } => Value::Null,
        }
    }

    pub fn service_principal_profile(&self) -> Value {
        match self {
            ControlPlane::ServicePrincipal { client_id, .. } => json!({ "clientId": client_id }),
            _ => json!({ "clientId": "msi" }),
        }
    }
}

fn existing_kind(existing: Option<&Value>) -> Option<&str> {
    let existing = existing?;
    Some(match existing["identity"]["type"].as_str() {
        Some(t) if t.eq_ignore_ascii_case("SystemAssigned") => "SystemAssigned",
        Some(t) if t.eq_ignore_ascii_case("UserAssigned") => "UserAssigned",
        _ => "None",
    })
}

/// ARM's linked-access check: writing a resource that names a user-assigned identity needs
/// `assign/action` on that identity too.
pub fn check_linked_access(ctx: &Ctx<'_>, identity_id: &str) -> ArmResult<()> {
    let state = ctx.state;
    if state.settings.rbac == RbacMode::Off {
        return Ok(());
    }
    let caller = &ctx.req.caller;
    if authz::decide(state, &caller.object_id, ASSIGN_ACTION, identity_id)?.is_allowed() {
        return Ok(());
    }
    if state.settings.rbac == RbacMode::Soft {
        tracing::warn!(principal = %caller.object_id, identity_id, "linked authorization denial (soft mode: allowed)");
        return Ok(());
    }
    Err(arm_error!(
        LinkedAuthorizationFailed,
        "The client '{}' with object id '{}' has permission to perform action 'Microsoft.ContainerService/managedClusters/write' on scope '{}'; however, it does not have permission to perform action '{ASSIGN_ACTION}' on the linked scope(s) '{identity_id}' or the linked scope(s) are invalid.",
        caller.app_id,
        caller.object_id,
        ctx.id
    ))
}

/// A user-assigned identity named by the caller, which must exist.
fn user_identity(tx: &Tx<'_>, id: &str) -> ArmResult<Value> {
    tx.get::<Value>(&storage_key(id))?.ok_or_else(|| {
        arm_error!(
            GetUserAssignedIdentityResourceError,
            "The user-assigned managed identity '{id}' could not be found. Make sure it exists and the resource id is correct."
        )
    })
}

fn service_principal_not_found(client_id: &str, tenant: &str) -> ArmError {
    arm_error!(
        ServicePrincipalNotFound,
        "Service principal clientID: {client_id} not found in Active Directory tenant {tenant}, Please see https://aka.ms/aks-sp-help for more details."
    )
}

/// The secret state of a service principal's secret (by hash), over its own and its
/// application's credentials.
pub fn service_principal_secret(
    tx: &Tx<'_>,
    principal: &ServicePrincipal,
    secret_sha256: &str,
    now: OffsetDateTime,
) -> Result<SecretState, crate::store::StoreError> {
    let application = Application::find_by_app_id_in(tx, &principal.app_id)?;
    let credentials =
        principal.password_credentials.iter().chain(application.iter().flat_map(|a| a.password_credentials.iter()));
    Ok(secret_state(credentials, secret_sha256, now))
}

/// Checks a service principal profile against the directory: the application must exist (and
/// have replicated) and the secret (given now, or the one the cluster was given before, by
/// hash) must still be one of its valid secrets.
pub fn check_service_principal(
    ctx: &Ctx<'_>,
    tx: &Tx<'_>,
    client_id: &str,
    secret_sha256: Option<&str>,
) -> ArmResult<()> {
    check_service_principal_at(ctx.state, tx, ctx.tenant, ctx.now, client_id, secret_sha256)
}

/// [`check_service_principal`] outside a cluster write.
pub fn check_service_principal_at(
    state: &AppState,
    tx: &Tx<'_>,
    tenant: &str,
    now: OffsetDateTime,
    client_id: &str,
    secret_sha256: Option<&str>,
) -> ArmResult<()> {
    let principal = ServicePrincipal::find_by_app_id_in(tx, client_id)?
        .filter(|p| p.created_date_time + state.settings.replication_lag <= now)
        .ok_or_else(|| service_principal_not_found(client_id, tenant))?;
    if let Some(hash) = secret_sha256 {
        match service_principal_secret(tx, &principal, hash, now)? {
            SecretState::Valid(_) => {}
            SecretState::Expired(_) => {
                return Err(arm_error!(
                    ServicePrincipalValidationClientError,
                    "Service principal validation failed: AADSTS7000222: The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                ));
            }
            SecretState::Unknown => {
                return Err(arm_error!(
                    ServicePrincipalValidationClientError,
                    "Service principal validation failed: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ));
            }
        }
    }
    Ok(())
}

/// Resolves the control plane identity from the request, creating a system-assigned identity
/// when one is asked for and refusing the changes AKS refuses.
pub fn resolve_control_plane(
    ctx: &Ctx<'_>,
    tx: &mut Tx<'_>,
    body: &Value,
    existing: Option<&Value>,
    stored_secret: Option<&str>,
) -> ArmResult<ControlPlane> {
    let identity = &body["identity"];
    if !identity.is_null() && !identity.is_object() {
        return Err(ArmError::invalid_request_content("The property 'identity' must be an object."));
    }
    let sp_profile = &body["properties"]["servicePrincipalProfile"];
    let sp_client = sp_profile["clientId"].as_str().filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("msi"));
    let requested = match identity["type"].as_str() {
        Some(t) if t.eq_ignore_ascii_case("SystemAssigned") => "SystemAssigned",
        Some(t) if t.eq_ignore_ascii_case("UserAssigned") => "UserAssigned",
        Some(t) if t.eq_ignore_ascii_case("None") => "None",
        Some(other) => {
            return Err(arm_error!(
                InvalidParameter,
                "The value '{other}' of property 'identity.type' is invalid. Allowed values are 'SystemAssigned', 'UserAssigned' and 'None'."
            )
            .with_target("identity.type"));
        }
        None if sp_client.is_some() && existing_kind(existing).is_none_or(|k| k == "None") => "None",
        None => existing_kind(existing).unwrap_or("SystemAssigned"),
    };
    let before = existing_kind(existing);
    if requested == "None" && before.is_some_and(|k| k != "None") {
        return Err(arm_error!(
            BadRequest,
            "Changing the cluster identity from a managed identity to a service principal is not allowed. A managed identity cluster cannot go back to using a service principal."
        ));
    }
    match requested {
        "SystemAssigned" => {
            let principal = sai::assign(tx, ctx.id, ctx.name, ctx.tenant, ctx.now)?;
            if let Some(given) = identity["principalId"].as_str().filter(|p| !p.is_empty())
                && !given.eq_ignore_ascii_case(&principal.id)
            {
                return Err(arm_error!(
                    BadRequest,
                    "The principalId '{given}' on the resource's Identity property is invalid and must be empty or match the existing principalId of '{}'.",
                    principal.id
                ));
            }
            Ok(ControlPlane::System { principal_id: principal.id, tenant_id: principal.tenant_id })
        }
        "UserAssigned" => {
            let map = identity["userAssignedIdentities"].as_object().cloned().unwrap_or_default();
            if map.len() != 1 {
                return Err(arm_error!(
                    BadRequest,
                    "Only one user assigned identity is allowed; the request names {}.",
                    map.len()
                )
                .with_target("identity.userAssignedIdentities"));
            }
            if NO_CUSTOM_CONTROL_PLANE.contains(&ctx.location) {
                return Err(arm_error!(
                    RegionNotSupported,
                    "A custom control plane identity (user-assigned managed identity) is not supported in region '{}'.",
                    ctx.location
                ));
            }
            let id = map.keys().next().cloned().unwrap_or_default();
            let stored = user_identity(tx, &id)?;
            let previous = existing.and_then(|e| e["identity"]["userAssignedIdentities"].as_object());
            if previous.is_none_or(|p| !p.keys().any(|k| key(k) == key(&id))) {
                check_linked_access(ctx, &id)?;
            }
            let props = &stored["properties"];
            Ok(ControlPlane::User {
                id,
                principal_id: props["principalId"].as_str().unwrap_or_default().to_owned(),
                client_id: props["clientId"].as_str().unwrap_or_default().to_owned(),
            })
        }
        _ => {
            let client_id = sp_client
                .map(str::to_owned)
                .or_else(|| {
                    existing.and_then(|e| e["properties"]["servicePrincipalProfile"]["clientId"].as_str().map(str::to_owned))
                })
                .filter(|c| !c.eq_ignore_ascii_case("msi"))
                .ok_or_else(|| {
                    arm_error!(
                        InvalidParameter,
                        "A service principal cluster needs 'properties.servicePrincipalProfile.clientId' and 'secret'; or set 'identity.type' to 'SystemAssigned' or 'UserAssigned'."
                    )
                })?;
            let secret = sp_profile["secret"].as_str().filter(|s| !s.is_empty());
            let changed = existing
                .and_then(|e| e["properties"]["servicePrincipalProfile"]["clientId"].as_str())
                .is_none_or(|old| !old.eq_ignore_ascii_case(&client_id));
            if changed && secret.is_none() {
                return Err(arm_error!(
                    InvalidParameter,
                    "The 'secret' of the service principal profile is required when the client id is set."
                )
                .with_target("properties.servicePrincipalProfile.secret"));
            }
            let secret_sha256 = match secret {
                Some(secret) => Some(hash_secret(secret)),
                None => stored_secret.map(str::to_owned),
            };
            check_service_principal(ctx, tx, &client_id, secret_sha256.as_deref())?;
            Ok(ControlPlane::ServicePrincipal { client_id, secret_sha256 })
        }
    }
}

/// The outcome of the kubelet identity step.
pub struct Kubelet {
    /// `identityProfile.kubeletidentity`, or null on service principal clusters.
    pub identity: Value,
    /// A custom kubelet identity whose Managed Identity Operator grant is still propagating:
    /// the operation waits for it until then.
    pub check: Option<(KubeletCheck, OffsetDateTime)>,
    /// The kubelet identity changed on an existing cluster: the nodes are reimaged.
    pub changed: bool,
}

fn kubelet_json(identity: &Value) -> Value {
    let props = &identity["properties"];
    json!({
        "resourceId": identity["id"],
        "clientId": props["clientId"],
        "objectId": props["principalId"],
    })
}

/// The AKS-made kubelet identity `{cluster}-agentpool` in the node resource group.
fn managed_kubelet_id(ctx: &Ctx<'_>) -> String {
    uai::identity_id(ctx.subscription, ctx.node_group, &format!("{}-agentpool", ctx.name))
}

/// The kubelet identity step. `migrating`: the cluster is moving (or has moved) from a service
/// principal and its nodes have not been reimaged since, so it has no kubelet identity yet.
pub fn resolve_kubelet(
    ctx: &Ctx<'_>,
    tx: &mut Tx<'_>,
    body: &Value,
    existing: Option<&Value>,
    control_plane: &ControlPlane,
    migrating: bool,
) -> ArmResult<Kubelet> {
    let before =
        existing.map(|e| e["properties"]["identityProfile"]["kubeletidentity"].clone()).filter(|k| k.is_object());
    let requested = body["properties"]["identityProfile"]["kubeletidentity"]["resourceId"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if let Some(profile) = body["properties"]["identityProfile"].as_object()
        && let Some(other) = profile.keys().find(|k| !k.eq_ignore_ascii_case("kubeletidentity"))
    {
        return Err(arm_error!(
            CustomKubeletIdentityPropertyError,
            "The only accepted key of identityProfile is 'kubeletidentity'; got '{other}'."
        ));
    }
    if !control_plane.is_managed() {
        if requested.is_some() {
            return Err(arm_error!(
                CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster,
                "A custom kubelet identity is only supported on a cluster whose control plane uses a user-assigned managed identity."
            ));
        }
        return Ok(Kubelet { identity: Value::Null, check: None, changed: false });
    }
    let before_id = before.as_ref().and_then(|b| b["resourceId"].as_str()).map(str::to_owned);
    let managed_id = managed_kubelet_id(ctx);
    let custom =
        requested.filter(|r| before_id.as_ref().is_none_or(|b| key(b) != key(r)) && key(r) != key(&managed_id));
    let Some(custom) = custom else {
        if migrating && before.is_none() {
            // The kubelet keeps the service principal until a node image upgrade; AKS makes
            // `{cluster}-agentpool` then.
            return Ok(Kubelet { identity: Value::Null, check: None, changed: false });
        }
        // Keep the kubelet identity the cluster has, or make AKS's own.
        if let Some(before) = before {
            let id = before["resourceId"].as_str().unwrap_or_default();
            if let Some(stored) = tx.get::<Value>(&storage_key(id))? {
                return Ok(Kubelet { identity: kubelet_json(&stored), check: None, changed: false });
            }
        }
        let identity = uai::create_for_provider(
            tx,
            ctx.subscription,
            ctx.node_group,
            &format!("{}-agentpool", ctx.name),
            ctx.location,
            ctx.tenant,
            "AKS",
            ctx.now,
        )?;
        return Ok(Kubelet { identity: kubelet_json(&identity), check: None, changed: false });
    };
    let ControlPlane::User { principal_id, .. } = control_plane else {
        return Err(arm_error!(
            CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster,
            "A custom kubelet identity is only supported on a cluster whose control plane uses a user-assigned managed identity. Use 'identity.type' UserAssigned (az aks create --assign-identity) with --assign-kubelet-identity."
        ));
    };
    if NO_CUSTOM_KUBELET.contains(&ctx.location) {
        return Err(arm_error!(
            RegionNotSupported,
            "A custom kubelet identity is not supported in region '{}'.",
            ctx.location
        ));
    }
    let stored = user_identity(tx, &custom)?;
    check_linked_access(ctx, &custom)?;
    let check = match ctx.state.settings.rbac {
        RbacMode::Off => None,
        _ => match authz::decide(ctx.state, principal_id, ASSIGN_ACTION, &custom)? {
            Decision::Allowed(_) => None,
            Decision::Denied { pending } => {
                let Some(effective) = pending.iter().map(|(_, at)| *at).min() else {
                    return Err(arm_error!(
                        CustomKubeletIdentityMissingPermissionError,
                        "The cluster using user-assigned managed identity must be granted 'Managed Identity Operator' role to assign kubelet identity. You can run 'az role assignment create --assignee {principal_id} --role 'Managed Identity Operator' --scope {custom}' to grant the permission. See https://learn.microsoft.com/en-us/azure/aks/use-managed-identity#add-role-assignment"
                    ));
                };
                Some((
                    KubeletCheck { control_plane_principal: principal_id.clone(), kubelet_identity: custom.clone() },
                    effective,
                ))
            }
        },
    };
    // The AKS-made kubelet identity is no longer needed once the cluster brings its own.
    if before_id.as_ref().is_some_and(|b| key(b) == key(&managed_id)) {
        uai::delete_in(tx, &managed_id, ctx.now)?;
    }
    let mut identity = kubelet_json(&stored);
    identity["resourceId"] = json!(custom);
    Ok(Kubelet { identity, check, changed: before_id.is_some() })
}

pub fn missing_kubelet_permission(check: &KubeletCheck) -> ArmError {
    arm_error!(
        CustomKubeletIdentityMissingPermissionError,
        "The cluster using user-assigned managed identity must be granted 'Managed Identity Operator' role to assign kubelet identity. You can run 'az role assignment create --assignee {} --role 'Managed Identity Operator' --scope {}' to grant the permission. See https://learn.microsoft.com/en-us/azure/aks/use-managed-identity#add-role-assignment",
        check.control_plane_principal,
        check.kubelet_identity
    )
}

/// Where an add-on's default role assignment goes.
#[derive(Clone, Copy)]
enum GrantScope {
    Cluster,
    NodeGroup,
}

/// Add-ons that run with their own identity, and the role AKS grants it.
const IDENTITY_ADDONS: &[(&str, Option<(&str, GrantScope)>)] = &[
    ("omsagent", Some((MONITORING_METRICS_PUBLISHER, GrantScope::Cluster))),
    ("ingressApplicationGateway", Some((CONTRIBUTOR, GrantScope::NodeGroup))),
    ("azureKeyvaultSecretsProvider", None),
    ("aciConnectorLinux", Some((CONTRIBUTOR, GrantScope::NodeGroup))),
    ("httpApplicationRouting", Some((READER, GrantScope::NodeGroup))),
];

/// Gives enabled add-ons their identities and default grants, and removes the identities of
/// disabled ones. Returns the `addonProfiles` to store.
pub fn reconcile_addons(ctx: &Ctx<'_>, tx: &mut Tx<'_>, requested: &Value, managed: bool) -> ArmResult<Value> {
    let Some(profiles) = requested.as_object() else {
        if !requested.is_null() {
            return Err(ArmError::invalid_request_content("The property 'addonProfiles' must be an object."));
        }
        return Ok(json!({}));
    };
    let mut out = serde_json::Map::new();
    for (addon, profile) in profiles {
        let enabled = match &profile["enabled"] {
            Value::Bool(b) => *b,
            _ => {
                return Err(arm_error!(
                    InvalidParameter,
                    "The add-on profile '{addon}' must set 'enabled' to true or false."
                )
                .with_target(format!("properties.addonProfiles.{addon}.enabled")));
            }
        };
        let mut stored = json!({ "enabled": enabled, "config": profile.get("config").cloned().unwrap_or(Value::Null) });
        if let Some((canonical, grant)) =
            IDENTITY_ADDONS.iter().find(|(name, _)| name.eq_ignore_ascii_case(addon)).map(|(n, g)| (*n, *g))
        {
            let identity_name = format!("{}-{}", canonical.to_lowercase(), ctx.name);
            let identity_id = uai::identity_id(ctx.subscription, ctx.node_group, &identity_name);
            if enabled && managed {
                let identity = uai::create_for_provider(
                    tx,
                    ctx.subscription,
                    ctx.node_group,
                    &identity_name,
                    ctx.location,
                    ctx.tenant,
                    "AKS",
                    ctx.now,
                )?;
                let principal = identity["properties"]["principalId"].as_str().unwrap_or_default().to_owned();
                if let Some((role, scope)) = grant {
                    let scope = match scope {
                        GrantScope::Cluster => ctx.id.to_owned(),
                        GrantScope::NodeGroup => ctx.node_group_id(),
                    };
                    role_assignments::ensure_in(
                        tx,
                        &scope,
                        role,
                        &principal,
                        ctx.now,
                        &format!("AKS add-on {canonical}"),
                    )?;
                }
                stored["identity"] = kubelet_json(&identity);
            } else {
                uai::delete_in(tx, &identity_id, ctx.now)?;
            }
        }
        out.insert(addon.clone(), stored);
    }
    Ok(Value::Object(out))
}

/// The control plane's default grant: Contributor on the node resource group.
pub fn grant_control_plane(ctx: &Ctx<'_>, tx: &mut Tx<'_>, control_plane: &ControlPlane) -> ArmResult<()> {
    let principal = match control_plane {
        ControlPlane::ServicePrincipal { client_id, .. } => {
            ServicePrincipal::find_by_app_id_in(tx, client_id)?.map(|p| p.id)
        }
        other => other.principal_id().map(str::to_owned),
    };
    if let Some(principal) = principal.as_deref() {
        role_assignments::ensure_in(
            tx,
            &ctx.node_group_id(),
            CONTRIBUTOR,
            principal,
            ctx.now,
            "AKS control plane identity: manages the node resource group",
        )?;
    }
    Ok(())
}
