//! A local server that speaks Mechanical Turk's requester protocol (JSON
//! 1.1 over POST, `X-Amz-Target`, SigV4 checked against one key pair), for
//! trying `3a_amt` workflows without paying anyone and for the connector's
//! tests. `tutti mturk-local` serves it; boto3 talks to it as to the real
//! service.
//!
//! Requester operations: `GetAccountBalance`, `CreateHIT` (with
//! `UniqueRequestToken`), `GetHIT`, `ListHITs`, `ListAssignmentsForHIT`
//! (paged), `ApproveAssignment`, `RejectAssignment`,
//! `CreateAdditionalAssignmentsForHIT`, `UpdateExpirationForHIT`,
//! `DeleteHIT`. Errors come back as the service writes them: status 400
//! and `{"__type": …, "Message": …}`.
//!
//! The worker side, which Mechanical Turk's own site plays:
//! - `GET /_local/hits`: every HIT with its question and counts;
//! - `POST /_local/hits/{hit}/accept` `{"worker_id"}`: a worker accepts
//!   (an assignment, as when a worker clicks Accept);
//! - `GET /_local/assignments/{id}/page`: the HIT's page as the worker
//!   sees it, with `assignmentId` and `turkSubmitTo` in its address;
//! - `POST /mturk/externalSubmit`: the page's form (Mechanical Turk's own
//!   path), which submits the assignment with every field as its answer;
//! - `POST /_local/hits/{hit}/answers` `{"worker_id", "answer"}`: accept
//!   and submit in one step, answering the field `answer`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tutti_engine::mturk::client::{CONTENT_TYPE, SERVICE, TARGET_PREFIX};
use tutti_engine::mturk::question::answers_xml;
use tutti_engine::mturk::sigv4::{self, Credentials};

/// Most a request's `X-Amz-Date` may be off the server's clock, as AWS
/// allows.
const SKEW_SECS: i64 = 15 * 60;

#[derive(Debug, Clone)]
struct HitRec {
    id: String,
    type_id: String,
    title: String,
    description: String,
    keywords: String,
    question: String,
    reward: String,
    annotation: String,
    max_assignments: u32,
    assignment_secs: u64,
    auto_approval_secs: u64,
    created: f64,
    expires: f64,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct AssignmentRec {
    id: String,
    hit: String,
    worker: String,
    /// `Accepted` (working), `Submitted`, `Approved`, `Rejected`.
    status: String,
    answer: String,
    accepted: f64,
    submitted: Option<f64>,
    reviewed: Option<f64>,
    feedback: Option<String>,
}

#[derive(Default)]
struct Turk {
    hits: Vec<HitRec>,
    assignments: Vec<AssignmentRec>,
    tokens: HashMap<String, String>,
    extra_tokens: HashMap<String, String>,
    calls: Vec<String>,
}

/// The shared state of a local server.
#[derive(Clone)]
pub struct LocalTurk {
    creds: Credentials,
    region: String,
    inner: Arc<Mutex<Turk>>,
}

fn clock() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

fn new_id(first: char) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = String::with_capacity(30);
    s.push(first);
    for _ in 0..29 {
        s.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// An error as Mechanical Turk writes it.
fn fault(kind: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        StatusCode::BAD_REQUEST,
        [("content-type", CONTENT_TYPE)],
        json!({"__type": kind, "Message": message, "TurkErrorCode": kind}).to_string(),
    )
        .into_response()
}

fn request_error(message: impl Into<String>) -> Response {
    fault("RequestError", message)
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}

impl LocalTurk {
    /// A server that accepts requests signed with `creds`.
    pub fn new(creds: Credentials) -> Self {
        Self {
            creds,
            region: "us-east-1".into(),
            inner: Arc::default(),
        }
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", post(requester))
            .route("/_local/hits", get(list_local))
            .route("/_local/calls", get(calls))
            .route("/_local/hits/{hit}/accept", post(accept))
            .route("/_local/hits/{hit}/answers", post(answer))
            .route("/_local/assignments/{id}/page", get(page))
            .route("/mturk/externalSubmit", post(external_submit))
            .with_state(self)
    }

