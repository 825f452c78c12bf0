//! Optimistic concurrency (RPC "ETags for Resources"): `If-Match` and `If-None-Match` on
//! writes to resources that carry an ETag answer 412 PreconditionFailed when they do not hold.

use axum::http::HeaderMap;

use super::error::{ArmError, ArmResult};
use crate::arm_error;

fn unquote(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Checks the request's preconditions against the resource's current ETag (`None`: no such
/// resource).
pub fn check(headers: &HeaderMap, current: Option<&str>) -> ArmResult<()> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(wanted) = header("if-match") {
        let ok = match current {
            None => false,
            Some(current) => wanted.split(',').any(|t| unquote(t) == "*" || unquote(t) == unquote(current)),
        };
        if !ok {
            return Err(precondition_failed("If-Match", &wanted, current));
        }
    }
    if let Some(unwanted) = header("if-none-match") {
        let clash = match current {
            None => false,
            Some(current) => unwanted.split(',').any(|t| unquote(t) == "*" || unquote(t) == unquote(current)),
        };
        if clash {
            return Err(precondition_failed("If-None-Match", &unwanted, current));
        }
    }
    Ok(())
}

fn precondition_failed(header: &str, given: &str, current: Option<&str>) -> ArmError {
    match current {
        Some(current) => arm_error!(
            PreconditionFailed,
            "The precondition '{header}: {given}' failed: the resource's current ETag is '{current}'."
        ),
        None => {
            arm_error!(PreconditionFailed, "The precondition '{header}: {given}' failed: the resource does not exist.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn preconditions() {
        assert!(check(&HeaderMap::new(), Some("a")).is_ok());
        assert!(check(&headers("if-match", "\"a\""), Some("a")).is_ok());
        assert!(check(&headers("if-match", "W/\"a\""), Some("a")).is_ok());
        assert_eq!(check(&headers("if-match", "b"), Some("a")).unwrap_err().code.as_str(), "PreconditionFailed");
        assert!(check(&headers("if-match", "*"), None).is_err());
        assert!(check(&headers("if-none-match", "*"), None).is_ok());
        assert!(check(&headers("if-none-match", "*"), Some("a")).is_err());
    }
}
