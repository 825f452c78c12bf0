//! Long-running operations (RPC "Asynchronous Operations"). A PUT/DELETE/POST that takes time
//! answers 201/202 with `Azure-AsyncOperation` (a status resource that always answers 200
//! with `{status, startTime, endTime, error}`), `Location` (answers 202 until done, then the
//! operation's final response) and `Retry-After: 1` (az polls every 30 s without it).
//!
//! An operation is due at a simulated instant; whoever settles due operations (a ticker, a
//! poll, a clock advance) runs the provider's completion and records the outcome here.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::error::ArmError;
use super::request::ArmRequest;
use crate::clock::rfc3339;
use crate::store::{Db, StoreError, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationStatus {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// A stored long-running operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    /// What completes it (e.g. `Microsoft.Resources/resourceGroups/delete`); providers match on it.
    pub kind: String,
    pub resource_id: String,
    pub status: OperationStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub start_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub end_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    #[serde(default)]
    pub error: Option<OperationError>,
    /// Path of the `Azure-AsyncOperation` status resource, if the operation offers one.
    pub status_path: Option<String>,
    /// Path of the `Location` (operation result) resource.
    pub result_path: String,
    pub api_version: String,
    /// HTTP status the result URL answers once the operation succeeded (200 or 204).
    pub done_status: u16,
    /// Body the result URL answers once the operation succeeded.
    #[serde(default)]
    pub result: Option<Value>,
    /// Status polls still to answer `InProgress` before it may complete (operation timing).
    #[serde(default)]
    pub polls_remaining: u32,
    /// A failure injected by a fault rule: the operation fails with it when it completes.
    #[serde(default)]
    pub injected_failure: Option<OperationError>,
}

pub fn key(id: &str) -> String {
    format!("op/{}", id.to_lowercase())
}

fn pending_key(id: &str) -> String {
    format!("oppending/{}", id.to_lowercase())
}

impl Operation {
    /// Records a new in-progress operation in `tx`, timed by the operation timing rules
    /// (`/_armlet/config`): at least their duration, and their number of polls.
    pub fn start(tx: &mut Tx<'_>, op: &Operation) -> Result<(), StoreError> {
        let mut op = op.clone();
        let timing = OperationTiming::load(tx)?.for_kind(&op.kind);
        op.due_at = op.due_at.max(op.start_time + timing.duration);
        op.polls_remaining = timing.polls;
        tx.put(key(&op.id), &op)?;
        tx.put(pending_key(&op.id), &op.due_at.unix_timestamp())
    }

    /// Counts a status poll; true when the operation still owes polls.
    pub fn count_poll(&mut self, tx: &mut Tx<'_>) -> Result<bool, StoreError> {
        if self.is_done() || self.polls_remaining == 0 {
            return Ok(false);
        }
        self.polls_remaining -= 1;
        tx.put(key(&self.id), &*self)?;
        Ok(true)
    }

    /// Moves a running operation's due time: it waits for something on the clock.
    pub fn reschedule(mut self, tx: &mut Tx<'_>, due_at: OffsetDateTime) -> Result<Self, StoreError> {
        self.due_at = due_at;
        tx.put(key(&self.id), &self)?;
        tx.put(pending_key(&self.id), &due_at.unix_timestamp())?;
        Ok(self)
    }

    pub fn is_done(&self) -> bool {
        self.status != OperationStatus::InProgress
    }

    /// Fails the operation with an error of any code (an injected fault).
    pub fn fail_with(
        mut self,
        tx: &mut Tx<'_>,
        error: OperationError,
        now: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        self.status = OperationStatus::Failed;
        self.error = Some(error);
        self.end_time = Some(now);
        tx.put(key(&self.id), &self)?;
        tx.delete(pending_key(&self.id));
        Ok(self)
    }

    /// Records the outcome in `tx`.
    pub fn finish(
        mut self,
        tx: &mut Tx<'_>,
        outcome: Result<Option<Value>, ArmError>,
        now: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        match outcome {
            Ok(result) => {
                self.status = OperationStatus::Succeeded;
                self.result = result;
            }
            Err(e) => {
                self.status = OperationStatus::Failed;
                self.error = Some(OperationError { code: e.code.as_str().to_owned(), message: e.message });
            }
        }
        self.end_time = Some(now);
        tx.put(key(&self.id), &self)?;
        tx.delete(pending_key(&self.id));
        Ok(self)
    }

    fn url(req: &ArmRequest, path: &str, api_version: &str) -> String {
        format!("{}{path}?api-version={api_version}", req.base_url())
    }

    /// The first response: `status` (201/200/202) with the LRO headers and `body`.
    pub fn accepted(&self, req: &ArmRequest, status: StatusCode, body: Option<Value>) -> Response {
        let mut response = match body {
            Some(body) => (status, axum::Json(body)).into_response(),
            None => status.into_response(),
        };
        let headers = response.headers_mut();
        if let Some(path) = &self.status_path
            && let Ok(v) = HeaderValue::from_str(&Self::url(req, path, &self.api_version))
        {
            headers.insert("azure-asyncoperation", v);
        }
        if let Ok(v) = HeaderValue::from_str(&Self::url(req, &self.result_path, &self.api_version)) {
            headers.insert("location", v);
        }
        headers.insert("retry-after", HeaderValue::from_static("1"));
        response
    }

    /// The `Azure-AsyncOperation` status body; always 200.
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "id": self.status_path.clone().unwrap_or_else(|| self.result_path.clone()),
            "name": self.id,
            "status": self.status,
            "startTime": rfc3339(self.start_time),
        });
        if let Some(end) = self.end_time {
            body["endTime"] = Value::String(rfc3339(end));
            body["percentComplete"] = json!(100);
        }
        if let Some(error) = &self.error {
            body["error"] = json!({ "code": error.code, "message": error.message });
        }
        body
    }

    /// The `Azure-AsyncOperation` status response: always 200, with `Retry-After: 1` while the
    /// operation runs (clients poll every 30 s without it).
    pub fn status_response(&self) -> Response {
        let mut response = (StatusCode::OK, axum::Json(self.status_body())).into_response();
        if !self.is_done() {
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }

    /// The `Location` result: 202 while running, then the operation's own final response.
    pub fn result_response(&self, req: &ArmRequest) -> Response {
        match self.status {
            OperationStatus::InProgress => self.accepted(req, StatusCode::ACCEPTED, None),
            OperationStatus::Succeeded => {
                let status = StatusCode::from_u16(self.done_status).unwrap_or(StatusCode::OK);
                match &self.result {
                    Some(body) => (status, axum::Json(body.clone())).into_response(),
                    None => status.into_response(),
                }
            }
            OperationStatus::Failed | OperationStatus::Canceled => {
                let error = self.error.clone().unwrap_or(OperationError {
                    code: "OperationFailed".into(),
                    message: "The operation failed.".into(),
                });
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": { "code": error.code, "message": error.message } })),
                )
                    .into_response()
            }
        }
    }
}

