//! Resource providers: one module per namespace, one file per resource type, handlers named
//! after the swagger operationIds.

pub mod authorization;
pub mod container_registry;
pub mod container_service;
pub mod managed_identity;
pub mod network;
pub mod resources;

use crate::arm::lro::{self, Operation};
use crate::arm::{ArmError, ErrorCode};
use crate::state::AppState;
use crate::store::StoreError;

/// Completes every long-running operation whose simulated due time has come, in due order,
/// and returns them. Called by the ticker, by status polls and after clock changes.
pub async fn settle_operations(state: &AppState) -> Result<Vec<Operation>, StoreError> {
    // One settler at a time. Two that read the same operation as due would both complete
    // it, the second from a stale copy, undoing writes acknowledged in between (a resource
    // group re-created once its deletion finished would be deleted again).
    let _one_at_a_time = state.settling.lock().await;
    let mut settled = Vec::new();
    for op in lro::due(&state.db, state.clock.now())? {
        let done = if let Some(failure) = op.injected_failure.clone() {
            // A fault rule made this operation fail part way: the resource shows it too.
            let now = state.clock.now();
            state
                .db
                .transact(|tx| {
                    if op.kind.starts_with("Microsoft.ContainerService/") && !op.kind.ends_with("/delete") {
                        container_service::managed_clusters::fail_write(tx, &op, &failure.code, &failure.message)?;
                    }
                    op.fail_with(tx, failure, now)
                })
                .await?
        } else {
            match op.kind.as_str() {
                resources::resource_groups::DELETE_OPERATION => {
                    resources::resource_groups::complete_delete(state, op).await?
                }
                kind if kind.starts_with("Microsoft.ContainerService/") => {
                    container_service::managed_clusters::complete(state, op).await?
                }
                other => {
                    let error = ArmError::new(
                        ErrorCode::InternalServerError,
                        format!("No completion for operation kind '{other}'."),
                    );
                    let now = state.clock.now();
                    state.db.transact(|tx| op.finish(tx, Err(error), now)).await?
                }
            }
        };
        if !done.is_done() {
            // Rescheduled: it waits for something later on the clock.
            continue;
        }
        state.events.record(serde_json::json!({
            "kind": done.kind,
            "subject": done.resource_id,
            "due": crate::clock::rfc3339(done.due_at),
            "fired": crate::clock::rfc3339(state.clock.now()),
            "status": done.status,
        }));
        settled.push(done);
    }
    Ok(settled)
}
