//! Tutti's workflow engine: what runs a workflow's operators over tables.
//!
//! - [`table`]: a table of rows, as operators pass them on.
//! - [`ops`]: the automatic table operators (`read_table`, `sample_random`,
//!   `write_table`).
//! - [`sql`]: a workflow's `exec_sql`/`sql` step, run in a sandbox that
//!   sees only the step's input tables, cannot write, attach or load
//!   anything, and stops at a time limit.
#![deny(missing_docs)]

pub mod ops;
pub mod sql;
pub mod table;
