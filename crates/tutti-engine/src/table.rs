//! A table as operators pass it on: named columns and rows of JSON values
//! (null, booleans, numbers, strings).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Named columns and rows of values, each row as long as the columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// A table of these columns and rows; a row of the wrong length is
    /// refused with its index.
    pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Result<Self, usize> {
        if let Some(bad) = rows.iter().position(|r| r.len() != columns.len()) {
            return Err(bad);
        }
        Ok(Self { columns, rows })
    }

    /// The values of one column, if there is such a column.
    pub fn column(&self, name: &str) -> Option<impl Iterator<Item = &Value>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(move |r| &r[i]))
    }
}
