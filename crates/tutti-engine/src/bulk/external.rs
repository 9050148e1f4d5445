//! PostgreSQL and MySQL/MariaDB as a labeling source and sink.
//!
//! The source checks the table and its columns in `information_schema`,
//! then streams `SELECT ... WHERE time >= ? AND time < ? ORDER BY id, time`
//! with the range bound as parameters, every value cast to text by the
//! database. The sink writes the result rows of a batch as multi-row
//! `INSERT`s in one transaction with the task's `state` row.
//!
//! Both run their async driver on the runtime handle they are given, from
//! the labeling threads (never from a runtime worker).

use super::tables::{Dialect, Value, identifier, state_params};
use super::{
    AUTHOR, Batch, Checkpoint, Columns, FIELD, ID, Keep, LabelError, Labeled, Names, Progress,
    SOURCE, Sink, Source, TIME, TaskInfo, TimeRange,
};
use futures_util::TryStreamExt as _;
use sqlx::{Connection as _, Executor as _, Row as _};
use std::time::Duration;

enum Conn {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Conn {
    fn dialect(&self) -> Dialect {
        match self {
            Conn::Pg(_) => Dialect::Postgres,
            Conn::My(_) => Dialect::MySql,
        }
    }
}

/// A database's error, without the URL, for the log.
fn detail(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => {
            let s = other.to_string();
            if s.contains("://") {
                "the connection failed".into()
            } else {
                s
            }
        }
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

async fn connect(url: &str, role: &str) -> Result<Conn, LabelError> {
    let unreachable = |e: sqlx::Error| {
        LabelError::with_detail(
            format!("cannot reach the {role} database at {}", host_of(url)),
            detail(&e),
        )
    };
    let timeout = |_| {
        LabelError::new(format!(
            "cannot reach the {role} database at {}: no answer in 10 seconds",
            host_of(url)
        ))
    };
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres") {
        let c = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url))
            .await
            .map_err(timeout)?
            .map_err(unreachable)?;
        Ok(Conn::Pg(c))
    } else {
        let url = url
            .strip_prefix("mariadb://")
            .map_or_else(|| url.to_owned(), |r| format!("mysql://{r}"));
        let c = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::MySqlConnection::connect(&url),
        )
        .await
        .map_err(timeout)?
        .map_err(unreachable)?;
        Ok(Conn::My(c))
    }
}

/// `schema.table` or `table` into (schema, table), both checked.
fn split_table(field: &str, name: &str) -> Result<(Option<String>, String), LabelError> {
    match name.split_once('.') {
        Some((s, t)) => Ok((Some(identifier(field, s)?), identifier(field, t)?)),
        None => Ok((None, identifier(field, name)?)),
    }
}

/// A table on a PostgreSQL or MySQL/MariaDB server.
pub struct ExternalSource {
    rt: tokio::runtime::Handle,
    url: String,
    sql: String,
    params: Vec<String>,
}

