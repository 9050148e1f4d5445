//! AWS Signature Version 4 for the JSON POST requests Mechanical Turk
//! takes: the canonical request (method, path `/`, no query, the signed
//! headers, the body's SHA-256), the string to sign, and the signing key
//! derived from the secret by date, region and service. [`verify`] is the
//! receiving side, used by the local Mechanical Turk server.

use crate::hmac::{hex, mac};
use sha2::{Digest as _, Sha256};

/// The algorithm name in the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The headers every request signs, in canonical (sorted) order.
pub const SIGNED_HEADERS: &str = "content-type;host;x-amz-date;x-amz-target";

/// An access key pair.
#[derive(Clone)]
pub struct Credentials {
    /// The public key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret; never logged.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .finish()
    }
}

/// What a request signs over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Host` header as sent (with the port when it is not the default).
    pub host: &'a str,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `X-Amz-Target`, the operation.
    pub target: &'a str,
    /// `X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// The time as `X-Amz-Date` writes it.
pub fn amz_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn signature(secret: &str, region: &str, service: &str, req: &Request<'_>) -> String {
    let date = req.amz_date.get(..8).unwrap_or(req.amz_date);
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\nx-amz-date:{}\nx-amz-target:{}\n\n{SIGNED_HEADERS}\n{}",
        req.content_type.trim(),
        req.host.trim(),
        req.amz_date,
        req.target.trim(),
        sha256_hex(req.body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        req.amz_date,
        sha256_hex(canonical.as_bytes())
    );
    let k_date = mac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = mac(&k_date, region.as_bytes());
    let k_service = mac(&k_region, service.as_bytes());
    let k_signing = mac(&k_service, b"aws4_request");
    hex(&mac(&k_signing, to_sign.as_bytes()))
}

/// The `Authorization` header for `req`.
pub fn authorization(
    creds: &Credentials,
    region: &str,
    service: &str,
    req: &Request<'_>,
) -> String {
    let date = req.amz_date.get(..8).unwrap_or(req.amz_date);
    format!(
        "{ALGORITHM} Credential={}/{date}/{region}/{service}/aws4_request, \
         SignedHeaders={SIGNED_HEADERS}, Signature={}",
        creds.access_key_id,
        signature(&creds.secret_access_key, region, service, req)
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The header is missing or not SigV4.
    Malformed(String),
    /// The key id is not the one the receiver knows.
    UnknownKey,
    /// The signature does not match.
    Mismatch,
}

/// Checks an `Authorization` header against `req`, for a receiver that
/// knows one key pair. The credential scope's region and service are the
/// ones signed with; they must match what the receiver expects.
pub fn verify(
    header: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    req: &Request<'_>,
) -> Result<(), Refused> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| Refused::Malformed(format!("the algorithm is not {ALGORITHM}")))?;
    let mut credential = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(sig)) = (credential, signed, sig) else {
        return Err(Refused::Malformed(
            "Credential, SignedHeaders and Signature are all required".into(),
        ));
    };
    let mut scope = credential.split('/');
    let key = scope.next().unwrap_or_default();
    if key != creds.access_key_id {
        return Err(Refused::UnknownKey);
    }
    let (date, reg, svc, term) = (scope.next(), scope.next(), scope.next(), scope.next());
    if date != req.amz_date.get(..8)
        || reg != Some(region)
        || svc != Some(service)
        || term != Some("aws4_request")
    {
        return Err(Refused::Malformed(format!(
            "the credential scope must be <date>/{region}/{service}/aws4_request for the request's date"
        )));
    }
    if signed != SIGNED_HEADERS {
        return Err(Refused::Malformed(format!(
            "the signed headers must be {SIGNED_HEADERS}"
        )));
    }
    let expected = signature(&creds.secret_access_key, region, service, req);
    // Compared without an early exit, so timing tells nothing.
    let same = expected.len() == sig.len()
        && expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same { Ok(()) } else { Err(Refused::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    const REQUEST: Request<'static> = Request {
        host: "mturk-requester-sandbox.us-east-1.amazonaws.com",
        content_type: "application/x-amz-json-1.1",
        target: "MTurkRequesterServiceV20170117.ListHITs",
        amz_date: "20261123T113354Z",
        body: br#"{"MaxResults":10}"#,
    };

    #[test]
    fn a_signature_matches_the_one_botocore_computes_for_the_same_request() {
        // botocore 1.43's SigV4Auth over this request, key and time.
        assert_eq!(
            authorization(&example(), "us-east-1", "mturk-requester", &REQUEST),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/mturk-requester/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=beb620f0e46e5fdcb3b54020fb9649c99f6e1c21aac7bcfe103536fd9b7fb294"
        );
    }

    #[test]
    fn verify_accepts_a_good_signature_and_refuses_a_changed_body_or_key() {
        let creds = example();
        let header = authorization(&creds, "us-east-1", "mturk-requester", &REQUEST);
        assert_eq!(
            verify(&header, &creds, "us-east-1", "mturk-requester", &REQUEST),
            Ok(())
        );
        let changed = Request {
            body: br#"{"MaxResults":11}"#,
            ..REQUEST
        };
        assert_eq!(
            verify(&header, &creds, "us-east-1", "mturk-requester", &changed),
            Err(Refused::Mismatch)
        );
        let other = Credentials {
            access_key_id: "AKIDOTHER".into(),
            ..creds.clone()
        };
        assert_eq!(
            verify(&header, &other, "us-east-1", "mturk-requester", &REQUEST),
            Err(Refused::UnknownKey)
        );
        assert!(matches!(
            verify(
                "Basic abc",
                &creds,
                "us-east-1",
                "mturk-requester",
                &REQUEST
            ),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn amz_date_is_written_in_utc_without_separators() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_795_433_634).unwrap();
        let elsewhere = t.to_offset(time::UtcOffset::from_hms(1, 0, 0).unwrap());
        assert_eq!(amz_date(elsewhere), "20261123T113354Z");
    }
}
