//! Rule labeling: a pattern file maps patterns to labels (panels such as
//! `/female`, `/male`), and a [`Matcher`] finds, in one pass over a text,
//! every label whose patterns occur in it.
//!
//! - [`patterns`]: the pattern file (CSV or TSV, header `label,pattern[,kind]`),
//!   checked whole with line numbers in every error.
//! - [`matcher`]: literal keywords through one Aho-Corasick automaton
//!   (leftmost-longest, case and width folded, optionally whole words only),
//!   regular expressions beside it.
//! - `table`: that automaton as a compact table, for sets of everyday size
//!   (the `aho-corasick` crate's serves larger ones).
//!
//! No I/O here: the engine and the command line feed rows in and write the
//! labels out.
#![deny(missing_docs)]

pub mod matcher;
pub mod patterns;
mod table;

pub use matcher::{Hit, Matcher, MatcherOptions};
pub use patterns::{Kind, Pattern, PatternError, PatternSet};
