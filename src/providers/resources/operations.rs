//! The `Location` URL of subscription-level operations (resource group deletion):
//! `GET /subscriptions/{subscriptionId}/operationresults/{operationId}`.

use axum::response::Response;

use crate::arm::lro::{self, Operation};
use crate::arm::{ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;

/// Answers 202 while the operation runs, then its final response.
pub async fn get_operation_result(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::providers::settle_operations(&state).await?;
    // This poll counts after settling: an operation timed to N polls answers InProgress N times.
    lro::count_poll(&state.db, req.param("operationId")).await?;
    let id = req.param("operationId");
    let op: Operation = state
        .db
        .get(&lro::key(id))?
        .filter(|op: &Operation| {
            op.result_path
                .to_lowercase()
                .starts_with(&format!("/subscriptions/{}/", req.param("subscriptionId").to_lowercase()))
        })
        .ok_or_else(|| arm_error!(OperationNotFound, "The operation '{id}' could not be found."))?;
    Ok(op.result_response(&req))
}
