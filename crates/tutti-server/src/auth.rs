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

/// The CSRF value of a form posting to `path` for a signed-in token:
/// derived from the secret, so another site cannot guess it and nothing is
/// stored, and bound to the route, so a value taken from one form is good
/// for that form's action only.
pub fn csrf_for(token: &str, path: &str) -> String {
    hex(&Sha256::digest(format!("csrf:{path}:{token}").as_bytes()))[..32].to_owned()
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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
/// purpose (tens of milliseconds), so it runs off the async threads, a
/// bounded number at once.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    hashing(move || {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
    .map_err(ApiError::internal)
}

/// A PHC hash no password matches, verified when the name is unknown so an
/// unknown name takes as long to refuse as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$zw5QDrtZbwn0I1vB6QGp0L1HbO0j2vKpJXHqL6dkF2Y";

/// Whether `password` matches the stored hash (or, for `None`, spends the
/// same time and says no); 503 when too many hashes wait already.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    hashing(move || {
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
        assert!(
            verify_password("correct horse battery".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("correct horse battery".into(), None)
                .await
                .unwrap()
        );
        assert!(
            !verify_password("x".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
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
    fn csrf_values_differ_per_token_and_per_route() {
        assert_ne!(csrf_for("a", "/x"), csrf_for("b", "/x"));
        assert_ne!(
            csrf_for("a", "/work/1/assignments/2"),
            csrf_for("a", "/admin/users")
        );
        assert_eq!(csrf_for("a", "/x").len(), 32);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}

/// Password hashes computed at once: about the cores. Each takes 19 MiB
/// and tens of milliseconds, so an unbounded number of sign-ins would eat
/// the memory and the CPU of the whole server.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});
/// Sign-ins waiting for a hashing slot beyond which more are turned away.
const MAX_HASH_QUEUE: usize = 64;
static HASH_QUEUE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `work` (a password hash) when a hashing slot is free; 503 when
/// too many are waiting already.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    use std::sync::atomic::Ordering;
    if HASH_QUEUE.fetch_add(1, Ordering::SeqCst) >= MAX_HASH_QUEUE {
        HASH_QUEUE.fetch_sub(1, Ordering::SeqCst);
        return Err(busy());
    }
    let permit = HASHING.acquire().await;
    HASH_QUEUE.fetch_sub(1, Ordering::SeqCst);
    let _permit = permit.map_err(|_| busy())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("password hashing task: {e}")))
}

fn busy() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many sign-ins at once; try again in a few seconds",
    )
}

/// Sign-in limits of one server: per address, and per name and address.
///
/// - An address may try [`PER_ADDRESS`] sign-ins a minute (refilled
///   evenly), which slows guessing over many names.
/// - A name tried from one address may fail [`FREE_FAILURES`] times; after
///   that each try waits twice as long as the last, up to
///   [`LONGEST_WAIT`]. The wait is per address, so a stranger failing for
///   a name does not keep its owner out.
///
/// The maps are bounded: past [`MAX_ENTRIES`] the stalest entries go.
#[derive(Default)]
pub struct SignInLimits {
    addresses:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (f64, std::time::Instant)>>,
    failures: std::sync::Mutex<std::collections::HashMap<NameFrom, (u32, std::time::Instant)>>,
}

/// A name tried from an address.
type NameFrom = (String, Option<std::net::IpAddr>);

/// Sign-ins an address may try per minute.
pub const PER_ADDRESS: f64 = 30.0;
/// Failures for a name from one address before each try waits.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between tries after failures.
pub const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
const MAX_ENTRIES: usize = 10_000;

impl SignInLimits {
    /// Takes one try for `address`; `Err(seconds)` to wait when it has
    /// none left.
    pub fn take(&self, address: Option<std::net::IpAddr>) -> Result<(), u64> {
        let Some(ip) = address else { return Ok(()) };
        let now = std::time::Instant::now();
        let mut map = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = map.entry(ip).or_insert((PER_ADDRESS, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * PER_ADDRESS / 60.0).min(PER_ADDRESS);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * 60.0 / PER_ADDRESS).ceil() as u64)
        }
    }

    /// `Err(seconds)` while `name` from `address` must wait after failures.
    pub fn wait(&self, name: &str, address: Option<std::net::IpAddr>) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&(name.to_owned(), address)) {
            Some((n, at)) if *n >= FREE_FAILURES => {
                let wait = Self::backoff(*n);
                let passed = at.elapsed();
                if passed < wait {
                    Err(((wait - passed).as_secs_f64().ceil() as u64).max(1))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The wait after `failures` failures.
    pub fn backoff(failures: u32) -> std::time::Duration {
        let doublings = failures.saturating_sub(FREE_FAILURES).min(20);
        std::time::Duration::from_secs(1u64 << doublings).min(LONGEST_WAIT)
    }

    /// Counts a failure for `name` from `address`.
    pub fn failed(&self, name: &str, address: Option<std::net::IpAddr>) {
        let now = std::time::Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| now.duration_since(*at) < LONGEST_WAIT);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let e = map.entry((name.to_owned(), address)).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }

    /// Forgets the failures of `name` from `address` (it signed in).
    pub fn succeeded(&self, name: &str, address: Option<std::net::IpAddr>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_owned(), address));
    }
}

/// The address a request came from, where the server knows it.
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn failures_from_one_address_do_not_make_another_wait() {
        let l = SignInLimits::default();
        let stranger = Some(std::net::IpAddr::from([10, 0, 0, 9]));
        let owner = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        for _ in 0..FREE_FAILURES {
            assert!(l.wait("ann", stranger).is_ok());
            l.failed("ann", stranger);
        }
        assert!(l.wait("ann", stranger).is_err());
        assert!(l.wait("ann", owner).is_ok());
        l.succeeded("ann", stranger);
        assert!(l.wait("ann", stranger).is_ok());
    }

    #[test]
    fn waits_double_up_to_the_longest() {
        assert_eq!(
            SignInLimits::backoff(FREE_FAILURES),
            std::time::Duration::from_secs(1)
        );
        assert_eq!(
            SignInLimits::backoff(FREE_FAILURES + 3),
            std::time::Duration::from_secs(8)
        );
        assert_eq!(SignInLimits::backoff(1000), LONGEST_WAIT);
    }

    #[test]
    fn an_address_runs_out_of_tries_and_is_told_how_long_to_wait() {
        let l = SignInLimits::default();
        let ip = Some(std::net::IpAddr::from([10, 0, 0, 2]));
        for _ in 0..PER_ADDRESS as u32 {
            assert!(l.take(ip).is_ok());
        }
        let wait = l.take(ip).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(l.take(Some(std::net::IpAddr::from([10, 0, 0, 3]))).is_ok());
    }
}
