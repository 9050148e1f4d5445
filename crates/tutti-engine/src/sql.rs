//! User SQL in a sandbox: a workflow's `exec_sql` (or `sql`) step.
//!
//! The query runs in a fresh in-memory SQLite database that holds only the
//! step's input tables, named by their variables, so it cannot see another
//! run's tables, another workspace's, or the store's own. Before anything
//! runs, the text is checked: exactly one statement, a `SELECT` (or `WITH …
//! SELECT`, or `VALUES`), no `ATTACH`, `PRAGMA`, data-changing statements,
//! `load_extension`, or the catalogs (`sqlite_master` and other `sqlite_*`
//! names, `pragma_*` functions, `pg_catalog`, `information_schema`). The
//! database is then made read-only (`PRAGMA query_only`), and a progress
//! handler stops the query at the time limit. (Cymphony ran such SQL
//! against its own database unchecked.) The dialect is SQLite's whichever
//! store a deployment uses, so a workflow runs the same on both.

use crate::table::Table;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    Column as _, ConnectOptions as _, Connection as _, Executor as _, SqlSafeStr as _,
    Statement as _,
};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

/// Rows inserted per statement while loading the inputs.
const LOAD_BATCH: usize = 200;

/// How far a query may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Longest a query may run.
    pub time: Duration,
    /// Most rows it may return.
    pub max_rows: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(30),
            max_rows: 10_000_000,
        }
    }
}

/// Why a query was refused or failed; every message is for the person who
/// wrote the query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqlError {
    /// Not a `SELECT`.
    #[error("only a SELECT (or WITH … SELECT, or VALUES) may run here; this query starts with {0}")]
    NotASelect(String),
    /// More than one statement.
    #[error("the query holds more than one statement; a step runs exactly one SELECT")]
    MultipleStatements,
    /// A word the sandbox does not allow.
    #[error("{0} is not allowed here: a step's query reads only its input tables")]
    Forbidden(String),
    /// A table that is not an input of the step.
    #[error("the query reads {table}, which is not an input of this step (its inputs: {inputs})")]
    UnknownTable {
        /// The table named.
        table: String,
        /// The step's inputs.
        inputs: String,
    },
    /// The time limit was reached.
    #[error("the query ran longer than its limit of {0} ms and was stopped")]
    Timeout(u64),
    /// Too many rows.
    #[error("the query returned more than {0} rows")]
    TooManyRows(usize),
    /// SQLite refused or failed the query.
    #[error("the query failed: {0}")]
    Query(String),
    /// An input table could not be loaded.
    #[error("input table {0} could not be loaded: {1}")]
    Input(String, String),
}

/// Words that end the check at once, wherever they stand outside strings.
const FORBIDDEN: &[&str] = &[
    "attach",
    "detach",
    "pragma",
    "vacuum",
    "reindex",
    "insert",
    "update",
    "delete",
    "create",
    "drop",
    "alter",
    "load_extension",
    "dbstat",
    "pg_catalog",
    "information_schema",
];

/// Checks the text of a query: one statement, a read, no forbidden words.
pub fn check(query: &str) -> Result<(), SqlError> {
    statement(query).map(|_| ())
}

