//! The requester side of Mechanical Turk's API (version 2017-01-17): JSON
//! 1.1 over HTTPS POST, one `X-Amz-Target` per operation, signed with
//! SigV4. Only the operations the connector needs are typed here.

use super::sigv4::{self, Credentials};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The `X-Amz-Target` prefix of every operation.
pub const TARGET_PREFIX: &str = "MTurkRequesterServiceV20170117";
/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The signing name of the service.
pub const SERVICE: &str = "mturk-requester";

/// What went wrong with a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MturkError {
    /// The service answered with an error (`__type` and `Message`).
    #[error("Mechanical Turk refused {operation}: {kind}: {message}")]
    Service {
        /// The operation.
        operation: String,
        /// The error type (`RequestError`, `ServiceFault`, …).
        kind: String,
        /// Its message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// The service could not be reached or answered something unreadable.
    #[error("Mechanical Turk could not be reached for {operation}: {message}")]
    Transport {
        /// The operation.
        operation: String,
        /// What happened.
        message: String,
    },
}

impl MturkError {
    /// The HIT a `CreateHIT` refused as already made with the same token.
    /// Mechanical Turk's `HitAlreadyExists` message contains the HIT's id:
    /// the first run of 20 or more upper-case letters and digits in it.
    pub fn existing_hit(&self) -> Option<String> {
        let MturkError::Service { message, .. } = self else {
            return None;
        };
        if !message.contains("already exists") && !message.contains("HitAlreadyExists") {
            return None;
        }
        message
            .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
            .find(|w| w.len() >= 20)
            .map(str::to_owned)
    }
}

/// A HIT as the service describes it (the fields Tutti reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hit {
    /// Its id.
    #[serde(rename = "HITId")]
    pub hit_id: String,
    /// Its status (`Assignable`, `Unassignable`, `Reviewable`, …).
    #[serde(rename = "HITStatus", default)]
    pub hit_status: Option<String>,
    /// How many answers it asks for.
    #[serde(default)]
    pub max_assignments: Option<u32>,
}

/// One worker's answer to a HIT.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MturkAssignment {
    /// Its id.
    pub assignment_id: String,
    /// The worker's id.
    pub worker_id: String,
    /// The HIT.
    #[serde(rename = "HITId")]
    pub hit_id: String,
    /// `Submitted`, `Approved` or `Rejected`.
    pub assignment_status: String,
    /// The answer, as a `QuestionFormAnswers` XML document.
    #[serde(default)]
    pub answer: String,
}

/// A new HIT.
#[derive(Debug, Clone)]
pub struct NewHit {
    /// Title workers see in the list.
    pub title: String,
    /// Description workers see.
    pub description: String,
    /// Search keywords.
    pub keywords: String,
    /// Reward per assignment in US dollars (`"0.05"`).
    pub reward: String,
    /// Answers asked for.
    pub max_assignments: u32,
    /// How long the HIT stays listed.
    pub lifetime_secs: u64,
    /// How long a worker has once they accept.
    pub assignment_secs: u64,
    /// After how long a submitted answer is approved if Tutti has not.
    pub auto_approval_secs: u64,
    /// The `HTMLQuestion` document.
    pub question: String,
    /// Tutti's own note (job and task), kept by the service.
    pub annotation: String,
    /// The idempotency token.
    pub token: String,
    /// Who may take the HIT: `QualificationRequirements`, as the service
    /// takes them.
    pub qualifications: Vec<serde_json::Value>,
}

/// Mechanical Turk's system qualification types.
pub mod qualification {
    /// Masters, on the production site.
    pub const MASTERS: &str = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH";
    /// Masters, on the sandbox.
    pub const MASTERS_SANDBOX: &str = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6";
    /// The number of HITs a worker had approved.
    pub const HITS_APPROVED: &str = "00000000000000000040";
    /// The share of a worker's assignments approved (percent).
    pub const PERCENT_APPROVED: &str = "000000000000000000L0";
    /// Where the worker is.
    pub const LOCALE: &str = "00000000000000000071";
}