/// In-progress operations due at or before `now`, oldest first.
pub fn due(db: &Db, now: OffsetDateTime) -> Result<Vec<Operation>, StoreError> {
    let mut due: Vec<(i64, String)> = db
        .scan::<i64>("oppending/")?
        .into_iter()
        .filter(|(_, at)| *at <= now.unix_timestamp())
        .map(|(k, at)| (at, k["oppending/".len()..].to_owned()))
        .collect();
    due.sort();
    let mut ops = Vec::new();
    for (_, id) in due {
        if let Some(op) = db.get::<Operation>(&key(&id))?
            && !op.is_done()
            && op.due_at <= now
            && op.polls_remaining == 0
        {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Counts a client's poll of operation `id` (its status or result URL) against the polls its
/// timing asks for.
pub async fn count_poll(db: &Db, id: &str) -> Result<(), StoreError> {
    db.transact(|tx| {
        if let Some(mut op) = tx.get::<Operation>(&key(id))? {
            op.count_poll(tx)?;
        }
        Ok(())
    })
    .await
}

/// Number of operations still in progress.
pub fn pending_count(db: &Db) -> Result<usize, StoreError> {
    Ok(db.scan::<i64>("oppending/")?.len())
}

/// One operation timing rule: operations whose kind matches `kind` (a glob such as
/// `Microsoft.ContainerService/managedClusters/write` or `Microsoft.ContainerService/*`) take at
/// least `duration` of simulated time and `polls` status polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimingRule {
    pub kind: String,
    #[serde(default, with = "duration_ms")]
    pub duration: time::Duration,
    #[serde(default)]
    pub polls: u32,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.whole_milliseconds() as i64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Duration, D::Error> {
        Ok(time::Duration::milliseconds(i64::deserialize(d)?))
    }
}

impl TimingRule {
    /// `KIND=30s`, `KIND=3polls` or `KIND=30s,3polls`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, value) = text.split_once('=').ok_or_else(|| format!("'{text}': expected KIND=DURATION[,Npolls]"))?;
        let mut rule = TimingRule { kind: kind.trim().to_owned(), duration: time::Duration::ZERO, polls: 0 };
        if rule.kind.is_empty() {
            return Err(format!("'{text}': the operation kind is empty"));
        }
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.strip_suffix("polls").or_else(|| part.strip_suffix("poll")) {
                Some(n) => rule.polls = n.trim().parse().map_err(|_| format!("'{part}': expected e.g. 3polls"))?,
                None => rule.duration = crate::clock::parse_duration(part)?,
            }
        }
        Ok(rule)
    }
}