/// Checks a query as [`check`] does and returns it without its closing
/// `;` and anything after it (comments, blanks).
pub fn statement(query: &str) -> Result<&str, SqlError> {
    if let Some(c) = query
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(SqlError::Forbidden(format!(
            "the control character U+{:04X}",
            c as u32
        )));
    }
    let mut end = query.len();
    let chars: Vec<char> = query.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut statement_ended = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Comments.
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if statement_ended {
            return Err(SqlError::MultipleStatements);
        }
        match c {
            // Strings and quoted names: skipped, doubled quotes included.
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let start = i;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => break,
                        Some(&q) if q == close => {
                            if close != ']' && chars.get(i + 1) == Some(&close) {
                                i += 2;
                                continue;
                            }
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                // A quoted name still counts as a name: `"pragma_table_list"`
                // is refused like the bare word.
                if c != '\'' {
                    let inner: String = chars[start + 1..i.saturating_sub(1).max(start + 1)]
                        .iter()
                        .collect();
                    words.push(inner.to_lowercase());
                }
            }
            ';' => {
                statement_ended = true;
                end = chars[..i].iter().map(|c| c.len_utf8()).sum();
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                words.push(chars[start..i].iter().collect::<String>().to_lowercase());
            }
            _ => i += 1,
        }
    }
    let first = words
        .iter()
        .find(|w| !w.is_empty())
        .cloned()
        .unwrap_or_default();
    if !matches!(first.as_str(), "select" | "with" | "values") {
        return Err(SqlError::NotASelect(if first.is_empty() {
            "nothing".into()
        } else {
            first.to_uppercase()
        }));
    }
    for w in &words {
        if FORBIDDEN.contains(&w.as_str()) || w.starts_with("sqlite_") || w.starts_with("pragma_") {
            return Err(SqlError::Forbidden(w.clone()));
        }
    }
    Ok(&query[..end])
}

/// A name quoted for SQLite.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a failed query means for the person who wrote it: a timeout, a
/// table that is not an input, or SQLite's own message.
pub fn query_error(
    e: sqlx::Error,
    limits: SqlLimits,
    inputs: &[(String, Vec<String>)],
) -> SqlError {
    let names = inputs
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    query_error_named(e, limits, &names)
}

fn query_error_named(e: sqlx::Error, limits: SqlLimits, names: &str) -> SqlError {
    let message = match &e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    };
    if message.contains("interrupted") {
        SqlError::Timeout(u64::try_from(limits.time.as_millis()).unwrap_or(u64::MAX))
    } else if let Some(table) = message.strip_prefix("no such table: ") {
        SqlError::UnknownTable {
            table: table.to_owned(),
            inputs: names.to_owned(),
        }
    } else {
        SqlError::Query(message)
    }
}

/// Runs `query` over `inputs` (name and table) in the sandbox.
pub async fn run_select(
    inputs: &[(&str, &Table)],
    query: &str,
    limits: SqlLimits,
) -> Result<Table, SqlError> {
    check(query)?;
    let names = inputs
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    let mut conn = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| SqlError::Query(e.to_string()))?
        .connect()
        .await
        .map_err(|e| SqlError::Query(e.to_string()))?;
    for (name, table) in inputs {
        load(&mut conn, name, table)
            .await
            .map_err(|e| SqlError::Input((*name).to_owned(), e.to_string()))?;
    }
    conn.execute("PRAGMA query_only = ON")
        .await
        .map_err(|e| SqlError::Query(e.to_string()))?;
    let deadline = Instant::now() + limits.time;
    conn.lock_handle()
        .await
        .map_err(|e| SqlError::Query(e.to_string()))?
        .set_progress_handler(10_000, move || Instant::now() < deadline);
    let fail = |e: sqlx::Error| query_error_named(e, limits, &names);
    let prepared = (&mut conn)
        .prepare(sqlx::AssertSqlSafe(query.to_owned()).into_sql_str())
        .await
        .map_err(fail)?;
    let columns: Vec<String> = prepared
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let rows: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
        .fetch_all(&mut conn)
        .await
        .map_err(fail)?;
    if rows.len() > limits.max_rows {
        return Err(SqlError::TooManyRows(limits.max_rows));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(crate::rundata::cell(row, i).map_err(fail)?);
        }
        out.push(values);
    }
    let _ = conn.close().await;
    Ok(Table { columns, rows: out })
}