impl ExternalSource {
    /// Connects, checks the table and columns, and prepares the scan.
    pub fn open(
        rt: tokio::runtime::Handle,
        url: &str,
        table: &str,
        columns: Columns,
        range: TimeRange,
    ) -> Result<Self, LabelError> {
        let (schema, name) = split_table("table", table)?;
        for c in columns.all() {
            identifier("column", c)?;
        }
        rt.block_on(async {
            let mut conn = connect(url, "input").await?;
            let d = conn.dialect();
            let here = match d {
                Dialect::Postgres => "current_schema()",
                _ => "DATABASE()",
            };
            let schema_cond = match &schema {
                Some(_) => d.param(2),
                None => here.to_owned(),
            };
            let sql = format!(
                "SELECT CAST(column_name AS CHAR(255)), CAST(data_type AS CHAR(255)) FROM information_schema.columns \
                 WHERE table_name = {} AND table_schema = {schema_cond}",
                d.param(1)
            )
            .replace("CHAR(255)", if d == Dialect::Postgres { "TEXT" } else { "CHAR(255)" });
            let q = sqlx::AssertSqlSafe(sql);
            let refused = |e: sqlx::Error| {
                LabelError::with_detail("the input database refused to list the table's columns", detail(&e))
            };
            let have: Vec<(String, String)> = match &mut conn {
                Conn::Pg(c) => {
                    let mut q = sqlx::query(q).bind(&name);
                    if let Some(s) = &schema {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *c)
                        .await
                        .map_err(refused)?
                        .iter()
                        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                        .collect()
                }
                Conn::My(c) => {
                    let mut q = sqlx::query(q).bind(&name);
                    if let Some(s) = &schema {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *c)
                        .await
                        .map_err(refused)?
                        .iter()
                        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                        .collect()
                }
            };
            if have.is_empty() {
                return Err(LabelError::new(format!(
                    "the input database has no table named {table}"
                )));
            }
            let names: Vec<String> = have.iter().map(|(n, _)| n.clone()).collect();
            super::sqlite::check_columns(table, &names, &columns)?;
            let time_type = have
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&columns.time))
                .map(|(_, t)| t.to_ascii_lowercase())
                .unwrap_or_default();
            let cast = |c: &str| match d {
                Dialect::Postgres => format!("CAST({} AS TEXT)", d.quote(c)),
                _ => format!("CAST({} AS CHAR)", d.quote(c)),
            };
            let list: Vec<String> = [
                &columns.id,
                &columns.source,
                &columns.author,
                &columns.field,
                &columns.time,
            ]
            .iter()
            .map(|c| cast(c))
            .collect();
            let time = d.quote(&columns.time);
            let param = |n: usize| {
                if d == Dialect::Postgres && time_type.starts_with("timestamp") {
                    format!("CAST({} AS {time_type})", d.param(n))
                } else if d == Dialect::Postgres && time_type == "date" {
                    format!("CAST({} AS timestamp)", d.param(n))
                } else {
                    d.param(n)
                }
            };
            let mut conds = Vec::new();
            let mut params = Vec::new();
            if let Some(s) = &range.since {
                params.push(s.clone());
                conds.push(format!("{time} >= {}", param(params.len())));
            }
            if let Some(u) = &range.until {
                params.push(u.clone());
                conds.push(format!("{time} < {}", param(params.len())));
            }
            let from = match &schema {
                Some(s) => format!("{}.{}", d.quote(s), d.quote(&name)),
                None => d.quote(&name),
            };
            let filter = if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            };
            let sql = format!(
                "SELECT {} FROM {from}{filter} ORDER BY {}, {time}",
                list.join(", "),
                d.quote(&columns.id)
            );
            Ok(Self {
                rt: rt.clone(),
                url: url.to_owned(),
                sql,
                params,
            })
        })
    }
}

macro_rules! scan_rows {
    ($conn:expr, $sql:expr, $params:expr, $batch_rows:expr, $fresh:expr, $emit:expr) => {{
        let mut q = sqlx::query(sqlx::AssertSqlSafe($sql.clone()));
        for p in $params {
            q = q.bind(p.clone());
        }
        let mut rows = q.fetch($conn);
        let mut batch = $fresh();
        let mut chunk = 0u64;
        while let Some(r) = rows
            .try_next()
            .await
            .map_err(|e| LabelError::with_detail("reading the input database failed", detail(&e)))?
        {
            let mut field_null = false;
            for slot in 0..5 {
                let v: Option<String> = r.try_get(slot).map_err(|e| {
                    LabelError::with_detail("reading the input database failed", detail(&e))
                })?;
                match v {
                    Some(s) => batch.push(&s),
                    None => {
                        field_null |= slot == FIELD;
                        batch.push("");
                    }
                }
            }
            batch.end_row(field_null);
            if batch.len() >= $batch_rows {
                $emit(chunk, std::mem::replace(&mut batch, $fresh()))?;
                chunk += 1;
            }
        }
        if !batch.is_empty() {
            $emit(chunk, batch)?;
        }
        Ok::<(), LabelError>(())
    }};
}

impl Source for ExternalSource {
    fn scan(
        &self,
        _part: usize,
        _parts: usize,
        batch_rows: usize,
        fresh: &mut dyn FnMut() -> Batch,
        emit: &mut dyn FnMut(u64, Batch) -> Result<(), LabelError>,
    ) -> Result<(), LabelError> {
        self.rt.block_on(async {
            let mut conn = connect(&self.url, "input").await?;
            match &mut conn {
                Conn::Pg(c) => scan_rows!(&mut *c, self.sql, &self.params, batch_rows, fresh, emit),
                Conn::My(c) => scan_rows!(&mut *c, self.sql, &self.params, batch_rows, fresh, emit),
            }
        })
    }
}

