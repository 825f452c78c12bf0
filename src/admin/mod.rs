//! The `/_armlet` control API: what a running armlet is (for `armlet env`), readiness, and
//! the simulated clock.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::arm::extract::{ArmJson, ArmQuery};
use crate::arm::lro;
use crate::arm::{ArmError, ArmResult};
use crate::arm_error;
use crate::clock::{ClockState, parse_duration, parse_rfc3339, rfc3339};
use crate::directory::ServicePrincipal;
use crate::fixtures;
use crate::providers::managed_identity::credentials::MiCredential;
use crate::state::AppState;
use time::OffsetDateTime;

mod state_document;

pub const CLOCK_KEY: &str = "meta/clock";

/// `GET /_armlet/info`: endpoints, default tenant, subscription and credentials, the CA, and
/// the App Service-style managed-identity endpoint with its `X-IDENTITY-HEADER` secret.
pub async fn info(State(state): State<AppState>) -> Json<Value> {
    let defaults = fixtures::defaults();
    Json(json!({
        "name": "armlet",
        "version": env!("CARGO_PKG_VERSION"),
        "httpsUrl": state.settings.https_url,
        "httpUrl": state.settings.http_url,
        "metadataUrl": format!("{}/metadata/endpoints?api-version=2019-05-01", state.settings.http_url),
        "tenantId": defaults.tenant.tenant_id,
        "subscriptionId": defaults.subscription.subscription_id,
        "clientId": defaults.service_principal.app_id,
        "clientSecret": defaults.service_principal.secret,
        "dataDir": state.settings.data_dir.as_ref().map(|d| d.display().to_string()),
        "caCertificate": state.settings.ca_pem,
        "identityEndpoint": format!("{}{}", state.settings.http_url, crate::auth::imds::APP_SERVICE_PATH),
        "identityHeader": crate::auth::imds::identity_header(&state),
    }))
}

/// `GET /_armlet/health`: ready once the store is open and answering.
pub async fn health(State(state): State<AppState>) -> Response {
    match lro::pending_count(&state.db) {
        Ok(pending) => Json(json!({
            "status": "ready",
            "store": "open",
            "pendingOperations": pending,
            "time": rfc3339(state.clock.now()),
        }))
        .into_response(),
        Err(e) => ArmError::from(e).into_response(),
    }
}

fn clock_json(state: &AppState) -> Value {
    let clock = state.clock.state();
    json!({ "now": rfc3339(state.clock.now()), "mode": clock.mode, "offsetNs": clock.offset_ns })
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    principal: String,
    action: String,
    scope: String,
}

/// `GET /_armlet/explain?principal=…&action=…&scope=…`: whether RBAC allows it now, the
/// assignment that grants it, or the pending assignments and the roles that would.
pub async fn explain(State(state): State<AppState>, ArmQuery(q): ArmQuery<ExplainQuery>) -> ArmResult<Json<Value>> {
    Ok(Json(crate::providers::authorization::explain(&state, &q.principal, &q.action, &q.scope)?))
}

/// `GET /_armlet/clock`.
pub async fn clock_show(State(state): State<AppState>) -> Json<Value> {
    Json(clock_json(&state))
}

