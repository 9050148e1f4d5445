//! Typed identifiers. Every stored thing has a 64-bit id; the newtypes keep a
//! job id from being passed where a task id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type! {
    /// A user account.
    UserId,
    /// An API token.
    TokenId,
    /// A workspace, the boundary of a team's data.
    WorkspaceId,
    /// A human labeling job.
    JobId,
    /// One row of a job to be judged.
    TaskId,
    /// One lease of a task to one person, and its answer.
    AssignmentId,
    /// One run of a workflow.
    RunId,
}