/// The `QualificationRequirements` of a job's HIT settings; `sandbox` picks
/// the Masters type of the sandbox.
pub fn qualifications(h: &tutti_domain::job::HitSettings, sandbox: bool) -> Vec<serde_json::Value> {
    let mut q = Vec::new();
    let compare = |id: &str, op: &str, v: u64| {
        json!({"QualificationTypeId": id, "Comparator": op, "IntegerValues": [v],
               "ActionsGuarded": "DiscoverPreviewAndAccept"})
    };
    if h.masters {
        let id = if sandbox {
            qualification::MASTERS_SANDBOX
        } else {
            qualification::MASTERS
        };
        q.push(json!({"QualificationTypeId": id, "Comparator": "Exists",
                      "ActionsGuarded": "DiscoverPreviewAndAccept"}));
    }
    if !h.locations.is_empty() {
        let places: Vec<_> = h.locations.iter().map(|c| json!({"Country": c})).collect();
        q.push(
            json!({"QualificationTypeId": qualification::LOCALE, "Comparator": "In",
                      "LocaleValues": places, "ActionsGuarded": "DiscoverPreviewAndAccept"}),
        );
    }
    if let Some(v) = h.min_hits_approved {
        q.push(compare(
            qualification::HITS_APPROVED,
            "GreaterThanOrEqualTo",
            v,
        ));
    }
    if let Some(v) = h.max_hits_approved {
        q.push(compare(
            qualification::HITS_APPROVED,
            "LessThanOrEqualTo",
            v,
        ));
    }
    if let Some(v) = h.min_approval_rate {
        q.push(compare(
            qualification::PERCENT_APPROVED,
            "GreaterThanOrEqualTo",
            v,
        ));
    }
    if let Some(v) = h.max_approval_rate {
        q.push(compare(
            qualification::PERCENT_APPROVED,
            "LessThanOrEqualTo",
            v,
        ));
    }
    q
}

/// A signed client for one endpoint and key pair.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    creds: Credentials,
}

