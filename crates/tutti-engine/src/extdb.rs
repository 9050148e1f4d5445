//! Outside databases as sources and targets of a workflow: PostgreSQL,
//! MySQL/MariaDB and SQLite, named in the server's configuration (never in
//! a program, so credentials stay out of runs).
//!
//! **Reading** runs the program's query with its parameters bound (text or
//! numbers, in the database's own placeholder style: `$1` for PostgreSQL,
//! `?` for MySQL and SQLite) and streams the rows in batches. Every value
//! arrives as JSON the database itself renders (`to_json` in PostgreSQL,
//! `JSON_OBJECT` in MySQL), so dates, decimals and JSON columns come through
//! whatever their type; SQLite's values are taken as they are stored.
//!
//! **Writing** appends a table to a target table (made if missing, every
//! column text or number as the values are) in one transaction that also
//! records the write in `tutti_writes` in the target database; a write
//! already recorded is not made again, so a step run again after a crash
//! never doubles its rows.

use futures_util::TryStreamExt as _;
use serde_json::{Map, Value};
use sqlx::{
    Column as _, Connection as _, Executor as _, Row as _, SqlSafeStr as _, Statement as _,
};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Named connections: name to URL.
pub type Databases = BTreeMap<String, String>;

/// Why an outside database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtError {
    /// The name is not configured.
    #[error("no database named {name} is configured on this server (configured: {known})")]
    Unknown {
        /// The name.
        name: String,
        /// The names that are.
        known: String,
    },
    /// The URL's kind is not supported.
    #[error(
        "database {0}: only postgres://, mysql:// (MariaDB too) and sqlite:// URLs are supported"
    )]
    Kind(String),
    /// It could not be reached.
    #[error("database {name} could not be reached: {reason}")]
    Unreachable {
        /// The name.
        name: String,
        /// Why, without credentials.
        reason: String,
    },
    /// The query failed there.
    #[error("database {name} refused the query: {message}")]
    Query {
        /// The name.
        name: String,
        /// The database's message.
        message: String,
    },
}

enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

fn kind(name: &str, url: &str) -> Result<Kind, ExtError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Kind::Postgres)
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Ok(Kind::MySql)
    } else if url.starts_with("sqlite:") {
        Ok(Kind::Sqlite)
    } else {
        Err(ExtError::Kind(name.to_owned()))
    }
}

fn lookup<'a>(dbs: &'a Databases, name: &str) -> Result<&'a str, ExtError> {
    dbs.get(name)
        .map(String::as_str)
        .ok_or_else(|| ExtError::Unknown {
            name: name.to_owned(),
            known: if dbs.is_empty() {
                "none".into()
            } else {
                dbs.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
            "the connection failed".into()
        }
        other => {
            // Never echo a URL (it may carry a password).
            let s = other.to_string();
            if s.contains("://") {
                "the connection failed".into()
            } else {
                s
            }
        }
    }
}

fn mysql_url(url: &str) -> String {
    url.strip_prefix("mariadb://")
        .map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"))
}

fn quote_ident(kind: &Kind, name: &str) -> String {
    match kind {
        Kind::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Value::Null => q.bind(None::<String>),
                Value::Bool(b) => q.bind(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => q.bind(i),
                    None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => q.bind(s.clone()),
                other => q.bind(other.to_string()),
            };
        }
        q
    }};
}

fn row_of(columns: &[String], obj: Map<String, Value>) -> Vec<Value> {
    let mut obj = obj;
    columns
        .iter()
        .map(|c| obj.remove(c).unwrap_or(Value::Null))
        .collect()
}

/// What to read from an outside database.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The configured connection's name.
    pub name: String,
    /// The query, in that database's dialect.
    pub query: String,
    /// Values for its placeholders.
    pub params: Vec<Value>,
    /// Rows per batch sent on.
    pub batch: usize,
    /// Most rows accepted.
    pub max_rows: u64,
}

/// The longest a query on an outside database may run.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Table-valued functions and virtual tables that read a database's
/// structure or raw pages rather than its tables.
const SQLITE_INTERNALS: [&str; 3] = ["pragma_", "dbstat", "sqlite_dbpage"];

/// Functions a query on an outside SQLite database may not call: they
/// reach files or change the connection.
const SQLITE_FILE_FUNCTIONS: [&str; 6] = [
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "zipfile",
];