/// Saves the clock, settles what fell due since `before`, and lists it in time order:
/// long-running operations and managed-identity credential rotations.
async fn persist_and_settle(state: &AppState, before: OffsetDateTime) -> ArmResult<Vec<Value>> {
    let clock: ClockState = state.clock.state();
    state.db.transact(|tx| tx.put(CLOCK_KEY, &clock)).await?;
    let now = state.clock.now();
    let mut fired: Vec<(OffsetDateTime, Value)> = crate::providers::settle_operations(state)
        .await?
        .iter()
        .map(|op| {
            (
                op.due_at,
                json!({ "kind": op.kind, "subject": op.resource_id, "status": op.status, "due": rfc3339(op.due_at) }),
            )
        })
        .collect();
    for (_, principal) in state.db.scan::<ServicePrincipal>("dir/sp/")? {
        let Some(resource_id) = principal.managed_identity_resource_id() else { continue };
        for credential in MiCredential::rotations_between(&principal, before, now) {
            state.events.record(json!({
                "kind": "Microsoft.ManagedIdentity/credentialRotation",
                "subject": resource_id,
                "due": rfc3339(credential.not_before),
                "fired": rfc3339(now),
                "thumbprint": credential.thumbprint,
            }));
            fired.push((
                credential.not_before,
                json!({
                    "kind": "Microsoft.ManagedIdentity/credentialRotation",
                    "subject": resource_id,
                    "due": rfc3339(credential.not_before),
                    "thumbprint": credential.thumbprint,
                }),
            ));
        }
    }
    // What else the clock crossed: grants taking or losing effect, secrets expiring, node
    // image releases.
    let within = |at: OffsetDateTime| before < at && at <= now;
    let mut crossed = |at: OffsetDateTime, kind: &str, subject: &str| {
        let entry = json!({ "kind": kind, "subject": subject, "due": rfc3339(at) });
        let mut recorded = entry.clone();
        recorded["fired"] = json!(rfc3339(now));
        state.events.record(recorded);
        fired.push((at, entry));
    };
    let delay = state.settings.propagation_delay;
    for (key, assignment) in state.db.scan::<Value>("res/")? {
        if key.contains("/providers/microsoft.authorization/roleassignments/")
            && let Some(grant) = crate::providers::authorization::grant_of(state, &assignment, None)
            && within(grant.effective_from(delay))
        {
            crossed(grant.effective_from(delay), "Microsoft.Authorization/roleAssignmentPropagation", &grant.id);
        }
    }
    for (_, tomb) in state.db.scan::<crate::providers::authorization::role_assignments::Tombstone>("ratomb/")? {
        if within(tomb.deleted_on + delay) {
            let id = tomb.assignment["id"].as_str().unwrap_or_default().to_owned();
            crossed(tomb.deleted_on + delay, "Microsoft.Authorization/roleAssignmentRevocation", &id);
        }
    }
    for (_, principal) in state.db.scan::<ServicePrincipal>("dir/sp/")? {
        for credential in &principal.password_credentials {
            if let Some(end) = credential.end_date_time.filter(|end| within(*end)) {
                crossed(end, "Microsoft.Graph/secretExpiry", &principal.app_id);
            }
        }
    }
    for (_, application) in state.db.scan::<crate::directory::Application>("dir/app/")? {
        for credential in &application.password_credentials {
            if let Some(end) = credential.end_date_time.filter(|end| within(*end)) {
                crossed(end, "Microsoft.Graph/secretExpiry", &application.app_id);
            }
        }
    }
    let catalog = crate::providers::container_service::node_images::Catalog::load(&state.db.reader())?;
    let span = (now - before).max(time::Duration::ZERO);
    for release in catalog.releases_around(now, span, time::Duration::ZERO) {
        if within(release.released) {
            crossed(release.released, "Microsoft.ContainerService/nodeImageRelease", &release.version);
        }
    }
    fired.sort_by_key(|(at, _)| *at);
    Ok(fired.into_iter().map(|(_, v)| v).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    by: Option<String>,
    to: Option<String>,
}

/// `POST /_armlet/clock/advance` with `{"by":"46d"}` or `{"to":"<RFC 3339>"}`: moves time
/// forward (never back) and settles everything that fell due.
pub async fn clock_advance(State(state): State<AppState>, ArmJson(body): ArmJson<Advance>) -> ArmResult<Json<Value>> {
    let before = state.clock.now();
    match (&body.by, &body.to) {
        (Some(by), None) => {
            let by = parse_duration(by).map_err(|e| arm_error!(BadRequest, "{e}"))?;
            state.clock.advance_by(by)
        }
        (None, Some(to)) => state.clock.advance_to(parse_rfc3339(to).map_err(|e| arm_error!(BadRequest, "{e}"))?),
        _ => {
            return Err(arm_error!(BadRequest, "Give exactly one of 'by' (e.g. \"46d\") or 'to' (an RFC 3339 time)."));
        }
    }
    .map_err(|e| arm_error!(BadRequest, "{e}"))?;
    let fired = persist_and_settle(&state, before).await?;
    let mut body = clock_json(&state);
    body["fired"] = json!(fired);
    Ok(Json(body))
}

/// `POST /_armlet/clock/freeze`: time stands still until advanced or resumed.
pub async fn clock_freeze(State(state): State<AppState>) -> ArmResult<Json<Value>> {
    let before = state.clock.now();
    state.clock.freeze();
    persist_and_settle(&state, before).await?;
    Ok(Json(clock_json(&state)))
}

/// `POST /_armlet/clock/resume`: time runs again from where it stands.
pub async fn clock_resume(State(state): State<AppState>) -> ArmResult<Json<Value>> {
    let before = state.clock.now();
    state.clock.resume();
    persist_and_settle(&state, before).await?;
    Ok(Json(clock_json(&state)))
}

/// The version of the document `GET /_armlet/state` exports.
pub const STATE_VERSION: u64 = 1;

/// `GET /_armlet/state`: everything armlet stores (resources, directory, operations, clock)
/// as one versioned JSON document. Keys and TLS material are files, not state.
pub async fn state_export(State(state): State<AppState>) -> ArmResult<Json<Value>> {
    let mut entries: serde_json::Map<String, Value> = state.db.scan::<Value>("")?.into_iter().collect();
    // The clock as it stands, so an import restores the same simulated time.
    entries.insert(CLOCK_KEY.to_owned(), serde_json::to_value(state.clock.state()).unwrap_or_default());
    Ok(Json(json!({ "armletState": STATE_VERSION, "time": rfc3339(state.clock.now()), "entries": entries })))
}

#[derive(Deserialize)]
pub struct ImportQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
}

