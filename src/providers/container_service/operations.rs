//! The status and result resources of ContainerService long-running operations:
//! `.../locations/{location}/operations/{operationId}` (`Azure-AsyncOperation`, always 200)
//! and `.../locations/{location}/operationresults/{operationId}` (`Location`, 202 until done).

use axum::response::Response;

use crate::arm::lro::{self, Operation};
use crate::arm::{ArmRequest, ArmResult};
use crate::arm_error;
use crate::state::AppState;

fn find(state: &AppState, req: &ArmRequest) -> ArmResult<Operation> {
    let id = req.param("operationId");
    state
        .db
        .get::<Operation>(&lro::key(id))?
        .filter(|op| {
            op.status_path.as_deref().is_some_and(|p| {
                p.to_lowercase().starts_with(&format!(
                    "/subscriptions/{}/providers/microsoft.containerservice/",
                    req.param("subscriptionId").to_lowercase()
                ))
            })
        })
        .ok_or_else(|| arm_error!(OperationNotFound, "The operation '{id}' could not be found."))
}

/// `OperationStatusResult_Get`: the operation's status (InProgress, Succeeded, Failed).
pub async fn get_operation_status(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::providers::settle_operations(&state).await?;
    // This poll counts after settling: an operation timed to N polls answers InProgress N times.
    lro::count_poll(&state.db, req.param("operationId")).await?;
    Ok(find(&state, &req)?.status_response())
}

/// `OperationResults_Get` (the `Location` URL): 202 while running, then the final response.
pub async fn get_operation_result(state: AppState, req: ArmRequest) -> ArmResult<Response> {
    crate::providers::settle_operations(&state).await?;
    // This poll counts after settling: an operation timed to N polls answers InProgress N times.
    lro::count_poll(&state.db, req.param("operationId")).await?;
    Ok(find(&state, &req)?.result_response(&req))
}
