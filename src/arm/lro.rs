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
}

pub fn key(id: &str) -> String {
    format!("op/{}", id.to_lowercase())
}

fn pending_key(id: &str) -> String {
    format!("oppending/{}", id.to_lowercase())
}

impl Operation {
    /// Records a new in-progress operation in `tx`.
    pub fn start(tx: &mut Tx<'_>, op: &Operation) -> Result<(), StoreError> {
        tx.put(key(&op.id), op)?;
        tx.put(pending_key(&op.id), &op.due_at.unix_timestamp())
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
        {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Number of operations still in progress.
pub fn pending_count(db: &Db) -> Result<usize, StoreError> {
    Ok(db.scan::<i64>("oppending/")?.len())
}