/// Result tables on a PostgreSQL or MySQL/MariaDB server.
pub struct ExternalSink {
    rt: tokio::runtime::Handle,
    conn: Conn,
    prefix: String,
    schema: Option<String>,
    task: TaskInfo,
    seq_base: i64,
}

fn bind_value<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    v: &Value,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match v {
        Value::Text(t) => q.bind(t.clone()),
        Value::Int(n) => q.bind(*n),
        Value::Float(x) => q.bind(*x),
    }
}

impl ExternalSink {
    /// Connects to the output database.
    pub fn open(
        rt: tokio::runtime::Handle,
        url: &str,
        schema: Option<&str>,
        task: TaskInfo,
    ) -> Result<Self, LabelError> {
        identifier("result", &task.result)?;
        let schema = schema.map(|s| identifier("output_schema", s)).transpose()?;
        let conn = rt.block_on(connect(url, "output"))?;
        let prefix = match &schema {
            Some(s) => format!("{}.", conn.dialect().quote(s)),
            None => String::new(),
        };
        Ok(Self {
            rt,
            conn,
            prefix,
            schema,
            task,
            seq_base: 0,
        })
    }
}

fn refused(what: &'static str) -> impl Fn(sqlx::Error) -> LabelError {
    move |e| LabelError::with_detail(what, detail(&e))
}

macro_rules! open_tables {
    ($c:expr, $d:expr, $self:expr) => {{
        let c = $c;
        let d = $d;
        if let Some(s) = &$self.schema {
            let ddl = match d {
                Dialect::MySql => format!("CREATE DATABASE IF NOT EXISTS {}", d.quote(s)),
                _ => format!("CREATE SCHEMA IF NOT EXISTS {}", d.quote(s)),
            };
            c.execute(sqlx::AssertSqlSafe(ddl))
                .await
                .map_err(refused("cannot make the output schema"))?;
        }
        for ddl in d.create(&$self.prefix, &$self.task.result) {
            c.execute(sqlx::AssertSqlSafe(ddl))
                .await
                .map_err(refused("cannot make the result tables"))?;
        }
        let t = &$self.task;
        if t.task_id.is_empty() {
            let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT task_id FROM {}{} WHERE digest = {} ORDER BY CASE WHEN stat = 'SUCCESS' THEN 1 ELSE 0 END, \
                 create_time DESC LIMIT 1",
                $self.prefix,
                d.quote("state"),
                d.param(1)
            )))
            .bind(&t.digest)
            .fetch_optional(&mut *c)
            .await
            .map_err(refused("cannot read the state table"))?;
            $self.task.task_id = found.unwrap_or_else(super::new_task_id);
        }
        let t = &$self.task;
        let mut tx = c.begin().await.map_err(refused("cannot write to the output database"))?;
        sqlx::query(sqlx::AssertSqlSafe(d.insert_state(&$self.prefix)))
            .bind(&t.task_id)
            .bind(&t.model_type)
            .bind(&t.predict_type)
            .bind(&t.date_range)
            .bind(&t.target_table)
            .bind(&t.create_time)
            .bind(&t.result)
            .bind(&t.digest)
            .bind(&t.result)
            .execute(&mut *tx)
            .await
            .map_err(refused("cannot record the task"))?;
        let read = refused("cannot read the state table");
        let r = sqlx::query(sqlx::AssertSqlSafe(d.select_state(&$self.prefix)))
            .bind(&t.task_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(&read)?
            .ok_or_else(|| LabelError::new("another task took the same place at the same moment; try again"))?;
        let row: super::sqlite::StateRow = (
            r.try_get(0).map_err(&read)?,
            r.try_get(1).map_err(&read)?,
            r.try_get(2).map_err(&read)?,
            r.try_get(3).map_err(&read)?,
            r.try_get(4).map_err(&read)?,
            r.try_get(5).map_err(&read)?,
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {}{} SET stat = 'RUNNING', error = NULL WHERE task_id = {} AND stat <> 'SUCCESS'",
            $self.prefix,
            d.quote("state"),
            d.param(1)
        )))
        .bind(&t.task_id)
        .execute(&mut *tx)
        .await
        .map_err(refused("cannot record the task"))?;
        tx.commit().await.map_err(refused("cannot write to the output database"))?;
        let digest = t.digest.clone();
        $self.seq_base = row.5;
        super::sqlite::checkpoint_of(row, &digest).map(Some)
    }};
}

