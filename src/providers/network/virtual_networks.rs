//! `VirtualNetworks_*` (Microsoft.Network): the custom VNets AKS clusters put their nodes in.
//! Writes complete at once. Subnets live inside the network's body, which is what the
//! `subnets` sub-resource reads and writes (see [`super::subnets`]).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::arm::paging::page;
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::providers::resources::locations::required_location;
use crate::providers::resources::{generic_resources, resource_groups};
use crate::state::AppState;

pub const TYPE: &str = "Microsoft.Network/virtualNetworks";
pub const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";

pub fn network_id(subscription: &str, group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{TYPE}/{name}")
}

/// An IPv4 prefix as (first address, prefix length).
pub fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.trim().split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(addr) & mask, len))
}

fn range((start, len): (u32, u32)) -> (u64, u64) {
    let size = 1u64 << (32 - len);
    (start as u64, start as u64 + size - 1)
}

/// Whether `inner` lies within `outer`.
pub fn cidr_contains(outer: (u32, u32), inner: (u32, u32)) -> bool {
    let (a, b) = range(outer);
    let (c, d) = range(inner);
    a <= c && d <= b
}

pub fn cidr_overlaps(x: (u32, u32), y: (u32, u32)) -> bool {
    let (a, b) = range(x);
    let (c, d) = range(y);
    a <= d && c <= b
}

fn etag() -> String {
    format!("W/\"{}\"", crate::ids::uuid())
}

fn address_prefixes(network: &Value) -> Vec<(u32, u32)> {
    network["properties"]["addressSpace"]["addressPrefixes"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str().and_then(parse_cidr)).collect())
        .unwrap_or_default()
}

/// Fills a subnet's defaults and checks it fits the network and no sibling.
pub fn complete_subnet(network: &Value, subnet: &Value, network_id: &str, siblings: &[Value]) -> ArmResult<Value> {
    let name = subnet["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| {
        arm_error!(InvalidRequestFormat, "Each subnet needs a name.").with_target("properties.subnets.name")
    })?;
    super::validate_name(name, 1, 80)?;
    let network_name = network["name"].as_str().unwrap_or_default();
    let props = &subnet["properties"];
    let prefix_text = props["addressPrefix"]
        .as_str()
        .or_else(|| props["addressPrefixes"].as_array().and_then(|a| a.first()).and_then(Value::as_str))
        .ok_or_else(|| arm_error!(InvalidRequestFormat, "Subnet '{name}' needs an addressPrefix."))?;
    let prefix = parse_cidr(prefix_text).ok_or_else(|| {
        arm_error!(InvalidAddressPrefixFormat, "Address prefix {prefix_text} of subnet {name} has an invalid format.")
    })?;
    if !address_prefixes(network).into_iter().any(|space| cidr_contains(space, prefix)) {
        return Err(arm_error!(
            NetcfgSubnetRangeOutsideVnet,
            "Subnet '{name}' is not valid because its IP address range is outside the IP address range of virtual network '{network_name}'."
        ));
    }
    for other in siblings {
        let other_name = other["name"].as_str().unwrap_or_default();
        if other_name.eq_ignore_ascii_case(name) {
            continue;
        }
        if let Some(theirs) = other["properties"]["addressPrefix"].as_str().and_then(parse_cidr)
            && cidr_overlaps(theirs, prefix)
        {
            return Err(arm_error!(
                NetcfgSubnetRangesOverlap,
                "Subnet '{name}' is not valid because its IP address range overlaps with that of an existing subnet '{other_name}' in virtual network '{network_name}'."
            ));
        }
    }
    let mut p = props.as_object().cloned().unwrap_or_default();
    p.insert("addressPrefix".into(), json!(prefix_text));
    p.insert("provisioningState".into(), json!("Succeeded"));
    for (field, default) in [
        ("privateEndpointNetworkPolicies", json!("Disabled")),
        ("privateLinkServiceNetworkPolicies", json!("Enabled")),
        ("delegations", json!([])),
    ] {
        p.entry(field.to_owned()).or_insert(default);
    }
    Ok(json!({
        "id": format!("{network_id}/subnets/{name}"),
        "name": name,
        "etag": etag(),
        "type": SUBNET_TYPE,
        "properties": p,
    }))
}

