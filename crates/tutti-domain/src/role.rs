//! Roles. A user has an account role (what they may do across the
//! installation) and a role in each workspace they belong to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role, ordered from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, tokens and every workspace (account role), or a
    /// workspace's members and settings (workspace role).
    Admin,
    /// Creates workspaces and jobs, imports items, reads results.
    Requester,
    /// An expert whose answers are counted apart from the workers' under a
    /// steward policy; otherwise works like a worker.
    Steward,
    /// Answers tasks.
    Worker,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Requester, Role::Steward, Role::Worker];

    /// The lowercase name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Requester => "requester",
            Role::Steward => "steward",
            Role::Worker => "worker",
        }
    }

    /// Whether this workspace role may create and manage jobs and read results.
    pub fn manages_jobs(self) -> bool {
        matches!(self, Role::Admin | Role::Requester)
    }

    /// Whether this workspace role may answer tasks.
    pub fn answers_tasks(self) -> bool {
        // Requesters and admins may try their own jobs; that is how people
        // check a job before inviting workers.
        true
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the four roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected one of admin, requester, steward, worker")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_parses_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn an_unknown_role_is_refused_with_the_choices() {
        let err = "boss".parse::<Role>().unwrap_err();
        assert!(
            err.to_string()
                .contains("admin, requester, steward, worker")
        );
    }
}