/// The timing of long-running operations (stored, so it survives restarts and state export).
/// With no rule, an operation completes as soon as its provider allows (the next settle).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationTiming {
    pub rules: Vec<TimingRule>,
}

/// The timing an operation gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub duration: time::Duration,
    pub polls: u32,
}

const TIMING_KEY: &str = "config/operationTiming";

impl OperationTiming {
    pub fn load(tx: &Tx<'_>) -> Result<Self, StoreError> {
        Ok(tx.get(TIMING_KEY)?.unwrap_or_default())
    }

    pub fn save(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        tx.put(TIMING_KEY, self)
    }

    /// The most specific matching rule (the longest pattern) decides.
    pub fn for_kind(&self, kind: &str) -> Timing {
        self.rules
            .iter()
            .filter(|r| crate::auth::rbac::matches(&r.kind, kind))
            .max_by_key(|r| r.kind.len())
            .map(|r| Timing { duration: r.duration, polls: r.polls })
            .unwrap_or_default()
    }

    /// Adds or replaces the rule for `kind`.
    pub fn set(&mut self, rule: TimingRule) {
        self.rules.retain(|r| !r.kind.eq_ignore_ascii_case(&rule.kind));
        self.rules.push(rule);
    }
}

#[cfg(test)]
mod timing_tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let r = TimingRule::parse("Microsoft.ContainerService/*=30s,2polls").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.duration, r.polls),
            ("Microsoft.ContainerService/*", time::Duration::seconds(30), 2)
        );
        assert_eq!(TimingRule::parse("x=3polls").unwrap().polls, 3);
        assert!(TimingRule::parse("nothing").is_err());
        assert!(TimingRule::parse("x=soon").is_err());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let mut t = OperationTiming::default();
        t.set(TimingRule {
            kind: "Microsoft.ContainerService/*".into(),
            duration: time::Duration::seconds(30),
            polls: 0,
        });
        t.set(TimingRule {
            kind: "Microsoft.ContainerService/managedClusters/delete".into(),
            duration: time::Duration::ZERO,
            polls: 3,
        });
        assert_eq!(
            t.for_kind("Microsoft.ContainerService/managedClusters/write").duration,
            time::Duration::seconds(30)
        );
        assert_eq!(
            t.for_kind("Microsoft.ContainerService/managedClusters/delete"),
            Timing { duration: time::Duration::ZERO, polls: 3 }
        );
        assert_eq!(t.for_kind("Microsoft.Resources/resourceGroups/delete"), Timing::default());
    }
}