/// `PUT /_armlet/state[?dryRun=true]`: replaces everything with an exported document, in one
/// atomic write. A document that does not validate (every entry must hold what armlet stores
/// under its key: see `state_document.rs`) changes nothing.
pub async fn state_import(
    State(state): State<AppState>,
    ArmQuery(q): ArmQuery<ImportQuery>,
    ArmJson(doc): ArmJson<Value>,
) -> ArmResult<Json<Value>> {
    if doc["armletState"].as_u64() != Some(STATE_VERSION) {
        return Err(arm_error!(
            InvalidRequestContent,
            "Not an armlet state document of version {STATE_VERSION} (field 'armletState')."
        ));
    }
    let entries = doc["entries"]
        .as_object()
        .ok_or_else(|| arm_error!(InvalidRequestContent, "The state document has no 'entries' object."))?;
    // Every entry is checked before anything is written (a dry run too), so a document
    // that would leave an unreadable value behind changes nothing.
    for (key, value) in entries {
        state_document::check(key, value).map_err(|reason| {
            arm_error!(InvalidRequestContent, "The state document's entry '{key}' cannot be imported: {reason}.")
        })?;
    }
    let clock = match entries.get(CLOCK_KEY) {
        Some(v) => Some(
            serde_json::from_value::<ClockState>(v.clone())
                .map_err(|e| arm_error!(InvalidRequestContent, "The state document's clock is invalid: {e}"))?,
        ),
        None => None,
    };
    let summary = json!({ "dryRun": q.dry_run, "entries": entries.len() });
    if q.dry_run {
        return Ok(Json(summary));
    }
    state
        .db
        .transact(|tx| -> ArmResult<()> {
            for (key, _) in tx.scan::<Value>("")? {
                tx.delete(key);
            }
            for (key, value) in entries {
                tx.put(key.clone(), value)?;
            }
            Ok(())
        })
        .await?;
    state.clock.restore(clock.unwrap_or(ClockState {
        mode: crate::clock::ClockMode::Real,
        offset_ns: 0,
        frozen_at: None,
    }));
    Ok(Json(summary))
}

