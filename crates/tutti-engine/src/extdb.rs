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
            use sqlx::ConnectOptions as _;
            use std::str::FromStr as _;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(unreachable)?
                .read_only(true)
                .connect()
                .await
                .map_err(unreachable)?;
            let stmt = conn
                .prepare(sqlx::AssertSqlSafe(query.to_owned()).into_sql_str())
                .await
                .map_err(refused)?;
            let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
            let _ = columns_out.send(columns.clone());
            let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(query.to_owned())), params);
            let mut rows = q.fetch(&mut conn);
            while let Some(r) = rows.try_next().await.map_err(refused)? {
                let mut row = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    row.push(crate::rundata::cell(&r, i).map_err(refused)?);
                }
                push!(row);
            }
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
}
