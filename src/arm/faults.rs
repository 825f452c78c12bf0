//! Fault injection, so clients' retry and error handling can be tested against ARM's own
//! failure shapes: rules match requests (method, resource type, operationId, path glob) and,
//! with a probability or on every Nth match, answer 429 with `Retry-After` and ARM's throttling
//! body, a 5xx, a given ARM error, add latency, or let the request through and fail the
//! long-running operation it starts. A fault answers before the handler runs (or, for failed
//! operations, marks the operation), so it never leaves half-written state.

use std::sync::Mutex;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::rbac::matches;

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// 429 TooManyRequests with `Retry-After` (seconds).
    #[serde(rename_all = "camelCase")]
    Throttle {
        #[serde(default = "one")]
        retry_after: u64,
    },
    /// A 5xx with ARM's error body.
    #[serde(rename_all = "camelCase")]
    ServerError {
        #[serde(default = "internal")]
        status: u16,
    },
    /// Any ARM error.
    #[serde(rename_all = "camelCase")]
    Error { status: u16, code: String, message: String },
    /// Answer normally, this much later (wall time).
    #[serde(rename_all = "camelCase")]
    Latency { ms: u64 },
    /// Accept the request; the long-running operation it starts then fails with this error.
    #[serde(rename_all = "camelCase")]
    FailOperation { code: String, message: String },
}

fn one() -> u64 {
    1
}

fn internal() -> u16 {
    500
}

/// A fault rule. Unset matchers match everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub method: Option<String>,
    /// e.g. `Microsoft.ContainerService/managedClusters` (a glob).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// e.g. `ManagedClusters_CreateOrUpdate` (a glob).
    #[serde(default)]
    pub operation_id: Option<String>,
    /// A glob over the request path, e.g. `*/managedClusters/*`.
    #[serde(default)]
    pub path: Option<String>,
    /// Chance (0–1) that a matching request gets the fault.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Only every Nth matching request gets it.
    #[serde(default)]
    pub every: Option<u64>,
    /// Stop after firing this many times.
    #[serde(default)]
    pub count: Option<u64>,
    pub action: FaultAction,
    /// Requests matched so far.
    #[serde(default)]
    pub matched: u64,
    /// Faults fired so far.
    #[serde(default)]
    pub fired: u64,
}

impl FaultRule {
    /// Checks the rule's own consistency.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("'probability' must be between 0 and 1.".into());
        }
        if self.every == Some(0) {
            return Err("'every' must be at least 1.".into());
        }
        match &self.action {
            FaultAction::ServerError { status } if !(500..=599).contains(status) => {
                Err("'status' of a serverError must be 5xx.".into())
            }
            FaultAction::Error { status, .. } if !(400..=599).contains(status) => {
                Err("'status' of an error must be 4xx or 5xx.".into())
            }
            FaultAction::Latency { ms } if *ms > 600_000 => Err("'ms' may be at most 600000.".into()),
            _ => Ok(()),
        }
    }

    fn matches(&self, method: &str, path: &str, resource_type: &str, operation_id: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.resource_type.as_ref().is_none_or(|t| matches(t, resource_type))
            && self.operation_id.as_ref().is_none_or(|o| matches(o, operation_id))
            && self.path.as_ref().is_none_or(|p| matches(p, path))
    }
}

/// The fault rules in force (kept in memory: a restart or reset clears them).
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, mut rule: FaultRule) -> FaultRule {
        rule.id = crate::ids::uuid().to_string();
        rule.matched = 0;
        rule.fired = 0;
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(rule.clone());
        rule
    }

    pub fn list(&self) -> Vec<FaultRule> {
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    pub fn remove(&self, id: &str) -> bool {
        let mut rules = self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|r| !r.id.eq_ignore_ascii_case(id));
        rules.len() != before
    }

    /// The fault this request gets, if any: the first matching rule that fires.
    pub fn check(&self, method: &str, path: &str, resource_type: &str, operation_id: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for rule in rules.iter_mut() {
            if rule.count.is_some_and(|c| rule.fired >= c) || !rule.matches(method, path, resource_type, operation_id) {
                continue;
            }
            rule.matched += 1;
            let nth = rule.every.is_none_or(|n| rule.matched % n == 0);
            let lucky = rule.probability.is_none_or(|p| crate::ids::unit() < p);
            if nth && lucky {
                rule.fired += 1;
                return Some(rule.action.clone());
            }
        }
        None
    }
}

/// The response a fault answers with instead of the handler's (none for latency and failed
/// operations, which let the request through).
pub fn respond(action: &FaultAction, method: &str) -> Option<Response> {
    let error = |status: StatusCode, code: &str, message: &str| {
        (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()
    };
    match action {
        FaultAction::Throttle { retry_after } => {
            let kind = match method {
                "GET" | "HEAD" => "Read",
                "DELETE" => "Delete",
                _ => "Write",
            };
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!(
                    "The request is being throttled as the limit has been reached for operation type - {kind}. For more information, refer to - https://aka.ms/armthrottling"
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
            Some(response)
        }
        FaultAction::ServerError { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code =
                if status == StatusCode::SERVICE_UNAVAILABLE { "ServiceUnavailable" } else { "InternalServerError" };
            Some(error(
                status,
                code,
                "Encountered internal server error. Please try again later. (injected by an armlet fault rule)",
            ))
        }
        FaultAction::Error { status, code, message } => {
            Some(error(StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST), code, message))
        }
        FaultAction::Latency { .. } | FaultAction::FailOperation { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: FaultAction) -> FaultRule {
        FaultRule {
            id: String::new(),
            method: Some("PUT".into()),
            resource_type: Some("Microsoft.ContainerService/*".into()),
            operation_id: None,
            path: None,
            probability: None,
            every: None,
            count: None,
            action,
            matched: 0,
            fired: 0,
        }
    }

    #[test]
    fn rules_match_count_and_fire_every_nth() {
        let faults = Faults::default();
        let mut r = rule(FaultAction::Throttle { retry_after: 2 });
        r.every = Some(2);
        r.count = Some(1);
        faults.add(r);
        let t = "Microsoft.ContainerService/managedClusters";
        assert_eq!(faults.check("GET", "/x", t, "ManagedClusters_Get"), None, "method differs");
        assert_eq!(faults.check("PUT", "/x", t, "ManagedClusters_CreateOrUpdate"), None, "first match: not the 2nd");
        assert!(faults.check("PUT", "/x", t, "ManagedClusters_CreateOrUpdate").is_some());
        assert_eq!(faults.check("PUT", "/x", t, "ManagedClusters_CreateOrUpdate"), None, "count reached");
        let listed = faults.list();
        assert_eq!((listed[0].matched, listed[0].fired), (2, 1));
        assert!(faults.remove(&listed[0].id));
    }

    #[test]
    fn throttling_looks_like_arms() {
        let response = respond(&FaultAction::Throttle { retry_after: 3 }, "PUT").unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "3");
        assert!(rule(FaultAction::ServerError { status: 404 }).validate().is_err());
        let mut r = rule(FaultAction::Latency { ms: 5 });
        r.probability = Some(1.5);
        assert!(r.validate().is_err());
    }
}
