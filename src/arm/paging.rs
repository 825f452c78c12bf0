//! `nextLink` paging for lists (RPC "Collection"): `{"value":[...],"nextLink":...}` where the
//! next link is this request's URL with `$skipToken`; the last page has no `nextLink`.

use serde_json::{Value, json};

use super::error::ArmResult;
use super::request::ArmRequest;
use crate::arm_error;

/// Items per page unless `$top` asks for fewer.
pub const PAGE_SIZE: usize = 100;

/// One page of `items` for `req`, honouring `$skipToken` and `$top`.
pub fn page(req: &ArmRequest, items: Vec<Value>, value_key: &str) -> ArmResult<Value> {
    let skip = match req.query("$skipToken") {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| arm_error!(BadRequest, "The provided $skipToken '{token}' is invalid."))?,
    };
    let size = match req.query("$top") {
        None => PAGE_SIZE,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if n > 0 => n.min(1000),
            _ => {
                return Err(arm_error!(BadRequest, "The value '{top}' of query parameter '$top' is invalid."));
            }
        },
    };
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(skip).take(size).collect();
    let mut body = json!({ value_key: page });
    if skip + size < total {
        let mut query: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skipToken")).cloned().collect();
        query.push(("$skipToken".to_owned(), (skip + size).to_string()));
        body["nextLink"] = Value::String(req.url_with_query(&query));
    }
    Ok(body)
}