/// `POST /_armlet/reset`: back to first start (default tenant, subscription, principal and a
/// real-time clock), keeping the TLS certificates and the token signing key.
pub async fn reset(State(state): State<AppState>) -> ArmResult<Json<Value>> {
    state
        .db
        .transact(|tx| -> ArmResult<()> {
            for (key, _) in tx.scan::<Value>("")? {
                tx.delete(key);
            }
            Ok(())
        })
        .await?;
    state.clock.restore(ClockState { mode: crate::clock::ClockMode::Real, offset_ns: 0, frozen_at: None });
    state.faults.clear();
    state.bootstrap().await?;
    Ok(Json(json!({ "reset": true, "time": rfc3339(state.clock.now()) })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSubscription {
    #[serde(default)]
    display_name: Option<String>,
    /// Put the subscription in a tenant of its own (a separate directory).
    #[serde(default)]
    new_tenant: bool,
    /// Put it in this existing tenant (default: the default tenant).
    #[serde(default)]
    tenant_id: Option<String>,
}

/// `POST /_armlet/subscriptions`: another subscription (optionally in a new tenant) with a
/// service principal of its own that owns it and nothing else, so parallel test suites can
/// share one armlet without seeing each other under RBAC.
pub async fn subscriptions_create(
    State(state): State<AppState>,
    ArmJson(body): ArmJson<Option<NewSubscription>>,
) -> ArmResult<(axum::http::StatusCode, Json<Value>)> {
    use crate::directory::{PasswordCredential, ServicePrincipal};
    use crate::providers::resources::subscriptions::{Subscription, Tenant};
    let body = body.unwrap_or_default();
    let now = state.clock.now();
    let subscription_id = crate::ids::uuid().to_string();
    let display_name = body.display_name.unwrap_or_else(|| format!("armlet subscription {}", &subscription_id[..8]));
    let secret = crate::graph::new_secret();
    let app_id = crate::ids::uuid().to_string();
    let object_id = crate::ids::uuid().to_string();
    let tenant_id = state
        .db
        .transact(|tx| -> ArmResult<String> {
            let tenant_id = if body.new_tenant {
                let id = crate::ids::uuid().to_string();
                let domain = format!("armlet{}.onmicrosoft.com", &id[..8]);
                let tenant = Tenant {
                    tenant_id: id.clone(),
                    display_name: format!("armlet {}", &id[..8]),
                    default_domain: domain,
                    country_code: "US".into(),
                };
                tx.put(Tenant::key(&id), &tenant)?;
                id
            } else {
                let id = body.tenant_id.clone().unwrap_or_else(|| fixtures::defaults().tenant.tenant_id.clone());
                if tx.get::<Tenant>(&Tenant::key(&id))?.is_none() {
                    return Err(arm_error!(BadRequest, "Tenant '{id}' does not exist in this armlet."));
                }
                id
            };
            tx.put(
                Subscription::key(&subscription_id),
                &Subscription {
                    subscription_id: subscription_id.clone(),
                    display_name: display_name.clone(),
                    tenant_id: tenant_id.clone(),
                    state: "Enabled".into(),
                    unregistered_providers: Vec::new(),
                },
            )?;
            ServicePrincipal {
                id: object_id.clone(),
                app_id: app_id.clone(),
                display_name: format!("{display_name} owner"),
                tenant_id: tenant_id.clone(),
                service_principal_type: "Application".into(),
                service_principal_names: vec![app_id.clone()],
                alternative_names: Vec::new(),
                password_credentials: vec![PasswordCredential::new(crate::ids::uuid().to_string(), &secret, now, None)],
                created_date_time: now,
            }
            .save(tx)?;
            let owner = crate::providers::authorization::bootstrap_owner_assignment(
                &subscription_id,
                &object_id,
                now,
                &crate::ids::uuid().to_string(),
            );
            tx.put(crate::arm::resource_id::storage_key(owner["id"].as_str().unwrap_or_default()), &owner)?;
            Ok(tenant_id)
        })
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({
            "subscriptionId": subscription_id,
            "displayName": display_name,
            "tenantId": tenant_id,
            "clientId": app_id,
            "clientSecret": secret,
            "principalId": object_id,
        })),
    ))
}

