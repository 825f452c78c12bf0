//! Entra ID as armlet plays it: signing keys, JWTs, the token and discovery endpoints, and
//! the bearer check on every ARM request; managed-identity tokens (IMDS, App Service form).

pub mod bearer;
pub mod entra;
pub mod imds;
pub mod jwt;
pub mod keys;
pub mod rbac;
