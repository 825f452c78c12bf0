//! Entra ID as armlet plays it: signing keys, JWTs, the token and discovery endpoints, and
//! the bearer check on every ARM request.

pub mod bearer;
pub mod entra;
pub mod jwt;
pub mod keys;