/// `VirtualNetworks_CreateOrUpdate`: 201/200, complete at once.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (subscription, group, name) = (
        req.param("subscriptionId").to_owned(),
        req.param("resourceGroupName").to_owned(),
        req.param("virtualNetworkName").to_owned(),
    );
    super::validate_name(&name, 2, 64)?;
    let body: Option<Value> = req.json()?;
    let body = body
        .filter(Value::is_object)
        .ok_or_else(|| ArmError::invalid_request_content("The request content must be a JSON object."))?;
    let location = required_location(body["location"].as_str(), TYPE)?;
    resource_groups::load(&state, &subscription, &group)?.ok_or_else(|| ArmError::resource_group_not_found(&group))?;
    let prefixes = body["properties"]["addressSpace"]["addressPrefixes"].as_array().cloned().unwrap_or_default();
    if prefixes.is_empty() || prefixes.iter().any(|p| p.as_str().and_then(parse_cidr).is_none()) {
        return Err(arm_error!(
            InvalidAddressPrefixFormat,
            "The virtual network needs 'properties.addressSpace.addressPrefixes', each a CIDR such as 10.0.0.0/16."
        ));
    }
    let id = network_id(&subscription, &group, &name);
    let tags: BTreeMap<String, String> = serde_json::from_value(body["tags"].clone()).unwrap_or_default();
    let (created, network) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            // Again inside the write: the group may have been deleted since the check above.
            resource_groups::require_in(tx, &subscription, &group)?;
            let existing: Option<Value> = tx.get(&storage_key(&id))?;
            let mut props = body["properties"].as_object().cloned().unwrap_or_default();
            props.insert("provisioningState".into(), json!("Succeeded"));
            props.insert(
                "resourceGuid".into(),
                existing
                    .as_ref()
                    .map(|e| e["properties"]["resourceGuid"].clone())
                    .filter(|g| g.is_string())
                    .unwrap_or_else(|| json!(crate::ids::uuid().to_string())),
            );
            props.entry("enableDdosProtection".to_owned()).or_insert(json!(false));
            props.entry("virtualNetworkPeerings".to_owned()).or_insert(json!([]));
            let mut network = json!({
                "id": existing.as_ref().and_then(|e| e["id"].as_str()).unwrap_or(&id),
                "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&name),
                "type": TYPE,
                "location": location,
                "tags": tags,
                "etag": etag(),
                "properties": props,
            });
            let stored_id = network["id"].as_str().unwrap_or(&id).to_owned();
            // Subnets: the request's list, or (when it names none) the ones already there.
            let requested: Vec<Value> = match &body["properties"]["subnets"] {
                Value::Array(a) => a.clone(),
                Value::Null => {
                    existing.as_ref().and_then(|e| e["properties"]["subnets"].as_array().cloned()).unwrap_or_default()
                }
                _ => return Err(ArmError::invalid_request_content("The property 'subnets' must be an array.")),
            };
            let mut subnets: Vec<Value> = Vec::new();
            for subnet in &requested {
                let done = complete_subnet(&network, subnet, &stored_id, &subnets)?;
                subnets.push(done);
            }
            network["properties"]["subnets"] = json!(subnets);
            tx.put(storage_key(&stored_id), &network)?;
            Ok((existing.is_none(), network))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, network)
}

pub fn load(state: &AppState, req: &ArmRequest) -> ArmResult<Value> {
    let (group, name) = (req.param("resourceGroupName"), req.param("virtualNetworkName"));
    state
        .db
        .get(&storage_key(&network_id(req.param("subscriptionId"), group, name)))?
        .ok_or_else(|| ArmError::resource_not_found(TYPE, name, group))
}

/// `VirtualNetworks_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::arm::json(StatusCode::OK, load(&state, &req)?)
}

/// `VirtualNetworks_Delete`: 200, or 204 when there was none.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let id = network_id(req.param("subscriptionId"), req.param("resourceGroupName"), req.param("virtualNetworkName"));
    let existed = state.db.transact(|tx| generic_resources::delete_with_children(tx, &id)).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::NO_CONTENT }.into_response())
}

/// `VirtualNetworks_List` (a resource group).
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = generic_resources::of_type_in_group(
        &state.db,
        req.param("subscriptionId"),
        req.param("resourceGroupName"),
        TYPE,
    )?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

/// `VirtualNetworks_ListAll` (the subscription).
pub async fn list_all(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let items = generic_resources::of_type_in_subscription(&state.db, req.param("subscriptionId"), TYPE)?;
    crate::arm::json(StatusCode::OK, page(&req, items, "value")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let space = parse_cidr("192.168.0.0/16").unwrap();
        assert!(cidr_contains(space, parse_cidr("192.168.1.0/24").unwrap()));
        assert!(!cidr_contains(space, parse_cidr("10.0.0.0/24").unwrap()));
        assert!(cidr_overlaps(parse_cidr("10.0.0.0/16").unwrap(), parse_cidr("10.0.5.0/24").unwrap()));
        assert!(!cidr_overlaps(parse_cidr("10.0.0.0/24").unwrap(), parse_cidr("10.0.1.0/24").unwrap()));
        assert_eq!(parse_cidr("10.0.0.1/24"), Some((0x0a00_0000, 24)));
        assert!(parse_cidr("10.0.0.0/33").is_none() && parse_cidr("nope").is_none());
    }
}
