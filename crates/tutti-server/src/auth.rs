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
    let user = state.store.authenticate(&hash).await?.ok_or_else(|| {
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

    #[test]
    fn csrf_values_differ_per_token() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 32);
    }
}
