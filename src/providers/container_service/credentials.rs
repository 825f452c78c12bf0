//! Cluster credentials: `ManagedClusters_ListClusterUserCredentials`, `…AdminCredentials` and
//! `…MonitoringUserCredentials` answer `{"kubeconfigs":[{"name","value"}]}` where `value` is a
//! base64 kubeconfig for `https://{fqdn}:443`, trusting the cluster's own CA and carrying a
//! client certificate that CA signed (what `az aks get-credentials` merges).

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{ClusterInternals, cluster_id, load_cluster, not_found};
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;

fn cert_error(e: impl std::fmt::Display) -> ArmError {
    ArmError::internal(&format!("certificate generation failed: {e}"))
}

/// A new cluster CA: `(certificate PEM, key PEM)`, valid for 30 years from `now` as AKS's are.
pub fn new_cluster_ca(now: OffsetDateTime) -> ArmResult<(String, String)> {
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(365 * 30);
    let cert = params.self_signed(&key).map_err(cert_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate for `common_name` in `organization`, signed by the cluster CA.
fn client_certificate(
    internals: &ClusterInternals,
    common_name: &str,
    organization: &str,
    now: OffsetDateTime,
) -> ArmResult<(String, String)> {
    let ca_key = KeyPair::from_pem(&internals.ca_key_pem).map_err(cert_error)?;
    let issuer = Issuer::from_ca_cert_pem(&internals.ca_cert_pem, ca_key).map_err(cert_error)?;
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organization);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(365 * 2);
    let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn b64(text: &str) -> String {
    STANDARD.encode(text.as_bytes())
}

/// What kind of credential a kubeconfig carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Admin,
    Monitoring,
}

fn kubeconfig(
    cluster: &Value,
    internals: &ClusterInternals,
    kind: Kind,
    exec: bool,
    now: OffsetDateTime,
) -> ArmResult<String> {
    let name = cluster["name"].as_str().unwrap_or_default();
    let id = cluster["id"].as_str().unwrap_or_default();
    let group = id.split('/').nth(4).unwrap_or_default();
    let fqdn = cluster["properties"]["fqdn"].as_str().unwrap_or_default();
    let (user, context, common_name, organization) = match kind {
        // The context is the cluster's name; az adds `-admin` itself when it merges an admin one.
        Kind::Admin => (format!("clusterAdmin_{group}_{name}"), name.to_owned(), "masterclient", "system:masters"),
        Kind::User => (format!("clusterUser_{group}_{name}"), name.to_owned(), "clusterUser", "system:masters"),
        Kind::Monitoring => (
            format!("clusterMonitoringUser_{group}_{name}"),
            name.to_owned(),
            "clusterMonitoringUser",
            "system:monitoring",
        ),
    };
    let user_entry = if exec {
        let tenant = cluster["identity"]["tenantId"].as_str().unwrap_or_default();
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n      - get-token\n      - --login\n      - devicecode\n      - --server-id\n      - 6dae42f8-4368-4678-94ff-3960e28e3630\n      - --tenant-id\n      - {tenant}\n      - --environment\n      - AzurePublicCloud\n      command: kubelogin\n      env: null\n      installHint: |2\n\n        kubelogin is not installed which is required to connect to AAD enabled cluster.\n      provideClusterInfo: false\n"
        )
    } else {
        let (cert, key) = client_certificate(internals, common_name, organization, now)?;
        let token: String = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{id}/{user}/{}", internals.ca_cert_pem).as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        };
        format!("    client-certificate-data: {}\n    client-key-data: {}\n    token: {token}\n", b64(&cert), b64(&key))
    };
    Ok(format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://{fqdn}:443\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {user}\n  name: {context}\ncurrent-context: {context}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_entry}",
        ca = b64(&internals.ca_cert_pem),
    ))
}

fn respond(state: &AppState, req: &ArmRequest, kind: Kind) -> ArmResult<Response> {
    let (group, name) = (req.param("resourceGroupName"), req.param("resourceName"));
    let id = cluster_id(req.param("subscriptionId"), group, name);
    let tx = state.db.reader();
    let cluster = load_cluster(&tx, &id)?.ok_or_else(|| not_found(name, group))?;
    let internals = ClusterInternals::load(&tx, &id)?.ok_or_else(|| not_found(name, group))?;
    let local_accounts_disabled = cluster["properties"]["disableLocalAccounts"].as_bool() == Some(true);
    if local_accounts_disabled && kind == Kind::Admin {
        return Err(arm_error!(
            BadRequest,
            "Getting static credential is not allowed because this cluster is set to disable local accounts."
        ));
    }
    if let Some(format) = req.query("format")
        && !format.eq_ignore_ascii_case("azure")
        && !format.eq_ignore_ascii_case("exec")
    {
        return Err(arm_error!(
            InvalidParameter,
            "The value '{format}' of parameter 'format' is invalid. Allowed values are 'azure' and 'exec'."
        ));
    }
    let aad = cluster["properties"]["aadProfile"].is_object();
    let exec = kind != Kind::Admin && (local_accounts_disabled || aad);
    let config = kubeconfig(&cluster, &internals, kind, exec, state.clock.now())?;
    let label = match kind {
        Kind::User => "clusterUser",
        Kind::Admin => "clusterAdmin",
        Kind::Monitoring => "clusterMonitoringUser",
    };
    crate::arm::json(StatusCode::OK, json!({ "kubeconfigs": [{ "name": label, "value": b64(&config) }] }))
}

/// `ManagedClusters_ListClusterUserCredentials`: a client-certificate kubeconfig, or a
/// kubelogin one on Entra ID clusters and clusters without local accounts.
pub async fn list_cluster_user_credentials(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    respond(&state, &req, Kind::User)
}

/// `ManagedClusters_ListClusterAdminCredentials`: refused when local accounts are disabled.
pub async fn list_cluster_admin_credentials(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    respond(&state, &req, Kind::Admin)
}

/// `ManagedClusters_ListClusterMonitoringUserCredentials`.
pub async fn list_cluster_monitoring_user_credentials(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    respond(&state, &req, Kind::Monitoring)
}
