//! `model_call`: a table's rows sent to an HTTP model service in batches.
//!
//! Each batch is one `POST` of `{"idempotency_key", "run_id", "step",
//! "batch", "rows": [{column: value, …}]}` with the same key in an
//! `Idempotency-Key` header; the service answers `{"results": [{field:
//! value, …}, …]}`, one object per row, in order. Timeouts, connection
//! errors, 408, 409 (the same key still being worked), 429 and 5xx are
//! tried again after 0.5 s, 1 s, 2 s, …; any other answer fails the step
//! with what the service said.
//!
//! A batch's results are committed with the batch's ledger entry in one
//! transaction ([`crate::rundata::RunData::put_batch`]), and a committed
//! batch is never sent again: after a crash, only the batch that was in
//! flight is sent a second time, with the same key, so a service that keeps
//! keys answers it without doing the work twice.

use serde_json::{Map, Value};
use std::time::Duration;
use tutti_domain::workflow::ModelCall;

/// Why a batch got no results.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The service could not be reached or did not answer in time, every
    /// try.
    #[error("the model service at {url} did not answer after {tries} tries: {last}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Tries made.
        tries: u32,
        /// The last failure.
        last: String,
    },
    /// The service refused the batch. What it said is logged for the
    /// operator, not shown: a requester's URL may reach a service that
    /// answers with what it should not.
    #[error("the model service answered {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not `{"results": [...]}` with one object per row.
    #[error("the model service's answer {0}")]
    BadAnswer(String),
}

/// The largest answer read from a model service.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Statuses worth another try: timeouts, rate limits, server trouble, and
/// 409, which idempotent services answer while an earlier request with the
/// same key is still being worked.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// Sends one batch, trying again as the call allows; returns one object
/// per row.
pub async fn call_batch(
    client: &reqwest::Client,
    call: &ModelCall,
    key: &str,
    body: &Value,
    rows: usize,
) -> Result<Vec<Map<String, Value>>, CallError> {
    let text = post(client, call, key, body).await?;
    let v: Value =
        serde_json::from_str(&text).map_err(|_| CallError::BadAnswer("is not JSON".into()))?;
    results_of(&v, rows)
}

/// POSTs a batch, trying again as the call allows; the body of the first
/// 2xx answer.
async fn post(
    client: &reqwest::Client,
    call: &ModelCall,
    key: &str,
    body: &Value,
) -> Result<String, CallError> {
    let mut last = String::new();
    let tries = call.retries + 1;
    for attempt in 0..tries {
        if attempt > 0 {
            let wait = 500u64.saturating_mul(1 << (attempt - 1).min(10));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let sent = client
            .post(&call.url)
            .timeout(Duration::from_secs(u64::from(call.timeout_secs)))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                last = if e.is_timeout() {
                    format!("no answer within {} s", call.timeout_secs)
                } else {
                    "the connection failed".to_owned()
                };
                continue;
            }
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            // Redirects are not followed: the URL given is the service.
            return Err(CallError::BadAnswer(format!(
                "is a redirect ({status}); give the service's own URL"
            )));
        }
        let body = match crate::outbound::read_capped(resp, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => return Err(CallError::BadAnswer(e)),
            Err(_) => Vec::new(),
        };
        if (200..300).contains(&status) {
            return String::from_utf8(body)
                .map_err(|_| CallError::BadAnswer("is not UTF-8 text".into()));
        }
        if !retryable(status) {
            tracing::warn!(
                url = %call.url,
                status,
                body = %String::from_utf8_lossy(&body[..body.len().min(300)]),
                "a model service refused a batch"
            );
            return Err(CallError::Refused { status });
        }
        last = format!("status {status}");
    }
    Err(CallError::Unreachable {
        url: call.url.clone(),
        tries,
        last,
    })
}

/// The per-row results in a service's answer: `{"results": [...]}` with one
/// object per row.
pub fn results_of(v: &Value, rows: usize) -> Result<Vec<Map<String, Value>>, CallError> {
    let Some(results) = v.get("results").and_then(Value::as_array) else {
        return Err(CallError::BadAnswer("has no \"results\" list".into()));
    };
    if results.len() != rows {
        return Err(CallError::BadAnswer(format!(
            "has {} results for {rows} rows",
            results.len()
        )));
    }
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object()
                .cloned()
                .ok_or_else(|| CallError::BadAnswer(format!("result {i} is not an object")))
        })
        .collect()
}

/// Sends one batch of a callback step, trying again as the call allows;
/// the service takes it (any 2xx) and answers later at the batch's
/// `callback_url`.
pub async fn send_batch(
    client: &reqwest::Client,
    call: &ModelCall,
    key: &str,
    body: &Value,
) -> Result<(), CallError> {
    post(client, call, key, body).await.map(|_| ())
}
