//! Who is calling, and what they may do.
//!
//! API calls carry `Authorization: Bearer <token>`. A token is 32 random
//! bytes shown once at creation; the store keeps only its SHA-256, which is
//! enough for a secret of that strength and cheap to check on every call.
//! The web pages use the same tokens, kept in an HttpOnly, SameSite=Strict
//! cookie; the API ignores cookies.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tutti_domain::ids::{JobId, WorkspaceId};
use tutti_domain::role::Role;
use tutti_store::{Job, User};

/// Prefix of every token, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "tutti_";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A new random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The CSRF value of forms for a signed-in token: derived from the secret,
/// so it cannot be guessed by another site and needs no storage.
pub fn csrf_for(token: &str) -> String {
    hex(&Sha256::digest(format!("csrf:{token}").as_bytes()))[..32].to_owned()
}

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 10;
/// Longest accepted password (bounds the hashing work one request can ask).
pub const MAX_PASSWORD: usize = 256;

/// Checks a new password's length; the field named is `field`.
pub fn check_new_password(field: &str, password: &str) -> Result<(), ApiError> {
    let problem = if password.chars().count() < MIN_PASSWORD {
        format!("use at least {MIN_PASSWORD} characters")
    } else if password.len() > MAX_PASSWORD {
        format!("use at most {MAX_PASSWORD} bytes")
    } else {
        return Ok(());
    };
    Err(tutti_domain::FieldError::new(field, problem).into())
}

/// An argon2id hash of `password` in PHC form, with a random salt. Slow on
/// purpose (tens of milliseconds), so it runs off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("password hashing task: {e}")))?
    .map_err(ApiError::internal)
}

/// A PHC hash no password matches, verified when the name is unknown so an
/// unknown name takes as long to refuse as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$zw5QDrtZbwn0I1vB6QGp0L1HbO0j2vKpJXHqL6dkF2Y";

/// Whether `password` matches the stored hash (or, for `None`, spends the
/// same time and says no).
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("send your API token as Authorization: Bearer <token>")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <token>")
            })?;
        authenticate(state, token).await.map(Caller)
    }
}

/// The user a token belongs to, or 401.
pub async fn authenticate(state: &AppState, token: &str) -> Result<User, ApiError> {
    let hash = token_hash(token);
    if let Some(user) = state.caches.tokens.get(&hash) {
        return Ok(user);
    }
    let user = state
        .store
        .authenticate(&hash, tutti_store::now())
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("the token is unknown, revoked, or its user is disabled")
        })?;
    state.caches.tokens.put(hash, user.clone());
    Ok(user)
}

impl Caller {
    /// Whether the caller administers the installation.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// 403 unless the caller is an installation admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an admin may do this"))
        }
    }

    /// The caller's role in a workspace; installation admins act as its
    /// admins. Non-members get 404, so workspaces stay invisible to outsiders.
    pub async fn role_in(&self, state: &AppState, ws: WorkspaceId) -> Result<Role, ApiError> {
        if self.is_admin() {
            return match state.store.get_workspace(ws).await? {
                Some(_) => Ok(Role::Admin),
                None => Err(ApiError::not_found("workspace")),
            };
        }
        let key = (ws, self.0.id);
        let role = match state.caches.roles.get(&key) {
            Some(role) => role,
            None => {
                let role = state.store.role_in(ws, self.0.id).await?;
                state.caches.roles.put(key, role);
                role
            }
        };
        role.ok_or_else(|| ApiError::not_found("workspace"))
    }

    /// A job the caller belongs to, with their role; 404 for outsiders and
    /// 403 when `manage` is asked of a worker or steward.
    pub async fn job(
        &self,
        state: &AppState,
        id: JobId,
        manage: bool,
    ) -> Result<(Job, Role), ApiError> {
        let job = match state.caches.jobs.get(&id) {
            Some(job) => job,
            None => {
                let job = state
                    .store
                    .get_job(id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("job"))?;
                state.caches.jobs.put(id, job.clone());
                job
            }
        };
        let role = self
            .role_in(state, job.workspace_id)
            .await
            .map_err(|_| ApiError::not_found("job"))?;
        if manage && !role.manages_jobs() {
            return Err(ApiError::forbidden(format!(
                "your role in this workspace is {role}; only its admins and requesters manage jobs"
            )));
        }
        Ok((job, role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = new_token();
        let b = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_stable_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(h.clone())).await);
        assert!(!verify_password("correct horse battery".into(), None).await);
        assert!(!verify_password("x".into(), Some("not a hash".into())).await);
        let again = hash_password("correct horse battery".into()).await.unwrap();
        assert_ne!(h, again, "salts are random");
    }

    #[test]
    fn short_and_huge_passwords_are_refused_by_field() {
        let e = check_new_password("password", "short").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("password"));
        assert!(check_new_password("password", &"x".repeat(300)).is_err());
        assert!(check_new_password("password", "long enough now").is_ok());
    }

    #[test]
    fn csrf_values_differ_per_token() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 32);
    }
}
