//! Tutti's workflow engine: what runs a workflow's operators over tables.
//!
//! - [`table`]: a table of rows, as operators pass them on.
//! - [`ops`]: the automatic table operators (`read_table`, `sample_random`,
//!   `write_table`).
//! - [`rundata`]: a run's tables in one SQLite file per run, each step's
//!   output committed with its ledger entry in one transaction.
//! - [`runner`]: the background runner that moves every unfinished run
//!   on, makes a job of each human step and announces finished runs.
//! - [`bulk`]: bulk labeling, a pattern file over millions of rows with
//!   reading, matching and writing on their own threads, checkpointed.
//! - [`extdb`]: outside databases (PostgreSQL, MySQL/MariaDB, SQLite) read
//!   and written by name.
//! - [`model`]: `model_call`, batches sent to an HTTP model service.
//! - [`mturk`]: the Mechanical Turk connector that answers `3a_amt` steps.
//! - [`hmac`]: the signature on announcements.
//! - [`sql`]: a workflow's `exec_sql`/`sql` step, run in a sandbox that
//!   sees only the step's input tables, cannot write, attach or load
//!   anything, and stops at a time limit.
#![deny(missing_docs)]

pub mod bulk;
pub mod extdb;
pub mod hmac;
pub mod model;
pub mod mturk;
pub mod ops;
pub mod outbound;
pub mod rundata;
pub mod runner;
pub mod sql;
pub mod table;
