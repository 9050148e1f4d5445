//! Short-lived caches of what nearly every request looks up: the user
//! behind a token, a job, a member's role. Entries live one second, so a
//! worker answering many tasks a second costs the database one look-up of
//! each per second instead of one per request.
//!
//! Changes made through this process drop the affected entries at once
//! (revoking a token, disabling a user, changing a member or a job). Changes
//! made by another process sharing the database take effect here within
//! the time-to-live.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tutti_domain::ids::{JobId, UserId, WorkspaceId};
use tutti_domain::role::Role;
use tutti_store::{Job, User};

/// How long an entry is trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept per map before it is emptied.
const MAX_ENTRIES: usize = 100_000;

/// A map whose entries expire.
pub struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Default for TtlMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value, if fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.lock();
        map.get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    /// Stores a value.
    pub fn put(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Forgets one key.
    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// The caches of one server.
#[derive(Default)]
pub struct Caches {
    /// Token hash to its user.
    pub tokens: TtlMap<String, User>,
    /// Job id to job.
    pub jobs: TtlMap<JobId, Job>,
    /// (workspace, user) to role, `None` for non-members.
    pub roles: TtlMap<(WorkspaceId, UserId), Option<Role>>,
    /// Sign-in limits per address and per name.
    pub logins: crate::auth::SignInLimits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_returned_until_removed() {
        let m: TtlMap<u32, &str> = TtlMap::default();
        m.put(1, "a");
        assert_eq!(m.get(&1), Some("a"));
        m.remove(&1);
        assert_eq!(m.get(&1), None);
        m.put(2, "b");
        m.clear();
        assert_eq!(m.get(&2), None);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let m: TtlMap<u32, &str> = TtlMap::default();
        m.lock()
            .insert(1, (Instant::now() - TTL - Duration::from_millis(1), "old"));
        assert_eq!(m.get(&1), None);
    }
}