    fn hit_json(t: &Turk, h: &HitRec) -> Value {
        let now = clock();
        let of = |pred: &dyn Fn(&AssignmentRec) -> bool| {
            t.assignments
                .iter()
                .filter(|a| a.hit == h.id && pred(a))
                .count() as u32
        };
        let pending = of(&|a| a.status == "Accepted");
        let completed = of(&|a| a.status != "Accepted");
        let available = h.max_assignments.saturating_sub(pending + completed);
        let status = if h.deleted {
            "Disposed"
        } else if h.expires > now && available > 0 {
            "Assignable"
        } else if pending > 0 {
            "Unassignable"
        } else {
            "Reviewable"
        };
        json!({
            "HITId": h.id,
            "HITTypeId": h.type_id,
            "HITGroupId": h.type_id,
            "CreationTime": h.created,
            "Title": h.title,
            "Description": h.description,
            "Question": h.question,
            "Keywords": h.keywords,
            "HITStatus": status,
            "MaxAssignments": h.max_assignments,
            "Reward": h.reward,
            "AutoApprovalDelayInSeconds": h.auto_approval_secs,
            "Expiration": h.expires,
            "AssignmentDurationInSeconds": h.assignment_secs,
            "RequesterAnnotation": h.annotation,
            "HITReviewStatus": "NotReviewed",
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": available,
            "NumberOfAssignmentsCompleted": completed,
        })
    }

    fn assignment_json(a: &AssignmentRec) -> Value {
        let mut v = json!({
            "AssignmentId": a.id,
            "WorkerId": a.worker,
            "HITId": a.hit,
            "AssignmentStatus": a.status,
            "AcceptTime": a.accepted,
            "Answer": a.answer,
        });
        if let Some(t) = a.submitted {
            v["SubmitTime"] = t.into();
        }
        if let Some(t) = a.reviewed {
            v[if a.status == "Approved" {
                "ApprovalTime"
            } else {
                "RejectionTime"
            }] = t.into();
        }
        if let Some(f) = &a.feedback {
            v["RequesterFeedback"] = f.as_str().into();
        }
        v
    }

    /// Accepts HIT `hit` for `worker`, as Mechanical Turk's site does.
    fn accept_hit(&self, hit: &str, worker: &str) -> Result<String, (StatusCode, String)> {
        let mut t = self.inner.lock().expect("local turk");
        let now = clock();
        let Some(h) = t.hits.iter().find(|h| h.id == hit).cloned() else {
            return Err((StatusCode::NOT_FOUND, format!("no HIT {hit}")));
        };
        if h.deleted || h.expires <= now {
            return Err((StatusCode::CONFLICT, format!("the HIT {hit} has expired")));
        }
        if t.assignments
            .iter()
            .any(|a| a.hit == hit && a.worker == worker)
        {
            return Err((
                StatusCode::CONFLICT,
                format!("worker {worker} already took the HIT {hit}"),
            ));
        }
        let used = t.assignments.iter().filter(|a| a.hit == hit).count() as u32;
        if used >= h.max_assignments {
            return Err((
                StatusCode::CONFLICT,
                format!("the HIT {hit} has no assignments left"),
            ));
        }
        let id = new_id('3');
        t.assignments.push(AssignmentRec {
            id: id.clone(),
            hit: hit.to_owned(),
            worker: worker.to_owned(),
            status: "Accepted".into(),
            answer: String::new(),
            accepted: now,
            submitted: None,
            reviewed: None,
            feedback: None,
        });
        Ok(id)
    }

    fn submit_assignment(
        &self,
        id: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), (StatusCode, String)> {
        let mut t = self.inner.lock().expect("local turk");
        let Some(a) = t.assignments.iter_mut().find(|a| a.id == id) else {
            return Err((StatusCode::NOT_FOUND, format!("no assignment {id}")));
        };
        if a.status != "Accepted" {
            return Err((
                StatusCode::CONFLICT,
                format!("the assignment {id} is {} already", a.status),
            ));
        }
        a.status = "Submitted".into();
        a.answer = answers_xml(fields);
        a.submitted = Some(clock());
        Ok(())
    }

    fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<String, Box<Response>> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let target = header("x-amz-target");
        let date = header("x-amz-date");
        let auth = header("authorization");
        if auth.is_empty() {
            return Err(Box::new(fault(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )));
        }
        let format = time::format_description::parse_borrowed::<2>(
            "[year][month][day]T[hour][minute][second]Z",
        )
        .expect("a fixed, valid format");
        let signed =
            time::PrimitiveDateTime::parse(date, &format).map(|d| d.assume_utc().unix_timestamp());
        match signed {
            Ok(s) if (s - clock() as i64).abs() <= SKEW_SECS => {}
            Ok(_) => {
                return Err(Box::new(fault(
                    "InvalidSignatureException",
                    "Signature expired: the X-Amz-Date is more than 15 minutes from the server's time",
                )));
            }
            Err(_) => {
                return Err(Box::new(fault(
                    "IncompleteSignatureException",
                    "X-Amz-Date must be YYYYMMDDTHHMMSSZ",
                )));
            }
        }
        let req = sigv4::Request {
            host: header("host"),
            content_type: header("content-type"),
            target,
            amz_date: date,
            body,
        };
        match sigv4::verify(auth, &self.creds, &self.region, SERVICE, &req) {
            Ok(()) => Ok(target.to_owned()),
            Err(sigv4::Refused::UnknownKey) => Err(Box::new(fault(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ))),
            Err(sigv4::Refused::Mismatch) => Err(Box::new(fault(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            ))),
            Err(sigv4::Refused::Malformed(m)) => {
                Err(Box::new(fault("IncompleteSignatureException", m)))
            }
        }
    }