macro_rules! write_rows {
    ($c:expr, $d:expr, $self:expr, $batch:expr, $rows:expr, $names:expr, $progress:expr) => {{
        let c = $c;
        let d = $d;
        let fail = refused("writing results failed");
        let mut tx = c.begin().await.map_err(&fail)?;
        let cols = 9;
        for chunk in $rows.chunks(1000) {
            let mut n = 0;
            let tuples: Vec<String> = chunk
                .iter()
                .map(|_| {
                    let ph: Vec<String> = (0..cols)
                        .map(|_| {
                            n += 1;
                            d.param(n)
                        })
                        .collect();
                    format!("({})", ph.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO {}{} (seq, task_id, id, source, author, label, pattern, match_content, \
                 create_time) VALUES {}",
                $self.prefix,
                d.quote(&$self.task.result),
                tuples.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for l in chunk {
                let r = l.row as usize;
                q = q
                    .bind($self.seq_base + l.seq as i64)
                    .bind($self.task.task_id.as_str())
                    .bind($batch.get(r, ID))
                    .bind($batch.get(r, SOURCE))
                    .bind($batch.get(r, AUTHOR))
                    .bind($names.labels[l.label as usize].as_str())
                    .bind($names.patterns[l.pattern as usize].as_str())
                    .bind($batch.get(r, FIELD))
                    .bind($batch.get(r, TIME));
            }
            q.execute(&mut *tx).await.map_err(&fail)?;
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(d.update_state(&$self.prefix)));
        for v in state_params("RUNNING", None, $progress, None, &$self.task.task_id) {
            q = bind_value(q, &v);
        }
        q.execute(&mut *tx).await.map_err(&fail)?;
        tx.commit().await.map_err(&fail)
    }};
}

macro_rules! produce_rows {
    ($c:expr, $d:expr, $self:expr, $keep:expr, $progress:expr) => {{
        let c = $c;
        let d = $d;
        let fail = refused("writing production rows failed");
        let mut tx = c.begin().await.map_err(&fail)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {}{} WHERE seq > {} AND seq <= {}",
            $self.prefix,
            d.quote(&format!("wh_panel_mapping_{}", $self.task.result)),
            d.param(1),
            d.param(2)
        )))
        .bind($self.seq_base)
        .bind($self.seq_base + super::tables::SEQ_BLOCK)
        .execute(&mut *tx)
        .await
        .map_err(&fail)?;
        let mut written = 0u64;
        match $keep {
            Keep::Seqs(winners) => {
                for chunk in winners.chunks(1000) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(d.produce(
                        &$self.prefix,
                        &$self.task.result,
                        chunk.len(),
                    )));
                    for &s in chunk {
                        q = q.bind($self.seq_base + s as i64);
                    }
                    written += q.execute(&mut *tx).await.map_err(&fail)?.rows_affected();
                }
            }
            Keep::ByQuery(priorities) => {
                let (sql, params) = d.produce_by_query(
                    &$self.prefix,
                    &$self.task.result,
                    priorities,
                    $self.seq_base,
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for v in &params {
                    q = bind_value(q, v);
                }
                written = q.execute(&mut *tx).await.map_err(&fail)?.rows_affected();
            }
        }
        let mut p = $progress.clone();
        p.production_rows = Some(written);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(d.update_state(&$self.prefix)));
        for v in state_params("SUCCESS", Some("finish"), &p, None, &$self.task.task_id) {
            q = bind_value(q, &v);
        }
        q.execute(&mut *tx).await.map_err(&fail)?;
        tx.commit().await.map_err(&fail)?;
        Ok(written)
    }};
}

impl Sink for ExternalSink {
    fn open(&mut self) -> Result<Option<Checkpoint>, LabelError> {
        let rt = self.rt.clone();
        let d = self.conn.dialect();
        rt.block_on(async {
            match &mut self.conn {
                Conn::Pg(c) => open_tables!(c, d, self),
                Conn::My(c) => open_tables!(c, d, self),
            }
        })
    }