async fn load(
    conn: &mut sqlx::SqliteConnection,
    name: &str,
    table: &Table,
) -> Result<(), sqlx::Error> {
    let cols: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
    let create = format!("CREATE TABLE {} ({})", quote(name), cols.join(", "));
    conn.execute(sqlx::AssertSqlSafe(create)).await?;
    if table.columns.is_empty() {
        return Ok(());
    }
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    for chunk in table.rows.chunks(LOAD_BATCH) {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(name),
            cols.join(", "),
            vec![one.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = crate::rundata::bind_value(q, v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn people() -> Table {
        Table::new(
            vec!["_id".into(), "name".into()],
            vec![
                vec![json!(1), json!("Ada")],
                vec![json!(2), json!("Bob")],
                vec![json!(3), json!("Cy")],
            ],
        )
        .unwrap()
    }

    fn labels() -> Table {
        Table::new(
            vec!["_id".into(), "label".into()],
            vec![
                vec![json!(1), json!("Yes")],
                vec![json!(2), json!("No")],
                vec![json!(3), json!("Yes")],
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_select_joins_the_input_tables_by_their_names() {
        let (p, l) = (people(), labels());
        let t = run_select(
            &[("S", &p), ("C", &l)],
            "/* the yeses */ SELECT S.* FROM S JOIN C ON S._id = C._id WHERE C.label = 'Yes' ORDER BY S._id;",
            SqlLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(t.columns, ["_id", "name"]);
        assert_eq!(
            t.rows,
            vec![vec![json!(1), json!("Ada")], vec![json!(3), json!("Cy")]]
        );
        let empty = run_select(
            &[("S", &p)],
            "SELECT name FROM S WHERE 0",
            SqlLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            (empty.columns, empty.rows.len()),
            (vec!["name".to_owned()], 0)
        );
    }

    #[tokio::test]
    async fn writes_attachments_catalogs_and_second_statements_are_refused() {
        let p = people();
        let cases = [
            ("DELETE FROM S", SqlError::NotASelect("DELETE".into())),
            (
                "ATTACH DATABASE '/tmp/tutti.db' AS x",
                SqlError::NotASelect("ATTACH".into()),
            ),
            (
                "PRAGMA table_info(S)",
                SqlError::NotASelect("PRAGMA".into()),
            ),
            (
                "SELECT * FROM S; DROP TABLE S",
                SqlError::MultipleStatements,
            ),
            (
                "WITH x AS (SELECT 1) INSERT INTO S SELECT * FROM x",
                SqlError::Forbidden("insert".into()),
            ),
            (
                "SELECT name FROM sqlite_master",
                SqlError::Forbidden("sqlite_master".into()),
            ),
            (
                "SELECT * FROM pragma_table_info('S')",
                SqlError::Forbidden("pragma_table_info".into()),
            ),
            (
                "SELECT load_extension('/tmp/x.so')",
                SqlError::Forbidden("load_extension".into()),
            ),
            (
                "SELECT * FROM pg_catalog.pg_tables",
                SqlError::Forbidden("pg_catalog".into()),
            ),
            ("", SqlError::NotASelect("nothing".into())),
        ];
        for (query, want) in cases {
            let got = run_select(&[("S", &p)], query, SqlLimits::default())
                .await
                .unwrap_err();
            assert_eq!(got, want, "{query}");
        }
        // Words inside strings are data, not statements.
        let t = run_select(
            &[("S", &p)],
            "SELECT 'drop table; attach' AS x FROM S LIMIT 1",
            SqlLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(t.rows, vec![vec![json!("drop table; attach")]]);
    }

    #[tokio::test]
    async fn another_table_is_named_with_the_steps_inputs() {
        let p = people();
        let err = run_select(&[("S", &p)], "SELECT * FROM tasks", SqlLimits::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SqlError::UnknownTable {
                table: "tasks".into(),
                inputs: "S".into()
            }
        );
    }

    #[tokio::test]
    async fn a_query_past_its_time_limit_is_stopped() {
        let p = people();
        let limits = SqlLimits {
            time: Duration::from_millis(200),
            ..SqlLimits::default()
        };
        let started = Instant::now();
        let err = run_select(
            &[("S", &p)],
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            limits,
        )
        .await
        .unwrap_err();
        assert_eq!(err, SqlError::Timeout(200));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn too_many_rows_are_refused() {
        let p = people();
        let limits = SqlLimits {
            max_rows: 2,
            ..SqlLimits::default()
        };
        let err = run_select(&[("S", &p)], "SELECT * FROM S", limits)
            .await
            .unwrap_err();
        assert_eq!(err, SqlError::TooManyRows(2));
    }
}