    fn operate(&self, op: &str, body: &Value) -> Response {
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let n = |k: &str| body.get(k).and_then(Value::as_u64);
        let mut t = self.inner.lock().expect("local turk");
        t.calls.push(op.to_owned());
        let now = clock();
        match op {
            "GetAccountBalance" => ok(json!({"AvailableBalance": "10000.00"})),
            "CreateHIT" => {
                let mut missing = Vec::new();
                for k in ["Title", "Description", "Reward", "Question"] {
                    if s(k).is_none() {
                        missing.push(k);
                    }
                }
                for k in ["LifetimeInSeconds", "AssignmentDurationInSeconds"] {
                    if n(k).is_none() {
                        missing.push(k);
                    }
                }
                if !missing.is_empty() {
                    return request_error(format!(
                        "1 validation error detected: {} must not be null",
                        missing.join(", ")
                    ));
                }
                let question = s("Question").unwrap_or_default();
                if !question.contains("<HTMLQuestion")
                    && !question.contains("<ExternalQuestion")
                    && !question.contains("<QuestionForm")
                {
                    return request_error(
                        "The Question parameter is not a QuestionForm, ExternalQuestion or HTMLQuestion document.",
                    );
                }
                let reward = s("Reward").unwrap_or_default();
                if tutti_engine::mturk::parse_reward(&reward).is_err() {
                    return request_error(format!("The value {reward:?} is invalid for Reward."));
                }
                let max = n("MaxAssignments").unwrap_or(1);
                if !(1..=1_000_000).contains(&max) {
                    return request_error("MaxAssignments must be between 1 and 1000000.");
                }
                if let Some(token) = s("UniqueRequestToken") {
                    if token.len() > 64 {
                        return request_error("UniqueRequestToken must be at most 64 characters.");
                    }
                    if let Some(id) = t.tokens.get(&token) {
                        return request_error(format!(
                            "The HIT with ID \"{id}\" already exists. (AWS.MechanicalTurk.HitAlreadyExists)"
                        ));
                    }
                }
                let h = HitRec {
                    id: new_id('3'),
                    type_id: new_id('3'),
                    title: s("Title").unwrap_or_default(),
                    description: s("Description").unwrap_or_default(),
                    keywords: s("Keywords").unwrap_or_default(),
                    question,
                    reward,
                    annotation: s("RequesterAnnotation").unwrap_or_default(),
                    max_assignments: max as u32,
                    assignment_secs: n("AssignmentDurationInSeconds").unwrap_or(3600),
                    auto_approval_secs: n("AutoApprovalDelayInSeconds").unwrap_or(2_592_000),
                    created: now,
                    expires: now + n("LifetimeInSeconds").unwrap_or(0) as f64,
                    deleted: false,
                };
                if let Some(token) = s("UniqueRequestToken") {
                    t.tokens.insert(token, h.id.clone());
                }
                t.hits.push(h.clone());
                ok(json!({"HIT": Self::hit_json(&t, &h)}))
            }
            "GetHIT" => match t.hits.iter().find(|h| Some(&h.id) == s("HITId").as_ref()) {
                Some(h) => ok(json!({"HIT": Self::hit_json(&t, h)})),
                None => request_error(format!(
                    "Hit {} does not exist.",
                    s("HITId").unwrap_or_default()
                )),
            },
            "ListHITs" => {
                let max = n("MaxResults").unwrap_or(10).clamp(1, 100) as usize;
                let start: usize = s("NextToken").and_then(|x| x.parse().ok()).unwrap_or(0);
                let live: Vec<&HitRec> = t.hits.iter().filter(|h| !h.deleted).collect();
                let page: Vec<Value> = live
                    .iter()
                    .skip(start)
                    .take(max)
                    .map(|h| Self::hit_json(&t, h))
                    .collect();
                let mut v = json!({"NumResults": page.len(), "HITs": page});
                if start + max < live.len() {
                    v["NextToken"] = (start + max).to_string().into();
                }
                ok(v)
            }
            "ListAssignmentsForHIT" => {
                let Some(hit) = s("HITId") else {
                    return request_error("1 validation error detected: HITId must not be null");
                };
                if !t.hits.iter().any(|h| h.id == hit) {
                    return request_error(format!("Hit {hit} does not exist."));
                }
                let statuses: Vec<String> = body
                    .get("AssignmentStatuses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_else(|| {
                        vec!["Submitted".into(), "Approved".into(), "Rejected".into()]
                    });
                let max = n("MaxResults").unwrap_or(10).clamp(1, 100) as usize;
                let start: usize = s("NextToken").and_then(|x| x.parse().ok()).unwrap_or(0);
                let all: Vec<&AssignmentRec> = t
                    .assignments
                    .iter()
                    .filter(|a| a.hit == hit && statuses.contains(&a.status))
                    .collect();
                let page: Vec<Value> = all
                    .iter()
                    .skip(start)
                    .take(max)
                    .map(|a| Self::assignment_json(a))
                    .collect();
                let mut v = json!({"NumResults": page.len(), "Assignments": page});
                if start + max < all.len() {
                    v["NextToken"] = (start + max).to_string().into();
                }
                ok(v)
            }
            "ApproveAssignment" | "RejectAssignment" => {
                let approve = op == "ApproveAssignment";
                let id = s("AssignmentId").unwrap_or_default();
                let feedback = s("RequesterFeedback");
                if !approve && feedback.as_deref().is_none_or(str::is_empty) {
                    return request_error("RequesterFeedback is required to reject an assignment.");
                }
                let Some(a) = t.assignments.iter_mut().find(|a| a.id == id) else {
                    return request_error(format!("Assignment {id} does not exist."));
                };
                let target = if approve { "Approved" } else { "Rejected" };
                match a.status.as_str() {
                    "Submitted" => {
                        a.status = target.into();
                        a.reviewed = Some(now);
                        a.feedback = feedback;
                        ok(json!({}))
                    }
                    s if s == target => request_error(format!(
                        "This operation can be called with a status of: Submitted (the assignment {id} is {s})"
                    )),
                    s => request_error(format!(
                        "This operation can be called with a status of: Submitted (the assignment {id} is {s})"
                    )),
                }
            }
            "CreateAdditionalAssignmentsForHIT" => {
                let id = s("HITId").unwrap_or_default();
                let more = n("NumberOfAdditionalAssignments").unwrap_or(0);
                if more == 0 {
                    return request_error("NumberOfAdditionalAssignments must be at least 1.");
                }
                if let Some(token) = s("UniqueRequestToken") {
                    if t.extra_tokens.contains_key(&token) {
                        return ok(json!({}));
                    }
                    t.extra_tokens.insert(token, id.clone());
                }
                let Some(h) = t.hits.iter_mut().find(|h| h.id == id) else {
                    return request_error(format!("Hit {id} does not exist."));
                };
                h.max_assignments += more as u32;
                ok(json!({}))
            }
            "UpdateExpirationForHIT" => {
                let id = s("HITId").unwrap_or_default();
                let Some(at) = body.get("ExpireAt").and_then(Value::as_f64) else {
                    return request_error("1 validation error detected: ExpireAt must not be null");
                };
                let Some(h) = t.hits.iter_mut().find(|h| h.id == id) else {
                    return request_error(format!("Hit {id} does not exist."));
                };
                h.expires = if at <= now { now } else { at };
                ok(json!({}))
            }
            "DeleteHIT" => {
                let id = s("HITId").unwrap_or_default();
                let busy = t
                    .assignments
                    .iter()
                    .any(|a| a.hit == id && matches!(a.status.as_str(), "Accepted" | "Submitted"));
                let Some(h) = t.hits.iter_mut().find(|h| h.id == id) else {
                    return request_error(format!("Hit {id} does not exist."));
                };
                if busy || h.expires > now {
                    return request_error(format!(
                        "This HIT is currently in the state 'Assignable' or has assignments to review: {id}"
                    ));
                }
                h.deleted = true;
                ok(json!({}))
            }
            other => fault(
                "UnknownOperationException",
                format!("The operation {other} is not known to this server"),
            ),
        }
    }
}

