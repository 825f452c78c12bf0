//! `Subnets_*` (Microsoft.Network): one subnet of a virtual network, stored in the network's
//! `properties.subnets`. Writes complete at once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::virtual_networks::{TYPE, complete_subnet, network_id};
use crate::arm::paging::page;
use crate::arm::resource_id::storage_key;
use crate::arm::{ArmError, ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;

fn subnets(network: &Value) -> Vec<Value> {
    network["properties"]["subnets"].as_array().cloned().unwrap_or_default()
}

fn not_found(name: &str, network: &str, group: &str) -> ArmError {
    arm_error!(
        NotFound,
        "Resource /virtualNetworks/{network}/subnets/{name} under resource group {group} was not found."
    )
}

/// A subnet by its full id, if its network and the subnet exist.
pub fn find(state: &AppState, subnet_id: &str) -> ArmResult<Option<Value>> {
    let Some((network, name)) = subnet_id.rsplit_once("/subnets/").or_else(|| subnet_id.rsplit_once("/SUBNETS/"))
    else {
        return Ok(None);
    };
    let Some(network) = state.db.get::<Value>(&storage_key(network))? else { return Ok(None) };
    Ok(subnets(&network).into_iter().find(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))))
}

/// `Subnets_CreateOrUpdate`.
pub async fn create_or_update(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (group, network_name, name) = (
        req.param("resourceGroupName").to_owned(),
        req.param("virtualNetworkName").to_owned(),
        req.param("subnetName").to_owned(),
    );
    super::validate_name(&name, 1, 80)?;
    let body: Option<Value> = req.json()?;
    let mut body = body
        .filter(Value::is_object)
        .ok_or_else(|| ArmError::invalid_request_content("The request content must be a JSON object."))?;
    body["name"] = json!(name);
    let id = network_id(req.param("subscriptionId"), &group, &network_name);
    let (created, subnet) = state
        .db
        .transact(|tx| -> ArmResult<(bool, Value)> {
            let mut network: Value =
                tx.get(&storage_key(&id))?.ok_or_else(|| ArmError::resource_not_found(TYPE, &network_name, &group))?;
            let stored_id = network["id"].as_str().unwrap_or(&id).to_owned();
            let mut all = subnets(&network);
            let at = all.iter().position(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
            let subnet = complete_subnet(&network, &body, &stored_id, &all)?;
            match at {
                Some(i) => all[i] = subnet.clone(),
                None => all.push(subnet.clone()),
            }
            network["properties"]["subnets"] = json!(all);
            tx.put(storage_key(&stored_id), &network)?;
            Ok((at.is_none(), subnet))
        })
        .await?;
    crate::arm::json(if created { StatusCode::CREATED } else { StatusCode::OK }, subnet)
}

/// `Subnets_Get`.
pub async fn get(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let network = super::virtual_networks::load(&state, &req)?;
    let name = req.param("subnetName");
    let subnet = subnets(&network)
        .into_iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .ok_or_else(|| not_found(name, req.param("virtualNetworkName"), req.param("resourceGroupName")))?;
    crate::arm::json(StatusCode::OK, subnet)
}

/// `Subnets_List`.
pub async fn list(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let network = super::virtual_networks::load(&state, &req)?;
    crate::arm::json(StatusCode::OK, page(&req, subnets(&network), "value")?)
}

/// `Subnets_Delete`: 200, or 204 when there was none.
pub async fn delete(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let (group, network_name, name) = (
        req.param("resourceGroupName").to_owned(),
        req.param("virtualNetworkName").to_owned(),
        req.param("subnetName").to_owned(),
    );
    let id = network_id(req.param("subscriptionId"), &group, &network_name);
    let existed = state
        .db
        .transact(|tx| -> ArmResult<bool> {
            let Some(mut network) = tx.get::<Value>(&storage_key(&id))? else { return Ok(false) };
            let mut all = subnets(&network);
            let before = all.len();
            all.retain(|s| !s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
            if all.len() == before {
                return Ok(false);
            }
            network["properties"]["subnets"] = json!(all);
            let stored_id = network["id"].as_str().unwrap_or(&id).to_owned();
            tx.put(storage_key(&stored_id), &network)?;
            Ok(true)
        })
        .await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::NO_CONTENT }.into_response())
}