/// What a query on an outside SQLite database may do: read tables and
/// call ordinary functions; no `ATTACH`, `DETACH`, `PRAGMA`, writes,
/// transactions, file functions or internals.
fn sqlite_guard(ctx: rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization {
    use rusqlite::hooks::{AuthAction, Authorization};
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Read { table_name, .. } => {
            let lower = table_name.to_ascii_lowercase();
            if SQLITE_INTERNALS.iter().any(|p| lower.starts_with(p)) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Function { function_name } => {
            let lower = function_name.to_ascii_lowercase();
            if SQLITE_FILE_FUNCTIONS.contains(&lower.as_str())
                || SQLITE_INTERNALS.iter().any(|p| lower.starts_with(p))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Deny,
    }
}

/// An outside SQLite database's value as JSON, as the run's own tables
/// read them (a blob as hex).
fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(b.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// Reads one query from an outside SQLite file, opened read-only with no
/// room to attach another database and under [`sqlite_guard`]: exactly one
/// statement, which must not write (so no `VACUUM INTO`), within
/// [`READ_TIMEOUT`].
#[allow(clippy::too_many_arguments)]
async fn read_sqlite(
    name: &str,
    url: &str,
    query: &str,
    params: &[Value],
    batch: usize,
    max_rows: u64,
    tx: mpsc::Sender<Result<Vec<Vec<Value>>, String>>,
    columns_out: tokio::sync::oneshot::Sender<Vec<String>>,
) -> Result<u64, ExtError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (name, query, params) = (name.to_owned(), query.to_owned(), params.to_vec());
    tokio::task::spawn_blocking(move || -> Result<u64, ExtError> {
        let refused = |message: String| ExtError::Query {
            name: name.clone(),
            message,
        };
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| ExtError::Unreachable {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(|e| refused(e.to_string()))?;
        conn.authorizer(Some(sqlite_guard))
            .map_err(|e| refused(e.to_string()))?;
        let started = std::time::Instant::now();
        conn.progress_handler(10_000, Some(move || started.elapsed() > READ_TIMEOUT))
            .map_err(|e| refused(e.to_string()))?;
        let mut stmt = conn.prepare(&query).map_err(|e| {
            refused(match e {
                rusqlite::Error::MultipleStatement => {
                    "a read runs one statement; remove what follows the first ;".to_owned()
                }
                e => e.to_string(),
            })
        })?;
        if !stmt.readonly() {
            return Err(refused(
                "a read may only read (SELECT or WITH … SELECT)".to_owned(),
            ));
        }
        let columns: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let _ = columns_out.send(columns.clone());
        let bound: Vec<rusqlite::types::Value> = params
            .iter()
            .map(|p| match p {
                Value::Null => rusqlite::types::Value::Null,
                Value::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => rusqlite::types::Value::Integer(i),
                    None => rusqlite::types::Value::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => rusqlite::types::Value::Text(s.clone()),
                other => rusqlite::types::Value::Text(other.to_string()),
            })
            .collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(bound))
            .map_err(|e| refused(e.to_string()))?;
        let mut sent = 0u64;
        let mut buf: Vec<Vec<Value>> = Vec::with_capacity(batch);
        loop {
            let row = match rows.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::OperationInterrupted =>
                {
                    return Err(refused(format!(
                        "the query ran longer than {} s",
                        READ_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(refused(e.to_string())),
            };
            sent += 1;
            if sent > max_rows {
                return Err(refused(format!(
                    "the query returned more than {max_rows} rows"
                )));
            }
            let mut out = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                out.push(sqlite_value(
                    row.get_ref(i).map_err(|e| refused(e.to_string()))?,
                ));
            }
            buf.push(out);
            if buf.len() == batch && tx.blocking_send(Ok(std::mem::take(&mut buf))).is_err() {
                return Ok(sent);
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(buf));
        }
        Ok(sent)
    })
    .await
    .map_err(|e| ExtError::Query {
        name: String::new(),
        message: format!("the read stopped: {e}"),
    })?
}

/// Reads a query from a configured database, sending the columns first,
/// then rows in batches down `tx`. Stops (with an error) past the most
/// rows accepted.
pub async fn read(
    dbs: &Databases,
    req: &ReadRequest,
    tx: mpsc::Sender<Result<Vec<Vec<Value>>, String>>,
    columns_out: tokio::sync::oneshot::Sender<Vec<String>>,
) -> Result<u64, ExtError> {
    let (name, query, params, batch, max_rows) = (
        req.name.as_str(),
        req.query.as_str(),
        req.params.as_slice(),
        req.batch.max(1),
        req.max_rows,
    );
    let url = lookup(dbs, name)?;
    let unreachable = |e: sqlx::Error| ExtError::Unreachable {
        name: name.to_owned(),
        reason: db_message(&e),
    };
    let refused = |e: sqlx::Error| ExtError::Query {
        name: name.to_owned(),
        message: db_message(&e),
    };
    let query = query.trim().trim_end_matches(';');
    let mut sent = 0u64;
    let mut buf: Vec<Vec<Value>> = Vec::with_capacity(batch);
    macro_rules! push {
        ($row:expr) => {{
            sent += 1;
            if sent > max_rows {
                return Err(ExtError::Query {
                    name: name.to_owned(),
                    message: format!("the query returned more than {max_rows} rows"),
                });
            }
            buf.push($row);
            if buf.len() == batch {
                if tx.send(Ok(std::mem::take(&mut buf))).await.is_err() {
                    return Ok(sent);
                }
            }
        }};
    }
    match kind(name, url)? {
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(unreachable)?;
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .await
                .map_err(refused)?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET statement_timeout = {}",
                READ_TIMEOUT.as_millis()
            )))
            .await
            .map_err(refused)?;
            let stmt = conn
                .prepare(sqlx::AssertSqlSafe(query.to_owned()).into_sql_str())
                .await
                .map_err(refused)?;
            let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
            let _ = columns_out.send(columns.clone());
            let wrapped = format!("SELECT to_json(q)::text FROM (\n{query}\n) AS q");
            let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(wrapped)), params);
            let mut rows = q.fetch(&mut conn);
            while let Some(r) = rows.try_next().await.map_err(refused)? {
                let text: String = r.try_get(0).map_err(refused)?;
                let obj: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
                push!(row_of(&columns, obj));
            }
        }
        Kind::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&mysql_url(url))
                .await
                .map_err(unreachable)?;
            conn.execute("SET SESSION TRANSACTION READ ONLY")
                .await
                .map_err(refused)?;
            // MariaDB bounds a statement by max_statement_time (seconds),
            // MySQL by max_execution_time (milliseconds).
            let secs = READ_TIMEOUT.as_secs();
            if conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "SET SESSION max_statement_time = {secs}"
                )))
                .await
                .is_err()
            {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET SESSION max_execution_time = {}",
                    secs * 1000
                )))
                .await
                .map_err(refused)?;
            }
            let stmt = conn
                .prepare(sqlx::AssertSqlSafe(query.to_owned()).into_sql_str())
                .await
                .map_err(refused)?;
            let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
            let _ = columns_out.send(columns.clone());
            let pairs: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "'{}', q.{}",
                        c.replace('\\', "\\\\").replace('\'', "''"),
                        quote_ident(&Kind::MySql, c)
                    )
                })
                .collect();
            let wrapped = format!(
                "SELECT CAST(JSON_OBJECT({}) AS CHAR) FROM (\n{query}\n) AS q",
                pairs.join(", ")
            );
            let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(wrapped)), params);
            let mut rows = q.fetch(&mut conn);
            while let Some(r) = rows.try_next().await.map_err(refused)? {
                let text: String = match r.try_get::<String, _>(0) {
                    Ok(s) => s,
                    Err(_) => {
                        String::from_utf8_lossy(&r.try_get::<Vec<u8>, _>(0).map_err(refused)?)
                            .into_owned()
                    }
                };
                let obj: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
                push!(row_of(&columns, obj));
            }
        }
        Kind::Sqlite => {
            return read_sqlite(name, url, query, params, batch, max_rows, tx, columns_out).await;
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(Ok(buf)).await;
    }
    Ok(sent)
}

