//! The automatic table operators of a workflow: reading an uploaded CSV
//! (`read_table`), drawing a sample (`sample_random`) and writing a table
//! back out as CSV (`write_table`). Each is a pure function of its inputs,
//! so a step re-run after a crash gives the same table.

use crate::table::Table;
use serde_json::Value;

/// Why a file could not be read as a table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// The file has no header line.
    #[error("the file is empty; its first line must name the columns")]
    Empty,
    /// A column named twice, or `_id`, which the operator adds.
    #[error("column {0:?} {1}")]
    BadColumn(String, &'static str),
    /// A line that is not valid CSV or has the wrong number of fields.
    #[error("line {line}: {message}")]
    BadLine {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// The columns of a table read from a CSV header: `_id` first, then the
/// header's names (trimmed); `_id` or a name given twice is refused.
pub fn header_columns(headers: &csv::StringRecord) -> Result<Vec<String>, ReadError> {
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(ReadError::Empty);
    }
    let mut columns = vec!["_id".to_owned()];
    for h in headers {
        let h = h.trim();
        if h == "_id" {
            return Err(ReadError::BadColumn(
                h.into(),
                "is added by read_table; rename it",
            ));
        }
        if columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(h) || c.to_lowercase() == h.to_lowercase())
        {
            return Err(ReadError::BadColumn(
                h.into(),
                "is named twice (names do not tell case apart)",
            ));
        }
        columns.push(h.to_owned());
    }
    Ok(columns)
}

/// `read_table`: the rows of a CSV file (a header line first; UTF-8, a
/// byte-order mark and CRLF line ends tolerated) with an `_id` column
/// 1..N in front. Values are kept as text, as the file holds them.
pub fn read_csv(bytes: &[u8]) -> Result<Table, ReadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader.headers().map_err(|e| ReadError::BadLine {
        line: 1,
        message: e.to_string(),
    })?;
    let columns = header_columns(headers)?;
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| ReadError::BadLine {
            line: e.position().map_or(i as u64 + 2, |p| p.line()),
            message: match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => {
                    format!("{len} fields where the header has {expected_len}")
                }
                _ => e.to_string(),
            },
        })?;
        let mut row = Vec::with_capacity(columns.len());
        row.push(Value::from(rows.len() as u64 + 1));
        row.extend(rec.iter().map(|v| Value::String(v.to_owned())));
        rows.push(row);
    }
    Ok(Table { columns, rows })
}

/// `sample_random`: `n` rows drawn without replacement (all of them when
/// the table has no more), kept in their original order. The same seed
/// draws the same rows.
pub fn sample(table: &Table, n: u64, seed: u64) -> Table {
    Table {
        columns: table.columns.clone(),
        rows: sample_indices(table.rows.len(), n, seed)
            .into_iter()
            .map(|i| table.rows[i].clone())
            .collect(),
    }
}

/// The row positions `sample_random` draws from a table of `len` rows:
/// `n` of them (all when `len` is smaller), ascending. The same seed draws
/// the same positions.
pub fn sample_indices(len: usize, n: u64, seed: u64) -> Vec<usize> {
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(len);
    // A partial Fisher-Yates shuffle of the row indices, kept sparse so a
    // small sample of a large table costs little.
    let mut swapped: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut chosen = Vec::with_capacity(n);
    let mut state = seed;
    for i in 0..n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let j = i + (z % (len - i) as u64) as usize;
        let at_j = *swapped.get(&j).unwrap_or(&j);
        let at_i = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, at_i);
        chosen.push(at_j);
    }
    chosen.sort_unstable();
    chosen
}

/// `write_table`: the table as CSV with a header line; null is an empty
/// field, text is written as is, anything else as JSON.
pub fn write_csv(table: &Table) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(&table.columns);
    for row in &table.rows {
        let _ = w.write_record(row.iter().map(|v| match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_csv_becomes_a_table_with_ids_from_one() {
        let t = read_csv(b"\xEF\xBB\xBFname,city\r\nAda,\"London, UK\"\r\nBob,Paris\r\n").unwrap();
        assert_eq!(t.columns, ["_id", "name", "city"]);
        assert_eq!(
            t.rows,
            vec![
                vec![json!(1), json!("Ada"), json!("London, UK")],
                vec![json!(2), json!("Bob"), json!("Paris")]
            ]
        );
        assert_eq!(
            write_csv(&t),
            b"_id,name,city\n1,Ada,\"London, UK\"\n2,Bob,Paris\n"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert_eq!(read_csv(b""), Err(ReadError::Empty));
        assert!(
            matches!(read_csv(b"_id,name\n1,a\n"), Err(ReadError::BadColumn(c, _)) if c == "_id")
        );
        assert!(matches!(read_csv(b"a,a\n1,2\n"), Err(ReadError::BadColumn(c, _)) if c == "a"));
        match read_csv(b"a,b\n1,2\n3\n") {
            Err(ReadError::BadLine { line, message }) => {
                assert_eq!(line, 3);
                assert!(
                    message.contains("1 fields where the header has 2"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sample_is_repeatable_ordered_and_capped_by_the_table() {
        let rows = (1..=100).map(|i| vec![json!(i)]).collect();
        let t = Table::new(vec!["_id".into()], rows).unwrap();
        let a = sample(&t, 10, 7);
        assert_eq!(a.rows.len(), 10);
        assert_eq!(a, sample(&t, 10, 7), "the same seed draws the same rows");
        assert_ne!(a, sample(&t, 10, 8));
        let ids: Vec<i64> = a.rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(sample(&t, 1000, 1).rows.len(), 100);
    }
}