    fn write(
        &mut self,
        batch: &Batch,
        rows: &[Labeled],
        names: &Names,
        progress: &Progress,
    ) -> Result<(), LabelError> {
        let rt = self.rt.clone();
        let d = self.conn.dialect();
        rt.block_on(async {
            match &mut self.conn {
                Conn::Pg(c) => write_rows!(c, d, self, batch, rows, names, progress),
                Conn::My(c) => write_rows!(c, d, self, batch, rows, names, progress),
            }
        })
    }

    fn produce(&mut self, keep: &Keep, progress: &Progress) -> Result<u64, LabelError> {
        let rt = self.rt.clone();
        let d = self.conn.dialect();
        rt.block_on(async {
            match &mut self.conn {
                Conn::Pg(c) => produce_rows!(c, d, self, keep, progress),
                Conn::My(c) => produce_rows!(c, d, self, keep, progress),
            }
        })
    }

    fn fail(&mut self, message: &str) {
        let rt = self.rt.clone();
        let d = self.conn.dialect();
        let sql = d.fail_state(&self.prefix);
        let id = self.task.task_id.clone();
        rt.block_on(async {
            let q = sqlx::AssertSqlSafe(sql);
            let _ = match &mut self.conn {
                Conn::Pg(c) => sqlx::query(q)
                    .bind(message)
                    .bind(&id)
                    .execute(&mut *c)
                    .await
                    .map(|_| ()),
                Conn::My(c) => sqlx::query(q)
                    .bind(message)
                    .bind(&id)
                    .execute(&mut *c)
                    .await
                    .map(|_| ()),
            };
        });
    }

    fn task_id(&self) -> String {
        self.task.task_id.clone()
    }
}

/// A sample of a task's rows on a server (see [`super::task::sample`]).
pub fn sample(
    rt: &tokio::runtime::Handle,
    url: &str,
    schema: Option<&str>,
    table: &str,
    task_id: &str,
    columns: &[&str],
    limit: usize,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, LabelError> {
    rt.block_on(async {
        let mut conn = connect(url, "output").await?;
        let d = conn.dialect();
        let prefix = match schema {
            Some(s) => format!("{}.", d.quote(&identifier("output_schema", s)?)),
            None => String::new(),
        };
        let fail = refused("Cannot scrape data from result tables");
        let rows_sql = format!(
            "SELECT COALESCE(length_output_table, 0) FROM {prefix}{} WHERE task_id = {}",
            d.quote("state"),
            d.param(1)
        );
        let sql = super::sqlite::sample_sql(d, &prefix, table, columns);
        // Every value as text, whatever its type on the server.
        let cast = match d {
            Dialect::Postgres => "TEXT",
            _ => "CHAR",
        };
        let sql = columns.iter().fold(sql, |sql, c| {
            let q = format!("t.{}", d.quote(c));
            sql.replacen(&q, &format!("CAST({q} AS {cast})"), 1)
        });
        macro_rules! go {
            ($c:expr) => {{
                let n: Option<i64> = match sqlx::query_scalar(sqlx::AssertSqlSafe(rows_sql))
                    .bind(task_id)
                    .fetch_optional(&mut *$c)
                    .await
                {
                    Ok(n) => n,
                    // No state table: nothing was ever written here.
                    Err(_) => return Ok(Vec::new()),
                };
                let first = super::sqlite::sample_offset(n.unwrap_or(0), limit);
                let mut rows = Vec::new();
                for offset in [first, 0] {
                    rows = match sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(task_id)
                        .bind(offset)
                        .bind(limit as i64)
                        .fetch_all(&mut *$c)
                        .await
                    {
                        Ok(rows) => rows,
                        Err(e) if e.as_database_error().is_some() => {
                            // A missing table is an empty sample.
                            tracing::debug!(error = %detail(&e), "sample query refused");
                            return Ok(Vec::new());
                        }
                        Err(e) => return Err(fail(e)),
                    };
                    // Sparse (production) rows: short from a random place,
                    // so the first rows instead.
                    if rows.len() >= limit || first == 0 {
                        break;
                    }
                }
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut m = serde_json::Map::new();
                    for (i, c) in columns.iter().enumerate() {
                        let v: Option<String> = r.try_get(i).map_err(&fail)?;
                        m.insert((*c).to_owned(), v.map_or(serde_json::Value::Null, Into::into));
                    }
                    out.push(m);
                }
                Ok(out)
            }};
        }
        match &mut conn {
            Conn::Pg(c) => go!(c),
            Conn::My(c) => go!(c),
        }
    })
}
