//! `/v1.0/users` and `/v1.0/me`. armlet's directory has no users yet: lookups answer an empty
//! list (after checking the filter, so an unsupported one still fails) or 404, and `/me`
//! refuses application tokens as Graph does.

use axum::extract::{Path, Request, State};
use axum::response::Response;

use super::filter::Field;
use super::{GraphError, serve};
use crate::state::AppState;

/// The user properties `$filter` may name (az: `userPrincipalName eq '…'`).
fn filterable(name: &str) -> Option<Field> {
    match name.to_lowercase().as_str() {
        "id"
        | "userprincipalname"
        | "displayname"
        | "mail"
        | "mailnickname"
        | "givenname"
        | "surname"
        | "usertype"
        | "employeeid"
        | "onpremisesimmutableid" => Some(Field::Str(String::new())),
        "accountenabled" => Some(Field::Bool(true)),
        "othermails" | "proxyaddresses" | "identities/issuerassignedid" => Some(Field::List(Vec::new())),
        _ => None,
    }
}

/// `GET /v1.0/users`.
pub async fn list(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |g| async move {
        g.check_options(&["filter", "top", "skiptoken", "count", "select", "orderby"])?;
        if let Some(filter) = g.filter()? {
            filter.validate("User", filterable)?;
        }
        g.collection(Vec::new(), "users", "user")
    })
    .await
}

/// `GET /v1.0/users/{id}`: no user exists.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    serve(state, request, |_| async move { Err(GraphError::not_found(&id)) }).await
}

/// `GET /v1.0/me` (and `/me/ownedObjects`): only valid for a signed-in user, and armlet
/// issues application tokens only.
pub async fn me(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, |_| async move {
        Err(GraphError::malformed("/me request is only valid with delegated authentication flow."))
    })
    .await
}