async fn requester(
    State(s): State<LocalTurk>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let target = match s.check_signature(&headers, &body) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(op) = target.strip_prefix(&format!("{TARGET_PREFIX}.")) else {
        return fault(
            "UnknownOperationException",
            format!("X-Amz-Target {target:?} is not an operation of {TARGET_PREFIX}"),
        );
    };
    let value: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return fault(
                    "SerializationException",
                    "The request body is not a JSON object",
                );
            }
        }
    };
    s.operate(op, &value)
}

async fn list_local(State(s): State<LocalTurk>) -> Json<Value> {
    let t = s.inner.lock().expect("local turk");
    let hits: Vec<Value> = t.hits.iter().map(|h| LocalTurk::hit_json(&t, h)).collect();
    Json(json!({"hits": hits}))
}

async fn calls(State(s): State<LocalTurk>) -> Json<Value> {
    let t = s.inner.lock().expect("local turk");
    Json(json!({"calls": t.calls}))
}

#[derive(serde::Deserialize)]
struct WorkerBody {
    worker_id: String,
    #[serde(default)]
    answer: Option<String>,
}

fn local_error((status, message): (StatusCode, String)) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn accept(
    State(s): State<LocalTurk>,
    Path(hit): Path<String>,
    Json(b): Json<WorkerBody>,
) -> Response {
    match s.accept_hit(&hit, &b.worker_id) {
        Ok(id) => Json(json!({"assignment_id": id})).into_response(),
        Err(e) => local_error(e),
    }
}

async fn answer(
    State(s): State<LocalTurk>,
    Path(hit): Path<String>,
    Json(b): Json<WorkerBody>,
) -> Response {
    let id = match s.accept_hit(&hit, &b.worker_id) {
        Ok(id) => id,
        Err(e) => return local_error(e),
    };
    let answer = b.answer.unwrap_or_default();
    match s.submit_assignment(&id, &[("answer", answer.as_str())]) {
        Ok(()) => Json(json!({"assignment_id": id})).into_response(),
        Err(e) => local_error(e),
    }
}

/// The HIT page as a worker sees it: the question's HTML with the
/// assignment in the address, as Mechanical Turk frames it.
async fn page(
    State(s): State<LocalTurk>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let t = s.inner.lock().expect("local turk");
    let Some(a) = t.assignments.iter().find(|a| a.id == id) else {
        return local_error((StatusCode::NOT_FOUND, format!("no assignment {id}")));
    };
    let Some(h) = t.hits.iter().find(|h| h.id == a.hit) else {
        return local_error((StatusCode::NOT_FOUND, format!("no HIT {}", a.hit)));
    };
    if uri.query().is_none() {
        return Redirect::to(&format!(
            "/_local/assignments/{id}/page?assignmentId={id}&hitId={}&workerId={}&turkSubmitTo=",
            h.id, a.worker
        ))
        .into_response();
    }
    let html = h
        .question
        .split_once("<![CDATA[")
        .and_then(|(_, rest)| rest.rsplit_once("]]>"))
        .map(|(content, _)| content.replace("]]]]><![CDATA[>", "]]>"))
        .unwrap_or_else(|| h.question.clone());
    Html(html).into_response()
}

async fn external_submit(State(s): State<LocalTurk>, body: axum::body::Bytes) -> Response {
    let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return local_error((
                StatusCode::BAD_REQUEST,
                format!("the form is not readable: {e}"),
            ));
        }
    };
    let Some(id) = fields
        .iter()
        .find(|(k, _)| k == "assignmentId")
        .map(|(_, v)| v.clone())
    else {
        return local_error((
            StatusCode::BAD_REQUEST,
            "the form has no assignmentId".into(),
        ));
    };
    let answers: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "assignmentId")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match s.submit_assignment(&id, &answers) {
        Ok(()) => {
            Html("<!DOCTYPE html><p>Your answer was submitted. Thank you.</p>").into_response()
        }
        Err(e) => local_error(e),
    }
}
