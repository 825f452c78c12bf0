//! Microsoft.ManagedIdentity: user-assigned identities, their federated identity credentials,
//! and the system-assigned identities other resources (AKS clusters) carry. Every identity is
//! a `ManagedIdentity` service principal in the directory (`crate::directory`), backed by a
//! credential that rotates every 46 days ([`credentials`]).

pub mod credentials;
pub mod federated_identity_credentials;
pub mod system_assigned_identities;
pub mod user_assigned_identities;

use time::OffsetDateTime;

use crate::directory::ServicePrincipal;

/// The directory object behind a managed identity: fresh principal and client ids (never
/// reused), `alternativeNames` naming the resource as Graph does.
pub fn new_principal(
    resource_id: &str,
    display_name: &str,
    tenant_id: &str,
    explicit: bool,
    now: OffsetDateTime,
) -> ServicePrincipal {
    let app_id = crate::ids::uuid().to_string();
    ServicePrincipal {
        id: crate::ids::uuid().to_string(),
        app_id: app_id.clone(),
        display_name: display_name.to_owned(),
        tenant_id: tenant_id.to_owned(),
        service_principal_type: "ManagedIdentity".into(),
        service_principal_names: vec![app_id, format!("https://identity.azure.net/{}", crate::ids::uuid().simple())],
        alternative_names: vec![
            format!("isExplicit={}", if explicit { "True" } else { "False" }),
            resource_id.to_owned(),
        ],
        password_credentials: Vec::new(),
        created_date_time: now,
    }
}

/// The identity's `clientSecretUrl`: where its current credential's metadata is served.
pub fn client_secret_url(https_url: &str, tenant_id: &str, principal_id: &str, client_id: &str) -> String {
    format!("{https_url}/msi/credentials?tid={tenant_id}&oid={principal_id}&aid={client_id}")
}
