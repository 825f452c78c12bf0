//! armlet: a local Azure Resource Manager emulator for AKS and managed identities.
//!
//! Every route is declared in [`router`]; the ARM protocol core is [`arm`]; resource
//! providers live in [`providers`]. [`app`] builds the whole service so tests can drive it
//! without a socket.

pub mod admin;
pub mod arm;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cloud_metadata;
pub mod directory;
pub mod fixtures;
pub mod graph;
pub mod ids;
pub mod providers;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;

pub use state::{AppState, Settings};

/// The armlet service for `state`. Request bodies are read before anything answers (see
/// [`arm::extract::read_body_first`]).
pub fn app(state: AppState) -> axum::Router {
    let limit = state.settings.max_body_bytes.max(arm::extract::DEFAULT_BODY_LIMIT);
    router::router(state).layer(axum::middleware::from_fn_with_state(limit, arm::extract::read_body_first))
}