#[derive(Deserialize)]
pub struct RequestsQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /_armlet/requests[?limit=N]`: what clients sent lately (method, path, query, status,
/// request ids, user agent), oldest first; the last 1000 are kept.
pub async fn requests(State(state): State<AppState>, ArmQuery(q): ArmQuery<RequestsQuery>) -> Json<Value> {
    let limit = q.limit.unwrap_or(100).min(crate::state::RecentLog::CAPACITY);
    Json(json!({ "value": state.requests.recent(limit) }))
}

/// `GET /_armlet/events[?limit=N]`: what is due on the simulated clock (long-running
/// operations, credential rotations, role assignments taking or losing effect, secrets
/// expiring), soonest first, and what fired lately.
pub async fn events(State(state): State<AppState>, ArmQuery(q): ArmQuery<RequestsQuery>) -> ArmResult<Json<Value>> {
    let now = state.clock.now();
    let mut pending: Vec<(OffsetDateTime, Value)> = Vec::new();
    let mut push = |due: OffsetDateTime, kind: &str, subject: &str| {
        pending.push((due, json!({ "kind": kind, "subject": subject, "due": rfc3339(due) })));
    };
    for (_, op) in state.db.scan::<crate::arm::lro::Operation>("op/")? {
        if !op.is_done() {
            push(op.due_at, &op.kind, &op.resource_id);
        }
    }
    for (_, principal) in state.db.scan::<ServicePrincipal>("dir/sp/")? {
        if let Some(resource_id) = principal.managed_identity_resource_id() {
            let next = MiCredential::current(&principal, now).renew_after;
            push(next, "Microsoft.ManagedIdentity/credentialRotation", resource_id);
        }
        for credential in &principal.password_credentials {
            if let Some(end) = credential.end_date_time.filter(|end| *end > now) {
                push(end, "Microsoft.Graph/secretExpiry", &principal.app_id);
            }
        }
    }
    let delay = state.settings.propagation_delay;
    for (key, assignment) in state.db.scan::<Value>("res/")? {
        if !key.contains("/providers/microsoft.authorization/roleassignments/") {
            continue;
        }
        if let Some(grant) = crate::providers::authorization::grant_of(&state, &assignment, None)
            && grant.effective_from(delay) > now
        {
            push(grant.effective_from(delay), "Microsoft.Authorization/roleAssignmentPropagation", &grant.id);
        }
    }
    for (_, tomb) in state.db.scan::<crate::providers::authorization::role_assignments::Tombstone>("ratomb/")? {
        let fades = tomb.deleted_on + delay;
        if fades > now {
            push(
                fades,
                "Microsoft.Authorization/roleAssignmentRevocation",
                tomb.assignment["id"].as_str().unwrap_or_default(),
            );
        }
    }
    let catalog = crate::providers::container_service::node_images::Catalog::load(&state.db.reader())?;
    let cadence = time::Duration::days(fixtures::node_images().cadence_days.max(1));
    for release in catalog.releases_around(now, time::Duration::ZERO, cadence) {
        if release.released > now {
            push(release.released, "Microsoft.ContainerService/nodeImageRelease", &release.version);
        }
    }
    pending.sort_by_key(|(due, _)| *due);
    let limit = q.limit.unwrap_or(100).min(crate::state::RecentLog::CAPACITY);
    Ok(Json(json!({
        "time": rfc3339(now),
        "pending": pending.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "fired": state.events.recent(limit),
    })))
}

/// `GET /_armlet/clusters/{cluster resource id}/nodes`: a cluster's nodes with the node image
/// each runs, the credential its kubelet uses and its downtime (what ARM cannot show);
/// `…/health`: what each of its identities can do and what is pending.
pub async fn cluster_nodes(
    State(state): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> ArmResult<Json<Value>> {
    use crate::providers::container_service::health;
    if let Some(id) = path.strip_suffix("/health") {
        return Ok(Json(health::report(&state, &format!("/{}", id.trim_start_matches('/')))?));
    }
    let Some(id) = path.strip_suffix("/nodes") else {
        return Err(crate::arm_error!(
            NotFound,
            "Use GET /_armlet/clusters/{{cluster resource id}}/nodes or /_armlet/clusters/{{cluster resource id}}/health."
        ));
    };
    let id = format!("/{}", id.trim_start_matches('/'));
    Ok(Json(crate::providers::container_service::nodes::admin_list(&state, &id)?))
}

#[derive(Deserialize)]
pub struct NodeImagesQuery {
    location: Option<String>,
}

/// `GET /_armlet/node-images[?location=L]`: node image releases around now (the last ones and
/// the next scheduled one, and every published one), with when each reaches `location`, and
/// the newest image per OS SKU there.
pub async fn node_images_list(
    State(state): State<AppState>,
    ArmQuery(q): ArmQuery<NodeImagesQuery>,
) -> ArmResult<Json<Value>> {
    use crate::providers::container_service::node_images::Catalog;
    let now = state.clock.now();
    let location = match &q.location {
        Some(l) => Some(
            fixtures::region(l)
                .map(|r| r.name.clone())
                .ok_or_else(|| arm_error!(BadRequest, "Unknown location '{l}'."))?,
        ),
        None => None,
    };
    let catalog = Catalog::load(&state.db.reader())?;
    let cadence = time::Duration::days(fixtures::node_images().cadence_days.max(1));
    let releases: Vec<Value> = catalog
        .releases_around(now, cadence * 4, cadence)
        .into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            if let Some(location) = &location {
                v["availableAt"] = json!(r.available_at(location).map(rfc3339));
                v["available"] = json!(r.is_available(location, now));
            }
            v
        })
        .collect();
    let mut body = json!({ "time": rfc3339(now), "releases": releases });
    if let Some(location) = &location {
        let latest: serde_json::Map<String, Value> = fixtures::node_images()
            .os_skus
            .keys()
            .map(|sku| (sku.clone(), json!(catalog.latest(sku, location, now))))
            .collect();
        body["location"] = json!(location);
        body["latest"] = Value::Object(latest);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Publish {
    version: Option<String>,
    locations: Option<Vec<String>>,
    at: Option<String>,
    rollout_hours: Option<i64>,
}

/// `POST /_armlet/node-images`: publishes a node image release, at `at` (default now), to
/// `locations` (default everywhere, ring by ring over `rolloutHours`, default 0: all at once).
pub async fn node_images_publish(
    State(state): State<AppState>,
    ArmJson(body): ArmJson<Publish>,
) -> ArmResult<Response> {
    use crate::providers::container_service::node_images::{self, Catalog, Release};
    let now = state.clock.now();
    let at = match &body.at {
        Some(at) => parse_rfc3339(at).map_err(|e| arm_error!(BadRequest, "Invalid 'at': {e}"))?,
        None => now,
    };
    let rollout_hours = body.rollout_hours.unwrap_or(0);
    if !(0..=24 * 365).contains(&rollout_hours) {
        return Err(arm_error!(BadRequest, "'rolloutHours' must be between 0 and 8760."));
    }
    let locations = match &body.locations {
        Some(list) if !list.is_empty() => Some(
            list.iter()
                .map(|l| {
                    fixtures::region(l)
                        .map(|r| r.name.clone())
                        .ok_or_else(|| arm_error!(BadRequest, "Unknown location '{l}'."))
                })
                .collect::<ArmResult<Vec<_>>>()?,
        ),
        _ => None,
    };
    let release = state
        .db
        .transact(|tx| -> ArmResult<Release> {
            let catalog = Catalog::load(tx)?;
            let version = match &body.version {
                Some(v) => {
                    if node_images::version_key(v).is_none() {
                        return Err(arm_error!(
                            BadRequest,
                            "Invalid node image version '{v}': expected YYYYMM.DD.N, e.g. 202612.01.0."
                        ));
                    }
                    if catalog.find(v, now).is_some() {
                        return Err(arm_error!(Conflict, "Node image version '{v}' already exists."));
                    }
                    v.clone()
                }
                None => catalog.next_version(at),
            };
            let release =
                Release { version, released: at, rollout_hours, locations: locations.clone(), published: true };
            node_images::publish(tx, &release)?;
            Ok(release)
        })
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(serde_json::to_value(&release).unwrap_or(Value::Null))).into_response())
}

/// `GET /_armlet/faults`: the fault rules in force, with how often each matched and fired.
pub async fn faults_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "value": state.faults.list() }))
}

/// `POST /_armlet/faults`: adds a fault rule (see [`crate::arm::faults::FaultRule`]).
pub async fn faults_add(
    State(state): State<AppState>,
    ArmJson(rule): ArmJson<crate::arm::faults::FaultRule>,
) -> ArmResult<Response> {
    rule.validate().map_err(|e| arm_error!(BadRequest, "{e}"))?;
    let rule = state.faults.add(rule);
    Ok((axum::http::StatusCode::CREATED, Json(serde_json::to_value(&rule).unwrap_or(Value::Null))).into_response())
}

/// `DELETE /_armlet/faults`: removes every fault rule.
pub async fn faults_clear(State(state): State<AppState>) -> Json<Value> {
    state.faults.clear();
    Json(json!({ "value": [] }))
}

/// `DELETE /_armlet/faults/{id}`.
pub async fn faults_remove(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ArmResult<Response> {
    if state.faults.remove(&id) {
        Ok(axum::http::StatusCode::NO_CONTENT.into_response())
    } else {
        Err(arm_error!(NotFound, "No fault rule '{id}'."))
    }
}

fn timing_json(timing: &crate::arm::lro::OperationTiming) -> Value {
    json!(timing
        .rules
        .iter()
        .map(|r| json!({ "kind": r.kind, "duration": format!("{}ms", r.duration.whole_milliseconds()), "polls": r.polls }))
        .collect::<Vec<_>>())
}

/// `GET /_armlet/config`: how armlet simulates time and operations.
pub async fn config_show(State(state): State<AppState>) -> ArmResult<Json<Value>> {
    let timing = crate::arm::lro::OperationTiming::load(&state.db.reader())?;
    let s = &state.settings;
    Ok(Json(json!({
        "operationTiming": timing_json(&timing),
        "propagationDelay": format!("{}ms", s.propagation_delay.whole_milliseconds()),
        "replicationLag": format!("{}ms", s.replication_lag.whole_milliseconds()),
        "rbac": format!("{:?}", s.rbac).to_lowercase(),
        "clockStep": format!("{}ms", s.clock_step.whole_milliseconds()),
        "nodeReimageStep": format!("{}ms", crate::providers::container_service::NODE_REIMAGE_STEP.whole_milliseconds()),
        "seeded": crate::ids::is_seeded(),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimingUpdate {
    kind: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    polls: Option<u32>,
    #[serde(default)]
    remove: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigUpdate {
    #[serde(default)]
    operation_timing: Vec<TimingUpdate>,
}

/// `PATCH /_armlet/config`: sets (or with `remove`, drops) operation timing rules
/// (`{"operationTiming":[{"kind":"Microsoft.ContainerService/*","duration":"30s","polls":2}]}`).
pub async fn config_update(
    State(state): State<AppState>,
    ArmJson(body): ArmJson<ConfigUpdate>,
) -> ArmResult<Json<Value>> {
    use crate::arm::lro::{OperationTiming, TimingRule};
    let mut rules = Vec::new();
    for update in &body.operation_timing {
        if update.kind.trim().is_empty() {
            return Err(arm_error!(BadRequest, "Each operation timing rule needs a 'kind'."));
        }
        let duration = match &update.duration {
            Some(d) => parse_duration(d).map_err(|e| arm_error!(BadRequest, "{e}"))?,
            None => time::Duration::ZERO,
        };
        if duration > time::Duration::days(365) || update.polls.unwrap_or(0) > 10_000 {
            return Err(arm_error!(BadRequest, "Operation timing is limited to 365 days and 10000 polls."));
        }
        rules.push((
            TimingRule { kind: update.kind.trim().to_owned(), duration, polls: update.polls.unwrap_or(0) },
            update.remove,
        ));
    }
    let timing = state
        .db
        .transact(|tx| -> ArmResult<OperationTiming> {
            let mut timing = OperationTiming::load(tx)?;
            for (rule, remove) in rules {
                if remove {
                    timing.rules.retain(|r| !r.kind.eq_ignore_ascii_case(&rule.kind));
                } else {
                    timing.set(rule);
                }
            }
            timing.save(tx)?;
            Ok(timing)
        })
        .await?;
    Ok(Json(json!({ "operationTiming": timing_json(&timing) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    seed: Option<u64>,
}

/// `POST /_armlet/seed`: `{"seed": 42}` makes the ids generated from now on reproducible;
/// `{"seed": null}` goes back to random ones.
pub async fn seed(ArmJson(body): ArmJson<Seed>) -> Json<Value> {
    crate::ids::seed(body.seed);
    Json(json!({ "seeded": body.seed.is_some(), "seed": body.seed }))
}
