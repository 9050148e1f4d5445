//! The Mechanical Turk crowd connector: how `3a_amt` steps get answered.
//!
//! A `3a_amt` step makes a job like `3a_kn` does, marked as answered by
//! Mechanical Turk; in-house workers are not offered it. The
//! [`connector::Connector`] then, every poll:
//!
//! 1. posts each open task of such a job as a HIT (an `HTMLQuestion` page
//!    with the job's instructions, the row and the answer options), asking
//!    first for `k` answers — the fewest that can agree;
//! 2. reads the HIT's submitted answers, enters each into the job as that
//!    worker's answer (a Tutti worker named `mturk:<WorkerId>`), so the
//!    job's k-of-n policy decides exactly as for in-house workers, and
//!    approves it (pays the worker); an answer outside the options is
//!    rejected with a reason;
//! 3. asks for one more answer while the task is undecided and fewer than
//!    `n` were asked for, and takes the HIT off the list once its task is
//!    decided.
//!
//! Every step is safe to repeat after a crash: the HIT's idempotency token
//! is stored before the HIT is asked for, an answer already counted is
//! recognised by its worker, and approving twice is harmless.
//!
//! - [`sigv4`]: request signing (and checking, for the local server).
//! - [`client`]: the typed operations over JSON 1.1.
//! - [`question`]: the HIT page and the parsing of answers.

pub mod client;
pub mod connector;
pub mod question;
pub mod sigv4;

use std::time::Duration;

/// The production endpoint.
pub const PRODUCTION: &str = "https://mturk-requester.us-east-1.amazonaws.com";
/// The sandbox endpoint, where nothing is paid.
pub const SANDBOX: &str = "https://mturk-requester-sandbox.us-east-1.amazonaws.com";

/// How the connector reaches Mechanical Turk and what it offers workers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The requester endpoint.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// The key pair.
    pub credentials: sigv4::Credentials,
    /// Reward per answer in US dollars, as Mechanical Turk writes it.
    pub reward: String,
    /// How long a HIT stays listed.
    pub lifetime: Duration,
    /// After how long Mechanical Turk approves an answer by itself.
    pub auto_approval: Duration,
    /// Where the HIT page's form posts when Mechanical Turk does not say.
    pub submit_url: String,
    /// How often HITs are posted and answers read.
    pub poll: Duration,
}

impl Settings {
    /// Settings for `endpoint` (`sandbox`, `production` or a URL) with the
    /// given keys and reward; the rest take their defaults (a HIT listed
    /// for 3 days, approved by itself after 3 days, a poll every 30 s).
    pub fn new(
        endpoint: &str,
        access_key_id: &str,
        secret_access_key: &str,
        reward: &str,
    ) -> Result<Self, String> {
        let (url, submit) = match endpoint.trim() {
            "sandbox" => (
                SANDBOX.to_owned(),
                "https://workersandbox.mturk.com/mturk/externalSubmit".to_owned(),
            ),
            "production" => (
                PRODUCTION.to_owned(),
                "https://www.mturk.com/mturk/externalSubmit".to_owned(),
            ),
            other if other.starts_with("http://") || other.starts_with("https://") => {
                let base = other.trim_end_matches('/').to_owned();
                let submit = format!("{base}/mturk/externalSubmit");
                (base, submit)
            }
            other => {
                return Err(format!(
                    "the Mechanical Turk endpoint {other:?} is not sandbox, production or an http(s) URL"
                ));
            }
        };
        if access_key_id.trim().is_empty() || secret_access_key.trim().is_empty() {
            return Err(
                "Mechanical Turk needs an access key id and a secret access key \
                 (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .into(),
            );
        }
        Ok(Self {
            endpoint: url,
            region: "us-east-1".into(),
            credentials: sigv4::Credentials {
                access_key_id: access_key_id.trim().to_owned(),
                secret_access_key: secret_access_key.trim().to_owned(),
            },
            reward: parse_reward(reward)?,
            lifetime: Duration::from_secs(3 * 24 * 3600),
            auto_approval: Duration::from_secs(3 * 24 * 3600),
            submit_url: submit,
            poll: Duration::from_secs(30),
        })
    }
}

/// Checks a reward in dollars: digits with at most two decimals, at least
/// one cent (Mechanical Turk's minimum) and at most 100 dollars.
pub fn parse_reward(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad =
        || format!("the reward {s:?} must be dollars with at most two decimals, such as 0.05");
    let (whole, cents) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || cents.len() > 2
        || !cents.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 3
    {
        return Err(bad());
    }
    let total: u64 = whole.parse::<u64>().map_err(|_| bad())? * 100
        + format!("{cents:0<2}").parse::<u64>().map_err(|_| bad())?;
    if total < 1 {
        return Err(format!("the reward {s:?} must be at least 0.01 dollars"));
    }
    if total > 10_000 {
        return Err(format!("the reward {s:?} must be at most 100.00 dollars"));
    }
    Ok(format!("{}.{:02}", total / 100, total % 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_written_with_two_decimals_and_bad_ones_are_refused() {
        assert_eq!(parse_reward("0.05").unwrap(), "0.05");
        assert_eq!(parse_reward("1").unwrap(), "1.00");
        assert_eq!(parse_reward(" 2.5 ").unwrap(), "2.50");
        for bad in ["", "0", "0.00", "-1", "0.055", "abc", "1e3", "1000", ".5"] {
            assert!(parse_reward(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn endpoints_are_named_or_given_as_urls() {
        let s = Settings::new("sandbox", "AKID", "secret", "0.05").unwrap();
        assert_eq!(s.endpoint, SANDBOX);
        assert!(s.submit_url.starts_with("https://workersandbox.mturk.com"));
        let s = Settings::new("http://127.0.0.1:9000/", "AKID", "secret", "0.05").unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:9000");
        assert_eq!(s.submit_url, "http://127.0.0.1:9000/mturk/externalSubmit");
        assert!(Settings::new("mturk", "AKID", "secret", "0.05").is_err());
        assert!(Settings::new("sandbox", "", "secret", "0.05").is_err());
        let debug = format!(
            "{:?}",
            Settings::new("sandbox", "AKID", "hunter2", "0.05").unwrap()
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
