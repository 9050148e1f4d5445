//! Tutti's domain: the types every other crate agrees on, parsed once at the
//! edge so that inner code never sees an invalid value.
//!
//! - [`ids`]: typed identifiers of the stored things.
//! - [`role`]: who a user is inside a workspace and what that allows.
//! - [`job`]: a human labeling job (question, answers, instructions,
//!   layout) and the answer check.
//! - [`policy`]: when a task's answers make a label (k-of-n agreement and the
//!   steward l-of-m variant) and how many more people a task may be leased to.
//! - [`time`]: instants in milliseconds, shown as RFC 3339.
//! - [`template`]: `${column}` placeholders filled from a row.
//! - [`search`]: the terms of a results search.
//! - [`workflow`]: workflows as Cymphony `.cy` programs or JSON specs,
//!   compiled to one checked form.
//!
//! Nothing here performs I/O; time comes in as milliseconds since the epoch.
#![deny(missing_docs)]

pub mod error;
pub mod ids;
pub mod job;
pub mod policy;
pub mod role;
pub mod search;
pub mod template;
pub mod time;
pub mod workflow;

pub use error::FieldError;