/// Appends `rows` to `table` in the database named `name`, once: the rows
/// and a record of `key` in `tutti_writes` commit together, and a key
/// already recorded writes nothing. Returns whether it wrote.
pub async fn write(
    dbs: &Databases,
    name: &str,
    table: &str,
    key: &str,
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<bool, ExtError> {
    let url = lookup(dbs, name)?;
    let unreachable = |e: sqlx::Error| ExtError::Unreachable {
        name: name.to_owned(),
        reason: db_message(&e),
    };
    let refused = |e: sqlx::Error| ExtError::Query {
        name: name.to_owned(),
        message: db_message(&e),
    };
    let k = kind(name, url)?;
    let t = quote_ident(&k, table);
    // Column types from the values: whole numbers, other numbers, or text.
    let types: Vec<&str> = (0..columns.len())
        .map(|c| {
            let mut ty = "int";
            for r in rows {
                match r.get(c) {
                    Some(Value::Null) | None => {}
                    Some(Value::Number(n)) if n.is_i64() => {}
                    Some(Value::Number(_)) => {
                        if ty == "int" {
                            ty = "real";
                        }
                    }
                    Some(_) => ty = "text",
                }
            }
            ty
        })
        .collect();
    let sql_type = |ty: &str| match (&k, ty) {
        (Kind::Postgres, "int") => "BIGINT",
        (Kind::Postgres, "real") => "DOUBLE PRECISION",
        (Kind::MySql, "int") => "BIGINT",
        (Kind::MySql, "real") => "DOUBLE",
        (Kind::Sqlite, "int") => "INTEGER",
        (Kind::Sqlite, "real") => "REAL",
        _ => "TEXT",
    };
    let cols: Vec<String> = columns
        .iter()
        .zip(&types)
        .map(|(c, ty)| format!("{} {}", quote_ident(&k, c), sql_type(ty)))
        .collect();
    let create = format!("CREATE TABLE IF NOT EXISTS {t} ({})", cols.join(", "));
    let writes = match k {
        Kind::MySql => {
            "CREATE TABLE IF NOT EXISTS tutti_writes (write_key VARCHAR(255) PRIMARY KEY, written_at BIGINT NOT NULL)"
        }
        _ => {
            "CREATE TABLE IF NOT EXISTS tutti_writes (write_key TEXT PRIMARY KEY, written_at BIGINT NOT NULL)"
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&k, c)).collect();
    macro_rules! write_with {
        ($conn:expr, $ph:expr) => {{
            let conn = $conn;
            conn.execute(sqlx::AssertSqlSafe(writes.to_owned()))
                .await
                .map_err(refused)?;
            conn.execute(sqlx::AssertSqlSafe(create.clone()))
                .await
                .map_err(refused)?;
            let mut tx = conn.begin().await.map_err(refused)?;
            let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO tutti_writes (write_key, written_at) VALUES ({}, {})",
                $ph(1),
                $ph(2)
            )))
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match claimed {
                Ok(_) => {}
                Err(e)
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) =>
                {
                    // Already written: the key is taken.
                    return Ok(false);
                }
                Err(e) => return Err(refused(e)),
            }
            let per = (30_000 / columns.len().max(1)).clamp(1, 500);
            for chunk in rows.chunks(per) {
                let mut n = 0;
                let tuples: Vec<String> = chunk
                    .iter()
                    .map(|_| {
                        let ph: Vec<String> = (0..columns.len())
                            .map(|_| {
                                n += 1;
                                $ph(n)
                            })
                            .collect();
                        format!("({})", ph.join(", "))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO {t} ({}) VALUES {}",
                    names.join(", "),
                    tuples.join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in chunk {
                    q = bind_all!(q, r.iter());
                }
                q.execute(&mut *tx).await.map_err(refused)?;
            }
            tx.commit().await.map_err(refused)?;
            Ok(true)
        }};
    }
    match k {
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(unreachable)?;
            write_with!(&mut conn, |i: usize| format!("${i}"))
        }
        Kind::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&mysql_url(url))
                .await
                .map_err(unreachable)?;
            write_with!(&mut conn, |_: usize| "?".to_owned())
        }
        Kind::Sqlite => {
            use sqlx::ConnectOptions as _;
            use std::str::FromStr as _;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(unreachable)?
                .create_if_missing(true)
                .connect()
                .await
                .map_err(unreachable)?;
            write_with!(&mut conn, |_: usize| "?".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, query: &str, params: Vec<Value>) -> ReadRequest {
        ReadRequest {
            name: name.into(),
            query: query.into(),
            params,
            batch: 2,
            max_rows: 100,
        }
    }

    #[tokio::test]
    async fn a_write_with_a_key_already_recorded_writes_nothing() {
        let path = std::env::temp_dir().join(format!("tutti-extdb-{}.db", std::process::id()));
        let mut dbs = Databases::new();
        dbs.insert("t".into(), format!("sqlite://{}", path.display()));
        let cols = vec!["id".to_owned(), "name".to_owned()];
        let rows = vec![
            vec![Value::from(1), Value::from("a")],
            vec![Value::from(2), Value::from("b")],
        ];
        assert!(write(&dbs, "t", "out", "k1", &cols, &rows).await.unwrap());
        assert!(
            !write(&dbs, "t", "out", "k1", &cols, &rows).await.unwrap(),
            "the same key again"
        );
        assert!(
            write(&dbs, "t", "out", "k2", &cols, &rows[..1])
                .await
                .unwrap()
        );
        let (tx, mut rx) = mpsc::channel(4);
        let (ctx, crx) = tokio::sync::oneshot::channel();
        let query = "SELECT id, name FROM out WHERE id >= ? ORDER BY id";
        let n = read(&dbs, &req("t", query, vec![Value::from(1)]), tx, ctx)
            .await
            .unwrap();
        assert_eq!(n, 3, "two rows once, one row once");
        assert_eq!(crx.await.unwrap(), cols);
        let mut seen = 0;
        while let Some(b) = rx.recv().await {
            seen += b.unwrap().len();
        }
        assert_eq!(seen, 3);
        let (tx, _rx) = mpsc::channel(1);
        let (ctx, _crx) = tokio::sync::oneshot::channel();
        let e = read(&dbs, &req("nope", "SELECT 1", vec![]), tx, ctx)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no database named nope"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_read_of_an_outside_sqlite_file_runs_one_statement_that_only_reads() {
        let dir = std::env::temp_dir().join(format!("tutti-extdb-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ext.db");
        let store = dir.join("store.db");
        rusqlite::Connection::open(&store)
            .unwrap()
            .execute_batch("CREATE TABLE users (name TEXT, password_hash TEXT); INSERT INTO users VALUES ('admin', 'secret');")
            .unwrap();
        let mut dbs = Databases::new();
        dbs.insert("t".into(), format!("sqlite://{}", path.display()));
        let cols = vec!["a".to_owned()];
        assert!(
            write(&dbs, "t", "posts", "k", &cols, &[vec![Value::from("x")]])
                .await
                .unwrap()
        );
        let run = |query: String| {
            let dbs = dbs.clone();
            async move {
                let (tx, mut rx) = mpsc::channel(4);
                let (ctx, _crx) = tokio::sync::oneshot::channel();
                let r = read(&dbs, &req("t", &query, vec![]), tx, ctx).await;
                let mut rows = Vec::new();
                while let Some(b) = rx.recv().await {
                    rows.extend(b.unwrap());
                }
                r.map(|_| rows)
            }
        };
        let planted = dir.join("planted.db");
        // The reviewed probes: each is refused, and nothing happens.
        for (query, says) in [
            (
                format!(
                    "SELECT 'x' AS a; ATTACH DATABASE '{}' AS s",
                    store.display()
                ),
                "",
            ),
            ("SELECT 'x' AS a; SELECT 'y'".to_owned(), "one statement"),
            (
                format!("ATTACH DATABASE '{}' AS s", store.display()),
                "not authorized",
            ),
            (format!("VACUUM INTO '{}'", planted.display()), ""),
            (
                "SELECT name FROM pragma_table_info('posts')".to_owned(),
                "prohibited",
            ),
            ("SELECT name FROM dbstat".to_owned(), ""),
            ("PRAGMA table_info(posts)".to_owned(), ""),
            ("DELETE FROM posts".to_owned(), ""),
        ] {
            let e = run(query.clone()).await.expect_err(&query);
            assert!(e.to_string().contains(says), "{query}: {e}");
        }
        assert!(!planted.exists(), "VACUUM INTO wrote a file");
        // An ordinary read works, with its recursive CTEs and functions.
        let rows = run(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 3) \
             SELECT upper(a) AS a FROM posts, n"
                .to_owned(),
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], vec![Value::from("X")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