impl Client {
    /// A client for `endpoint` (`https://mturk-requester.us-east-1.amazonaws.com`
    /// or another server that speaks the same protocol).
    pub fn new(endpoint: &str, region: &str, creds: Credentials) -> Result<Self, String> {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| format!("the Mechanical Turk endpoint {endpoint:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the Mechanical Turk endpoint {endpoint:?} must be http or https"
            ));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(format!(
                    "the Mechanical Turk endpoint {endpoint:?} has no host"
                ));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("making the HTTP client: {e}"))?;
        Ok(Self {
            http,
            endpoint: format!("{}/", endpoint.trim_end_matches('/')),
            host,
            region: region.to_owned(),
            creds,
        })
    }

    /// Calls `operation` with `body`, returning the answer's JSON.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, MturkError> {
        let body = body.to_string();
        let target = format!("{TARGET_PREFIX}.{operation}");
        let date = sigv4::amz_date(time::OffsetDateTime::now_utc());
        let auth = sigv4::authorization(
            &self.creds,
            &self.region,
            SERVICE,
            &sigv4::Request {
                host: &self.host,
                content_type: CONTENT_TYPE,
                target: &target,
                amz_date: &date,
                body: body.as_bytes(),
            },
        );
        let transport = |message: String| MturkError::Transport {
            operation: operation.to_owned(),
            message,
        };
        let response = self
            .http
            .post(&self.endpoint)
            .header("Content-Type", CONTENT_TYPE)
            .header("X-Amz-Target", &target)
            .header("X-Amz-Date", &date)
            .header("Authorization", auth)
            .body(body)
            .send()
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| transport(e.to_string()))?;
        let value: Value = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text)
                .map_err(|e| transport(format!("an answer that is not JSON ({status}): {e}")))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let kind = value
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let message = value
            .get("Message")
            .or_else(|| value.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned();
        Err(MturkError::Service {
            operation: operation.to_owned(),
            kind,
            message,
            status: status.as_u16(),
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(operation: &str, v: Value) -> Result<T, MturkError> {
        serde_json::from_value(v).map_err(|e| MturkError::Transport {
            operation: operation.to_owned(),
            message: format!("an answer of an unexpected shape: {e}"),
        })
    }

    /// The account's available balance in dollars (a cheap check that the
    /// keys work).
    pub async fn balance(&self) -> Result<String, MturkError> {
        let v = self.call("GetAccountBalance", &json!({})).await?;
        Ok(v.get("AvailableBalance")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Posts a HIT. A HIT already made with the same token is returned
    /// instead of a second one.
    pub async fn create_hit(&self, new: &NewHit) -> Result<String, MturkError> {
        let body = json!({
            "Title": new.title,
            "Description": new.description,
            "Keywords": new.keywords,
            "Reward": new.reward,
            "MaxAssignments": new.max_assignments,
            "LifetimeInSeconds": new.lifetime_secs,
            "AssignmentDurationInSeconds": new.assignment_secs,
            "AutoApprovalDelayInSeconds": new.auto_approval_secs,
            "Question": new.question,
            "RequesterAnnotation": new.annotation,
            "UniqueRequestToken": new.token,
        });
        let mut body = body;
        if !new.qualifications.is_empty() {
            body["QualificationRequirements"] = json!(new.qualifications);
        }
        match self.call("CreateHIT", &body).await {
            Ok(v) => {
                #[derive(Deserialize)]
                struct Created {
                    #[serde(rename = "HIT")]
                    hit: Hit,
                }
                Ok(Self::parse::<Created>("CreateHIT", v)?.hit.hit_id)
            }
            Err(e) => e.existing_hit().ok_or(e),
        }
    }

    /// Every submitted, approved or rejected answer of a HIT, all pages.
    pub async fn assignments(&self, hit: &str) -> Result<Vec<MturkAssignment>, MturkError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page {
            #[serde(default)]
            next_token: Option<String>,
            #[serde(default)]
            assignments: Vec<MturkAssignment>,
        }
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({
                "HITId": hit,
                "MaxResults": 100,
                "AssignmentStatuses": ["Submitted", "Approved", "Rejected"],
            });
            if let Some(t) = &next {
                body["NextToken"] = Value::from(t.as_str());
            }
            let page: Page = Self::parse(
                "ListAssignmentsForHIT",
                self.call("ListAssignmentsForHIT", &body).await?,
            )?;
            let empty = page.assignments.is_empty();
            all.extend(page.assignments);
            match page.next_token {
                Some(t) if !empty && next.as_deref() != Some(t.as_str()) => next = Some(t),
                _ => return Ok(all),
            }
        }
    }

    /// Approves (pays for) an answer.
    pub async fn approve(&self, assignment: &str) -> Result<(), MturkError> {
        self.call(
            "ApproveAssignment",
            &json!({"AssignmentId": assignment, "RequesterFeedback": "Thank you."}),
        )
        .await
        .map(drop)
    }

    /// Rejects an answer with a reason the worker sees.
    pub async fn reject(&self, assignment: &str, reason: &str) -> Result<(), MturkError> {
        self.call(
            "RejectAssignment",
            &json!({"AssignmentId": assignment, "RequesterFeedback": reason}),
        )
        .await
        .map(drop)
    }

    /// Asks a HIT for `more` answers (idempotent by `token`).
    pub async fn add_assignments(
        &self,
        hit: &str,
        more: u32,
        token: &str,
    ) -> Result<(), MturkError> {
        self.call(
            "CreateAdditionalAssignmentsForHIT",
            &json!({
                "HITId": hit,
                "NumberOfAdditionalAssignments": more,
                "UniqueRequestToken": token,
            }),
        )
        .await
        .map(drop)
    }

    /// Takes a HIT off the list at once (answers already given stay).
    pub async fn expire(&self, hit: &str) -> Result<(), MturkError> {
        self.call(
            "UpdateExpirationForHIT",
            &json!({"HITId": hit, "ExpireAt": 0}),
        )
        .await
        .map(drop)
    }

    /// A HIT by id.
    pub async fn get_hit(&self, hit: &str) -> Result<Hit, MturkError> {
        #[derive(Deserialize)]
        struct Got {
            #[serde(rename = "HIT")]
            hit: Hit,
        }
        Ok(Self::parse::<Got>("GetHIT", self.call("GetHIT", &json!({"HITId": hit})).await?)?.hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_named_in_an_already_exists_error_is_found() {
        let e = MturkError::Service {
            operation: "CreateHIT".into(),
            kind: "RequestError".into(),
            message: "The HIT with ID \"3AB7C9DEF0GHIJ1KLMN2OPQ3RS\" already exists. \
                      (AWS.MechanicalTurk.HitAlreadyExists)"
                .into(),
            status: 400,
        };
        assert_eq!(
            e.existing_hit().as_deref(),
            Some("3AB7C9DEF0GHIJ1KLMN2OPQ3RS")
        );
        let other = MturkError::Service {
            operation: "CreateHIT".into(),
            kind: "RequestError".into(),
            message: "Reward is too small".into(),
            status: 400,
        };
        assert_eq!(other.existing_hit(), None);
    }
}
