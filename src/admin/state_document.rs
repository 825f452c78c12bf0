//! What each entry of a state document (`PUT /_armlet/state`) must hold: every key layout
//! armlet stores, with the check its value must pass. A value is decoded with the type its
//! readers decode it with (and held to the limits its writers keep), so an imported document
//! can never leave a value behind that a later request fails to read.

use serde::Deserialize;
use serde_json::Value;

use crate::admin::CLOCK_KEY;
use crate::arm::lro::{self, Operation, OperationTiming};
use crate::arm::resource_id::storage_key;
use crate::clock::ClockState;
use crate::directory::{Application, ServicePrincipal, application_key, sp_key};
use crate::providers::authorization::role_assignments::Tombstone;
use crate::providers::authorization::role_definitions::RoleDefinition;
use crate::providers::container_service::ClusterInternals;
use crate::providers::container_service::node_images::{self, Release};
use crate::providers::resources::subscriptions::{Subscription, Tenant};

/// Checks one entry (its key and value); the error says why it cannot be stored.
type Check = fn(&str, &Value) -> Result<(), String>;

/// Which keys a layout covers.
enum Keys {
    Exact(&'static str),
    Under(&'static str),
}

/// Every key layout armlet stores (see `crate::store`), and what its values must be.
const LAYOUTS: &[(Keys, Check)] = &[
    (Keys::Under("res/"), resource),
    (Keys::Under("sub/"), |key, value| {
        let subscription: Subscription = decode(value)?;
        keyed(key, &Subscription::key(&subscription.subscription_id))
    }),
    (Keys::Under("tenant/"), |key, value| {
        let tenant: Tenant = decode(value)?;
        keyed(key, &Tenant::key(&tenant.tenant_id))
    }),
    (Keys::Under("dir/sp/"), |key, value| {
        let principal: ServicePrincipal = decode(value)?;
        keyed(key, &sp_key(&principal.id))
    }),
    (Keys::Under("dir/spprops/"), |_, value| decode::<serde_json::Map<String, Value>>(value).map(drop)),
    (Keys::Under("dir/appid/"), object_id),
    (Keys::Under("dir/mires/"), object_id),
    (Keys::Under("dir/app/"), |key, value| {
        let application: Application = decode(value)?;
        keyed(key, &application_key(&application.id))
    }),
    (Keys::Under("dir/appobj/"), object_id),
    (Keys::Under("op/"), |key, value| {
        let operation: Operation = decode(value)?;
        keyed(key, &lro::key(&operation.id))
    }),
    // When the operation falls due, in Unix seconds.
    (Keys::Under("oppending/"), |_, value| decode::<i64>(value).map(drop)),
    (Keys::Exact(CLOCK_KEY), |_, value| decode::<ClockState>(value).map(drop)),
    (Keys::Under("roledef/"), |key, value| {
        let role: RoleDefinition = decode(value)?;
        keyed(key, &format!("roledef/{}", role.name.to_lowercase()))
    }),
    (Keys::Under("ratomb/"), |key, value| {
        let tomb: Tombstone = decode(value)?;
        resource_shape(&tomb.assignment).map_err(|e| format!("its assignment: {e}"))?;
        let name = tomb.assignment["name"].as_str().unwrap_or_default();
        keyed(key, &format!("ratomb/{}", name.to_lowercase()))
    }),
    (Keys::Under("aks/"), |_, value| decode::<ClusterInternals>(value).map(drop)),
    (Keys::Under("nodeimage/"), node_image),
    (Keys::Exact("config/operationTiming"), operation_timing),
];

/// Checks a state document's entry: `Err` says why it cannot be imported.
pub fn check(key: &str, value: &Value) -> Result<(), String> {
    let (_, check) = LAYOUTS
        .iter()
        .find(|(keys, _)| match keys {
            Keys::Exact(exact) => key == *exact,
            Keys::Under(prefix) => key.starts_with(prefix) && key.len() > prefix.len(),
        })
        .ok_or_else(|| "it is an unknown key (armlet stores nothing under it)".to_owned())?;
    check(key, value)
}

fn decode<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| e.to_string())
}

/// A value stored under a key derived from it must be under that very key (lookups only
/// ever read that one).
fn keyed(key: &str, want: &str) -> Result<(), String> {
    if key == want { Ok(()) } else { Err(format!("this value belongs under the key '{want}'")) }
}

/// A directory index: the object id of what it points to.
fn object_id(_: &str, value: &Value) -> Result<(), String> {
    decode::<String>(value).map(drop)
}

/// What every stored resource is: an object with its id, name and type.
fn resource_shape(value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("a resource must be a JSON object")?;
    match ["id", "name", "type"].into_iter().find(|field| !object.get(*field).is_some_and(Value::is_string)) {
        Some(field) => Err(format!("a resource needs a string '{field}'")),
        None => Ok(()),
    }
}

fn resource(key: &str, value: &Value) -> Result<(), String> {
    resource_shape(value)?;
    keyed(key, &storage_key(value["id"].as_str().unwrap_or_default()))
}

fn node_image(key: &str, value: &Value) -> Result<(), String> {
    let release: Release = decode(value)?;
    if node_images::version_key(&release.version).is_none() {
        return Err(format!("'{}' is not a node image version (YYYYMM.DD.N)", release.version));
    }
    if !(0..=24 * 365).contains(&release.rollout_hours) {
        return Err("'rolloutHours' must be between 0 and 8760".to_owned());
    }
    keyed(key, &format!("nodeimage/{}", release.version))
}

/// The limits `PATCH /_armlet/config` keeps (operations' due times are computed from them).
fn operation_timing(_: &str, value: &Value) -> Result<(), String> {
    let timing: OperationTiming = decode(value)?;
    for rule in &timing.rules {
        if rule.kind.trim().is_empty() {
            return Err("each operation timing rule needs a 'kind'".to_owned());
        }
        if rule.duration.is_negative() || rule.duration > time::Duration::days(365) || rule.polls > 10_000 {
            return Err(format!("the rule for '{}' is outside 0 to 365 days and 10000 polls", rule.kind));
        }
    }
    Ok(())
}
